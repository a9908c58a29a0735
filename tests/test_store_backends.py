"""The advertiser store on both backends: the embedded SQLite file and PostgreSQL on loopback (real servers, no
mocks). Every test that writes to PostgreSQL does so in a schema of its own, dropped afterwards, so test
sessions sharing one database never collide.

What must hold: the tools' reads give the same results through both; a malformed import leaves either store
unchanged; a re-import of the same days changes nothing; the Alembic migrations build exactly the schema in
tools.market.schema (no drift), from an empty database and over a file written before the migrations.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.errors import AdguideError
from tools.market.data_model import WorldConfig
from tools.market.db import current_revision, engine, migrate, parse_location
from tools.market.generate import generate_world_file
from tools.market.importer import ReportImportError, import_reports
from tools.market.store import MarketStore
from tools.market.truth import truth_path_for

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
pytestmark = pytest.mark.integration  # real PostgreSQL on loopback


def _admin():
    import sqlalchemy as sa

    return sa.create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )


@pytest.fixture(scope="session")
def pg_available() -> None:
    try:
        with _admin().connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # the server is started before each session on these machines
        pytest.fail(f"PostgreSQL is not reachable on {PG_URL}: {exc}")


def _new_schema_url() -> tuple[str, str]:
    schema = f"adguide_store_test_{uuid.uuid4().hex[:10]}"
    with _admin().connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def _drop_schema(schema: str, url: str) -> None:
    pooled = parse_location(url).url
    assert pooled is not None
    engine(pooled).dispose()  # the store's pooled connections to this schema close first
    with _admin().connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def pg_url(pg_available: None) -> Iterator[str]:
    schema, url = _new_schema_url()
    try:
        yield url
    finally:
        _drop_schema(schema, url)


@pytest.fixture(scope="module")
def both_worlds(tmp_path_factory: pytest.TempPathFactory, pg_available: None) -> Iterator[tuple[Path, str]]:
    """The same small world generated into an SQLite file and into a PostgreSQL schema."""
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ADGUIDE_HOME", str(home))  # the PostgreSQL world's truth file lands here
    config = WorldConfig(n_advertisers=3, days=30, seed=11)
    path = home / "world.sqlite"
    generate_world_file(config, path)
    schema, url = _new_schema_url()
    try:
        generate_world_file(config, url)
        yield path, url
    finally:
        _drop_schema(schema, url)
        mp.undo()


def _tool_reads(store: MarketStore, advertiser_id: str) -> dict[str, object]:
    """What the MCP tools read for one advertiser (tools/mcp_server/data.py, engines.py), as plain data."""
    adv = store.scoped(advertiser_id)
    end = store.end_date
    start = end - dt.timedelta(days=13)
    kws = adv.keywords()
    some = [k.id for k in kws[:5]]
    dump = lambda rows: [r.model_dump(mode="json") for r in rows]  # noqa: E731
    return {
        "period": [store.start_date.isoformat(), end.isoformat()],
        "campaigns": dump(adv.campaigns()),
        "ad_groups": dump(adv.ad_groups()),
        "keywords": dump(kws),
        "negatives": dump(adv.negatives()),
        "products": dump(adv.products()),
        "campaign_days": dump(adv.campaign_days(start, end)),
        "keyword_days": dump(adv.keyword_days(start, end)),
        "keyword_days_some": dump(adv.keyword_days(start, end, some)),
        "search_term_days": dump(adv.search_term_days(start, end, some)),
        "interventions": dump(adv.interventions()),
        "experiments": dump(adv.experiments()),
        "units": [adv.experiment_units(e.id).to_bytes().hex()[:64] for e in adv.experiments()],
        "auction_log": adv.auction_log(),
        "query_texts": sorted(adv.query_texts().items()),
    }


def test_the_tools_read_the_same_through_both_backends(both_worlds):
    path, url = both_worlds
    with MarketStore.open(path) as lite, MarketStore.open(url) as pg:
        assert lite.backend == "sqlite" and pg.backend == "postgresql"
        assert lite.advertiser_ids() == pg.advertiser_ids() == ["adv_0001", "adv_0002", "adv_0003"]
        assert lite.config == pg.config
        for adv_id in lite.advertiser_ids():
            a, b = _tool_reads(lite, adv_id), _tool_reads(pg, adv_id)
            for key in a:
                assert a[key] == b[key], f"{adv_id}: {key} differs between SQLite and PostgreSQL"
        counts = lite.row_counts()
        assert counts == pg.row_counts() and counts["keyword_days"] > 0


def test_the_mcp_tools_answer_the_same_through_both_backends(both_worlds):
    """One read tool end to end (MCP server in process) on each backend."""
    import anyio

    from tools.mcp_server.transports import connect_in_memory

    calls = [("account_overview", {}), ("performance", {"level": "keyword"}), ("search_terms", {})]

    async def ask(store: Path | str) -> list[object]:
        out = []
        async with connect_in_memory(store, "adv_0002", cache=None) as session:
            for name, args in calls:
                res = await session.call_tool(name, args)
                assert not res.isError, res.content
                out.append([c.model_dump() for c in res.content])
        return out

    path, url = both_worlds
    lite, pg = anyio.run(ask, path), anyio.run(ask, url)
    assert len(lite) == 3 and "spend" in str(lite[0])
    assert lite == pg


def test_an_url_that_went_through_a_path_still_opens_the_database(both_worlds):
    _, url = both_worlds
    with MarketStore.open(Path(url)) as store:  # "postgresql:/postgres@..." (the agent config's Path field)
        assert store.backend == "postgresql" and store.advertiser_ids()


def test_writes_are_audited_the_same_way_on_postgresql(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("ADGUIDE_HOME", str(tmp_path))
    generate_world_file(WorldConfig(n_advertisers=2, days=10, seed=3), pg_url)
    with MarketStore.open(pg_url) as store:
        adv = store.scoped("adv_0001")
        kw = adv.keywords()[0]
        version = store.data_version
        assert adv.set_bid(kw.id, 1.23, actor="test").bid == 1.23
        group = adv.ad_groups()[0].id
        added = adv.add_keywords(group, [("blue widget deluxe", "exact", 0.5)], actor="test")
        negs = adv.add_negatives(group, [("free widget", "exact")], actor="test")
        assert store.data_version != version
        log = adv.audit_log()
        assert [r.action for r in log] == ["set_bid", "add_keyword", "add_negative"]
        assert log[0].before == kw.bid and log[0].after == 1.23
        assert added[0].id.startswith("kw_") and negs[0].id.startswith("neg_")
        with pytest.raises(AdguideError):
            adv.set_bid(store.scoped("adv_0002").keywords()[0].id, 1.0, actor="test")


def test_generating_into_a_filled_database_needs_force(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("ADGUIDE_HOME", str(tmp_path))
    assert generate_world_file(WorldConfig(n_advertisers=2, days=5, seed=1), pg_url).world_bytes > 0
    with pytest.raises(AdguideError, match="--force"):
        generate_world_file(WorldConfig(n_advertisers=3, days=5, seed=2), pg_url)
    with MarketStore.open(pg_url) as store:
        assert store.advertiser_ids() == ["adv_0001", "adv_0002"]  # unchanged
    generate_world_file(WorldConfig(n_advertisers=3, days=5, seed=2), pg_url, force=True)
    with MarketStore.open(pg_url) as store:
        assert store.advertiser_ids() == ["adv_0001", "adv_0002", "adv_0003"]
    assert truth_path_for(pg_url).parent == tmp_path and truth_path_for(pg_url).is_file()


# --- import --------------------------------------------------------------------------------------------------

_HEADER = [
    "Date",
    "Campaign Name",
    "Ad Group Name",
    "Targeting",
    "Match Type",
    "Customer Search Term",
    "Impressions",
    "Clicks",
    "Spend",
    "7 Day Total Orders (#)",
    "7 Day Total Sales",
]


def _report(path: Path, days: int = 7, bad_row: int | None = None) -> Path:
    """A console search-term CSV download (the documented display headers), `days` daily rows per term."""
    start = dt.date(2026, 3, 1)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(_HEADER)
        n = 0
        for d in range(days):
            for term, kw, mt in (("blue widget", "widget", "BROAD"), ("cheap widget", "widget", "BROAD")):
                n += 1
                clicks = 3 + d
                w.writerow(
                    [
                        (start + dt.timedelta(days=d)).isoformat(),
                        "Widgets - Manual",
                        "Widgets",
                        kw,
                        mt,
                        term,
                        100 + 10 * d,
                        "lots" if n == bad_row else clicks,
                        f"{clicks * 0.85:.2f}",
                        d % 3,
                        f"{(d % 3) * 24.99:.2f}",
                    ]
                )
    return path


def _snapshot(store: MarketStore | None) -> object:
    if store is None:
        return None
    with store:
        out = {"version": store.data_version, "counts": store.row_counts()}
        for adv_id in store.advertiser_ids():
            adv = store.scoped(adv_id)
            out[adv_id] = (
                [k.model_dump(mode="json") for k in adv.keywords()],
                [r.model_dump(mode="json") for r in adv.search_term_days(*adv.history_period)],
            )
        return out


def _open_or_none(where: Path | str) -> MarketStore | None:
    try:
        return MarketStore.open(where)
    except FileNotFoundError:
        return None
    except AdguideError as exc:  # a database the import never touched: not even its schema was made
        assert "no adguide store schema" in str(exc)
        return None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_import_is_all_or_nothing_and_a_reimport_changes_nothing(backend, request, tmp_path):
    target: Path | str = (
        tmp_path / "accounts.sqlite" if backend == "sqlite" else request.getfixturevalue("pg_url")
    )
    bad = _report(tmp_path / "bad.csv", bad_row=9)
    # malformed into an empty store: nothing at all is written
    with pytest.raises(ReportImportError, match=r"bad\.csv.*row 10.*[Cc]licks"):
        import_reports([bad], "My shop", target)
    assert _snapshot(_open_or_none(target)) is None

    good = _report(tmp_path / "good.csv")
    first = import_reports([good], "My shop", target)
    assert first.created and first.rows["search_term_days"] == 14
    before = _snapshot(MarketStore.open(target))

    # malformed into a filled store: unchanged, write counter included
    with pytest.raises(ReportImportError):
        import_reports([bad], "My shop", target)
    assert _snapshot(MarketStore.open(target)) == before

    again = import_reports([good], "My shop", target)
    assert again.unchanged and _snapshot(MarketStore.open(target)) == before

    # a longer report over the same days replaces them: 10 days, not 7 + 10
    longer = import_reports([_report(tmp_path / "longer.csv", days=10)], "My shop", target)
    assert not longer.unchanged
    with MarketStore.open(target) as store:
        adv = store.scoped(first.advertiser_id)
        rows = adv.search_term_days(*adv.history_period)
        assert len(rows) == 20 and len({(r.date, r.term) for r in rows}) == 20
        assert round(sum(r.spend for r in rows), 2) == round(sum((3 + d) * 0.85 for d in range(10)) * 2, 2)


def test_import_gives_the_same_account_through_both_backends(pg_url, tmp_path):
    report = _report(tmp_path / "r.csv", days=9)
    a = import_reports([report], "Same shop", tmp_path / "accounts.sqlite")
    b = import_reports([report], "Same shop", pg_url)
    assert a.totals == b.totals and a.counts == b.counts and a.advertiser_id == b.advertiser_id
    with MarketStore.open(tmp_path / "accounts.sqlite") as lite, MarketStore.open(pg_url) as pg:
        ra, rb = _tool_reads(lite, a.advertiser_id), _tool_reads(pg, b.advertiser_id)
        assert ra == rb


# --- migrations ----------------------------------------------------------------------------------------------


def _drift(location_url: str) -> list[object]:
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from tools.market.db import sqlalchemy_url
    from tools.market.schema import metadata

    loc = parse_location(location_url)
    url = sqlalchemy_url(loc)
    eng = engine(url) if loc.url else sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        return list(compare_metadata(ctx, metadata))


def test_migrations_build_the_schema_from_empty_with_no_drift(pg_url, tmp_path):
    file = tmp_path / "empty.sqlite"
    for where in (str(file), pg_url):
        loc = parse_location(where)
        assert current_revision(loc) is None
        migrate(loc)
        migrate(loc)  # idempotent
        assert current_revision(loc) == "0001"
        assert _drift(where) == [], f"the migrations and tools.market.schema differ on {loc}"


def test_the_store_names_every_table_of_the_schema_and_reads_sqlite_without_sqlalchemy():
    import subprocess
    import sys

    from tools.market.schema import metadata
    from tools.market.store import ALL_TABLES

    assert sorted(ALL_TABLES) == sorted(metadata.tables)
    code = "import sys, tools.market.store, tools.mcp_server.data; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_a_file_written_before_the_migrations_upgrades_in_place(tiny_world_path, tmp_path):
    """The SQLite layout of schema version 2 as it was written before Alembic (no external_ids, no version
    table) keeps working: it opens as it is, and `migrate` adds only what it lacks."""
    old = tmp_path / "world.sqlite"
    shutil.copy(tiny_world_path, old)
    with sqlite3.connect(old) as conn:
        conn.execute("DROP TABLE alembic_version")
        conn.execute("DROP TABLE external_ids")
    before = _snapshot(MarketStore.open(old))
    migrate(parse_location(str(old)))
    assert current_revision(parse_location(str(old))) == "0001" and _drift(str(old)) == []
    assert _snapshot(MarketStore.open(old)) == {**before, "counts": {**before["counts"], "external_ids": 0}}


@pytest.mark.slow  # two fresh interpreters running alembic
def test_the_alembic_command_line_reads_the_url_argument(pg_url):
    import subprocess
    import sys

    ini = Path(__file__).parents[1] / "tools" / "market" / "migrations" / "alembic.ini"
    run = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "-x", f"url={pg_url}", "upgrade", "head"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[1],
    )
    assert run.returncode == 0, run.stderr
    check = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "-x", f"url={pg_url}", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[1],
    )
    assert check.returncode == 0 and "No new upgrade operations detected" in check.stdout + check.stderr


def test_an_unreachable_or_empty_database_says_what_to_do(pg_url):
    with pytest.raises(AdguideError, match="cannot connect to the store at postgresql"):
        MarketStore.open("postgresql://postgres:secret@127.0.0.1:1/test")
    with pytest.raises(AdguideError, match="adguide market migrate"):
        MarketStore.open(pg_url)
    migrate(parse_location(pg_url))
    with pytest.raises(FileNotFoundError, match="adguide market import"):
        MarketStore.open(pg_url)


# --- copying a store to the other backend ---------------------------------------------------------------------


def test_a_world_file_copies_into_postgresql_and_back_unchanged(
    tiny_world_path, pg_url, tmp_path, monkeypatch
):
    from tools.market.transfer import copy_store

    monkeypatch.setenv("ADGUIDE_HOME", str(tmp_path))
    source = tmp_path / "src.sqlite"
    shutil.copy(tiny_world_path, source)
    shutil.copy(truth_path_for(tiny_world_path), truth_path_for(source))
    with MarketStore.open(source) as s:
        s.scoped("adv_0001").set_bid(s.scoped("adv_0001").keywords()[0].id, 2.5, actor="before the copy")
    copied = copy_store(source, pg_url)
    assert copied.advertisers == 3 and copied.truth_path and Path(copied.truth_path).is_file()
    back = tmp_path / "back.sqlite"
    copy_store(pg_url, back)
    with MarketStore.open(source) as a, MarketStore.open(pg_url) as b, MarketStore.open(back) as c:
        assert a.row_counts() == b.row_counts() == c.row_counts()
        for adv_id in a.advertiser_ids():
            ra = _tool_reads(a, adv_id)
            assert ra == _tool_reads(b, adv_id) == _tool_reads(c, adv_id)
        # the audit ids go on after the copied ones
        adv = b.scoped("adv_0001")
        adv.set_bid(adv.keywords()[1].id, 1.5, actor="after the copy")
        assert [r.id for r in adv.audit_log()] == [1, 2]
    with pytest.raises(AdguideError, match="--force"):
        copy_store(source, pg_url)  # a filled target is replaced only when asked
    with pytest.raises(AdguideError, match="--force"):
        copy_store(pg_url, back)


# --- the command line and the servers' default store -----------------------------------------------------------


def test_the_cli_migrates_imports_and_shows_through_a_postgresql_url(pg_url, tmp_path):
    import json

    from typer.testing import CliRunner

    from tools.market.cli import market_app

    runner = CliRunner()
    done = runner.invoke(market_app, ["migrate", "--store", pg_url])
    assert done.exit_code == 0 and "revision 0001" in done.output, done.output
    report = _report(tmp_path / "r.csv")
    done = runner.invoke(market_app, ["import", str(report), "--out", pg_url, "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output.strip().splitlines()[-1])
    assert summary["advertiser_id"] == "adv_0001" and summary["path"].startswith("postgresql")
    shown = runner.invoke(market_app, ["show", "adv_0001", "--world", pg_url])
    assert shown.exit_code == 0 and "Widgets - Manual" in shown.output, shown.output
    bad = runner.invoke(market_app, ["show", "adv_0001", "--world", "postgresql://postgres:pw@127.0.0.1:1/x"])
    assert bad.exit_code == 2 and "cannot connect" in bad.output and "pw" not in bad.output


def test_the_tool_servers_default_to_adguide_store_url(both_worlds, monkeypatch, tmp_path):
    """What batch workers on other machines do: no world path, ADGUIDE_STORE_URL names the shared database."""
    from tools.mcp_server.transports import _store_path

    _, url = both_worlds
    monkeypatch.setenv("ADGUIDE_STORE_URL", url)
    with MarketStore.open(_store_path(None)) as store:
        assert store.backend == "postgresql" and len(store.advertiser_ids()) == 3
    # or from the settings file (tools/settings.py), like every ADGUIDE_* variable
    monkeypatch.delenv("ADGUIDE_STORE_URL")
    env_file = tmp_path / "adguide.env"
    env_file.write_text(f"ADGUIDE_STORE_URL={url}\n")
    monkeypatch.setenv("ADGUIDE_ENV_FILE", str(env_file))
    with MarketStore.open() as store:
        assert store.backend == "postgresql"


def test_many_stores_open_at_once_on_postgresql(both_worlds):
    """An API process holds one store per open agent (dozens): the pool must not make the next one wait."""
    from contextlib import ExitStack

    _, url = both_worlds
    with ExitStack() as stack:
        stores = [stack.enter_context(MarketStore.open(url)) for _ in range(30)]
        assert {s.advertiser_ids()[0] for s in stores} == {"adv_0001"}


def test_concurrent_imports_into_one_database_never_share_an_id(pg_url, tmp_path):
    """Writers on several machines, into a database none has migrated yet: the migrations run once (an
    advisory lock), the store's write lock serializes the imports, each gets its own ids."""
    from concurrent.futures import ThreadPoolExecutor

    reports = [_report(tmp_path / f"r{i}.csv", days=5) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda i: import_reports([reports[i]], f"Shop {i}", pg_url), range(4)))
    assert len({d.advertiser_id for d in done}) == 4
    with MarketStore.open(pg_url) as store:
        keywords = [k.id for a in store.advertiser_ids() for k in store.scoped(a).keywords()]
        assert len(keywords) == len(set(keywords)) == 4 * done[0].counts["keywords"]
