"""The data stage: curriculum dialogues (agent/curriculum/) over generated training worlds, in parallel.

Training worlds draw every category but the held-out ones (tools.market.world.HELD_OUT_CATEGORY_NAMES) from
their own seeds, so the evaluation's worlds and its new category stay unseen; the dialogues use the train
phrasing families only. Each worker process takes a share of the advertisers, holds one in-memory MCP session
per advertiser (the real tools, a memo of results so a repeated call costs nothing) and writes its own JSONL
shard; the parent reports progress with an ETA. Proposals are never applied (nothing is written to the worlds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing as mp
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tools.market.data_model import WorldConfig

Progress = Callable[[str, int, int], None]
SIM_DRAWS = "50"  # Monte Carlo draws in the data stage's simulations (plausible figures are all it needs)


class CurriculumConfig(BaseModel):
    n_worlds: int = Field(4, ge=1, le=100)
    advertisers_per_world: int = Field(10, ge=2, le=500)
    days: int = Field(60, ge=21, le=365)
    dialogues: int = Field(20_000, ge=1, description="dialogues in all, spread over the advertisers")
    val_advertisers: int = Field(2, ge=0, description="advertisers whose dialogues validate (not trained on)")
    seed: int = 101
    processes: int = Field(2, ge=1, le=64)


def world_configs(cfg: CurriculumConfig) -> list[Any]:
    # lazy: pulls in numpy at import
    from tools.market.world import CATEGORY_BY_NAME, HELD_OUT_CATEGORY_NAMES

    categories = [name for name in CATEGORY_BY_NAME if name not in HELD_OUT_CATEGORY_NAMES]
    return [
        WorldConfig(
            n_advertisers=cfg.advertisers_per_world, days=cfg.days, seed=cfg.seed + i, categories=categories
        )
        for i in range(cfg.n_worlds)
    ]


def make_worlds(cfg: CurriculumConfig, out: Path) -> list[Path]:
    # lazy: pulls in numpy, scipy at import
    from tools.market.generate import generate_world_file

    # lazy: pulls in numpy at import
    from tools.market.store import MarketStore

    # lazy: pulls in numpy at import
    from tools.market.world import HELD_OUT_CATEGORY_NAMES

    paths = []
    for i, wc in enumerate(world_configs(cfg)):
        path = out / f"world-{i}" / "world.sqlite"
        if not path.exists():
            generate_world_file(wc, path)
        with MarketStore.open(path) as store:
            held = {store.scoped(a).advertiser.category for a in store.advertiser_ids()} & set(
                HELD_OUT_CATEGORY_NAMES
            )
        if held:
            raise RuntimeError(f"training world {path} has held-out categories {sorted(held)}")
        paths.append(path)
    return paths


def _quiet() -> None:
    for name in (
        "mcp",
        "mcp.server",
        "mcp.server.lowlevel.server",
        "tools.mcp_server",
        "httpx",
        "sentence_transformers",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


async def _advertiser_dialogues(
    world: Path, advertiser: str, n: int, seed: int, heldout: bool, out: Any, counter: Any
) -> int:
    # lazy: numpy is heavy and needed only here
    import numpy as np

    # lazy: pulls in numpy at import
    from agent.curriculum.dialogues import account_context, write_dialogue

    # lazy: pulls in mcp, pydantic_settings, starlette at import
    from tools.mcp_server import connect_in_memory

    # lazy: pulls in pydantic_settings at import
    from tools.mcp_server.cache import ToolCache

    memo: dict[tuple[str, str], str] = {}
    async with connect_in_memory(
        world, advertiser, cache=ToolCache(enabled=False), actor="curriculum"
    ) as session:

        async def call_tool(name: str, args: dict[str, Any]) -> str:
            key = (name, json.dumps(args, sort_keys=True))
            if key not in memo:
                result = await session.call_tool(name, args)
                memo[key] = "\n".join(getattr(b, "text", "") for b in result.content)
            return memo[key]

        ctx = await account_context(call_tool)
        rng = np.random.default_rng(
            [seed, zlib.crc32(world.parent.name.encode()), int(advertiser.rsplit("_", 1)[-1])]
        )
        written = 0
        for i in range(n):
            d = await write_dialogue(
                call_tool, ctx, rng, heldout=heldout, dialogue_id=f"{world.parent.name}-{advertiser}-{i:05d}"
            )
            if d is not None:
                out.write(d.model_dump_json() + "\n")
                written += 1
            with counter.get_lock():
                counter.value += 1
    return written


def _worker(jobs: list[tuple[str, str, int, bool, str]], seed: int, counter: Any) -> None:
    os.environ["ADGUIDE_SIM_DRAWS"] = SIM_DRAWS
    os.environ.setdefault("ADGUIDE_MCP_CACHE", "off")
    _quiet()

    async def run() -> None:
        for world, advertiser, n, heldout, shard in jobs:
            with open(shard, "a") as out:
                await _advertiser_dialogues(Path(world), advertiser, n, seed, heldout, out, counter)

    asyncio.run(run())


def write_curriculum(cfg: CurriculumConfig, out: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Worlds and dialogues under `out`: train.jsonl (train families), val.jsonl (train families, held-apart
    advertisers). Returns counts for the stage summary."""
    # lazy: pulls in numpy at import
    from tools.market.store import MarketStore

    say = progress or (lambda *_: None)
    out.mkdir(parents=True, exist_ok=True)
    worlds = make_worlds(cfg, out / "worlds")
    pairs = []
    for w in worlds:
        with MarketStore.open(w) as store:
            pairs += [(w, a) for a in store.advertiser_ids()]
    val = set(pairs[-cfg.val_advertisers :]) if cfg.val_advertisers else set()
    per = max(1, cfg.dialogues // max(1, len(pairs) - len(val)))
    shards = out / "shards"
    shards.mkdir(exist_ok=True)
    for old in shards.glob("*.jsonl"):
        old.unlink()
    jobs: list[list[tuple[str, str, int, bool, str]]] = [[] for _ in range(cfg.processes)]
    for i, (w, a) in enumerate(pairs):
        name = "val" if (w, a) in val else "train"
        n = max(20, per // 10) if name == "val" else per
        jobs[i % cfg.processes].append(
            (str(w), a, n, False, str(shards / f"{name}-{i % cfg.processes}.jsonl"))
        )
    total = sum(j[2] for js in jobs for j in js)
    counter = mp.get_context("spawn").Value("i", 0)
    procs = [
        mp.get_context("spawn").Process(target=_worker, args=(js, cfg.seed, counter)) for js in jobs if js
    ]
    started = time.time()
    for p in procs:
        p.start()
    while any(p.is_alive() for p in procs):
        time.sleep(2.0)
        say("curriculum dialogues", counter.value, total)
    say("curriculum dialogues", counter.value, total)
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} data worker(s) failed (exit codes {failed}); see the log above")
    counts = {}
    for name in ("train", "val"):
        with open(out / f"{name}.jsonl", "w") as dest:
            n = 0
            for shard in sorted(shards.glob(f"{name}-*.jsonl")):
                for line in shard.read_text().splitlines():
                    dest.write(line + "\n")
                    n += 1
        counts[name] = n
    return {
        "dialogues": counts,
        "worlds": len(worlds),
        "advertisers": len(pairs),
        "seconds": round(time.time() - started, 1),
    }
