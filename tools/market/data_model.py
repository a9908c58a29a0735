"""The marketplace's schema: one place defines every entity, market parameter and report row.

Entities (advertiser → campaign → ad group → keyword, products) are what an advertiser sees and edits.
`KeywordMarket` holds the hidden demand/competition parameters the simulator runs on; the agent never
reads them directly, only their consequences (reports, simulations). Ground truth of experiments lives
in `ExperimentTruth`, stored apart from everything an advertiser-scoped reader can reach.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.auction.params import KeywordMarket as KeywordMarket
from tools.auction.params import MarketEvent as MarketEvent
from tools.auction.params import Mechanism as Mechanism
from tools.market.categories import category_pool
from tools.market.enums import InterventionKind, MatchType, Status, Targeting


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --- entities ---------------------------------------------------------------------------------------


class Advertiser(_Model):
    id: str  # "adv_0001"
    name: str
    category: str  # e.g. "kitchen", "outdoor"
    target_acos: float | None = Field(
        default=None, gt=0, lt=1, description="the advertiser's stated ACoS goal"
    )


class Product(_Model):
    id: str  # "prd_000001"
    advertiser_id: str
    name: str
    category: str
    price: float = Field(gt=0)
    margin: float = Field(gt=0, lt=1, description="gross margin as a fraction of price")


class Campaign(_Model):
    id: str  # "cmp_00001"
    advertiser_id: str
    name: str
    daily_budget: float = Field(gt=0)
    status: Status = Status.ENABLED
    targeting: Targeting = Targeting.MANUAL


class AdGroup(_Model):
    id: str  # "ag_000001"
    campaign_id: str
    name: str
    product_ids: list[str]
    default_bid: float = Field(gt=0)


class Keyword(_Model):
    id: str  # "kw_0000001"
    ad_group_id: str
    text: str
    match_type: MatchType
    bid: float = Field(gt=0)
    status: Status = Status.ENABLED


class NegativeKeyword(_Model):
    id: str
    ad_group_id: str
    text: str
    match_type: MatchType = MatchType.EXACT


# --- hidden market parameters (simulator input, never shown to the agent as such) ----------------------
# KeywordMarket and MarketEvent, the auction simulator's input, are tools/auction/params.py's (imported above).


class SearchTerm(_Model):
    """A customer query that a keyword matched; its own relevance drives search-term reports."""

    keyword_id: str
    term: str
    share: float = Field(gt=0, le=1, description="share of the keyword's volume")
    relevance: float = Field(ge=0, le=2, description="CVR multiplier; near 0 marks an irrelevant term")


# --- reports (what the advertiser can read) ---------------------------------------------------------


class PerformanceRow(_Model):
    """One day of one keyword (or campaign, summed). Attributed sales are what ad reports show."""

    date: dt.date
    impressions: int = 0
    clicks: int = 0
    spend: float = 0.0
    orders: int = 0
    sales: float = 0.0  # ad-attributed
    organic_sales: float = 0.0


class KeywordDay(PerformanceRow):
    keyword_id: str
    avg_position: float | None = None
    impression_share: float | None = None
    bid: float


class CampaignDay(PerformanceRow):
    campaign_id: str
    budget: float
    budget_exhausted_at: float | None = Field(
        default=None, description="fraction of day when spend hit budget"
    )


class SearchTermDay(PerformanceRow):
    keyword_id: str
    term: str


class Intervention(_Model):
    """A logged past change the advertiser made (bid or budget), with its date."""

    id: str
    advertiser_id: str
    date: dt.date
    kind: InterventionKind
    entity_id: str
    before: float | str | None = None
    after: float | str | None = None


class AuditRecord(_Model):
    """One write made through the store (by the agent, a user or a job), with the values before and after."""

    id: int
    advertiser_id: str
    actor: str
    action: str  # "set_bid" | "set_budget" | "set_status" | "add_keywords" | "add_negatives"
    entity: str  # the id written (a keyword, campaign or ad group)
    before: float | str | None = None
    after: float | str | None = None
    at: dt.datetime


# --- experiments --------------------------------------------------------------------------------------


class Experiment(_Model):
    """A randomized holdout the advertiser ran (ad exposure or promotion). Units are users."""

    id: str
    advertiser_id: str
    kind: str  # "ad_exposure" | "promotion"
    start: dt.date
    end: dt.date
    n_units: int
    covariates: list[str]
    outcome: str  # "purchase" (binary) | "revenue" (continuous)
    treatment_share: float = Field(gt=0, lt=1)


class ExperimentTruth(_Model):
    """Never reachable through advertiser-scoped access: kept in the truth store only."""

    experiment_id: str
    true_ate: float
    true_cate_formula: str


class WorldConfig(_Model):
    n_advertisers: int = Field(default=50, ge=1, le=100_000)
    days: int = Field(default=120, ge=1, le=3650)
    start_date: dt.date = dt.date(2026, 6, 1)
    seed: int = 7
    categories: list[str] | None = Field(
        default=None,
        description="the categories advertisers are drawn from (tools.market.world.CATEGORY_BY_NAME), kept in "
        "that order; None = the marketplace's default categories (every one but the held-out ones)",
    )

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        return [c.name for c in category_pool(names)]
