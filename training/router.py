"""The intent router's training: seller messages from the curriculum's train phrasing families (never the held-out
families, the hand-written seller set or the evaluation world), each labelled with the intent it was written
from: the pretrained sentence encoder with a classification head, fine-tuned on them.

    python -m training.router --out training/models/adguide-small     # ~12 minutes on 2 cores
    adguide train export --out training/models/adguide-small          # runs it after copying the model

A linear head is fitted on the frozen encoder first (a few seconds; it starts the head calibrated), then all six
encoder layers are fine-tuned with it (the embeddings stay the package's; --tune-layers 0 keeps the linear router).
It reports accuracy on the held-out phrasing families (messages written from patterns it never saw) beside the
train accuracy, and writes `intent_router.json` (classes, head, summary) and `intent_router.safetensors` (the tuned
layers, fp16) into the model dir (agent/router.py reads them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.curriculum.dialogues import account_context, render_pattern
from agent.curriculum.phrasings import HeldOutHalf, Section
from agent.encoder import average_weights
from agent.intents import IntentKind
from agent.router import ROUTER_FILE, TUNED_FILE, IntentRouter, TunedEncoder
from tools.market.store import MarketStore
from training.config import RouterConfig
from training.curriculum import CurriculumConfig, make_worlds


async def _messages(
    world: Path, advertiser: str, per_kind: int, seed: int, heldout: bool, half: HeldOutHalf | None
) -> list[tuple[str, str]]:
    # lazy: pulls in mcp, pydantic_settings, starlette at import
    from tools.mcp_server import connect_in_memory

    # lazy: pulls in pydantic_settings at import
    from tools.mcp_server.cache import ToolCache

    out: list[tuple[str, str]] = []
    async with connect_in_memory(
        world, advertiser, cache=ToolCache(enabled=False), actor="router"
    ) as session:

        async def call_tool(name: str, args: dict[str, Any]) -> str:
            result = await session.call_tool(name, args)
            return "\n".join(getattr(b, "text", "") for b in result.content)

        ctx = await account_context(call_tool)
        rng = np.random.default_rng([seed, int(advertiser.rsplit("_", 1)[-1]), int(heldout)])
        for kind in IntentKind:
            for section in (Section.FIRST, Section.FOLLOWUP):
                for _ in range(per_kind if section == Section.FIRST else per_kind // 3):
                    try:
                        rendered = render_pattern(kind, section, ctx, rng, heldout, half=half)
                    except (KeyError, IndexError, ValueError):  # a slot this account cannot fill
                        continue
                    if rendered is not None:
                        out.append((rendered[0], kind.value))
    return out


def collect(
    worlds: list[Path],
    *,
    per_kind: int,
    seed: int,
    heldout: bool,
    advertisers: int,
    half: HeldOutHalf | None = None,
) -> list[tuple[str, str]]:
    """(message, intent) pairs rendered from the train patterns, or the held-out ones (of `half` where given)."""
    rows: list[tuple[str, str]] = []
    for world in worlds:
        with MarketStore.open(world) as store:
            ids = store.advertiser_ids()[:advertisers]
        for advertiser in ids:
            rows += asyncio.run(_messages(world, advertiser, per_kind, seed, heldout, half))
    return sorted(set(rows))


# Ways sellers wrap a request that no phrasing family is about: a greeting before it, a sign-off after it, typos.
# Copies of train messages get them with their label kept (a "hey, how are my ads doing?" is an overview, not a
# greeting); best-bid questions with an action asked for after them are apply-best-bid.
OPENERS = [
    "hey, ",
    "hi! ",
    "hello, ",
    "hi there. ",
    "good morning, ",
    "morning! ",
    "hey there - ",
    "ok so ",
    "quick question: ",
    "question: ",
    "thanks! now ",
    "hi again, ",
    "yo ",
    "one more thing: ",
    "sorry, ",
    "hello hello. ",
    "hey quick one - ",
    "good afternoon! ",
]
SIGN_OFFS = [
    " thanks",
    " thx",
    " pls",
    " please",
    " :)",
    " asap",
    " rn",
    " thank you!",
    " cheers",
    "??",
    "...",
]
ACTIONS = [
    ", and set it up for me",
    " and put it in",
    ". then line up the change",
    ", go ahead and make the change",
    " - and apply it",
    ". prepare it so I can approve",
    ", then queue it",
    " and just do it",
]
_UNWRAPPED = {IntentKind.GREETING, IntentKind.CONFIRM, IntentKind.REJECT, IntentKind.CHOOSE}
# intents an action may follow: the advice that ends in a proposal keeps its intent (so an action asked for is no
# sign of one of them alone); a best bid asked for with an action is apply-best-bid
_ACTED = {
    IntentKind.BEST_BID,
    IntentKind.APPLY_BEST_BID,
    IntentKind.FIX_ACOS,
    IntentKind.FIX_BUDGET,
    IntentKind.CUT_WORST,
}


def _typo(text: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long:
        return text
    i = long[int(rng.integers(len(long)))]
    w, j = words[i], int(rng.integers(1, len(words[i]) - 1))
    how = int(rng.integers(3))
    words[i] = (
        w[:j] + w[j + 1 :]
        if how == 0
        else w[:j] + w[j] + w[j:]
        if how == 1
        else w[: j - 1] + w[j] + w[j - 1] + w[j + 1 :]
    )
    return " ".join(words)


def augment(rows: list[tuple[str, str]], per_message: float, seed: int) -> list[tuple[str, str]]:
    """Noisy copies of `rows` (about `per_message` each): an opener, a sign-off, a typo or lower case, each
    with its label; advice that ends in a proposal with an action asked for after it (a best-bid question with
    one becomes apply-best-bid)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str]] = []
    for text, label in rows:
        for _ in range(int(per_message) + int(rng.random() < per_message % 1)):
            kind = IntentKind(label)
            if kind in _ACTED and rng.random() < 0.3:  # the action asked for: a best bid becomes its proposal
                acted = IntentKind.APPLY_BEST_BID if kind == IntentKind.BEST_BID else kind
                out.append((text.rstrip("?. ") + ACTIONS[int(rng.integers(len(ACTIONS)))], acted.value))
                continue
            new = text
            if kind not in _UNWRAPPED and rng.random() < 0.5:
                opener = OPENERS[int(rng.integers(len(OPENERS)))]
                new = opener + (new[0].lower() + new[1:] if new[:2] != "I " else new)
            if rng.random() < 0.35:
                new = new.rstrip(".") + SIGN_OFFS[int(rng.integers(len(SIGN_OFFS)))]
            if rng.random() < 0.4:
                new = _typo(new, rng)
            if rng.random() < 0.3:
                new = new.lower().replace("?", "").replace(".", "")
            if new != text:
                out.append((new, label))
    return out


def fit(texts: list[str], labels: list[str], c: float = 4.0) -> IntentRouter:
    # lazy: pulls in sklearn at import
    from sklearn.linear_model import LogisticRegression

    # lazy: pulls in pydantic_settings at import
    from tools.keywords.embeddings import default_embedder

    x = default_embedder().encode(texts)
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit(x, labels)
    return IntentRouter(
        classes=[str(k) for k in clf.classes_],
        coef=clf.coef_.round(5).tolist(),
        intercept=clf.intercept_.round(5).tolist(),
    )


def finetune(
    router: IntentRouter,
    texts: list[str],
    labels: list[str],
    *,
    layers: int = 2,
    epochs: int = 2,
    lr: float = 5e-5,
    batch: int = 32,
    seed: int = 0,
    say: Any = print,
) -> dict[str, Any]:
    """Fine-tune the encoder's top `layers` layers together with the head, starting from the linear router
    `router` (fitted on the frozen encoder, so the head starts calibrated); writes both back into `router`
    and returns the tuned layers' weights (for TUNED_FILE)."""
    # lazy: pulls in pydantic_settings at import
    from tools.keywords.embeddings import EMBEDDING_DIM

    torch.manual_seed(seed)
    encoder = TunedEncoder.base()
    model = encoder.model
    model.requires_grad_(False)
    n_layers = len(model.encoder.layer)
    tuned = range(n_layers - layers, n_layers)
    for i in tuned:
        model.encoder.layer[i].requires_grad_(True)
    index = {c: i for i, c in enumerate(router.classes)}
    y = torch.tensor([index[label] for label in labels])
    head = torch.nn.Linear(EMBEDDING_DIM, len(router.classes))
    with torch.no_grad():
        head.weight.copy_(torch.tensor(router.coef))
        head.bias.copy_(torch.tensor(router.intercept))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": params, "lr": lr}, {"params": head.parameters(), "lr": lr * 20}], weight_decay=0.01
    )
    steps = epochs * ((len(texts) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / steps))
    rng = np.random.default_rng(seed)
    model.train()
    t0, step = time.time(), 0
    for epoch in range(epochs):
        order = rng.permutation(len(texts))
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            logits = head(encoder.forward([texts[i] for i in idx]))
            loss = torch.nn.functional.cross_entropy(logits, y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0 or step == steps:
                rate = step / (time.time() - t0)
                say(
                    f"router: epoch {epoch + 1}/{epochs} step {step}/{steps} loss {loss.item():.3f} "
                    f"({rate * batch:.0f} messages/s, ETA {(steps - step) / rate:.0f} s)"
                )
    model.eval()
    router.coef = head.weight.detach().numpy().round(6).tolist()
    router.intercept = head.bias.detach().numpy().round(6).tolist()
    router.tuned_layers = layers
    router._encoder = encoder
    # fp16 on disk (half the size; the router reads them back as fp32 and routes the same)
    return encoder.tuned_weights(tuned)


def soup(
    members: list[tuple[IntentRouter, dict[str, Any]]], weights: list[float] | None = None
) -> tuple[IntentRouter, dict[str, Any]]:
    """The soup of routers fine-tuned from the pretrained encoder: their heads and tuned layers averaged (uniformly,
    or by `weights`; agent/encoder.py average_weights). Of seeds on the same data it evens out what one seed's data
    order and dropout happened to learn; of a new router with the one it replaces (merge_with), it keeps what each
    learned from its own train patterns; either at one router's cost to run."""
    first = members[0][0]
    if any(m.classes != first.classes or m.tuned_layers != first.tuned_layers for m, _ in members):
        raise ValueError("routers with other intents or other tuned layers cannot be averaged")
    w = np.full(len(members), 1 / len(members)) if weights is None else np.asarray(weights) / sum(weights)
    router = IntentRouter(
        classes=first.classes,
        coef=np.tensordot(w, np.asarray([m.coef for m, _ in members]), axes=1).round(6).tolist(),
        intercept=np.tensordot(w, np.asarray([m.intercept for m, _ in members]), axes=1).round(6).tolist(),
        tuned_layers=first.tuned_layers,
    )
    averaged = average_weights([t for _, t in members], list(w))
    encoder = TunedEncoder.base()
    encoder.model.load_state_dict(averaged, strict=False)
    router._encoder = encoder
    return router, {k: v.half().contiguous() for k, v in averaged.items()}


def _tuned_router(model_dir: Path) -> tuple[IntentRouter, dict[str, Any]]:
    """A model dir's fine-tuned router and its tuned layers (to merge a new router with), as its encoder holds them
    (IntentRouter.load has read TUNED_FILE once)."""
    router = IntentRouter.load(model_dir)
    if router is None or not router.tuned_layers:
        raise ValueError(
            f"{model_dir} holds no fine-tuned router ({ROUTER_FILE} with tuned layers) to merge with"
        )
    layers = len(router._encoder.model.encoder.layer)
    return router, router._encoder.tuned_weights(range(layers - router.tuned_layers, layers))


def accuracy(router: IntentRouter, rows: list[tuple[str, str]]) -> float:
    probs = router.predict([t for t, _ in rows])
    return float(
        np.mean([max(p, key=p.__getitem__) == label for p, (_, label) in zip(probs, rows, strict=True)])
    )


def train_router(
    model_dir: Path,
    work: Path,
    cfg: RouterConfig | None = None,
    *,
    c: float = 4.0,
    merge_with: Path | None = None,
    merge_weight: float = 0.5,
    say: Any = print,
) -> dict[str, Any]:
    """Train the router on the train families of two fresh training worlds (under `work`) and write it into
    `model_dir`: a linear head on the frozen encoder, then (cfg.tune_layers > 0) the encoder's top layers fine-tuned
    with it; with `merge_with` (a model dir holding a fine-tuned router, read before anything is written), the new
    router averaged with that one, `merge_weight` being the old one's share. Returns its summary (accuracy on the
    train messages and on the held-out families)."""
    cfg = cfg or RouterConfig()
    t0 = time.time()
    previous = _tuned_router(merge_with) if merge_with is not None else None
    worlds = make_worlds(
        CurriculumConfig(n_worlds=2, advertisers_per_world=cfg.advertisers, days=30), work / "worlds"
    )
    say(f"router: worlds ready ({time.time() - t0:.0f} s)")
    train = collect(worlds, per_kind=cfg.per_kind, seed=1, heldout=False, advertisers=cfg.advertisers)
    held = collect(
        worlds[:1], per_kind=max(3, cfg.per_kind // 3), seed=2, heldout=True, advertisers=cfg.advertisers
    )
    train = sorted(set(train + augment(train, cfg.augment, seed=3)))
    say(
        f"router: {len(train)} train messages (with noisy copies), {len(held)} from held-out families "
        f"({time.time() - t0:.0f} s)"
    )
    router = fit([t for t, _ in train], [k for _, k in train], c=c)
    summary: dict[str, Any] = {
        "train_messages": len(train),
        "heldout_messages": len(held),
        "C": c,
        "linear_heldout_family_accuracy": round(accuracy(router, held), 4),
    }
    say(
        f"router: linear head on the frozen encoder: held-out family accuracy "
        f"{summary['linear_heldout_family_accuracy']:.3f} ({time.time() - t0:.0f} s)"
    )
    tuned: dict[str, Any] = {}
    if cfg.tune_layers:
        members = []
        for seed in range(cfg.seeds):
            member = IntentRouter(classes=router.classes, coef=router.coef, intercept=router.intercept)
            weights = finetune(
                member,
                [t for t, _ in train],
                [k for _, k in train],
                layers=cfg.tune_layers,
                epochs=cfg.epochs,
                seed=seed,
                say=say,
            )
            members.append((member, weights))
            say(f"router: seed {seed}: held-out family accuracy {accuracy(member, held):.3f}")
        router, tuned = soup(members) if len(members) > 1 else members[0]
        summary |= {"tuned_layers": cfg.tune_layers, "epochs": cfg.epochs, "seeds": cfg.seeds}
        if len(members) > 1:
            summary["member_heldout_family_accuracy"] = [round(accuracy(m, held), 4) for m, _ in members]
    if previous is not None:
        summary["own_heldout_family_accuracy"] = round(accuracy(router, held), 4)
        summary["previous_heldout_family_accuracy"] = round(accuracy(previous[0], held), 4)
        router, tuned = soup([(router, tuned), previous], [1 - merge_weight, merge_weight])
        summary["merged_with"] = {"router": str(merge_with), "weight": merge_weight}
        say(f"router: merged with {merge_with} ({merge_weight:.2f} of it)")
    summary |= {
        "train_accuracy": round(accuracy(router, train), 4),
        "heldout_family_accuracy": round(accuracy(router, held), 4),
        "seconds": round(time.time() - t0, 1),
    }
    router.summary = summary
    save(router, tuned, model_dir)
    return router.summary


def save(router: IntentRouter, tuned: dict[str, Any], model_dir: Path) -> None:
    """The head (ROUTER_FILE) and the tuned encoder layers (TUNED_FILE; removed for a linear router)."""
    (model_dir / TUNED_FILE).unlink(missing_ok=True)
    if tuned:
        # lazy: pulls in safetensors at import
        from safetensors.torch import save_file

        save_file(tuned, str(model_dir / TUNED_FILE), metadata={"base": "all-MiniLM-L6-v2"})
    (model_dir / ROUTER_FILE).write_text(router.model_dump_json())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the model dir to write intent_router.json into")
    p.add_argument("--work", type=Path, default=Path("runs/router"), help="where the training worlds go")
    shipped = RouterConfig()  # the recipe's defaults (training/config.py)
    p.add_argument(
        "--per-kind", type=int, default=shipped.per_kind, help="messages per intent and advertiser"
    )
    p.add_argument("--advertisers", type=int, default=shipped.advertisers, help="advertisers per world")
    p.add_argument("-C", type=float, default=4.0, help="inverse regularisation of the logistic regression")
    p.add_argument(
        "--tune-layers",
        type=int,
        default=shipped.tune_layers,
        choices=range(7),
        help="fine-tune the encoder's top N layers with the head (0: a linear head on the frozen encoder)",
    )
    p.add_argument("--epochs", type=int, default=shipped.epochs, help="fine-tuning passes over the messages")
    p.add_argument("--augment", type=float, default=shipped.augment, help="noisy copies per train message")
    p.add_argument(
        "--seeds", type=int, default=shipped.seeds, help="fine-tunings averaged into one router (their soup)"
    )
    p.add_argument(
        "--merge-with",
        type=Path,
        default=None,
        help="a model dir whose fine-tuned router the new one is averaged with (read before --out is written)",
    )
    p.add_argument(
        "--merge-weight", type=float, default=0.5, help="the --merge-with router's share of the average"
    )
    args = p.parse_args(argv)
    if not args.out.is_dir():
        print(f"error: {args.out} is not a model dir", file=sys.stderr)
        return 2
    cfg = RouterConfig(
        per_kind=args.per_kind,
        advertisers=args.advertisers,
        tune_layers=args.tune_layers,
        epochs=args.epochs,
        augment=args.augment,
        seeds=args.seeds,
    )
    try:
        summary = train_router(
            args.out, args.work, cfg, c=args.C, merge_with=args.merge_with, merge_weight=args.merge_weight
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
