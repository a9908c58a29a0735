"""Copy a whole store to another backend (`adguide market copy SOURCE TARGET`): an existing world.sqlite or
accounts.sqlite into PostgreSQL, or back.

The target is written in one transaction (PostgreSQL: emptied and filled, readers see the old contents until
the commit) or as a temporary file renamed into place (SQLite), so a failed copy leaves it as it was. Rows go
through the store's bulk path (`Db.copy_rows`: COPY on PostgreSQL), a table at a time, in chunks. A world's
truth file is copied beside the target's (tools.market.truth.truth_path_for).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.errors import InvalidInputError
from tools.market.db import Db, StoreLocation, migrate, parse_location
from tools.market.schema import metadata
from tools.market.store import ALL_TABLES, MarketStore, connect, open_db
from tools.market.truth import truth_path_for

CHUNK_ROWS = 50_000


@dataclass
class CopySummary:
    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)
    advertisers: int = 0
    seconds: float = 0.0
    truth_path: str | None = None


def copy_store(
    source: Path | str,
    target: Path | str,
    *,
    force: bool = False,
    progress: Callable[[str, int], None] | None = None,
    truth: bool = True,
) -> CopySummary:
    """Copy every table of the store at `source` into `target` (a .sqlite path or a PostgreSQL URL), and
    its truth file where it has one (unless `truth` is False). `seconds` is the store's copy alone."""
    began = time.perf_counter()
    dst = parse_location(target)
    with MarketStore.open(source) as store:  # validates the source: schema version, meta
        src_where = str(store.path)
        if str(dst) == src_where:
            raise InvalidInputError("the source and the target are the same store", field="target")
        tables = [t for t in ALL_TABLES if t in store.tables()]
        src_db = store._conn
        with store._lock:
            if dst.url is not None:
                rows = _into_database(src_db, tables, dst, force, progress)
            else:
                rows = _into_file(src_db, tables, dst, force, progress)
        src_truth = truth_path_for(source)
    seconds = time.perf_counter() - began
    truth_path = None
    if (
        truth and src_truth.is_file()
    ):  # a generated world's truth goes with it (tmp + rename: never half a file)
        dst_truth = truth_path_for(dst.url if dst.url is not None else str(dst.path))
        tmp = dst_truth.with_name(f".{dst_truth.name}.copying-{os.getpid()}")
        try:
            shutil.copyfile(src_truth, tmp)
            os.replace(tmp, dst_truth)
        finally:
            tmp.unlink(missing_ok=True)
        truth_path = str(dst_truth)
    return CopySummary(
        source=src_where,
        target=str(dst),
        rows=rows,
        advertisers=rows.get("advertisers", 0),
        seconds=seconds,
        truth_path=truth_path,
    )


def _copy_tables(
    src: Db, dst: Db, tables: list[str], progress: Callable[[str, int], None] | None
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in tables:
        columns = [c.name for c in metadata.tables[table].columns]
        order = ", ".join(c.name for c in metadata.tables[table].primary_key.columns)
        cur = src.stream(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
        n = 0
        try:
            while chunk := cur.fetchmany(CHUNK_ROWS):
                dst.copy_rows(table, columns, chunk)
                n += len(chunk)
                if progress is not None:
                    progress(table, n)
        finally:
            cur.close()
        counts[table] = n
    if dst.is_pg and "audit" in tables:  # the audit id's sequence continues after the copied ids
        dst.execute(
            "SELECT setval(pg_get_serial_sequence('audit', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) "
            "FROM audit"
        ).fetchall()
    return counts


def _into_database(
    src: Db,
    tables: list[str],
    dst: StoreLocation,
    force: bool,
    progress: Callable[[str, int], None] | None,
) -> dict[str, int]:
    migrate(dst)
    db = open_db(dst)
    try:
        db.begin_write()
        if db.execute("SELECT 1 FROM meta LIMIT 1").fetchone() and not force:
            raise InvalidInputError(
                f"the store at {dst} is not empty; pass --force to replace it", field="target"
            )
        db.execute(f"TRUNCATE {', '.join(ALL_TABLES)}")
        counts = _copy_tables(src, db, tables, progress)
        db.commit()
        return counts
    finally:
        db.close()  # rolls back whatever was not committed


def _into_file(
    src: Db,
    tables: list[str],
    dst: StoreLocation,
    force: bool,
    progress: Callable[[str, int], None] | None,
) -> dict[str, int]:
    path = dst.path
    assert path is not None
    if path.exists() and not force:
        raise InvalidInputError(f"{path} already exists; pass --force to replace it", field="target")
    if not path.parent.is_dir():
        raise InvalidInputError(f"{path.parent} is not a directory", field="target")
    tmp = path.with_name(f".{path.name}.copying-{os.getpid()}")
    try:
        migrate(StoreLocation(path=tmp))
        conn = connect(tmp)
        conn.execute("PRAGMA journal_mode = OFF")  # a failed copy deletes the file
        conn.execute("PRAGMA synchronous = OFF")
        db = Db(conn, "sqlite")
        try:
            db.begin()
            counts = _copy_tables(src, db, tables, progress)
            db.commit()
        finally:
            db.close()
        os.replace(tmp, path)
        return counts
    finally:
        tmp.unlink(missing_ok=True)
