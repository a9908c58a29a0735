"""Advertiser store benchmark: one generated world imported into SQLite and into PostgreSQL, side by side.

    .venv/bin/python evals/benchmarks/bench_store.py                          # 10,000 advertisers x 28 days
    .venv/bin/python evals/benchmarks/bench_store.py --advertisers 2000 --before 3c6bd32
    .venv/bin/python evals/benchmarks/bench_store.py --pg-url postgresql://postgres@127.0.0.1:5432/test

The world is generated once (simulation + its SQLite file, timed apart), then imported into each backend
through the store's bulk write path (`tools.market.transfer.copy_store`, what `adguide market copy` runs: one
transaction, COPY on PostgreSQL). For each backend it prints
- the import rate: advertisers/s and rows/s, and the store's size on disk;
- per-advertiser read latency, p50 / p95 over a sample of advertisers, of the reads the tools make for one
  question (account_overview + performance + search_terms: campaigns, keywords, 28 days of campaign-days and
  keyword-days, 14 days of search-term-days), each read alone and all together, on one open store.
`--before REV` also times the same reads with the store module of git revision REV on the SQLite file: the
SQLite read path must not be slower than it was.

PostgreSQL gets a schema of its own (dropped at the end) in the database `--pg-url` names.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tools.market.data_model import WorldConfig
from tools.market.db import engine, parse_location
from tools.market.generate import generate_world_file
from tools.market.store import MarketStore
from tools.market.transfer import copy_store

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _tool_reads(store: Any, advertiser_id: str) -> dict[str, float]:
    """One question's reads for one advertiser, each timed (seconds)."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    adv = store.scoped(advertiser_id)
    end = store.end_date
    month, fortnight = end - dt.timedelta(days=27), end - dt.timedelta(days=13)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("campaigns", adv.campaigns),
        ("keywords", adv.keywords),
        ("campaign_days 28d", lambda: adv.campaign_days(month, end)),
        ("keyword_days 28d", lambda: adv.keyword_days(month, end)),
        ("search_term_days 14d", lambda: adv.search_term_days(fortnight, end)),
    ]
    for name, read in steps:
        t = time.perf_counter()
        read()
        times[name] = time.perf_counter() - t
    times["all of a question"] = time.perf_counter() - t0
    return times


def _read_latency(
    openers: dict[str, Callable[[], Any]], sample: list[str], rounds: int = 3
) -> dict[str, dict[str, list[float]]]:
    """Per store, per read: seconds for each advertiser of the sample. The stores take turns advertiser by
    advertiser, so load from elsewhere on the machine falls on all of them alike."""
    out: dict[str, dict[str, list[float]]] = {name: {} for name in openers}
    stores = {name: open_store() for name, open_store in openers.items()}
    try:
        for aid in sample[: min(20, len(sample))]:  # warm the caches and prepared statements first
            for store in stores.values():
                _tool_reads(store, aid)
        for _ in range(rounds):
            for aid in sample:
                for name, store in stores.items():
                    for read, s in _tool_reads(store, aid).items():
                        out[name].setdefault(read, []).append(s)
    finally:
        for store in stores.values():
            store.close()
    return out


def _pct(values: list[float], q: int) -> float:
    return 1000 * statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else 0.0


def _pg_bytes(url: str) -> int:
    with engine(url).connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            ).scalar_one()
        )


def _store_module_at(rev: str) -> Any:
    """tools/market/store.py as it was at git revision `rev` (it imports today's data model, unchanged)."""
    root = Path(__file__).parents[2]
    text = subprocess.run(
        ["git", "show", f"{rev}:tools/market/store.py"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "store_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("store_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["store_before"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--advertisers", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--sample", type=int, default=200, help="advertisers whose reads are timed")
    ap.add_argument("--pg-url", default=os.environ.get("ADGUIDE_BENCH_PG_URL", DEFAULT_PG))
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--before", default=None, help="git revision whose store module is timed on SQLite too")
    args = ap.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    config = WorldConfig(n_advertisers=args.advertisers, days=args.days, seed=args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench_store_"))
    os.environ["ADGUIDE_HOME"] = str(tmp)  # the PostgreSQL world's truth file lands here
    schema = f"bench_store_{uuid.uuid4().hex[:8]}"
    pg_url = f"{args.pg_url}{'&' if '?' in args.pg_url else '?'}options=-csearch_path%3D{schema}"
    pooled = parse_location(pg_url).url
    assert pooled is not None
    if "postgresql" in backends:
        with engine(parse_location(args.pg_url).url).connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    targets: dict[str, Path | str] = {"sqlite": tmp / "world.sqlite", "postgresql": pg_url}
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        "?",
    )
    print(
        f"{config.n_advertisers:,} advertisers x {config.days} days, seed {config.seed}; "
        f"{os.cpu_count()} cores ({cpu}); read sample {args.sample} advertisers x 3 rounds"
    )
    results: dict[str, dict[str, Any]] = {}
    source = tmp / "source.sqlite"
    t = time.perf_counter()
    generate_world_file(config, source)
    print(f"  generated the world once in {time.perf_counter() - t:.1f} s (simulation + its SQLite file)")
    with MarketStore.open(source) as store:
        ids = store.advertiser_ids()
    sample = random.Random(1).sample(ids, min(args.sample, len(ids)))
    openers: dict[str, Callable[[], Any]] = {}
    try:
        for backend in backends:
            target: Path | str = targets[backend]
            copied = copy_store(source, target, truth=False)
            rows = sum(copied.rows.values())
            size = (tmp / "world.sqlite").stat().st_size if backend == "sqlite" else _pg_bytes(pooled)
            results[backend] = {"write": copied.seconds, "rows": rows, "bytes": size}
            openers[backend] = partial(MarketStore.open, target)
            print(f"  {backend}: imported {rows:,} rows in {copied.seconds:.1f} s")
        if args.before and "sqlite" in backends:
            old = _store_module_at(args.before)
            results[f"sqlite@{args.before}"] = {}
            openers[f"sqlite@{args.before}"] = partial(old.MarketStore.open, targets["sqlite"])
        for name, reads in _read_latency(openers, sample).items():
            results[name]["reads"] = reads
    finally:
        if "postgresql" in backends:
            engine(pooled).dispose()
            with engine(parse_location(args.pg_url).url).connect() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        shutil.rmtree(tmp, ignore_errors=True)  # GBs at 10,000 advertisers

    names = list(results)
    width = 26
    print()
    print(f"{'':34}" + "".join(f"{n:>{width}}" for n in names))
    n_adv = config.n_advertisers

    def row(label: str, fn: Callable[[dict[str, Any]], str]) -> None:
        print(
            f"{label:34}"
            + "".join(f"{fn(results[n]) if 'write' in results[n] else '':>{width}}" for n in names)
        )

    row("import time (one transaction)", lambda r: f"{r['write']:.1f} s")
    row("import rate, advertisers/s", lambda r: f"{n_adv / r['write']:,.0f}")
    row("import rate, rows/s", lambda r: f"{r['rows'] / r['write']:,.0f}")
    row("rows written", lambda r: f"{r['rows']:,}")
    row("size on disk", lambda r: f"{r['bytes'] / 1e6:,.0f} MB")
    reads = next(iter(results.values()))["reads"]
    print("per-advertiser read latency, ms p50 / p95:")
    for name in reads:
        cells = []
        for n in names:
            values = results[n]["reads"][name]
            cells.append(f"{_pct(values, 50):.2f} / {_pct(values, 95):.2f}")
        print(f"  {name:32}" + "".join(f"{c:>{width}}" for c in cells))


if __name__ == "__main__":
    main()
