"""Marketplace benchmark: world generation (time, size) and scoped reads, indexed vs a full scan.

    .venv/bin/python evals/benchmarks/bench_market.py                      # 1,000 advertisers x 90 days
    .venv/bin/python evals/benchmarks/bench_market.py --advertisers 100 --days 30

Prints rows per table, file sizes, seconds per stage, and the latency of one advertiser's 90-day keyword
report read through its scope (clustered (advertiser, day) key) next to the same query forced to scan.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from tools.market.data_model import WorldConfig
from tools.market.generate import generate_world_file
from tools.market.store import MarketStore


def _ms(fn, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--advertisers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    stages: dict[str, float] = {}
    began: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        began.setdefault(stage, time.perf_counter())
        if done == total:
            stages[stage] = time.perf_counter() - began[stage]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "world.sqlite"
        config = WorldConfig(n_advertisers=args.advertisers, days=args.days, seed=args.seed)
        summary = generate_world_file(config, out, progress=progress)
        print(f"world: {args.advertisers:,} advertisers x {args.days} days, seed {args.seed}")
        print(
            f"  generation: {summary.seconds:.1f} s  ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
            + ")"
        )
        print(
            f"  world.sqlite {summary.world_bytes / 1e6:,.1f} MB, truth.sqlite {summary.truth_bytes / 1e6:,.1f} MB"
        )
        for table, count in summary.rows.items():
            print(f"  {table:<18} {count:>12,}")

        with MarketStore.open(out) as store:
            adv_id = store.advertiser_ids()[len(store.advertiser_ids()) // 2]
            adv = store.scoped(adv_id)
            start, end = store.start_date, store.end_date
            n_rows = len(adv.keyword_days(start, end))
            scoped = _ms(lambda: adv.keyword_days(start, end))
            campaigns = _ms(lambda: adv.campaign_days(start, end))
            terms = _ms(lambda: adv.search_term_days(start, end))
        con = sqlite3.connect(out)
        adv_idx = con.execute("SELECT idx FROM advertisers WHERE id = ?", (adv_id,)).fetchone()[0]
        # unary + on the column stops SQLite from using the (adv, day, keyword) key: a full scan
        scan = _ms(
            lambda: con.execute("SELECT * FROM keyword_days WHERE +adv = ?", (adv_idx,)).fetchall(), repeat=3
        )
        keyed = _ms(lambda: con.execute("SELECT * FROM keyword_days WHERE adv = ?", (adv_idx,)).fetchall())
        con.close()
        print(f"reads for {adv_id} over {args.days} days (median):")
        print(f"  keyword_days via scope ({n_rows:,} pydantic rows): {scoped:.1f} ms")
        print(f"  campaign_days via scope: {campaigns:.1f} ms; search_term_days via scope: {terms:.1f} ms")
        print(f"  raw SQL, clustered key: {keyed:.2f} ms   vs   full table scan: {scan:.1f} ms")


if __name__ == "__main__":
    main()
