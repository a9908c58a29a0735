"""The intent router's training: seller messages from the curriculum's train phrasing families (never the held-out
families, the hand-written seller set or the evaluation world), each labelled with the intent it was written
from, encoded by the pretrained sentence encoder and fitted with a multinomial logistic regression.

    python -m training.router --out training/models/adguide-small     # ~3 minutes on 2 cores
    adguide train export --out training/models/adguide-small          # runs it after copying the model

It reports accuracy on the held-out phrasing families (messages written from patterns it never saw) beside the
train accuracy, and writes `intent_router.json` into the model dir (agent/router.py reads it).
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

from agent.curriculum.phrasings import Section
from agent.intents import IntentKind
from agent.router import ROUTER_FILE, IntentRouter


async def _messages(world: Path, advertiser: str, per_kind: int, seed: int, heldout: bool) -> list[tuple[str, str]]:
    from agent.curriculum.dialogues import account_context, render_pattern
    from tools.mcp_server import connect_in_memory
    from tools.mcp_server.cache import ToolCache

    out: list[tuple[str, str]] = []
    async with connect_in_memory(world, advertiser, cache=ToolCache(enabled=False), actor="router") as session:
        async def call_tool(name: str, args: dict[str, Any]) -> str:
            result = await session.call_tool(name, args)
            return "\n".join(getattr(b, "text", "") for b in result.content)

        ctx = await account_context(call_tool)
        rng = np.random.default_rng([seed, int(advertiser.rsplit("_", 1)[-1]), int(heldout)])
        for kind in IntentKind:
            for section in (Section.FIRST, Section.FOLLOWUP):
                for _ in range(per_kind if section == Section.FIRST else per_kind // 3):
                    try:
                        rendered = render_pattern(kind, section, ctx, rng, heldout)
                    except (KeyError, IndexError, ValueError):  # a slot this account cannot fill
                        continue
                    if rendered is not None:
                        out.append((rendered[0], kind.value))
    return out


def collect(worlds: list[Path], *, per_kind: int, seed: int, heldout: bool, advertisers: int) -> list[tuple[str, str]]:
    from tools.market.store import MarketStore

    rows: list[tuple[str, str]] = []
    for world in worlds:
        with MarketStore.open(world) as store:
            ids = store.advertiser_ids()[:advertisers]
        for advertiser in ids:
            rows += asyncio.run(_messages(world, advertiser, per_kind, seed, heldout))
    return sorted(set(rows))


def fit(texts: list[str], labels: list[str], c: float = 4.0) -> IntentRouter:
    from sklearn.linear_model import LogisticRegression

    from tools.keywords.embeddings import default_embedder

    x = default_embedder().encode(texts)
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit(x, labels)
    return IntentRouter(classes=[str(k) for k in clf.classes_], coef=clf.coef_.round(5).tolist(),
                        intercept=clf.intercept_.round(5).tolist())


def accuracy(router: IntentRouter, rows: list[tuple[str, str]]) -> float:
    probs = router.predict([t for t, _ in rows])
    return float(np.mean([max(p, key=p.__getitem__) == label for p, (_, label) in zip(probs, rows, strict=True)]))


def train_router(model_dir: Path, work: Path, *, per_kind: int = 12, advertisers: int = 6, c: float = 4.0,
                 say: Any = print) -> dict[str, Any]:
    """Train the router on the train families of two fresh training worlds (under `work`) and write it into
    `model_dir`; returns its summary (accuracy on the train messages and on the held-out families)."""
    from training.curriculum import CurriculumConfig, make_worlds

    t0 = time.time()
    cfg = CurriculumConfig(n_worlds=2, advertisers_per_world=advertisers, days=30)
    worlds = make_worlds(cfg, work / "worlds")
    say(f"router: worlds ready ({time.time() - t0:.0f} s)")
    train = collect(worlds, per_kind=per_kind, seed=1, heldout=False, advertisers=advertisers)
    held = collect(worlds[:1], per_kind=max(3, per_kind // 3), seed=2, heldout=True, advertisers=advertisers)
    say(f"router: {len(train)} train messages, {len(held)} from held-out families ({time.time() - t0:.0f} s)")
    router = fit([t for t, _ in train], [k for _, k in train], c=c)
    router.summary = {"train_messages": len(train), "heldout_messages": len(held), "C": c,
                      "train_accuracy": round(accuracy(router, train), 4),
                      "heldout_family_accuracy": round(accuracy(router, held), 4), "seconds": round(time.time() - t0, 1)}
    (model_dir / ROUTER_FILE).write_text(router.model_dump_json())
    return router.summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the model dir to write intent_router.json into")
    p.add_argument("--work", type=Path, default=Path("runs/router"), help="where the training worlds go")
    p.add_argument("--per-kind", type=int, default=12, help="messages per intent and advertiser")
    p.add_argument("--advertisers", type=int, default=6, help="advertisers per world")
    p.add_argument("-C", type=float, default=4.0, help="inverse regularisation of the logistic regression")
    args = p.parse_args(argv)
    if not args.out.is_dir():
        print(f"error: {args.out} is not a model dir", file=sys.stderr)
        return 2
    summary = train_router(args.out, args.work, per_kind=args.per_kind, advertisers=args.advertisers, c=args.C)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
