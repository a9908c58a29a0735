"""The store's schema as of schema version 2 (world.sqlite / accounts.sqlite before Alembic).

A store written before the migrations existed already has these tables (all but `external_ids`, which the
importer made on first use): upgrading it creates only the missing ones, then records this revision.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

FLOAT: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")


def _key(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), autoincrement=False, nullable=False)


def _text(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _int(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=False)


def _funnel() -> list[sa.Column]:
    return [
        _int(c) for c in ("impressions", "clicks", "spend_cents", "orders", "sales_cents", "organic_cents")
    ]


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())

    def table(name: str, *items: Any, indexes: dict[str, list[str]] | None = None, **kw: Any) -> None:
        if name in existing:
            return
        op.create_table(name, *items, **kw)
        for index, columns in (indexes or {}).items():
            op.create_index(index, name, columns, unique=False)

    table("meta", _text("key"), _text("value"), sa.PrimaryKeyConstraint("key"))
    table(
        "advertisers",
        _key("idx"),
        _text("id"),
        _text("name"),
        _text("category"),
        sa.Column("target_acos", FLOAT, nullable=True),
        sa.PrimaryKeyConstraint("idx"),
        sa.UniqueConstraint("id"),
    )
    table(
        "products",
        _text("id"),
        _int("adv"),
        _text("name"),
        _text("category"),
        sa.Column("price", FLOAT, nullable=False),
        sa.Column("margin", FLOAT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes={"products_adv": ["adv"]},
    )
    table(
        "campaigns",
        _key("idx"),
        _text("id"),
        _int("adv"),
        _text("name"),
        sa.Column("daily_budget", FLOAT, nullable=False),
        _text("status"),
        _text("targeting"),
        sa.PrimaryKeyConstraint("idx"),
        sa.UniqueConstraint("id"),
        indexes={"campaigns_adv": ["adv"]},
    )
    table(
        "ad_groups",
        _text("id"),
        _int("adv"),
        _text("campaign_id"),
        _text("name"),
        _text("product_ids"),
        sa.Column("default_bid", FLOAT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes={"ad_groups_adv": ["adv", "campaign_id"]},
    )
    table(
        "keywords",
        _key("idx"),
        _text("id"),
        _int("adv"),
        _text("campaign_id"),
        _text("ad_group_id"),
        _text("text"),
        _text("match_type"),
        sa.Column("bid", FLOAT, nullable=False),
        _text("status"),
        sa.PrimaryKeyConstraint("idx"),
        sa.UniqueConstraint("id"),
        indexes={"keywords_adv": ["adv", "ad_group_id"]},
    )
    table(
        "negatives",
        _text("id"),
        _int("adv"),
        _text("ad_group_id"),
        _text("text"),
        _text("match_type"),
        sa.PrimaryKeyConstraint("id"),
        indexes={"negatives_adv": ["adv", "ad_group_id"]},
    )
    table(
        "auction_log",
        _key("keyword_idx"),
        _int("adv"),
        _text("log"),
        sa.PrimaryKeyConstraint("keyword_idx"),
        indexes={"auction_log_adv": ["adv"]},
    )
    table(
        "search_terms",
        _key("idx"),
        _int("adv"),
        _int("keyword_idx"),
        _text("term"),
        sa.PrimaryKeyConstraint("idx"),
        indexes={"search_terms_adv": ["adv", "keyword_idx"]},
    )
    table(
        "keyword_days",
        _key("adv"),
        _key("day"),
        _key("keyword_idx"),
        *_funnel(),
        sa.Column("avg_position", FLOAT, nullable=True),
        sa.Column("impression_share", FLOAT, nullable=True),
        _int("bid_cents"),
        sa.PrimaryKeyConstraint("adv", "day", "keyword_idx"),
        sqlite_with_rowid=False,
    )
    table(
        "campaign_days",
        _key("adv"),
        _key("day"),
        _key("campaign_idx"),
        *_funnel(),
        _int("budget_cents"),
        sa.Column("budget_exhausted_at", FLOAT, nullable=True),
        sa.PrimaryKeyConstraint("adv", "day", "campaign_idx"),
        sqlite_with_rowid=False,
    )
    table(
        "search_term_days",
        _key("adv"),
        _key("day"),
        _key("term_idx"),
        *_funnel(),
        sa.PrimaryKeyConstraint("adv", "day", "term_idx"),
        sqlite_with_rowid=False,
    )
    table(
        "interventions",
        _text("id"),
        _int("adv"),
        _text("date"),
        _text("kind"),
        _text("entity_id"),
        _text("before", nullable=True),
        _text("after", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        indexes={"interventions_adv": ["adv", "date"]},
    )
    table(
        "experiments",
        _text("id"),
        _int("adv"),
        _text("experiment"),
        sa.PrimaryKeyConstraint("id"),
        indexes={"experiments_adv": ["adv"]},
    )
    table(
        "experiment_units",
        _text("experiment_id"),
        _int("adv"),
        sa.Column("units", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id"),
    )
    table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _int("adv"),
        _text("actor"),
        _text("action"),
        _text("entity"),
        _text("before", nullable=True),
        _text("after", nullable=True),
        _text("at"),
        sa.PrimaryKeyConstraint("id"),
        indexes={"audit_adv": ["adv", "id"]},
    )
    table(
        "external_ids",
        sa.Column("adv", sa.Integer(), nullable=True),
        _text("entity_id"),
        _text("external_id"),
        sa.PrimaryKeyConstraint("entity_id"),
    )


def downgrade() -> None:
    for name in (
        "external_ids",
        "audit",
        "experiment_units",
        "experiments",
        "interventions",
        "search_term_days",
        "campaign_days",
        "keyword_days",
        "search_terms",
        "auction_log",
        "negatives",
        "keywords",
        "ad_groups",
        "campaigns",
        "products",
        "advertisers",
        "meta",
    ):
        op.drop_table(name)
