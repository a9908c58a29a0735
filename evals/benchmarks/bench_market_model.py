"""What the learned market costs a tool call: fitting one advertiser's market model (both views), and a
what_if through the MCP server the first time (the fit included) and once the model is cached.

Run: python -m evals.benchmarks.bench_market_model [--advertisers 20]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.market.data_model import Status, WorldConfig
from tools.market.estimate import View, fit_market_model
from tools.market.generate import generate_world_file
from tools.market.store import MarketStore
from tools.mcp_server import call, connect_in_memory, engines
from tools.mcp_server.cache import ToolCache


def _ms(values: list[float]) -> str:
    a = np.asarray(values) * 1000
    return f"median {np.median(a):.0f} ms, p95 {np.percentile(a, 95):.0f} ms"


async def _what_if_latency(path: Path, advertiser_ids: list[str]) -> tuple[list[float], list[float]]:
    first: list[float] = []
    cached: list[float] = []
    with MarketStore.open(path) as store:
        targets = []
        for aid in advertiser_ids:
            kw = next((k for k in store.scoped(aid).keywords() if k.status == Status.ENABLED), None)
            if kw is not None:
                targets.append((aid, kw))
    engines._models.clear()
    for aid, kw in targets:
        async with connect_in_memory(path, aid, cache=ToolCache(enabled=False)) as session:
            for bucket, factor in ((first, 1.2), (cached, 1.3)):
                t = time.perf_counter()
                out = await call(
                    session, "what_if", {"change": "bid", "id": kw.id, "value": round(kw.bid * factor, 2)}
                )
                bucket.append(time.perf_counter() - t)
                assert "error" not in out, out
    return first, cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--advertisers", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "world.sqlite"
        generate_world_file(WorldConfig(n_advertisers=args.advertisers, days=120, seed=2028), path)
        with MarketStore.open(path) as store:
            ids = store.advertiser_ids()
            keywords = [len(store.scoped(a).keywords()) for a in ids]
            for view in View:
                times = []
                for aid in ids:
                    t = time.perf_counter()
                    fit_market_model(store.scoped(aid), view)
                    times.append(time.perf_counter() - t)
                print(
                    f"fit, {view.value:8s} view: {_ms(times)} per advertiser "
                    f"({np.mean(keywords):.0f} keywords, 120 days each)"
                )
        first, cached = asyncio.run(_what_if_latency(path, ids))
        print(f"what_if over MCP, first call (fits the model): {_ms(first)}")
        print(f"what_if over MCP, model cached:               {_ms(cached)}")


if __name__ == "__main__":
    main()
