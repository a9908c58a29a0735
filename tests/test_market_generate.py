"""World generation as a whole: reproducible files, and atomic (a failed run leaves nothing behind)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from tools.errors import InvalidInputError
from tools.market.data_model import WorldConfig
from tools.market.generate import check_generation_inputs, generate_world_file

SMALL = WorldConfig(n_advertisers=4, days=20, seed=9)


def _rows(path: Path, table: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
    finally:
        con.close()


def test_the_same_seed_writes_the_same_world(tmp_path: Path):
    a = generate_world_file(SMALL, tmp_path / "a" / "world.sqlite")
    b = generate_world_file(SMALL, tmp_path / "b" / "world.sqlite")
    c = generate_world_file(SMALL.model_copy(update={"seed": 10}), tmp_path / "c" / "world.sqlite")
    for table in (
        "keywords",
        "auction_log",
        "keyword_days",
        "campaign_days",
        "search_term_days",
        "interventions",
        "experiments",
        "experiment_units",
    ):
        assert _rows(a.path, table) == _rows(b.path, table), table
    for table in ("keyword_days", "keyword_markets", "search_terms"):
        assert _rows(a.truth_path, table) == _rows(b.truth_path, table), table
    assert _rows(a.path, "keyword_days") != _rows(c.path, "keyword_days")
    assert a.rows == b.rows and a.rows["keyword_days"] == a.rows["keywords"] * SMALL.days


# The golden digests were taken on the generator before categories existed (commit ec77139's parent), when
# the world file still held the true markets and the search terms' hidden share and relevance. Since then the
# platform's auction log was added to the world, and the true markets moved to the truth file (schema 2): the
# digests are taken on the old layout rebuilt from the two files, so they prove that no number moved. The schema
# is built by Alembic now (its version table) and holds the importer's (empty in a world) external_ids table.
WORLD_TABLES_ADDED_SINCE = ("auction_log", "alembic_version", "external_ids")
TRUTH_TABLES_MOVED_IN = ("keyword_markets", "search_terms")


def _old_layout_rows(path: Path, truth: Path, table: str, con: sqlite3.Connection) -> list[tuple]:
    if table == "keyword_markets":
        t = sqlite3.connect(truth)
        try:
            return t.execute("SELECT keyword_idx, adv, market FROM keyword_markets").fetchall()
        finally:
            t.close()
    if table == "search_terms":
        t = sqlite3.connect(truth)
        try:
            hidden = {r[0]: r[1:] for r in t.execute("SELECT idx, share, relevance FROM search_terms")}
        finally:
            t.close()
        return [
            (*r, *hidden[r[0]]) for r in con.execute("SELECT idx, adv, keyword_idx, term FROM search_terms")
        ]
    if table == "meta":
        rows = con.execute("SELECT * FROM meta WHERE key NOT IN ('generation_id', 'created_at')").fetchall()
        return [(k, "1" if k == "schema_version" else v) for k, v in rows]
    return con.execute(f"SELECT * FROM {table}").fetchall()


def _digest(tables: dict[str, list[tuple]]) -> str:
    """Every row of every table, order-independent, floats to 8 significant digits: numpy's exp/log differ in the
    last bit between CPUs (AVX-512 and AVX2 code paths), so a digest of the exact bits names the machine, not the
    generator."""
    h = hashlib.sha256()
    for table in sorted(tables):
        h.update(table.encode())
        rows = (tuple(f"{v:.8g}" if isinstance(v, float) else v for v in r) for r in tables[table])
        for row in sorted(repr(r) for r in rows):
            h.update(row.encode())
    return h.hexdigest()


def _world_digest(path: Path, truth: Path) -> str:
    """The world file as it was laid out when the golden was taken."""
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        names = [n for n in names if n not in WORLD_TABLES_ADDED_SINCE] + ["keyword_markets"]
        return _digest({n: _old_layout_rows(path, truth, n, con) for n in names})
    finally:
        con.close()


def _truth_digest(truth: Path) -> str:
    con = sqlite3.connect(truth)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return _digest(
            {
                n: con.execute(
                    f"SELECT * FROM {n}"
                    + (" WHERE key NOT IN ('generation_id', 'created_at')" if n == "meta" else "")
                ).fetchall()
                for n in names
                if n not in TRUTH_TABLES_MOVED_IN
            }
        )
    finally:
        con.close()


# (world, truth) digests of the generator before categories, per machine: numpy's exp/log and draws built on them
# differ between CPUs past what rounding hides, so each CPU code path has its golden; a generator change gives a
# digest in neither. The second pair: a 2-core AMD EPYC with AVX-512 (numpy 2.4.6), where the commit before this
# pair was added (3620439, the same generator) writes it too.
GOLDEN_DIGESTS = {
    (
        "95c73a050b27703f61ad77058610ba10ec12c492cc5e0d739984ce7205b2f692",
        "41a6936ae5d3a646045f0dbeb9033195e8554d06ec5f3063c60134214554277a",
    ),
    (
        "1e1ccb775f0ce1c67d81890fa07b19c3870697c8a21245c458c50f30a548710f",
        "e38b12235b069cbc936334e83e8a406d0de91a36d5997e5660fac445009c5139",
    ),
}


def test_a_world_file_that_names_no_categories_is_byte_for_byte_the_one_written_before_categories(
    tmp_path: Path,
):
    """Golden digests computed on the generator before `WorldConfig.categories` existed (commit ec77139's
    parent, meta's config included): cached eval worlds and training data stay valid."""
    a = generate_world_file(SMALL, tmp_path / "world.sqlite")
    assert (_world_digest(a.path, a.truth_path), _truth_digest(a.truth_path)) in GOLDEN_DIGESTS
    garden = generate_world_file(
        SMALL.model_copy(update={"categories": ["garden"]}), tmp_path / "g" / "world.sqlite"
    )
    assert _world_digest(garden.path, garden.truth_path) != _world_digest(a.path, a.truth_path)
    con = sqlite3.connect(garden.path)
    try:
        (config,) = con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
    finally:
        con.close()
    assert WorldConfig.model_validate_json(config).categories == ["garden"]


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("failure", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("stage", ["history", "experiments", "saving"])
def test_a_failure_mid_write_leaves_nothing_behind(tmp_path: Path, failure, stage):
    out = tmp_path / "world.sqlite"

    def progress(name: str, done: int, total: int) -> None:
        if name == stage and done >= 1:
            raise failure()

    with pytest.raises(failure):
        generate_world_file(SMALL, out, progress=progress)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_replacement_keeps_the_old_world(tmp_path: Path):
    out = tmp_path / "world.sqlite"
    generate_world_file(SMALL, out)
    old_world, old_truth = out.read_bytes(), (tmp_path / "truth.sqlite").read_bytes()

    def progress(name: str, done: int, total: int) -> None:
        if name == "experiments" and done >= 1:
            raise Boom()

    with pytest.raises(Boom):
        generate_world_file(SMALL.model_copy(update={"seed": 1}), out, force=True, progress=progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truth.sqlite", "world.sqlite"]
    assert out.read_bytes() == old_world and (tmp_path / "truth.sqlite").read_bytes() == old_truth


def test_inputs_are_checked_before_any_work(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="seed must be >= 0") as err:
        check_generation_inputs(SMALL.model_copy(update={"seed": -1}), tmp_path / "world.sqlite")
    assert err.value.field == "seed"
    with pytest.raises(InvalidInputError, match="advertisers x days") as err:
        generate_world_file(WorldConfig(n_advertisers=100_000, days=3650), tmp_path / "world.sqlite")
    assert err.value.field == "advertisers"
    assert list(tmp_path.iterdir()) == []
