"""The intent screen's training (agent/guardrails/intent.py): a linear head on the frozen sentence encoder, fitted on
the labelled attacks and benign look-alikes of agent/guardrails/data/intent_train.jsonl, measured on the held-out
phrasing families of intent_holdout.jsonl (families no train row comes from), and written as intent_screen.json.

    python -m training.guardrail            # minutes (encodes ~1,100 texts); prints the held-out figures, writes the screen

The refusal threshold is set without the held-out set: on the train rows, each phrasing family is scored by a head
fitted without it (leave-families-out), and the threshold is the smallest total attack probability that refuses at
most FALSE_REFUSALS of the benign rows so scored. Reported beside it: the rules alone, the screen alone and both
(the rules first, as agent/guardrails/input.py runs them), as precision, recall and false refusals of benign
look-alikes: the figures llm-guard and Llama Guard report for their classifiers.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from agent.guardrails.evaluate import load
from agent.guardrails.input import check_input
from agent.guardrails.intent import OK, SCREEN_FILE, IntentScreen

FALSE_REFUSALS = 0.01  # the benign share the threshold may refuse (leave-families-out, on the train rows)
FOLDS = 5


def _fit(x: np.ndarray, labels: list[str], c: float) -> Any:
    # lazy: sklearn is heavy and needed only here
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, labels)


def _attack(clf: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 - clf.predict_proba(x)[:, list(clf.classes_).index(OK)])


def threshold(x: np.ndarray, labels: list[str], families: list[str], c: float) -> float:
    """The smallest attack probability that refuses at most FALSE_REFUSALS of benign rows scored by heads fitted
    without their family (never below one half)."""
    # lazy: sklearn is heavy and needed only here
    from sklearn.model_selection import GroupKFold

    out = np.zeros(len(labels))
    for train, test in GroupKFold(n_splits=FOLDS).split(x, labels, families):
        out[test] = _attack(_fit(x[train], [labels[i] for i in train], c), x[test])
    benign = np.sort(out[[i for i, lab in enumerate(labels) if lab == OK]])
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


def train(c: float = 2.0) -> IntentScreen:
    # lazy: pulls in pydantic_settings at import
    from tools.keywords.embeddings import default_embedder

    t0 = time.time()
    rows, held = load("intent_train.jsonl"), load("intent_holdout.jsonl")
    embed = default_embedder()
    x = embed.encode([r["text"] for r in rows])
    labels = [r["label"] for r in rows]
    cut = threshold(x, labels, [r["family"] for r in rows], c)
    clf = _fit(x, labels, c)
    screen = IntentScreen(
        classes=[str(k) for k in clf.classes_],
        coef=clf.coef_.round(5).tolist(),
        intercept=clf.intercept_.round(5).tolist(),
        threshold=round(cut, 4),
    )
    held_labels = [r["label"] for r in held]
    by_screen = [label != OK for label, _ in (screen.judge(r["text"]) for r in held)]
    by_rules = [not check_input(r["text"], scope="adv_0001").allowed for r in held]
    screen.summary = {
        "train_rows": len(rows),
        "heldout_rows": len(held),
        "C": c,
        "false_refusal_budget": FALSE_REFUSALS,
        "train_families": len({r["family"] for r in rows}),
        "heldout_families": len({r["family"] for r in held}),
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-C", type=float, default=2.0, help="inverse regularisation of the logistic regression")
    p.add_argument("--dry-run", action="store_true", help="print the figures, write nothing")
    args = p.parse_args(argv)
    screen = train(args.C)
    print(json.dumps(screen.summary, indent=2))
    if not args.dry_run:
        SCREEN_FILE.write_text(screen.model_dump_json())
        print(f"wrote {SCREEN_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
