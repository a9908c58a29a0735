"""Generate a world file: the world, its simulated history, experiments, the store and the truth beside it.

Everything is written to temporary files in the target directory and renamed into place only at the end
(truth first, the world last), so a failed or interrupted run never leaves a half-written world where a
reader would find it; the temporary files are removed on any error, Ctrl-C included.

Into a PostgreSQL store (`--out postgresql://...`) the world is one transaction: its tables are emptied
(with --force) and filled, and readers see the old world or the new one, never a mix. The truth still goes
to an SQLite file (tools.market.truth.truth_path_for), written to a temporary file and renamed after the
commit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.errors import InvalidInputError
from tools.market.data_model import Campaign, Product, WorldConfig
from tools.market.db import Db, StoreLocation, migrate, parse_location
from tools.market.experiments import plan_experiments, simulate_experiment
from tools.market.history import (
    apply_final_state,
    auction_log,
    plan_interventions,
    simulate_history,
    term_table,
)
from tools.market.store import (
    ALL_TABLES,
    create_world_db,
    default_world_path,
    insert_columns,
    open_db,
    write_auction_log,
    write_entities,
    write_experiment,
    write_meta,
)
from tools.market.truth import (
    create_truth_db,
    truth_path_for,
    write_experiment_truth,
    write_truth_entities,
)
from tools.market.world import generate_world

# A world is advertisers x days; past this the file runs to tens of GB and hours of generation.
MAX_ADVERTISER_DAYS = 1_000_000
# Measured: about 6.2 kB per advertiser-day (world + truth; 1,000 x 90), doubled for the disk-space check.
BYTES_PER_ADVERTISER_DAY = 12_000
# Keyword-days simulated per call (bounded memory; the simulator is vectorized within a call).
CELLS_PER_CHUNK = 250_000

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class GenerationSummary:
    path: Path | str  # the file, or the database URL without its password
    truth_path: Path
    config: WorldConfig
    rows: dict[str, int] = field(default_factory=dict)
    world_bytes: int = 0
    truth_bytes: int = 0
    seconds: float = 0.0


def _can_write_in(directory: Path) -> bool:
    """Try it: permission bits say little for root or on read-only and virtual file systems."""
    if not directory.is_dir():
        return False
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def check_generation_inputs(config: WorldConfig, out: Path | str, force: bool = False) -> None:
    """Refuse what would fail late or write where it must not, before any work starts."""
    if not 0 <= config.seed < 2**63:
        raise InvalidInputError(
            f"seed must be >= 0 and < 2**63 (got {config.seed})", field="seed", allowed=">= 0 and < 2**63"
        )
    adv_days = config.n_advertisers * config.days
    if adv_days > MAX_ADVERTISER_DAYS:
        raise InvalidInputError(
            f"advertisers x days must be <= {MAX_ADVERTISER_DAYS:,} (got {config.n_advertisers:,} x {config.days:,}"
            f" = {adv_days:,}); generate fewer advertisers or fewer days",
            field="advertisers",
            allowed=f"advertisers x days <= {MAX_ADVERTISER_DAYS:,}",
        )
    location = parse_location(out)
    if location.url is not None:
        return  # a database: whether it already holds a store is checked inside the transaction
    out = Path(out)
    if out.exists() and out.is_dir():
        raise InvalidInputError(
            f"--out {out} is a directory; give a file path such as {out / 'world.sqlite'}",
            field="out",
            allowed="a file path",
        )
    if out.suffix != ".sqlite":
        raise InvalidInputError(
            f"--out must end in .sqlite (got {out})", field="out", allowed="a path ending in .sqlite"
        )
    if out.exists() and not force:
        raise InvalidInputError(
            f"{out} already exists; pass --force to replace it", field="out", allowed="a new path, or --force"
        )
    parent = out.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not _can_write_in(existing):
        raise InvalidInputError(
            f"cannot write to {parent} (not a writable directory)",
            field="out",
            allowed="a path in a writable directory",
        )
    need = adv_days * BYTES_PER_ADVERTISER_DAY
    free = shutil.disk_usage(existing).free
    if need > free:
        raise InvalidInputError(
            f"a world of {config.n_advertisers:,} advertisers x {config.days} days needs about {need / 1e9:.1f} GB;"
            f" {existing} has {free / 1e9:.1f} GB free",
            field="out",
            allowed=f"a disk with at least {need / 1e9:.1f} GB free",
        )


def generate_world_file(
    config: WorldConfig, out: Path | str, *, force: bool = False, progress: Progress | None = None
) -> GenerationSummary:
    """Generate the world for `config` into `out` (a .sqlite path or a PostgreSQL URL; its truth beside it);
    atomic, see module doc."""
    location = parse_location(out, default_world_path())
    if location.url is not None:
        return _generate_into_database(config, location, force, progress)
    out = Path(out).expanduser()
    check_generation_inputs(config, out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    truth_out = truth_path_for(out)
    report = progress or (lambda stage, done, total: None)
    began = time.perf_counter()
    token = uuid.uuid4().hex
    tmp_world = out.with_name(f".{out.name}.{token}.tmp")
    tmp_truth = truth_out.with_name(f".{truth_out.name}.{token}.tmp")
    world_db = truth_db = None
    try:
        world_db, truth_db = create_world_db(tmp_world), create_truth_db(tmp_truth)
        rows = _fill(config, world_db, truth_db, token, report)
        world_db.close()
        truth_db.close()
        world_db = truth_db = None
        os.replace(tmp_truth, truth_out)
        os.replace(tmp_world, out)
    except BaseException:
        for conn in (world_db, truth_db):
            if conn is not None:
                conn.close()
        for tmp in (tmp_world, tmp_truth):
            tmp.unlink(missing_ok=True)
        raise
    return GenerationSummary(
        path=out,
        truth_path=truth_out,
        config=config,
        rows=rows,
        world_bytes=out.stat().st_size,
        truth_bytes=truth_out.stat().st_size,
        seconds=time.perf_counter() - began,
    )


def _generate_into_database(
    config: WorldConfig, location: StoreLocation, force: bool, progress: Progress | None
) -> GenerationSummary:
    where = str(location)
    check_generation_inputs(config, where, force)
    truth_out = truth_path_for(where)
    truth_out.parent.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda stage, done, total: None)
    began = time.perf_counter()
    token = uuid.uuid4().hex
    tmp_truth = truth_out.with_name(f".{truth_out.name}.{token}.tmp")
    migrate(location)
    world_db = open_db(location)
    truth_db = None
    try:
        world_db.begin_write()
        if world_db.execute("SELECT 1 FROM meta LIMIT 1").fetchone() and not force:
            raise InvalidInputError(
                f"the store at {where} already holds a world or accounts; pass --force to replace it",
                field="out",
                allowed="an empty store, or --force",
            )
        # emptied inside the same transaction: readers keep the old world until the commit
        world_db.execute(f"TRUNCATE {', '.join(ALL_TABLES)}")
        truth_db = create_truth_db(tmp_truth)
        rows = _fill(config, world_db, truth_db, token, report, begin=False)
        truth_db.close()
        truth_db = None
        os.replace(tmp_truth, truth_out)
    except BaseException:
        world_db.close()  # rolls the open transaction back
        if truth_db is not None:
            truth_db.close()
        tmp_truth.unlink(missing_ok=True)
        raise
    try:
        (size,) = world_db.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        ).fetchone()
    finally:
        world_db.close()
    return GenerationSummary(
        path=where,
        truth_path=truth_out,
        config=config,
        rows=rows,
        world_bytes=int(size),
        truth_bytes=truth_out.stat().st_size,
        seconds=time.perf_counter() - began,
    )


def _fill(
    config: WorldConfig,
    world_db: Db,
    truth_db: sqlite3.Connection,
    token: str,
    report: Progress,
    begin: bool = True,
) -> dict[str, int]:
    n_adv = config.n_advertisers
    report("world", 0, 1)
    world = generate_world(config)
    plan = plan_interventions(world)
    apply_final_state(world, plan)
    report("world", 1, 1)

    if begin:
        world_db.execute("BEGIN")
    truth_db.execute("BEGIN")
    write_entities(world_db, world, plan.interventions)
    write_truth_entities(truth_db, world)
    rows = {
        "advertisers": len(world.advertisers),
        "campaigns": len(world.campaigns),
        "keywords": len(world.keywords),
        "search_terms": len(world.search_terms),
        "interventions": len(plan.interventions),
        "keyword_days": 0,
        "campaign_days": 0,
        "search_term_days": 0,
        "experiments": 0,
    }

    # history, in blocks of whole advertisers
    terms = term_table(world)
    kw_per_adv = np.bincount(world.keyword_advertiser, minlength=n_adv)
    report("history", 0, n_adv)
    a = 0
    while a < n_adv:
        b = a + 1
        cells = int(kw_per_adv[a]) * config.days
        while b < n_adv and cells + int(kw_per_adv[b]) * config.days <= CELLS_PER_CHUNK:
            cells += int(kw_per_adv[b]) * config.days
            b += 1
        chunk = simulate_history(world, plan, terms, a, b)
        rows["keyword_days"] += insert_columns(world_db, "keyword_days", _one_based(chunk.keyword_days))
        rows["campaign_days"] += insert_columns(world_db, "campaign_days", _one_based(chunk.campaign_days))
        rows["search_term_days"] += insert_columns(
            world_db, "search_term_days", _one_based(chunk.search_term_days)
        )
        insert_columns(truth_db, "keyword_days", _one_based(chunk.keyword_truth))
        write_auction_log(world_db, auction_log(world, a, b))
        report("history", b, n_adv)
        a = b

    # experiments (contract D): units in the world, truth in the truth store
    end = config.start_date + dt.timedelta(days=config.days - 1)
    camp_by_adv: dict[str, list[Campaign]] = {}
    for c in world.campaigns:
        camp_by_adv.setdefault(c.advertiser_id, []).append(c)
    prod_by_adv: dict[str, list[Product]] = {}
    for p in world.products:
        prod_by_adv.setdefault(p.advertiser_id, []).append(p)
    report("experiments", 0, n_adv)
    for i, adv in enumerate(world.advertisers):
        rng = np.random.default_rng([config.seed, i, 5])
        for exp in plan_experiments(
            adv, camp_by_adv.get(adv.id, []), prod_by_adv.get(adv.id, []), config.start_date, end, rng
        ):
            units, truth = simulate_experiment(exp, seed=int(rng.integers(2**62)))
            write_experiment(world_db, i + 1, exp, units)
            write_experiment_truth(truth_db, exp, truth)
            rows["experiments"] += 1
        if (i + 1) % 25 == 0 or i + 1 == n_adv:
            report("experiments", i + 1, n_adv)

    meta = {
        "generation_id": token[:12],
        "start_date": config.start_date.isoformat(),
        "end_date": end.isoformat(),
        # categories=None is left out, so a default world's meta reads as it did before the field existed
        "config": config.model_dump_json(exclude_none=True),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_meta(world_db, meta)
    truth_db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
    report("saving", 0, 1)
    world_db.execute("COMMIT")
    truth_db.execute("COMMIT")
    report("saving", 1, 1)
    return rows


def _one_based(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The store's integer advertiser keys are list positions + 1, like every other integer key."""
    return {**columns, "adv": columns["adv"] + 1}


def describe(summary: GenerationSummary) -> dict[str, object]:
    """The summary as plain data (for --json and logs)."""
    return {
        "path": str(summary.path),
        "truth_path": str(summary.truth_path),
        "config": json.loads(summary.config.model_dump_json()),
        "rows": summary.rows,
        "world_bytes": summary.world_bytes,
        "truth_bytes": summary.truth_bytes,
        "seconds": round(summary.seconds, 2),
    }
