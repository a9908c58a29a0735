"""`adguide market ...`: generate a world, import a seller's reports, look at one advertiser's account,
export its accepted changes as a bulksheet.

Bad input (sizes out of range, unknown ids, a path that cannot be written) ends with one line naming the
option and what it accepts, exit code 2, and nothing written. Heavy imports stay inside the commands.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import ExitStack
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

market_app = typer.Typer(
    help="The marketplace: generate a world, import a seller's reports, look at an advertiser's account.",
    no_args_is_help=True,
)
_err = Console(stderr=True)
_out = Console()

# WorldConfig field -> the CLI option that sets it (error messages name what the user typed)
_OPTION_OF = {
    "n_advertisers": "--advertisers",
    "days": "--days",
    "start_date": "--start",
    "seed": "--seed",
    "categories": "--categories",
}


def _db_errors() -> tuple[type[BaseException], ...]:
    """What a store's driver raises when the disk or the database fails (psycopg only where installed)."""
    try:
        # lazy: optional dependency, may be missing
        import psycopg
    except ImportError:
        return (OSError, sqlite3.Error)
    return (OSError, sqlite3.Error, psycopg.Error)


def _store_arg(value: str | None, default: Path) -> Path | str:
    """A --world / --out value: a PostgreSQL URL as given, a path with ~ expanded; None: $ADGUIDE_STORE_URL,
    else `default`."""
    # lazy: keeps the CLI's start fast
    from tools.market.db import parse_location

    location = parse_location(value.strip() if value else None, default)
    return location.url if location.url is not None else location.path or default


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# -> WorldConfig
def _config(advertisers: int, days: int, seed: int, start: str, categories: str | None = None):
    # lazy: keeps the CLI's start fast
    from pydantic import ValidationError

    # lazy: keeps the CLI's start fast
    from tools.market.data_model import WorldConfig

    if not 0 <= seed < 2**63:
        _fail(f"--seed must be >= 0 and < 2**63 (got {seed})")
    try:
        start_date = dt.date.fromisoformat(start)
    except ValueError:
        _fail(f"--start must be a date as YYYY-MM-DD (got {start!r})")
    try:
        names = None if categories is None else [c.strip() for c in categories.split(",") if c.strip()]
        return WorldConfig(
            n_advertisers=advertisers, days=days, seed=seed, start_date=start_date, categories=names
        )
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "config"
        option = _OPTION_OF.get(name, name)
        if first["type"] == "value_error":  # a validator's own sentence says what is wrong
            _fail(f"{option}: {str(first['msg']).removeprefix('Value error, ')}")
        ctx = first.get("ctx") or {}
        bounds = [
            f"{sym} {ctx[key]}"
            for key, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
            if key in ctx
        ]
        allowed = " and ".join(bounds) or first["msg"]
        _fail(f"{option} must be {allowed} (got {first.get('input')!r})")


@market_app.command()
def generate(
    advertisers: int = typer.Option(50, "--advertisers", "-n", help="number of advertisers (1-100,000)"),
    days: int = typer.Option(120, "--days", "-d", help="days of history (1-3,650)"),
    seed: int = typer.Option(7, "--seed", help="random seed; the same seed gives the same world"),
    start: str = typer.Option("2026-06-01", "--start", help="first day of the history (YYYY-MM-DD)"),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="world file, or a PostgreSQL URL (default: $ADGUIDE_STORE_URL, else $ADGUIDE_HOME/world.sqlite)",
    ),
    categories: str | None = typer.Option(
        None,
        "--categories",
        help="comma-separated categories to draw advertisers from (default: every category "
        "but the held-out one, `garden`, that evaluations keep unseen)",
    ),
    force: bool = typer.Option(False, "--force", help="replace an existing world file"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Generate a world: advertisers, their accounts, simulated history and experiments."""
    # lazy: keeps the CLI's start fast
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
    from rich.table import Table

    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy, scipy at import
    from tools.market.generate import check_generation_inputs, describe, generate_world_file

    # lazy: pulls in numpy at import
    from tools.market.store import default_world_path

    config = _config(advertisers, days, seed, start, categories)
    try:
        path = _store_arg(out, default_world_path())
        check_generation_inputs(config, path, force)
    except AdguideError as err:
        _fail(str(err))

    labels = {
        "world": "world + interventions",
        "history": "simulated history",
        "experiments": "experiments",
        "saving": "saving",
    }
    tasks: dict[str, TaskID] = {}
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_err, transient=False, disable=as_json) as bar:

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done)

        try:
            summary = generate_world_file(config, path, force=force, progress=progress)
        except AdguideError as err:
            _fail(str(err))
        except KeyboardInterrupt:
            _fail("interrupted; nothing was written", code=130)
        except _db_errors() as err:
            reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[0]
            _fail(f"could not write {summary_where(path)}: {reason}; nothing was written", code=1)

    if as_json:
        print(json.dumps(describe(summary), indent=2))
        return
    table = Table(title=f"world written to {summary.path}", show_header=True, header_style="bold")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in summary.rows.items():
        table.add_row(name, f"{count:,}")
    _out.print(table)
    _out.print(
        f"{summary.path} {summary.world_bytes / 1e6:,.1f} MB; truth {summary.truth_path} "
        f"{summary.truth_bytes / 1e6:,.1f} MB; {summary.seconds:.1f} s "
        f"({config.n_advertisers:,} advertisers x {config.days} days from {config.start_date}, seed {config.seed})",
        highlight=False,
    )


@market_app.command()
def show(
    advertiser_id: str = typer.Argument(..., help="e.g. adv_0001"),
    world: str | None = typer.Option(
        None,
        "--world",
        "-w",
        help="world file or PostgreSQL URL (default: $ADGUIDE_STORE_URL, else $ADGUIDE_HOME/world.sqlite)",
    ),
    last: int = typer.Option(7, "--last", help="report on the last N days of the history (1-3,650)"),
) -> None:
    """An advertiser's account: campaigns with recent performance, products, changes and experiments."""
    # lazy: keeps the CLI's start fast
    from rich.table import Table

    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy at import
    from tools.market.store import default_world_path, open_scoped

    with ExitStack() as stack:
        try:
            path = _store_arg(world, default_world_path())
            store, adv, start = stack.enter_context(open_scoped(path, advertiser_id, last))
        except (FileNotFoundError, AdguideError) as err:
            _fail(str(err))
        rows = adv.campaign_days(start, store.end_date)
        a = adv.advertiser
        goal = f", target ACoS {a.target_acos:.0%}" if a.target_acos else ""
        _out.print(f"[bold]{a.id} {a.name}[/] ({a.category}{goal})", highlight=False)
        _out.print(
            f"history {store.start_date} .. {store.end_date}; figures below: {start} .. {store.end_date}",
            highlight=False,
        )

        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for col in ("campaign", "name", "budget", "spend", "sales", "ACoS", "orders", "capped"):
            table.add_column(
                col, justify="left" if col in ("campaign", "name") else "right", no_wrap=col != "name"
            )
        for camp in adv.campaigns():
            mine = [r for r in rows if r.campaign_id == camp.id]
            spend = sum(r.spend for r in mine)
            sales = sum(r.sales for r in mine)
            capped = sum(r.budget_exhausted_at is not None for r in mine)
            paused = " [paused]" if camp.status.value == "paused" else ""
            table.add_row(
                camp.id,
                camp.name + paused,
                f"${camp.daily_budget:,.0f}",
                f"${spend:,.0f}",
                f"${sales:,.0f}",
                f"{spend / sales:.0%}" if sales else "-",
                f"{sum(r.orders for r in mine):,}",
                f"{capped}/{len(mine)}d",
            )
        n_kw = len(adv.keywords())
        _out.print(
            f"{n_kw} keywords; 'capped' = days the budget ran out before the day ended",
            highlight=False,
        )
        _out.print(table)
        products = adv.products()
        _out.print(
            f"products ({len(products)}): " + "; ".join(f"{p.name} ${p.price:.2f}" for p in products),
            highlight=False,
        )
        changes = adv.interventions()[-5:]
        if changes:
            _out.print(
                "recent changes: "
                + "; ".join(
                    f"{c.date} {c.kind.value} {c.entity_id} {c.before} -> {c.after}" for c in changes
                ),
                highlight=False,
            )
        for exp in adv.experiments():
            _out.print(
                f"experiment {exp.id}: {exp.kind} {exp.start} .. {exp.end}, {exp.n_units:,} users, "
                f"outcome {exp.outcome}",
                highlight=False,
            )


@market_app.command("import")
def import_(
    files: list[Path] = typer.Argument(
        ...,
        help="report files: Ads API v3 spSearchTerm / spTargeting / spCampaigns (GZIP_JSON or JSON), "
        "or console CSV downloads of them (daily rows)",
    ),
    advertiser_name: str = typer.Option(
        "My account", "--advertiser-name", help="the account's name: created, or updated if it exists"
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="accounts file (created if absent) or PostgreSQL URL (default: $ADGUIDE_STORE_URL, else "
        "$ADGUIDE_HOME/accounts.sqlite)",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="end with the summary as one JSON line (advertiser_id, row counts, totals)"
    ),
) -> None:
    """Import a seller's Sponsored Products reports as an advertiser: campaigns, ad groups, keywords, search
    terms and daily history. All or nothing; re-importing the same days replaces them."""
    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy at import
    from tools.market.importer import describe, import_reports, summary_lines

    try:
        summary = import_reports(files, advertiser_name, out)
    except AdguideError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _fail("interrupted; nothing was written", code=130)
    except _db_errors() as err:
        reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[0]
        _fail(f"could not write the accounts store: {reason}; nothing was written", code=1)
    for line in summary_lines(summary):
        if as_json:
            print(line)
        else:
            _out.print(line, highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(describe(summary), separators=(",", ":")))


@market_app.command("export-bulksheet")
def export_bulksheet_(
    advertiser: str = typer.Option(
        ..., "--advertiser", "-a", help="the advertiser whose changes to export, e.g. adv_0001"
    ),
    world: str | None = typer.Option(
        None,
        "--world",
        "-w",
        help="accounts or world file, or PostgreSQL URL (default: $ADGUIDE_STORE_URL, else "
        "$ADGUIDE_HOME/accounts.sqlite, where `adguide market import` writes)",
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="only changes made at or after this time (ISO date or date-time; UTC if no zone)",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="the bulksheet to write: a .csv file"),
    as_json: bool = typer.Option(False, "--json", help="end with a summary as one JSON line"),
) -> None:
    """The advertiser's accepted changes (bids, budgets, states, added keywords and negatives) as an Amazon
    Sponsored Products bulksheet to upload in the console: Update rows by the console's ids, Create rows for
    additions. Only the latest value per entity and field."""
    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy at import
    from tools.market.bulksheet import export_bulksheet, write_bulksheet
    from tools.market.importer import default_accounts_path

    start: dt.datetime | None = None
    if since is not None:
        try:
            start = dt.datetime.fromisoformat(since.strip())
        except ValueError:
            _fail(
                f"--since must be an ISO date or date-time, e.g. 2026-03-29 or 2026-03-29T12:00:00Z (got {since!r})"
            )
    try:
        path = _store_arg(world, default_accounts_path())
        export = export_bulksheet(path, advertiser, start)
        written = write_bulksheet(export.rows, out)
    except AdguideError as err:
        _fail(str(err))
    except _db_errors() as err:
        _fail(
            f"could not export to {out}: {getattr(err, 'strerror', None) or err}; nothing was written", code=1
        )
    counts = export.counts()
    lines = [
        f"{export.advertiser_id}: {len(export.rows)} bulksheet row(s) from {export.changes} accepted change(s) "
        f"written to {written}"
        + (f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else ""),
        *(f"  note: {n}" for n in export.notes),
    ]
    for line in lines:
        if as_json:
            print(line)
        else:
            _out.print(line, highlight=False, soft_wrap=True)
    if as_json:
        print(
            json.dumps(
                {
                    "advertiser_id": export.advertiser_id,
                    "path": str(written),
                    "rows": len(export.rows),
                    "changes": export.changes,
                    "counts": counts,
                    "by_name": export.by_name,
                    "since": export.since.isoformat() if export.since else None,
                    "notes": export.notes,
                },
                separators=(",", ":"),
            )
        )


@market_app.command()
def copy(
    source: str = typer.Argument(..., help="the store to copy: a .sqlite file or a PostgreSQL URL"),
    target: str = typer.Argument(..., help="where to: a PostgreSQL URL or a .sqlite file"),
    force: bool = typer.Option(False, "--force", help="replace what the target holds"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON line"),
) -> None:
    """Copy a whole store to another backend, e.g. world.sqlite into PostgreSQL for workers on several
    machines. One transaction (or a file renamed into place): a failed copy leaves the target as it was."""
    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy, sqlalchemy at import
    from tools.market.transfer import copy_store

    try:
        summary = copy_store(source.strip(), target.strip(), force=force)
    except (AdguideError, FileNotFoundError) as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _fail("interrupted; nothing was written", code=130)
    except _db_errors() as err:
        reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[0]
        _fail(f"could not copy to {summary_where(target)}: {reason}; nothing was written", code=1)
    total = sum(summary.rows.values())
    if as_json:
        print(json.dumps({**summary.__dict__, "total_rows": total}, separators=(",", ":")))
        return
    _out.print(
        f"{summary.source} -> {summary.target}: {summary.advertisers:,} advertisers, {total:,} rows in "
        f"{summary.seconds:.1f} s" + (f"; truth {summary.truth_path}" if summary.truth_path else ""),
        highlight=False,
    )


@market_app.command()
def migrate(
    store: str | None = typer.Option(
        None,
        "--store",
        "-s",
        help="the store: a PostgreSQL URL or a .sqlite file (default: $ADGUIDE_STORE_URL, else "
        "$ADGUIDE_HOME/world.sqlite)",
    ),
    revision: str = typer.Option("head", "--revision", help="the Alembic revision to upgrade to"),
) -> None:
    """Create or upgrade the store's schema (Alembic). Safe to repeat; several workers may run it at once."""
    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError
    from tools.market.db import current_revision, parse_location
    from tools.market.db import migrate as run_migrations

    # lazy: pulls in numpy at import
    from tools.market.store import default_world_path

    try:
        location = parse_location(store.strip() if store else None, default_world_path())
        if location.path is not None and not location.path.parent.is_dir():
            _fail(f"--store: {location.path.parent} is not a directory")
        run_migrations(location, revision)
        now = current_revision(location)
    except AdguideError as err:
        _fail(str(err))
    except _db_errors() as err:
        _fail(f"could not migrate {summary_where(store or '')}: {str(err).strip().splitlines()[0]}", code=1)
    _out.print(f"{location}: schema at revision {now}", highlight=False)


def summary_where(value: Path | str) -> str:
    """A store's address for a message (a URL without its password)."""
    # lazy: keeps the CLI's start fast
    from tools.market.db import redact

    return redact(str(value))
