"""The marketplace store: one SQLite file per world (the embedded default) or a PostgreSQL database
(tools.market.db), read and written only through an advertiser scope.

`MarketStore.open(path)` gives the whole file; `store.scoped(advertiser_id)` gives the only view that
reads entities and reports, and every method of it refuses an id of another advertiser with
`UnknownIdError`. Writes (bids, budgets, status, keywords, negatives) run in one transaction each,
leave an audit row and bump `data_version`, so caches keyed on it never serve stale numbers.

Layout: entities keep their string ids; the large daily tables key rows by (advertiser, day, integer
index) in clustered `WITHOUT ROWID` tables, so one advertiser's date range is one contiguous range
scan. Money in daily tables is integer cents (exact, and small integers take 1-4 bytes in SQLite).
Ground truth is not here: the true markets behind every keyword (shopper response, relevance of search terms,
rivals) and the experiments' true effects live in truth.sqlite (tools.market.truth), which nothing that serves
an advertiser opens. The platform's auction log (sampled auctions per keyword) is here: a platform observes it.

The schema is defined once, in tools.market.schema (SQLAlchemy Core), and built by Alembic migrations
(tools.market.migrations); the SQL below is the portable subset SQLite and PostgreSQL both run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.errors import AdguideError, InvalidInputError, UnknownIdError, check_range
from tools.market.data_model import (
    AdGroup,
    Advertiser,
    AuditRecord,
    Campaign,
    CampaignDay,
    Experiment,
    Intervention,
    Keyword,
    KeywordDay,
    MatchType,
    NegativeKeyword,
    Product,
    SearchTermDay,
    Status,
)
from tools.market.db import Db, StoreLocation, connect_sqlite, migrate, parse_location, store_url_setting
from tools.market.experiments import ExperimentUnits

SCHEMA_VERSION = "2"  # 2: the true markets and search-term relevance moved to truth.sqlite
MAX_BID = 100.0
MAX_BUDGET = 1_000_000.0
MAX_KEYWORD_CHARS = 80
MAX_ITEMS_PER_WRITE = 1000


DAILY_TABLES = ("keyword_days", "campaign_days", "search_term_days")
# Every table of tools.market.schema, in a fixed order. Named here, not read from the schema module: importing
# SQLAlchemy takes 0.2 s, which opening an SQLite store never pays (tests/test_store_backends.py checks the two).
ALL_TABLES = (
    "meta",
    "advertisers",
    "products",
    "campaigns",
    "ad_groups",
    "keywords",
    "negatives",
    "auction_log",
    "search_terms",
    *DAILY_TABLES,
    "interventions",
    "experiments",
    "experiment_units",
    "audit",
    "external_ids",
)

_AuditItem = tuple[str, str, Any, Any]  # (action, entity, before, after)
# meta values are text on both backends
BUMP_WRITE_COUNT = (
    "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'write_count'"
)


def default_world_path() -> Path:
    """$ADGUIDE_HOME/world.sqlite; ADGUIDE_HOME defaults to ~/.adguide."""
    home = os.environ.get("ADGUIDE_HOME") or str(Path.home() / ".adguide")
    return Path(home).expanduser() / "world.sqlite"


def default_store() -> Path | str:
    """The store the tools open when none is named: $ADGUIDE_STORE_URL (PostgreSQL) when set, else
    $ADGUIDE_HOME/world.sqlite."""
    return store_url_setting() or default_world_path()


@contextmanager
def open_scoped(
    path: Path | str, advertiser_id: str, last: int
) -> Iterator[tuple[MarketStore, AdvertiserStore, dt.date]]:
    """The world at `path` opened, one advertiser's view of it, and the first day of its last `last` days
    (what the CLIs report on). Raises AdguideError or FileNotFoundError with a message for the user."""
    check_range("--last", last, ge=1, le=3650)
    with MarketStore.open(path) as store:
        try:
            adv = store.scoped(advertiser_id)
        except UnknownIdError:
            ids = store.advertiser_ids()
            known = f" (it has {ids[0]} .. {ids[-1]})" if ids else ""
            raise UnknownIdError(
                f"advertiser {advertiser_id} does not exist in {path}{known}", field="advertiser_id"
            ) from None
        yield store, adv, max(store.start_date, store.end_date - dt.timedelta(days=last - 1))


connect = connect_sqlite  # an SQLite store file's connection (autocommit; transactions are explicit)


def open_db(location: StoreLocation) -> Db:
    """A connection to the store at `location`; an unreachable database is a clear AdguideError."""
    try:
        return Db.open(location)
    except AdguideError:
        raise
    except Exception as exc:  # the driver's or the pool's own error: say where and what, without the password
        if location.url is None:
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise AdguideError(f"cannot connect to the store at {location}: {reason}", field="store") from None


def _cents(x: float) -> int:
    return round(x * 100)


def _json_value(v: float | str | None) -> str | None:
    return None if v is None else json.dumps(v)


def _from_json_value(s: str | None) -> float | str | None:
    if s is None:
        return None
    v = json.loads(s)
    return v if isinstance(v, float | str) or v is None else float(v)


def parse_date(value: dt.date | str, field: str) -> dt.date:
    """A date or an ISO 'YYYY-MM-DD' string; anything else is a clear InvalidInputError."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInputError(
            f"{field} must be a date as YYYY-MM-DD (got {value!r})", field=field, allowed="YYYY-MM-DD"
        ) from None


def _check_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 200:
        raise InvalidInputError(
            f"actor must be a non-empty name of at most 200 characters (got {actor!r})",
            field="actor",
            allowed="1-200 characters",
        )
    return actor.strip()


def _normalize_text(text: str, field: str) -> str:
    norm = " ".join(str(text).lower().split())
    if not norm or len(norm) > MAX_KEYWORD_CHARS:
        raise InvalidInputError(
            f"{field} must be 1-{MAX_KEYWORD_CHARS} characters (got {text!r})",
            field=field,
            allowed=f"1-{MAX_KEYWORD_CHARS} characters",
        )
    return norm


def _check_count(field: str, items: Sequence[Any]) -> None:
    if (
        not isinstance(items, Sequence)
        or isinstance(items, str)
        or not 1 <= len(items) <= MAX_ITEMS_PER_WRITE
    ):
        got = len(items) if isinstance(items, Sequence) else type(items).__name__
        raise InvalidInputError(
            f"{field} must list 1-{MAX_ITEMS_PER_WRITE} items (got {got})",
            field=field,
            allowed=f"1-{MAX_ITEMS_PER_WRITE} items",
        )


def _match_type(value: MatchType | str, allowed: Sequence[MatchType] = tuple(MatchType)) -> MatchType:
    try:
        mt = MatchType(value)
    except ValueError:
        mt = None
    if mt is None or mt not in allowed:
        names = ", ".join(m.value for m in allowed)
        raise InvalidInputError(
            f"match_type must be one of {names} (got {value!r})", field="match_type", allowed=names
        )
    return mt


class MarketStore:
    """A world (or accounts) store. Read and write advertiser data only through `scoped(advertiser_id)`."""

    def __init__(self, db: Db, path: Path | str, location: StoreLocation | None = None) -> None:
        self._conn = db
        self.path = path  # the file, or the database URL without its password
        self.location = location or StoreLocation(path=Path(path))
        self.backend = db.dialect  # "sqlite" | "postgresql"
        self._lock = db.lock
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self.start_date = dt.date.fromisoformat(meta["start_date"])
        self.end_date = dt.date.fromisoformat(meta["end_date"])
        self.generation_id = meta["generation_id"]
        self.config: dict[str, Any] = json.loads(meta.get("config", "{}"))
        self._tables: set[str] | None = None

    @classmethod
    def open(cls, path: Path | str | None = None) -> MarketStore:
        """Open a store: an SQLite file path, or a PostgreSQL URL (None: $ADGUIDE_STORE_URL, else
        $ADGUIDE_HOME/world.sqlite). A missing store names the command that creates one."""
        location = parse_location(path, default_world_path())
        if location.url is not None:
            return cls._open_database(location)
        path = location.path
        assert path is not None
        if not path.is_file():
            raise FileNotFoundError(
                f"no adguide world at {path}; create one with `adguide market generate --out {path}`"
            )
        db = Db(connect(path), "sqlite")
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            db.close()
            raise AdguideError(
                f"{path} is not an adguide world; recreate it with `adguide market generate --out {path}`",
                field="path",
            ) from None
        if meta.get("schema_version") != SCHEMA_VERSION:
            db.close()
            raise AdguideError(
                f"{path} has schema version {meta.get('schema_version')!r}, this adguide reads {SCHEMA_VERSION!r};"
                f" regenerate it with `adguide market generate --out {path}`",
                field="path",
            )
        return cls(db, path, location)

    @classmethod
    def _open_database(cls, location: StoreLocation) -> MarketStore:
        where = str(location)
        db = open_db(location)
        try:
            if "meta" not in db.tables():
                raise AdguideError(
                    f"{where} has no adguide store schema; create it with `adguide market migrate --store URL`, "
                    "then fill it with `adguide market generate --out URL` or `adguide market import --out URL`",
                    field="store",
                )
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                raise FileNotFoundError(
                    f"the store at {where} is empty; fill it with `adguide market generate --out URL` or "
                    "`adguide market import --out URL`"
                )
            if meta.get("schema_version") != SCHEMA_VERSION:
                raise AdguideError(
                    f"{where} has schema version {meta.get('schema_version')!r}, this adguide reads "
                    f"{SCHEMA_VERSION!r}",
                    field="store",
                )
            return cls(db, where, location)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> MarketStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- whole-store facts -------------------------------------------------------------------------------

    @property
    def data_version(self) -> str:
        """Changes on every write (here or by another process): a key for caches."""
        with self._lock:
            (count,) = self._conn.execute("SELECT value FROM meta WHERE key = 'write_count'").fetchone()
        return f"{self.generation_id}.{count}"

    @property
    def days(self) -> int:
        return (self.end_date - self.start_date).days + 1

    def advertiser_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT id FROM advertisers ORDER BY idx")]

    def scoped(self, advertiser_id: str) -> AdvertiserStore:
        with self._lock:
            row = self._conn.execute(
                "SELECT idx, id, name, category, target_acos FROM advertisers WHERE id = ?",
                (str(advertiser_id),),
            ).fetchone()
        if row is None:
            raise UnknownIdError(f"advertiser {advertiser_id} does not exist", field="advertiser_id")
        adv = Advertiser(id=row[1], name=row[2], category=row[3], target_acos=row[4])
        return AdvertiserStore(self, row[0], adv)

    def tables(self) -> set[str]:
        """The store's tables (read once: a file made before the migrations may lack `external_ids`)."""
        if self._tables is None:
            with self._lock:
                self._tables = self._conn.tables()
        return self._tables

    def row_counts(self) -> dict[str, int]:
        """Rows per table of the store's schema (for the generation summary)."""
        with self._lock:
            return {
                t: self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in sorted(self.tables() & set(ALL_TABLES))
            }


# The funnel columns every daily report shares (money stored in cents), and their PerformanceRow fields.
_FUNNEL_COLUMNS = "d.impressions, d.clicks, d.spend_cents, d.orders, d.sales_cents, d.organic_cents"


def _funnel(row: Sequence[Any], at: int) -> dict[str, Any]:
    impressions, clicks, spend, orders, sales, organic = row[at : at + 6]
    return {
        "impressions": impressions,
        "clicks": clicks,
        "spend": spend / 100,
        "orders": orders,
        "sales": sales / 100,
        "organic_sales": organic / 100,
    }


class AdvertiserStore:
    """Everything one advertiser may read and write. Ids of other advertisers do not exist here."""

    def __init__(self, store: MarketStore, adv_idx: int, advertiser: Advertiser) -> None:
        self._store = store
        self._conn = store._conn
        self._lock = store._lock
        self._adv = adv_idx
        self.advertiser = advertiser
        self.advertiser_id = advertiser.id

    # --- helpers -----------------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _own(
        self, table: str, label: str, ids: Iterable[str], key: str = "id", value: str = "id"
    ) -> dict[str, Any]:
        """Map each id to `value` if it belongs to this advertiser, else UnknownIdError naming the id."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        found: dict[str, Any] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._rows(
                    f"SELECT {key}, {value} FROM {table} WHERE adv = ? AND {key} IN ({marks})",
                    [self._adv, *chunk],
                )
            )
        for entity_id in wanted:
            if entity_id not in found:
                raise UnknownIdError(
                    f"{label.replace('_', ' ')} {entity_id} is not one of {self.advertiser_id}'s {label.replace('_', ' ')}s",
                    field=f"{label}_id",
                )
        return found

    def _range(self, start: dt.date | str, end: dt.date | str) -> tuple[int, int]:
        s, e = parse_date(start, "start"), parse_date(end, "end")
        if s > e:
            raise InvalidInputError(
                f"start ({s}) must not be after end ({e})", field="start", allowed=f"<= {e}"
            )
        first, last = self._store.start_date, self._store.end_date
        if e < first or s > last:
            raise InvalidInputError(
                f"the range {s}..{e} lies outside the history, which covers {first}..{last}",
                field="start",
                allowed=f"{first}..{last}",
            )
        return (s - first).days, (e - first).days

    def _date(self, day: int) -> dt.date:
        return self._store.start_date + dt.timedelta(days=day)

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        if not values:
            return " AND 1 = 0", []
        return f" AND {column} IN ({','.join('?' * len(values))})", list(values)

    # --- entities ----------------------------------------------------------------------------------------

    def campaigns(self) -> list[Campaign]:
        rows = self._rows(
            "SELECT id, name, daily_budget, status, targeting FROM campaigns WHERE adv = ? ORDER BY idx",
            (self._adv,),
        )
        return [
            Campaign(
                id=r[0],
                advertiser_id=self.advertiser_id,
                name=r[1],
                daily_budget=r[2],
                status=r[3],
                targeting=r[4],
            )
            for r in rows
        ]

    def ad_groups(self, campaign_id: str | None = None) -> list[AdGroup]:
        sql = "SELECT id, campaign_id, name, product_ids, default_bid FROM ad_groups WHERE adv = ?"
        params: list[Any] = [self._adv]
        if campaign_id is not None:
            self._own("campaigns", "campaign", [campaign_id])
            sql += " AND campaign_id = ?"
            params.append(campaign_id)
        rows = self._rows(sql + " ORDER BY id", params)
        return [
            AdGroup(id=r[0], campaign_id=r[1], name=r[2], product_ids=json.loads(r[3]), default_bid=r[4])
            for r in rows
        ]

    def keywords(self, ad_group_id: str | None = None, campaign_id: str | None = None) -> list[Keyword]:
        sql = "SELECT id, ad_group_id, text, match_type, bid, status FROM keywords WHERE adv = ?"
        params: list[Any] = [self._adv]
        if ad_group_id is not None:
            self._own("ad_groups", "ad_group", [ad_group_id])
            sql += " AND ad_group_id = ?"
            params.append(ad_group_id)
        if campaign_id is not None:
            self._own("campaigns", "campaign", [campaign_id])
            sql += " AND campaign_id = ?"
            params.append(campaign_id)
        rows = self._rows(sql + " ORDER BY idx", params)
        return [
            Keyword(id=r[0], ad_group_id=r[1], text=r[2], match_type=r[3], bid=r[4], status=r[5])
            for r in rows
        ]

    def negatives(self, ad_group_id: str | None = None) -> list[NegativeKeyword]:
        sql = "SELECT id, ad_group_id, text, match_type FROM negatives WHERE adv = ?"
        params: list[Any] = [self._adv]
        if ad_group_id is not None:
            self._own("ad_groups", "ad_group", [ad_group_id])
            sql += " AND ad_group_id = ?"
            params.append(ad_group_id)
        rows = self._rows(sql + " ORDER BY id", params)
        return [NegativeKeyword(id=r[0], ad_group_id=r[1], text=r[2], match_type=r[3]) for r in rows]

    def products(self) -> list[Product]:
        rows = self._rows(
            "SELECT id, name, category, price, margin FROM products WHERE adv = ? ORDER BY id", (self._adv,)
        )
        return [
            Product(
                id=r[0], advertiser_id=self.advertiser_id, name=r[1], category=r[2], price=r[3], margin=r[4]
            )
            for r in rows
        ]

    # --- reports -----------------------------------------------------------------------------------------

    def _report(
        self,
        start: dt.date | str,
        end: dt.date | str,
        sql: str,
        ids: Sequence[str] | None,
        *,
        table: str,
        kind: str,
        column: str,
        order: str,
    ) -> list[tuple[Any, ...]]:
        """Rows of one daily report between two dates, optionally only for some of this advertiser's ids."""
        first, last = self._range(start, end)
        params: list[Any] = [self._adv, first, last]
        if ids is not None:
            idx = self._own(table, kind, ids, value="idx")
            clause, extra = self._in(column, list(idx.values()))
            sql += clause
            params += extra
        return self._rows(f"{sql} ORDER BY {order}", params)

    def keyword_days(
        self, start: dt.date | str, end: dt.date | str, keyword_ids: Sequence[str] | None = None
    ) -> list[KeywordDay]:
        rows = self._report(
            start,
            end,
            f"SELECT d.day, k.id, {_FUNNEL_COLUMNS}, d.avg_position, d.impression_share, d.bid_cents"
            " FROM keyword_days d JOIN keywords k ON k.idx = d.keyword_idx WHERE d.adv = ? AND d.day BETWEEN ? AND ?",
            keyword_ids,
            table="keywords",
            kind="keyword",
            column="d.keyword_idx",
            order="d.day, d.keyword_idx",
        )
        return [
            KeywordDay.model_construct(
                date=self._date(r[0]),
                keyword_id=r[1],
                **_funnel(r, 2),
                avg_position=r[8],
                impression_share=r[9],
                bid=r[10] / 100,
            )
            for r in rows
        ]

    def campaign_days(
        self, start: dt.date | str, end: dt.date | str, campaign_ids: Sequence[str] | None = None
    ) -> list[CampaignDay]:
        rows = self._report(
            start,
            end,
            f"SELECT d.day, c.id, {_FUNNEL_COLUMNS}, d.budget_cents, d.budget_exhausted_at"
            " FROM campaign_days d JOIN campaigns c ON c.idx = d.campaign_idx WHERE d.adv = ? AND d.day BETWEEN ? AND ?",
            campaign_ids,
            table="campaigns",
            kind="campaign",
            column="d.campaign_idx",
            order="d.day, d.campaign_idx",
        )
        return [
            CampaignDay.model_construct(
                date=self._date(r[0]),
                campaign_id=r[1],
                **_funnel(r, 2),
                budget=r[8] / 100,
                budget_exhausted_at=r[9],
            )
            for r in rows
        ]

    def search_term_days(
        self, start: dt.date | str, end: dt.date | str, keyword_ids: Sequence[str] | None = None
    ) -> list[SearchTermDay]:
        """Search-term report rows: only terms with at least one click that day, as ad consoles show them."""
        rows = self._report(
            start,
            end,
            f"SELECT d.day, k.id, t.term, {_FUNNEL_COLUMNS} FROM search_term_days d"
            " JOIN search_terms t ON t.idx = d.term_idx JOIN keywords k ON k.idx = t.keyword_idx"
            " WHERE d.adv = ? AND d.day BETWEEN ? AND ?",
            keyword_ids,
            table="keywords",
            kind="keyword",
            column="t.keyword_idx",
            order="d.day, d.term_idx",
        )
        return [
            SearchTermDay.model_construct(date=self._date(r[0]), keyword_id=r[1], term=r[2], **_funnel(r, 3))
            for r in rows
        ]

    def interventions(self) -> list[Intervention]:
        rows = self._rows(
            "SELECT id, date, kind, entity_id, before, after FROM interventions WHERE adv = ? ORDER BY date, id",
            (self._adv,),
        )
        return [
            Intervention(
                id=r[0],
                advertiser_id=self.advertiser_id,
                date=dt.date.fromisoformat(r[1]),
                kind=r[2],
                entity_id=r[3],
                before=_from_json_value(r[4]),
                after=_from_json_value(r[5]),
            )
            for r in rows
        ]

    def experiments(self) -> list[Experiment]:
        rows = self._rows("SELECT experiment FROM experiments WHERE adv = ? ORDER BY id", (self._adv,))
        return [Experiment.model_validate_json(r[0]) for r in rows]

    def experiment_units(self, experiment_id: str) -> ExperimentUnits:
        self._own("experiments", "experiment", [experiment_id])
        (blob,) = self._rows(
            "SELECT units FROM experiment_units WHERE adv = ? AND experiment_id = ?",
            (self._adv, experiment_id),
        )[0]
        return ExperimentUnits.from_bytes(blob)

    # --- what the market model is estimated from ---------------------------------------------------------

    @property
    def history_period(self) -> tuple[dt.date, dt.date]:
        """First and last day of the reports."""
        return self._store.start_date, self._store.end_date

    @property
    def world_start(self) -> dt.date:
        """Day 0 of the simulator's day indices."""
        return self._store.start_date

    def has_auction_log(self) -> bool:
        """Whether the platform's auction log is here (a generated marketplace; not an imported account)."""
        return "auction_log" in self._store.tables() and bool(
            self._rows("SELECT 1 FROM auction_log WHERE adv = ? LIMIT 1", (self._adv,))
        )

    def auction_log(self) -> dict[str, dict[str, Any]]:
        """The platform's logged auctions per keyword id: rival counts, bids and quality scores."""
        if not self.has_auction_log():
            return {}
        rows = self._rows(
            "SELECT k.id, l.log FROM auction_log l JOIN keywords k ON k.idx = l.keyword_idx WHERE l.adv = ?",
            (self._adv,),
        )
        return {r[0]: json.loads(r[1]) for r in rows}

    def external_ids(self) -> dict[str, str]:
        """The console's ids of this advertiser's imported entities (store id -> Amazon id); empty for a
        generated world."""
        if "external_ids" not in self._store.tables():
            return {}
        rows = self._rows("SELECT entity_id, external_id FROM external_ids WHERE adv = ?", (self._adv,))
        return {str(e): str(x) for e, x in rows}

    def query_texts(self) -> dict[int, tuple[str, str]]:
        """Every query the advertiser's keywords match, by its row: (keyword id, text). The truth store keys
        each query's hidden share and relevance by the same row."""
        rows = self._rows(
            "SELECT t.idx, k.id, t.term FROM search_terms t JOIN keywords k ON k.idx = t.keyword_idx WHERE t.adv = ?",
            (self._adv,),
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    # --- writes ------------------------------------------------------------------------------------------

    def _transaction(self, actor: str, body: Callable[[Db], list[_AuditItem]]) -> None:
        """Run `body` and write its audit rows (action, entity, before, after) in one transaction.

        `body` reads what it needs inside the transaction (BEGIN IMMEDIATE holds the write lock), so two
        writers, even in different processes, never hand out the same new id or log a stale `before`.
        """
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._lock:
            conn = self._conn
            conn.begin_write()
            try:
                records = body(conn)
                conn.executemany(
                    "INSERT INTO audit (adv, actor, action, entity, before, after, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (self._adv, actor, a, e, _json_value(b), _json_value(af), now)
                        for a, e, b, af in records
                    ],
                )
                conn.execute(BUMP_WRITE_COUNT)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def _set_field(
        self, table: str, label: str, entity_id: str, column: str, value: Any, actor: str, action: str
    ) -> None:
        self._own(table, label, [entity_id])

        def body(conn: Db) -> list[_AuditItem]:
            (before,) = conn.execute(
                f"SELECT {column} FROM {table} WHERE id = ? AND adv = ?", (entity_id, self._adv)
            ).fetchone()
            conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE id = ? AND adv = ?", (value, entity_id, self._adv)
            )
            return [(action, entity_id, before, value)]

        self._transaction(actor, body)

    def set_bid(self, keyword_id: str, bid: float, actor: str) -> Keyword:
        actor = _check_actor(actor)
        check_range("bid", bid, gt=0, le=MAX_BID)
        self._set_field(
            "keywords", "keyword", keyword_id, "bid", round(float(bid), 2) or 0.01, actor, "set_bid"
        )
        return self.keywords_by_id([keyword_id])[0]

    def set_budget(self, campaign_id: str, budget: float, actor: str) -> Campaign:
        actor = _check_actor(actor)
        check_range("budget", budget, gt=0, le=MAX_BUDGET)
        value = round(float(budget), 2) or 0.01
        self._set_field("campaigns", "campaign", campaign_id, "daily_budget", value, actor, "set_budget")
        return next(c for c in self.campaigns() if c.id == campaign_id)

    def set_status(self, entity_id: str, status: Status | str, actor: str) -> Campaign | Keyword:
        """Pause or enable a campaign (cmp_...) or a keyword (kw_...)."""
        actor = _check_actor(actor)
        try:
            new = Status(status)
        except ValueError:
            allowed = ", ".join(s.value for s in Status)
            raise InvalidInputError(
                f"status must be one of {allowed} (got {status!r})", field="status", allowed=allowed
            ) from None
        entity_id = str(entity_id)
        if entity_id.startswith("cmp_"):
            self._set_field("campaigns", "campaign", entity_id, "status", new.value, actor, "set_status")
            return next(c for c in self.campaigns() if c.id == entity_id)
        if entity_id.startswith("kw_"):
            self._set_field("keywords", "keyword", entity_id, "status", new.value, actor, "set_status")
            return self.keywords_by_id([entity_id])[0]
        raise UnknownIdError(
            f"{entity_id} is not one of {self.advertiser_id}'s campaigns or keywords",
            field="entity_id",
            allowed="a campaign id (cmp_...) or a keyword id (kw_...)",
        )

    def keywords_by_id(self, keyword_ids: Sequence[str]) -> list[Keyword]:
        self._own("keywords", "keyword", keyword_ids)
        wanted = set(keyword_ids)
        return [k for k in self.keywords() if k.id in wanted]

    def add_keywords(
        self, ad_group_id: str, keywords: Sequence[tuple[str, MatchType | str, float]], actor: str
    ) -> list[Keyword]:
        """Add keywords to an ad group (in a generated world, the truth derives their markets when read:
        tools.market.truth.TruthStore.keyword_markets)."""
        actor = _check_actor(actor)
        campaign_id = self._own("ad_groups", "ad_group", [ad_group_id], value="campaign_id")[ad_group_id]
        _check_count("keywords", keywords)
        group_keywords = self.keywords(ad_group_id=ad_group_id)
        existing = {(k.text, k.match_type) for k in group_keywords}
        wanted: list[tuple[str, MatchType, float]] = []
        for item in keywords:
            if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 3:
                raise InvalidInputError(
                    f"each keyword must be (text, match_type, bid) (got {item!r})",
                    field="keywords",
                    allowed="(text, match_type, bid)",
                )
            text = _normalize_text(item[0], "text")
            mt = _match_type(item[1])
            bid = round(float(check_range("bid", item[2], gt=0, le=MAX_BID)), 2) or 0.01
            if (text, mt) in existing:
                raise InvalidInputError(
                    f"keyword '{text}' ({mt.value}) already exists in ad group {ad_group_id}",
                    field="text",
                    allowed="a text and match type not yet in the ad group",
                )
            existing.add((text, mt))
            wanted.append((text, mt, bid))

        new_ids: list[str] = []

        def body(conn: Db) -> list[_AuditItem]:
            (max_idx,) = conn.execute("SELECT COALESCE(MAX(idx), 0) FROM keywords").fetchone()
            (max_term,) = conn.execute("SELECT COALESCE(MAX(idx), 0) FROM search_terms").fetchone()
            records: list[_AuditItem] = []
            for idx, (text, mt, bid) in enumerate(wanted, start=max_idx + 1):
                kw_id = f"kw_{idx:07d}"
                new_ids.append(kw_id)
                conn.execute(
                    "INSERT INTO keywords (idx, id, adv, campaign_id, ad_group_id, text, match_type, bid, status)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        idx,
                        kw_id,
                        self._adv,
                        campaign_id,
                        ad_group_id,
                        text,
                        mt.value,
                        bid,
                        Status.ENABLED.value,
                    ),
                )
                max_term += 1  # the keyword's own text is the first query it matches
                conn.execute(
                    "INSERT INTO search_terms (idx, adv, keyword_idx, term) VALUES (?, ?, ?, ?)",
                    (max_term, self._adv, idx, text),
                )
                records.append(
                    ("add_keyword", kw_id, None, f"{text} [{mt.value}] bid {bid:.2f} in {ad_group_id}")
                )
            return records

        self._transaction(actor, body)
        return self.keywords_by_id(new_ids)

    def add_negatives(
        self, ad_group_id: str, negatives: Sequence[tuple[str, MatchType | str]], actor: str
    ) -> list[NegativeKeyword]:
        """Add negative exact / negative phrase keywords to an ad group (broad negatives do not exist)."""
        actor = _check_actor(actor)
        self._own("ad_groups", "ad_group", [ad_group_id])
        _check_count("negatives", negatives)
        existing = {(n.text, n.match_type) for n in self.negatives(ad_group_id=ad_group_id)}
        wanted: list[tuple[str, MatchType]] = []
        for item in negatives:
            if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 2:
                raise InvalidInputError(
                    f"each negative must be (text, match_type) (got {item!r})",
                    field="negatives",
                    allowed="(text, match_type)",
                )
            text = _normalize_text(item[0], "text")
            mt = _match_type(item[1], (MatchType.EXACT, MatchType.PHRASE))
            if (text, mt) in existing:
                raise InvalidInputError(
                    f"negative '{text}' ({mt.value}) already exists in ad group {ad_group_id}",
                    field="text",
                    allowed="a text and match type not yet negated in the ad group",
                )
            existing.add((text, mt))
            wanted.append((text, mt))
        new_ids: list[str] = []

        def body(conn: Db) -> list[_AuditItem]:
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(CAST(SUBSTR(id, 5) AS INTEGER)), 0) FROM negatives"
            ).fetchone()
            records: list[_AuditItem] = []
            for n, (text, mt) in enumerate(wanted, start=last + 1):
                neg_id = f"neg_{n:06d}"
                new_ids.append(neg_id)
                conn.execute(
                    "INSERT INTO negatives (id, adv, ad_group_id, text, match_type) VALUES (?, ?, ?, ?, ?)",
                    (neg_id, self._adv, ad_group_id, text, mt.value),
                )
                records.append(
                    ("add_negative", neg_id, None, f"{text} [negative {mt.value}] in {ad_group_id}")
                )
            return records

        self._transaction(actor, body)
        wanted_ids = set(new_ids)
        return [n for n in self.negatives(ad_group_id=ad_group_id) if n.id in wanted_ids]

    def audit_log(self) -> list[AuditRecord]:
        rows = self._rows(
            "SELECT id, actor, action, entity, before, after, at FROM audit WHERE adv = ? ORDER BY id",
            (self._adv,),
        )
        return [
            AuditRecord(
                id=r[0],
                advertiser_id=self.advertiser_id,
                actor=r[1],
                action=r[2],
                entity=r[3],
                before=_from_json_value(r[4]),
                after=_from_json_value(r[5]),
                at=dt.datetime.fromisoformat(r[6]),
            )
            for r in rows
        ]


# --- writing a new world file (generation only; see tools.market.generate) -------------------------------


def create_world_db(path: Path) -> Db:
    """A new, empty world file with the schema (Alembic, so it carries its revision). Fast, unsafe pragmas:
    a failed generation deletes the file."""
    migrate(StoreLocation(path=path))
    conn = connect(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    return Db(conn, "sqlite")


def insert_columns(conn: Db | sqlite3.Connection, table: str, columns: dict[str, Any]) -> int:
    """Insert rows given as equal-length columns (numpy arrays or lists); NaN floats become NULL."""
    names = list(columns)
    is_pg = isinstance(conn, Db) and conn.is_pg
    lists = [
        _nan_to_none(c) if is_pg else c.tolist() if hasattr(c, "tolist") else list(c)
        for c in columns.values()
    ]
    if not lists or not lists[0]:
        return 0
    if isinstance(conn, Db):
        conn.copy_rows(table, names, zip(*lists, strict=True))
    else:
        marks = ",".join("?" * len(names))
        conn.executemany(
            f"INSERT INTO {table} ({','.join(names)}) VALUES ({marks})", zip(*lists, strict=True)
        )
    return len(lists[0])


def _nan_to_none(column: Any) -> list[Any]:
    """SQLite stores a NaN as NULL by itself; PostgreSQL would keep it as a NaN."""
    values = column.tolist() if hasattr(column, "tolist") else list(column)
    if getattr(getattr(column, "dtype", None), "kind", "") != "f":
        return values
    return [None if v != v else v for v in values]


def write_entities(conn: Db, world: Any, interventions: Sequence[Intervention]) -> None:
    """Advertisers, their accounts, markets and search terms. Integer keys are list positions + 1."""
    adv_idx = {a.id: i + 1 for i, a in enumerate(world.advertisers)}
    camp_adv = {c.id: adv_idx[c.advertiser_id] for c in world.campaigns}
    group_campaign = {g.id: g.campaign_id for g in world.ad_groups}
    group_adv = {g.id: camp_adv[g.campaign_id] for g in world.ad_groups}
    kw_pos = {k.id: i + 1 for i, k in enumerate(world.keywords)}
    conn.copy_rows(
        "advertisers",
        ("idx", "id", "name", "category", "target_acos"),
        [(adv_idx[a.id], a.id, a.name, a.category, a.target_acos) for a in world.advertisers],
    )
    conn.copy_rows(
        "products",
        ("id", "adv", "name", "category", "price", "margin"),
        [(p.id, adv_idx[p.advertiser_id], p.name, p.category, p.price, p.margin) for p in world.products],
    )
    conn.copy_rows(
        "campaigns",
        ("idx", "id", "adv", "name", "daily_budget", "status", "targeting"),
        [
            (i + 1, c.id, camp_adv[c.id], c.name, c.daily_budget, c.status.value, c.targeting.value)
            for i, c in enumerate(world.campaigns)
        ],
    )
    conn.copy_rows(
        "ad_groups",
        ("id", "adv", "campaign_id", "name", "product_ids", "default_bid"),
        [
            (g.id, group_adv[g.id], g.campaign_id, g.name, json.dumps(g.product_ids), g.default_bid)
            for g in world.ad_groups
        ],
    )
    conn.copy_rows(
        "keywords",
        ("idx", "id", "adv", "campaign_id", "ad_group_id", "text", "match_type", "bid", "status"),
        [
            (
                kw_pos[k.id],
                k.id,
                group_adv[k.ad_group_id],
                group_campaign[k.ad_group_id],
                k.ad_group_id,
                k.text,
                k.match_type.value,
                k.bid,
                k.status.value,
            )
            for k in world.keywords
        ],
    )
    conn.copy_rows(
        "negatives",
        ("id", "adv", "ad_group_id", "text", "match_type"),
        [
            (n.id, group_adv[n.ad_group_id], n.ad_group_id, n.text, n.match_type.value)
            for n in world.negatives
        ],
    )
    kw_adv = {k.id: group_adv[k.ad_group_id] for k in world.keywords}
    conn.copy_rows(
        "search_terms",
        ("idx", "adv", "keyword_idx", "term"),
        [
            (i + 1, kw_adv[t.keyword_id], kw_pos[t.keyword_id], t.term)
            for i, t in enumerate(world.search_terms)
        ],
    )
    conn.copy_rows(
        "interventions",
        ("id", "adv", "date", "kind", "entity_id", "before", "after"),
        [
            (
                i.id,
                adv_idx[i.advertiser_id],
                i.date.isoformat(),
                i.kind.value,
                i.entity_id,
                _json_value(i.before),
                _json_value(i.after),
            )
            for i in interventions
        ],
    )


def write_auction_log(conn: Db, rows: Sequence[tuple[int, int, str]]) -> None:
    """The platform's auction log rows (keyword position, advertiser position, JSON), zero-based positions."""
    conn.copy_rows(
        "auction_log",
        ("keyword_idx", "adv", "log"),
        [(k + 1, a + 1, log) for k, a, log in rows],
    )


def write_experiment(conn: Db, adv_idx: int, experiment: Experiment, units: ExperimentUnits) -> None:
    conn.execute(
        "INSERT INTO experiments (id, adv, experiment) VALUES (?, ?, ?)",
        (experiment.id, adv_idx, experiment.model_dump_json()),
    )
    conn.execute(
        "INSERT INTO experiment_units (experiment_id, adv, units) VALUES (?, ?, ?)",
        (experiment.id, adv_idx, units.to_bytes()),
    )


def write_meta(conn: Db, meta: dict[str, str]) -> None:
    conn.copy_rows(
        "meta",
        ("key", "value"),
        [("schema_version", SCHEMA_VERSION), ("write_count", "0"), *meta.items()],
    )
