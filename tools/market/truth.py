"""Ground truth of a world, kept in truth.sqlite beside world.sqlite and read only by evals and tests.

It holds what no advertiser can observe: every keyword's true market (shopper response, rivals, demand and
its future moves: the generator's `KeywordMarket`) and its search terms' hidden shares and relevance, each
experiment's per-unit true effects, the incremental orders and sales behind every keyword-day of the
history, and the market events (competitor surges, sales events) that explain why performance moved.
`MarketStore` never opens this file, and nothing that serves an advertiser (the MCP tools) imports this
module: the tools run on a market model estimated from the reports (tools.market.estimate).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tools.errors import AdguideError, UnknownIdError
from tools.market.data_model import Experiment, ExperimentTruth, Keyword, KeywordMarket, SearchTerm
from tools.market.db import parse_location, redact
from tools.market.experiments import ExperimentUnitTruth
from tools.market.store import AdvertiserStore, connect, default_world_path, parse_date
from tools.market.world import World, WorldEvent, markets_today

TRUTH_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE advertisers (idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);
CREATE TABLE keywords (idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, adv INTEGER NOT NULL);
CREATE TABLE experiment_truth (experiment_id TEXT PRIMARY KEY, advertiser_id TEXT NOT NULL,
    true_ate REAL NOT NULL, cate_formula TEXT NOT NULL, units BLOB NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY, advertiser_id TEXT NOT NULL, name TEXT NOT NULL,
    start TEXT NOT NULL, end TEXT NOT NULL, keyword_ids TEXT NOT NULL, demand_mult REAL NOT NULL,
    rival_bid_mult REAL NOT NULL, rival_count_mult REAL NOT NULL);
CREATE INDEX events_adv ON events (advertiser_id, start);
CREATE TABLE keyword_markets (keyword_idx INTEGER PRIMARY KEY, adv INTEGER NOT NULL, market TEXT NOT NULL);
CREATE INDEX keyword_markets_adv ON keyword_markets (adv);
CREATE TABLE search_terms (idx INTEGER PRIMARY KEY, keyword_idx INTEGER NOT NULL, share REAL NOT NULL,
    relevance REAL NOT NULL);
CREATE TABLE keyword_days (adv INTEGER NOT NULL, day INTEGER NOT NULL, keyword_idx INTEGER NOT NULL,
    incremental_orders INTEGER NOT NULL, incremental_cents INTEGER NOT NULL,
    PRIMARY KEY (adv, day, keyword_idx)) WITHOUT ROWID;
"""


def truth_path_for(world_path: Path | str) -> Path:
    """truth.sqlite beside the world file (world.sqlite -> truth.sqlite, x.sqlite -> x.truth.sqlite). A world in
    PostgreSQL keeps its truth in a file too (only the generator and the judge read it), in $ADGUIDE_HOME,
    named by the database's URL: truth-<hash>.sqlite."""
    location = parse_location(world_path)
    if location.url is not None:
        digest = hashlib.sha256(redact(location.url).encode()).hexdigest()[:12]
        return default_world_path().with_name(f"truth-{digest}.sqlite")
    p = Path(world_path)
    return p.with_name("truth.sqlite") if p.name == "world.sqlite" else p.with_name(f"{p.stem}.truth.sqlite")


class IncrementalDay(BaseModel):
    """What a keyword's ads truly caused on one day (the attributed report overstates it)."""

    model_config = ConfigDict(extra="forbid")
    date: dt.date
    keyword_id: str
    incremental_orders: int
    incremental_sales: float


class TruthStore:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self.generation_id = meta["generation_id"]
        self.start_date = dt.date.fromisoformat(meta["start_date"])

    @classmethod
    def open(cls, path: Path | str) -> TruthStore:
        """Open truth.sqlite, or the truth beside a world file when given the world's path."""
        p = Path(path)
        if parse_location(path).url is not None or (
            p.suffix == ".sqlite" and not p.name.endswith("truth.sqlite")
        ):
            p = truth_path_for(p)
        if not p.is_file():
            raise FileNotFoundError(f"no truth file at {p}; it is written by `adguide market generate`")
        conn = connect(p)
        try:
            conn.execute("SELECT 1 FROM meta").fetchone()
        except sqlite3.DatabaseError:
            conn.close()
            raise AdguideError(f"{p} is not an adguide truth file", field="path") from None
        return cls(conn, p)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> TruthStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def experiment_truth(self, experiment_id: str) -> ExperimentTruth:
        row = self._conn.execute(
            "SELECT true_ate, cate_formula FROM experiment_truth WHERE experiment_id = ?", (experiment_id,)
        ).fetchone()
        if row is None:
            raise UnknownIdError(f"experiment {experiment_id} does not exist", field="experiment_id")
        return ExperimentTruth(experiment_id=experiment_id, true_ate=row[0], true_cate_formula=row[1])

    def experiment_unit_truth(self, experiment_id: str) -> ExperimentUnitTruth:
        row = self._conn.execute(
            "SELECT units FROM experiment_truth WHERE experiment_id = ?", (experiment_id,)
        ).fetchone()
        if row is None:
            raise UnknownIdError(f"experiment {experiment_id} does not exist", field="experiment_id")
        return ExperimentUnitTruth.from_bytes(row[0])

    def keyword_markets(self, account: AdvertiserStore) -> dict[str, KeywordMarket]:
        """Each of the account's keywords' true market as it stands today: the ad group's negatives applied
        (blocked queries take their share and relevance with them), and a keyword the advertiser added
        since generation derived from its generated ad-group siblings (tools.market.world.markets_today)."""
        markets = {
            kw_id: KeywordMarket.model_validate_json(text)
            for kw_id, text in self._conn.execute(
                "SELECT k.id, m.market FROM keyword_markets m JOIN keywords k ON k.idx = m.keyword_idx WHERE m.adv = ?",
                (self._advertiser_idx(account),),
            )
        }
        terms: dict[str, list[SearchTerm]] = {}
        for t in self.search_term_truth(account):
            terms.setdefault(t.keyword_id, []).append(t)
        keywords = account.keywords()
        by_group: dict[str, list[Keyword]] = {}
        for kw in keywords:
            by_group.setdefault(kw.ad_group_id, []).append(kw)
        return markets_today(keywords, markets, terms, account.negatives(), by_group)

    def search_term_truth(self, account: AdvertiserStore) -> list[SearchTerm]:
        """The account's generated queries (in row order) with their hidden share of the keyword's volume and
        relevance; queries added since generation have none."""
        hidden = {
            r[0]: (r[1], r[2])
            for r in self._conn.execute(
                "SELECT t.idx, t.share, t.relevance FROM search_terms t JOIN keywords k ON k.idx = t.keyword_idx"
                " WHERE k.adv = ?",
                (self._advertiser_idx(account),),
            )
        }
        return [
            SearchTerm(keyword_id=kw_id, term=text, share=hidden[row][0], relevance=hidden[row][1])
            for row, (kw_id, text) in sorted(account.query_texts().items())
            if row in hidden
        ]

    def _advertiser_idx(self, account: AdvertiserStore) -> int:
        row = self._conn.execute(
            "SELECT idx FROM advertisers WHERE id = ?", (account.advertiser_id,)
        ).fetchone()
        if row is None:
            raise UnknownIdError(
                f"advertiser {account.advertiser_id} is not in this truth", field="advertiser_id"
            )
        return int(row[0])

    def events(self, advertiser_id: str | None = None) -> list[WorldEvent]:
        """Advertiser-specific market events (competitor surges and exits, viral trends)."""
        sql = "SELECT advertiser_id, name, start, end, keyword_ids, demand_mult, rival_bid_mult, rival_count_mult FROM events"
        params: tuple[str, ...] = ()
        if advertiser_id is not None:
            sql += " WHERE advertiser_id = ?"
            params = (advertiser_id,)
        return [
            WorldEvent(
                advertiser_id=r[0],
                name=r[1],
                start=dt.date.fromisoformat(r[2]),
                end=dt.date.fromisoformat(r[3]),
                keyword_ids=json.loads(r[4]),
                demand_mult=r[5],
                rival_bid_mult=r[6],
                rival_count_mult=r[7],
            )
            for r in self._conn.execute(sql + " ORDER BY start, id", params)
        ]

    def incremental_days(
        self, advertiser_id: str, start: dt.date | str, end: dt.date | str
    ) -> list[IncrementalDay]:
        s, e = parse_date(start, "start"), parse_date(end, "end")
        adv = self._conn.execute("SELECT idx FROM advertisers WHERE id = ?", (advertiser_id,)).fetchone()
        if adv is None:
            raise UnknownIdError(f"advertiser {advertiser_id} does not exist", field="advertiser_id")
        rows = self._conn.execute(
            "SELECT d.day, k.id, d.incremental_orders, d.incremental_cents FROM keyword_days d"
            " JOIN keywords k ON k.idx = d.keyword_idx WHERE d.adv = ? AND d.day BETWEEN ? AND ?"
            " ORDER BY d.day, d.keyword_idx",
            (adv[0], (s - self.start_date).days, (e - self.start_date).days),
        )
        return [
            IncrementalDay(
                date=self.start_date + dt.timedelta(days=r[0]),
                keyword_id=r[1],
                incremental_orders=r[2],
                incremental_sales=r[3] / 100,
            )
            for r in rows
        ]


# --- writing (generation only) ---------------------------------------------------------------------------


def create_truth_db(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.executescript(TRUTH_SCHEMA)
    return conn


def write_truth_entities(conn: sqlite3.Connection, world: World) -> None:
    conn.executemany(
        "INSERT INTO advertisers (idx, id) VALUES (?, ?)",
        [(i + 1, a.id) for i, a in enumerate(world.advertisers)],
    )
    kw_adv = world.keyword_advertiser + 1
    conn.executemany(
        "INSERT INTO keywords (idx, id, adv) VALUES (?, ?, ?)",
        [(i + 1, k.id, int(kw_adv[i])) for i, k in enumerate(world.keywords)],
    )
    kw_pos = {k.id: i + 1 for i, k in enumerate(world.keywords)}
    conn.executemany(
        "INSERT INTO keyword_markets (keyword_idx, adv, market) VALUES (?, ?, ?)",
        [
            (kw_pos[m.keyword_id], int(kw_adv[kw_pos[m.keyword_id] - 1]), m.model_dump_json())
            for m in world.markets
        ],
    )
    conn.executemany(  # rows line up with the world's search_terms rows
        "INSERT INTO search_terms (idx, keyword_idx, share, relevance) VALUES (?, ?, ?, ?)",
        [(i + 1, kw_pos[t.keyword_id], t.share, t.relevance) for i, t in enumerate(world.search_terms)],
    )
    conn.executemany(
        "INSERT INTO events (advertiser_id, name, start, end, keyword_ids, demand_mult, rival_bid_mult,"
        " rival_count_mult) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.advertiser_id,
                e.name,
                e.start.isoformat(),
                e.end.isoformat(),
                json.dumps(e.keyword_ids),
                e.demand_mult,
                e.rival_bid_mult,
                e.rival_count_mult,
            )
            for e in world.events
        ],
    )


def write_experiment_truth(
    conn: sqlite3.Connection, experiment: Experiment, truth: ExperimentUnitTruth
) -> None:
    conn.execute(
        "INSERT INTO experiment_truth (experiment_id, advertiser_id, true_ate, cate_formula, units)"
        " VALUES (?, ?, ?, ?, ?)",
        (experiment.id, experiment.advertiser_id, truth.ate, truth.cate_formula, truth.to_bytes()),
    )
