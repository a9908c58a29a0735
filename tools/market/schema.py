"""The advertiser store's schema as SQLAlchemy Core tables: the one definition both backends and Alembic use.

SQLite (the embedded default) gets exactly the DDL the store has always had: INTEGER keys that alias the
rowid, REAL floats, clustered `WITHOUT ROWID` daily tables. PostgreSQL gets the same tables with DOUBLE
PRECISION floats (its REAL is 4 bytes and would round money) and BYTEA blobs. Migrations live in
tools/market/migrations (Alembic); `tests/test_store_backends.py` checks that they build exactly this.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# REAL on SQLite (what existing files declare), double precision on PostgreSQL.
FLOAT: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")


def _key(name: str) -> sa.Column[int]:
    """An integer key the store assigns itself (never a sequence)."""
    return sa.Column(name, sa.Integer, primary_key=True, autoincrement=False)


def _text(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=nullable)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer, nullable=False)


def _funnel() -> list[sa.Column[int]]:
    return [
        _int(c) for c in ("impressions", "clicks", "spend_cents", "orders", "sales_cents", "organic_cents")
    ]


meta = sa.Table("meta", metadata, sa.Column("key", sa.Text, primary_key=True), _text("value"))
advertisers = sa.Table(
    "advertisers",
    metadata,
    _key("idx"),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    _text("name"),
    _text("category"),
    sa.Column("target_acos", FLOAT),
)
products = sa.Table(
    "products",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    _int("adv"),
    _text("name"),
    _text("category"),
    sa.Column("price", FLOAT, nullable=False),
    sa.Column("margin", FLOAT, nullable=False),
    sa.Index("products_adv", "adv"),
)
campaigns = sa.Table(
    "campaigns",
    metadata,
    _key("idx"),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    _int("adv"),
    _text("name"),
    sa.Column("daily_budget", FLOAT, nullable=False),
    _text("status"),
    _text("targeting"),
    sa.Index("campaigns_adv", "adv"),
)
ad_groups = sa.Table(
    "ad_groups",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    _int("adv"),
    _text("campaign_id"),
    _text("name"),
    _text("product_ids"),
    sa.Column("default_bid", FLOAT, nullable=False),
    sa.Index("ad_groups_adv", "adv", "campaign_id"),
)
keywords = sa.Table(
    "keywords",
    metadata,
    _key("idx"),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    _int("adv"),
    _text("campaign_id"),
    _text("ad_group_id"),
    _text("text"),
    _text("match_type"),
    sa.Column("bid", FLOAT, nullable=False),
    _text("status"),
    sa.Index("keywords_adv", "adv", "ad_group_id"),
)
negatives = sa.Table(
    "negatives",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    _int("adv"),
    _text("ad_group_id"),
    _text("text"),
    _text("match_type"),
    sa.Index("negatives_adv", "adv", "ad_group_id"),
)
auction_log = sa.Table(
    "auction_log",
    metadata,
    _key("keyword_idx"),
    _int("adv"),
    _text("log"),
    sa.Index("auction_log_adv", "adv"),
)
search_terms = sa.Table(
    "search_terms",
    metadata,
    _key("idx"),
    _int("adv"),
    _int("keyword_idx"),
    _text("term"),
    sa.Index("search_terms_adv", "adv", "keyword_idx"),
)
# The daily tables: one advertiser's date range is one contiguous primary-key range.
keyword_days = sa.Table(
    "keyword_days",
    metadata,
    sa.Column("adv", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("keyword_idx", sa.Integer, primary_key=True, autoincrement=False),
    *_funnel(),
    sa.Column("avg_position", FLOAT),
    sa.Column("impression_share", FLOAT),
    _int("bid_cents"),
    sqlite_with_rowid=False,
)
campaign_days = sa.Table(
    "campaign_days",
    metadata,
    sa.Column("adv", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("campaign_idx", sa.Integer, primary_key=True, autoincrement=False),
    *_funnel(),
    _int("budget_cents"),
    sa.Column("budget_exhausted_at", FLOAT),
    sqlite_with_rowid=False,
)
search_term_days = sa.Table(
    "search_term_days",
    metadata,
    sa.Column("adv", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("term_idx", sa.Integer, primary_key=True, autoincrement=False),
    *_funnel(),
    sqlite_with_rowid=False,
)
interventions = sa.Table(
    "interventions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    _int("adv"),
    _text("date"),
    _text("kind"),
    _text("entity_id"),
    _text("before", nullable=True),
    _text("after", nullable=True),
    sa.Index("interventions_adv", "adv", "date"),
)
experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    _int("adv"),
    _text("experiment"),
    sa.Index("experiments_adv", "adv"),
)
experiment_units = sa.Table(
    "experiment_units",
    metadata,
    sa.Column("experiment_id", sa.Text, primary_key=True),
    _int("adv"),
    sa.Column("units", sa.LargeBinary, nullable=False),
)
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # the only generated key
    _int("adv"),
    _text("actor"),
    _text("action"),
    _text("entity"),
    _text("before", nullable=True),
    _text("after", nullable=True),
    _text("at"),
    sa.Index("audit_adv", "adv", "id"),
)
# The console's ids of imported entities (store id -> Amazon id), written by tools.market.importer.
external_ids = sa.Table(
    "external_ids",
    metadata,
    sa.Column("adv", sa.Integer),
    sa.Column("entity_id", sa.Text, primary_key=True),
    _text("external_id"),
)

DAILY_TABLES = ("keyword_days", "campaign_days", "search_term_days")
