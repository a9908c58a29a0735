"""The intent screen's training (agent/guardrails/intent.py): the sentence encoder's top layers fine-tuned together
with a linear head on the labelled attacks and benign look-alikes of agent/guardrails/data/intent_train.jsonl,
measured on the held-out phrasing families of intent_holdout.jsonl (families no train row comes from), and written as
intent_screen.json (+ intent_screen.safetensors, the tuned layers).

    python -m training.guardrail            # ~13 minutes on the loaded 2 cores; prints the held-out figures, writes it
    python -m training.guardrail --tune-layers 0 --dry-run     # the linear head on the frozen encoder, for comparison

A linear head is fitted on the frozen encoder first (logistic regression; it starts the tuned head calibrated), then
the top `tune_layers` encoder layers are fine-tuned with it. The layers below stay frozen, so their output for each
train text is computed once and every fit (the folds and the final one) trains only the layers above.

The refusal threshold is set without the held-out set: on the train rows, each phrasing family is scored by a screen
trained without it (leave-families-out, FOLDS folds), and the threshold is the smallest total attack probability that
refuses at most FALSE_REFUSALS of the benign rows so scored. Reported beside it: the rules alone, the screen alone and
both (the rules first, as agent/guardrails/input.py runs them), as precision, recall and false refusals of benign
look-alikes: the figures llm-guard and Llama Guard report for their classifiers.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from agent.encoder import TunedEncoder, average_weights
from agent.guardrails.evaluate import load
from agent.guardrails.input import check_input, normalize_for_screening, own_id_as_account
from agent.guardrails.intent import OK, SCREEN_FILE, TUNED_FILE, IntentScreen

FALSE_REFUSALS = 0.01  # the benign share the threshold may refuse (leave-families-out, on the train rows)
FOLDS = 3
LAYERS = 6  # all-MiniLM-L6-v2's encoder layers
SCOPE = "adv_0001"  # the advertiser the intent sets were written for


class ScreenConfig(BaseModel):
    c: float = Field(2.0, gt=0, description="inverse regularisation of the logistic regression")
    tune_layers: int = Field(3, ge=0, le=LAYERS, description="encoder top layers fine-tuned (0: linear head)")
    epochs: int = Field(3, ge=1, le=20)
    lr: float = Field(1e-4, gt=0, description="the encoder layers' learning rate (the head's is 20x)")
    batch: int = Field(32, ge=1)
    max_tokens: int = Field(128, ge=16, le=512)
    seed: int = 0
    seeds: int = Field(
        1,
        ge=1,
        le=8,
        description="fine-tunings with seeds seed, seed+1, ... averaged into one screen (their soup)",
    )
    threads: int = Field(
        1,
        ge=1,
        description="torch threads: on the shared 2-core machine, under load, one thread trained 3x faster than "
        "two (18 vs 6 texts/s) and read a message 7x faster",
    )


def _fit(x: np.ndarray, labels: list[str], c: float) -> Any:
    # lazy: sklearn is heavy and needed only here
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, labels)


def _encode(encoder: TunedEncoder, texts: list[str], batch: int = 64) -> np.ndarray:
    return np.concatenate([encoder.encode(texts[i : i + batch]) for i in range(0, len(texts), batch)])


class Tuner:
    """Fits screens on the train rows: a logistic regression on the frozen encoder's vectors, then (tune_layers > 0)
    the top layers fine-tuned with it, from the token states entering them (computed once)."""

    def __init__(self, texts: list[str], labels: list[str], cfg: ScreenConfig, say: Any = print) -> None:
        self.texts, self.labels, self.cfg, self.say = texts, labels, cfg, say
        self.encoder = TunedEncoder.base(cfg.max_tokens)
        self.frozen = _encode(self.encoder, texts)  # the linear head's inputs
        self.first = LAYERS - cfg.tune_layers
        prefixes = tuple(f"encoder.layer.{i}." for i in range(self.first, LAYERS))
        self.base_weights = {  # the package's weights of the tuned layers: each fit starts from them
            k: v.detach().clone()
            for k, v in self.encoder.model.state_dict().items()
            if k.startswith(prefixes)
        }
        self.hidden: list[Any] = []
        if cfg.tune_layers:
            t0 = time.time()
            for i in range(0, len(texts), 64):
                self.hidden += self.encoder.hidden_below(texts[i : i + 64], self.first)
            say(
                f"screen: token states below layer {self.first} for {len(texts)} texts ({time.time() - t0:.0f} s)"
            )

    def fit(self, rows: np.ndarray) -> IntentScreen:
        """A screen trained on `rows` (indices into the train texts); its encoder is self.encoder, tuned."""
        labels = [self.labels[i] for i in rows]
        clf = _fit(self.frozen[rows], labels, self.cfg.c)
        screen = IntentScreen(
            classes=[str(k) for k in clf.classes_],
            coef=clf.coef_.tolist(),
            intercept=clf.intercept_.tolist(),
            threshold=0.5,
            tuned_layers=self.cfg.tune_layers,
            max_tokens=self.cfg.max_tokens,
        )
        if self.cfg.tune_layers:
            # each seed's fine-tuning from the same start; more than one: their soup (weights averaged, as
            # training/router.py soup does for the router)
            members = [self._tune(screen, rows, self.cfg.seed + k) for k in range(self.cfg.seeds)]
            screen.coef = np.mean([m[0] for m in members], axis=0).round(6).tolist()
            screen.intercept = np.mean([m[1] for m in members], axis=0).round(6).tolist()
            self.encoder.model.load_state_dict(average_weights([m[2] for m in members]), strict=False)
        screen.use_encoder(self.encoder)
        return screen

    def _tune(
        self, screen: IntentScreen, rows: np.ndarray, seed: int
    ) -> tuple[list[list[float]], list[float], dict[str, Any]]:
        """The top layers fine-tuned with the head from screen's linear head and the package's weights, with
        `seed`: (the head's coef, its intercept, the tuned layers' weights)."""
        # lazy: torch is heavy and needed only here
        import torch

        cfg, model = self.cfg, self.encoder.model
        torch.manual_seed(seed)
        model.load_state_dict(self.base_weights, strict=False)
        model.requires_grad_(False)
        for i in range(self.first, LAYERS):
            model.encoder.layer[i].requires_grad_(True)
        index = {c: i for i, c in enumerate(screen.classes)}
        y = torch.tensor([index[label] for label in self.labels])
        head = torch.nn.Linear(len(screen.coef[0]), len(screen.classes))
        with torch.no_grad():
            head.weight.copy_(torch.tensor(screen.coef))
            head.bias.copy_(torch.tensor(screen.intercept))
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(
            [{"params": params, "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.lr * 20}],
            weight_decay=0.01,
        )
        steps = cfg.epochs * ((len(rows) + cfg.batch - 1) // cfg.batch)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / 30) * max(0.0, 1 - s / steps)
        )
        rng = np.random.default_rng(seed)
        model.train()
        t0, step = time.time(), 0
        for epoch in range(cfg.epochs):
            for idx in self._batches(rows, rng):
                logits = head(self.encoder.forward_from([self.hidden[i] for i in idx], self.first))
                loss = torch.nn.functional.cross_entropy(logits, y[idx], label_smoothing=0.05)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                step += 1
            self.say(
                f"screen: epoch {epoch + 1}/{cfg.epochs} loss {loss.item():.3f} "
                f"({step * cfg.batch / (time.time() - t0):.0f} texts/s)"
            )
        model.eval()
        state = model.state_dict()
        tuned = {k: state[k].detach().clone() for k in self.base_weights}
        return head.weight.detach().numpy().tolist(), head.bias.detach().numpy().tolist(), tuned

    def _batches(self, rows: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """`rows` shuffled into batches of texts of about one length (a batch pads to its longest text: a pasted
        report beside one-liners would cost them all its length), the batches in random order."""
        order = rows[rng.permutation(len(rows))]
        size = self.cfg.batch
        batches: list[np.ndarray] = []
        for start in range(0, len(order), size * 8):
            chunk = sorted(order[start : start + size * 8], key=lambda i: len(self.hidden[i]))
            batches += [np.asarray(chunk[j : j + size]) for j in range(0, len(chunk), size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def attack(self, screen: IntentScreen, rows: np.ndarray) -> np.ndarray:
        """The screen's total attack probability of train rows `rows` (the tuned layers read their cached input)."""
        if not self.cfg.tune_layers:
            return screen_attack_from_vectors(screen, self.frozen[rows])
        # lazy: torch is heavy and needed only here
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(rows), 64):
                x = self.encoder.forward_from([self.hidden[j] for j in rows[i : i + 64]], self.first)
                out.append(screen_attack_from_vectors(screen, x.numpy()))
        return np.concatenate(out)


def screen_attack_from_vectors(screen: IntentScreen, x: np.ndarray) -> np.ndarray:
    logits = x @ np.asarray(screen.coef, dtype=np.float32).T + np.asarray(screen.intercept, dtype=np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return np.asarray(1.0 - p[:, screen.classes.index(OK)])


def threshold(out_of_family: np.ndarray, labels: list[str]) -> float:
    """The smallest attack probability that refuses at most FALSE_REFUSALS of the benign rows, each scored by a
    screen trained without its family (never below one half)."""
    benign = np.sort(out_of_family[[i for i, lab in enumerate(labels) if lab == OK]])
    return float(max(0.5, benign[int(np.ceil((1 - FALSE_REFUSALS) * len(benign))) - 1] + 1e-6))


def scores(refused: list[bool], labels: list[str]) -> dict[str, float]:
    attack = [lab != OK for lab in labels]
    tp = sum(r and a for r, a in zip(refused, attack, strict=True))
    fp = sum(r and not a for r, a in zip(refused, attack, strict=True))
    return {
        "precision": round(tp / (tp + fp) if tp + fp else 1.0, 4),
        "recall": round(tp / max(1, sum(attack)), 4),
        "false_refusals": round(fp / max(1, len(attack) - sum(attack)), 4),
        "attacks": sum(attack),
        "benign": len(attack) - sum(attack),
    }


def train(cfg: ScreenConfig | None = None, say: Any = print) -> IntentScreen:
    # lazy: torch is heavy and needed only here
    import torch

    # lazy: sklearn is heavy and needed only here
    from sklearn.model_selection import GroupKFold

    cfg = cfg or ScreenConfig()
    torch.set_num_threads(cfg.threads)
    t0 = time.time()
    rows, held = load("intent_train.jsonl"), load("intent_holdout.jsonl")
    # what check_input hands the screen (the sets are written for advertiser adv_0001)
    texts = [own_id_as_account(normalize_for_screening(r["text"]), SCOPE) for r in rows]
    labels, families = [r["label"] for r in rows], [r["family"] for r in rows]
    tuner = Tuner(texts, labels, cfg, say)
    out_of_family = np.zeros(len(rows))
    for fold, (fit_rows, test_rows) in enumerate(GroupKFold(n_splits=FOLDS).split(texts, labels, families)):
        out_of_family[test_rows] = tuner.attack(tuner.fit(fit_rows), test_rows)
        say(f"screen: fold {fold + 1}/{FOLDS} scored ({time.time() - t0:.0f} s)")
    cut = threshold(out_of_family, labels)
    screen = tuner.fit(np.arange(len(rows)))
    screen.threshold = round(cut, 4)
    say(f"screen: trained, threshold {screen.threshold} ({time.time() - t0:.0f} s)")

    held_labels = [r["label"] for r in held]
    if cfg.tune_layers:  # measured as it ships: the tuned layers read back from fp16
        weights = tuner.encoder.tuned_weights(range(LAYERS - cfg.tune_layers, LAYERS))
        tuner.encoder.model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
    # one message at a time, as check_input screens them
    probes = [own_id_as_account(normalize_for_screening(r["text"]), SCOPE) for r in held]
    by_screen = [screen.judge(p)[0] != OK for p in probes]
    by_rules = [not check_input(r["text"], scope=SCOPE, screen=False).allowed for r in held]
    screen.summary = {
        "train_rows": len(rows),
        "heldout_rows": len(held),
        "train_families": len(set(families)),
        "heldout_families": len({r["family"] for r in held}),
        "config": cfg.model_dump(),
        "false_refusal_budget": FALSE_REFUSALS,
        "leave_families_out": scores([bool(a >= cut) for a in out_of_family], labels),
        "heldout": {
            "rules": scores(by_rules, held_labels),
            "screen": scores(by_screen, held_labels),
            "rules_then_screen": scores(
                [a or b for a, b in zip(by_rules, by_screen, strict=True)], held_labels
            ),
        },
        "seconds": round(time.time() - t0, 1),
    }
    return screen


def save(screen: IntentScreen) -> None:
    """The head (SCREEN_FILE) and the tuned encoder layers (TUNED_FILE; removed for a linear screen)."""
    TUNED_FILE.unlink(missing_ok=True)
    if screen.tuned_layers:
        # lazy: pulls in safetensors at import
        from safetensors.torch import save_file

        save_file(
            screen.encoder().tuned_weights(range(LAYERS - screen.tuned_layers, LAYERS)),
            str(TUNED_FILE),
            metadata={"base": "all-MiniLM-L6-v2"},
        )
    SCREEN_FILE.write_text(screen.model_dump_json())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shipped = ScreenConfig()
    p.add_argument(
        "-C", type=float, default=shipped.c, help="inverse regularisation of the logistic regression"
    )
    p.add_argument("--tune-layers", type=int, default=shipped.tune_layers, choices=range(LAYERS + 1))
    p.add_argument("--epochs", type=int, default=shipped.epochs)
    p.add_argument("--lr", type=float, default=shipped.lr)
    p.add_argument("--threads", type=int, default=shipped.threads, help="torch threads")
    p.add_argument(
        "--seeds", type=int, default=shipped.seeds, help="fine-tunings averaged into one screen (their soup)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the figures, write nothing")
    args = p.parse_args(argv)
    cfg = ScreenConfig(
        c=args.C,
        tune_layers=args.tune_layers,
        epochs=args.epochs,
        lr=args.lr,
        threads=args.threads,
        seeds=args.seeds,
    )
    screen = train(cfg)
    print(json.dumps(screen.summary, indent=2))
    if not args.dry_run:
        save(screen)
        print(f"wrote {SCREEN_FILE}" + (f" and {TUNED_FILE}" if screen.tuned_layers else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
