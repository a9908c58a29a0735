"""Where the advertiser store lives, and one connection to it: an SQLite file (the embedded default) or a
PostgreSQL database (`ADGUIDE_STORE_URL=postgresql://user@host:5432/db`, optionally
`?options=-csearch_path%3Dmy_schema` for a schema of its own).

The store's SQL is written once, in the portable subset both backends run, with qmark (`?`) placeholders;
`Db` hands it to the driver (sqlite3, or psycopg with `%s` placeholders). Reads go to the DBAPI connection
directly: a SQLAlchemy result object costs ~14 us a query here, which would double the small reads a tool
makes (measured: 10.6 us raw vs 24.8 us through `exec_driver_sql` for a campaign list). SQLAlchemy gives
the PostgreSQL engine (URL, pool), the schema (tools.market.schema) and, through Alembic, its migrations.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from tools.errors import AdguideError

STORE_URL_ENV = "ADGUIDE_STORE_URL"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# "postgresql://", and the "postgresql:/" a pathlib.Path makes of it when a URL travels as a path.
_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*):/+(?P<rest>.*)$", re.S)
_PG_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}


class StoreLocation:
    """A store's address: `path` for an SQLite file, or `url` for PostgreSQL."""

    def __init__(self, path: Path | None = None, url: str | None = None) -> None:
        self.path = path
        self.url = url

    @property
    def is_url(self) -> bool:
        return self.url is not None

    def __str__(self) -> str:
        return redact(self.url) if self.url is not None else str(self.path)


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def parse_location(value: Path | str | None, default: Path | None = None) -> StoreLocation:
    """A file path or a database URL. None: $ADGUIDE_STORE_URL when set, else `default`.

    A URL that passed through pathlib.Path ("postgresql:/user@host/db": the agent's config carries the store
    as a path) is taken back as the URL it was; write URLs with a host (`@127.0.0.1`), which survive that."""
    if value is None:
        env = store_url_setting()
        if env:
            value = env
        elif default is not None:
            return StoreLocation(path=default)
        else:
            raise AdguideError(f"no store given and {STORE_URL_ENV} is not set", field="store")
    text = str(value).strip()
    m = _URL.match(text)
    if m is None:
        return StoreLocation(path=Path(text).expanduser())
    scheme = m["scheme"]
    if scheme == "sqlite" and text.startswith("sqlite:///"):  # SQLAlchemy's form: sqlite:////abs/path
        return StoreLocation(path=Path(text[len("sqlite:///") :]).expanduser())
    if scheme not in _PG_SCHEMES:
        raise AdguideError(
            f"store URL scheme {scheme!r} is not supported (use postgresql://user@host:port/db or a .sqlite path)",
            field="store",
        )
    return StoreLocation(url=f"postgresql+psycopg://{m['rest']}")


def store_url_setting() -> str | None:
    """$ADGUIDE_STORE_URL, from the environment or the settings file (tools/settings.py)."""
    # lazy: pulls in pydantic_settings at import
    from tools.settings import ToolSettings

    url = ToolSettings.from_env().store_url
    return url.strip() or None if url else None


@lru_cache(maxsize=16)
def engine(url: str) -> Any:
    """One pooled SQLAlchemy engine per PostgreSQL URL in this process (autocommit: `Db` runs BEGIN itself).
    A store holds its connection while open (an API process keeps dozens of agents open), so the pool never
    makes an opener wait: 8 idle connections are kept, any more are closed when their store closes."""
    # lazy: pulls in sqlalchemy at import
    import sqlalchemy as sa

    return sa.create_engine(
        url, isolation_level="AUTOCOMMIT", pool_pre_ping=True, pool_size=8, max_overflow=-1
    )


def connect_sqlite(path: Path | str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from several threads."""
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


class Db:
    """One DBAPI connection of either backend, running the store's `?`-placeholder SQL."""

    def __init__(self, conn: Any, dialect: str, release: Any = None) -> None:
        self.conn = conn
        self.dialect = dialect
        self.is_pg = dialect == "postgresql"
        self._release = release  # the pool's handle (PostgreSQL): closing it returns the connection
        self._sql: dict[str, str] = {}
        self.lock = threading.RLock()

    @classmethod
    def open(cls, location: StoreLocation) -> Db:
        if location.url is None:
            assert location.path is not None
            return cls(connect_sqlite(location.path), "sqlite")
        pooled = engine(location.url).raw_connection()
        return cls(pooled.driver_connection, "postgresql", pooled)

    def _q(self, sql: str) -> str:
        if not self.is_pg:
            return sql
        q = self._sql.get(sql)
        if q is None:
            q = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return q

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """A cursor (fetchone / fetchall / iteration) on either driver."""
        return self.conn.execute(self._q(sql), tuple(params))

    def stream(self, sql: str) -> Any:
        """A cursor that fetches as it goes (fetchmany): a PostgreSQL server-side cursor, which the caller
        closes; SQLite's cursors stream anyway."""
        if not self.is_pg:
            return self.conn.execute(sql)
        cur = self.conn.cursor(name=f"adguide_{uuid.uuid4().hex[:8]}", withhold=True)
        cur.execute(sql)
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if not self.is_pg:
            self.conn.executemany(sql, rows)
            return
        with self.conn.cursor() as cur:
            cur.executemany(self._q(sql), list(rows))

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Bulk-load rows (PostgreSQL COPY, ~10x an INSERT per row; SQLite: executemany)."""
        if not self.is_pg:
            marks = ",".join("?" * len(columns))
            self.conn.executemany(f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})", rows)
            return
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def begin_write(self) -> None:
        """Start a write transaction that holds the store's write lock until COMMIT / ROLLBACK, so two writers
        (also in other processes or on other machines) never hand out the same new id."""
        if self.is_pg:
            self.conn.execute("BEGIN")
            # blocks other writers, not readers (plain SELECTs take ACCESS SHARE)
            self.conn.execute("LOCK TABLE meta IN SHARE ROW EXCLUSIVE MODE")
        else:
            self.conn.execute("BEGIN IMMEDIATE")

    def begin(self) -> None:
        self.conn.execute("BEGIN")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def tables(self) -> set[str]:
        if self.is_pg:
            rows = self.conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall()
        else:
            rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {r[0] for r in rows}

    def close(self) -> None:
        if self._release is not None:
            if getattr(self.conn, "info", None) is not None and self.conn.info.transaction_status != 0:
                self.conn.execute("ROLLBACK")  # never hand an open transaction back to the pool
            self._release.close()
        else:
            self.conn.close()


# --- migrations (Alembic) ----------------------------------------------------------------------------------


def alembic_config(url: str) -> Any:
    # lazy: pulls in alembic at import
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def sqlalchemy_url(location: StoreLocation) -> str:
    return location.url if location.url is not None else f"sqlite:///{location.path}"


def migrate(location: StoreLocation, revision: str = "head") -> None:
    """Bring the store's schema to `revision` (Alembic upgrade). Creates the tables in an empty database or a
    new SQLite file; a store made before the migrations existed gets only what it lacks, then the revision."""
    # lazy: pulls in sqlalchemy at import
    import sqlalchemy as sa

    # lazy: pulls in alembic at import
    from alembic import command

    url = sqlalchemy_url(location)
    cfg = alembic_config(url)
    eng = engine(url) if location.url is not None else sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        if location.url is not None:
            conn = conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin():
            if location.url is not None:
                # one migrator at a time (several workers may start together); released at commit
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4242019)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def current_revision(location: StoreLocation) -> str | None:
    # lazy: pulls in sqlalchemy at import
    import sqlalchemy as sa

    # lazy: pulls in alembic at import
    from alembic.runtime.migration import MigrationContext

    url = sqlalchemy_url(location)
    eng = engine(url) if location.url is not None else sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        rev: str | None = MigrationContext.configure(conn).get_current_revision()
        return rev
