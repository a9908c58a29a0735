"""Keyword engine speed: encoding throughput with and without the embedding cache, and suggestion latency.

    OMP_NUM_THREADS=1 .venv/bin/python -m evals.benchmarks.bench_keywords [--advertisers 8] [--days 60]

Generates a small world into a temp dir, takes its advertisers' search terms as the texts to encode and
as "typical advertisers" for recommend_keywords / suggest_negatives (p50/p95 over advertisers, warm model).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.keywords import Embedder, load_model, recommend_keywords, suggest_negatives
from tools.market.data_model import WorldConfig
from tools.market.generate import generate_world_file
from tools.market.store import MarketStore


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--advertisers", type=int, default=8)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    # lazy: torch is heavy and needed only here
    import torch

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    model = load_model()
    print(f"model load (import + weights, first use in the process): {time.perf_counter() - began:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "world.sqlite"
        generate_world_file(WorldConfig(n_advertisers=args.advertisers, days=args.days, seed=3), path)
        with MarketStore.open(path) as store:
            inputs = []
            for advertiser_id in store.advertiser_ids():
                adv = store.scoped(advertiser_id)
                rows = adv.search_term_days(store.start_date, store.end_date)
                if rows:
                    inputs.append((rows, adv.keywords(), adv.products(), adv.negatives()))

        texts = sorted(
            {r.term for rows, *_ in inputs for r in rows} | {p.name for *_, ps, _ in inputs for p in ps}
        )
        print(
            f"world: {len(inputs)} advertisers with search terms, {len(texts)} distinct texts, {args.days} days"
        )

        # Encoding: a cold embedder (every text a miss), the same texts again (memory hits), and a fresh
        # embedder on a disk cache filled by the first (what a new process sees).
        cache_file = Path(tmp) / "embeddings.sqlite"
        cold = Embedder(model=model, cache_path=cache_file)
        t0 = time.perf_counter()
        cold.encode(texts)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        cold.encode(texts)
        t_mem = time.perf_counter() - t0
        cold.close()
        disk = Embedder(model=model, cache_path=cache_file)
        t0 = time.perf_counter()
        disk.encode(texts)
        t_disk = time.perf_counter() - t0
        assert disk.misses == 0
        disk.close()
        n = len(texts)
        print(f"encode, no cache (model)   : {n / t_cold:10,.0f} texts/s  ({t_cold * 1e3:7.1f} ms for {n})")
        print(f"encode, memory cache hits  : {n / t_mem:10,.0f} texts/s  ({t_mem * 1e3:7.1f} ms)")
        print(f"encode, disk cache (new process): {n / t_disk:10,.0f} texts/s  ({t_disk * 1e3:7.1f} ms)")

        # Suggestion latency per advertiser, with a warm embedder (the MCP server's steady state) and cold
        # (each advertiser's texts encoded for the first time).
        warm = Embedder(model=model)
        for rows, keywords, products, negatives in inputs:
            suggest_negatives(rows, keywords, products, negatives, embedder=warm)
        for cached in (True, False):
            for name, fn in (
                ("suggest_negatives", suggest_negatives),
                ("recommend_keywords", recommend_keywords),
            ):
                times = []
                for rows, keywords, products, negatives in inputs:
                    embedder = warm if cached else Embedder(model=model)
                    t0 = time.perf_counter()
                    fn(rows, keywords, products, negatives, embedder=embedder)
                    times.append((time.perf_counter() - t0) * 1e3)
                label = "warm cache" if cached else "cold cache"
                print(
                    f"{name:18s} ({label}): p50 {statistics.median(times):7.1f} ms  "
                    f"p95 {_percentile(times, 95):7.1f} ms  over {len(times)} advertisers"
                )
        rows_per_adv = [len(rows) for rows, *_ in inputs]
        print(f"a typical advertiser: {int(np.median(rows_per_adv))} search-term rows (median)")


if __name__ == "__main__":
    main()
