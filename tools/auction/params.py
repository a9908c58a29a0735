"""What the auction simulator runs on: each keyword's hidden demand and competition (`KeywordMarket`), the dated
events that move them (`MarketEvent`) and the auction's pricing rule (`Mechanism`).

Defined here, below both the auction engines and the marketplace: the market's data model
(tools/market/data_model.py, which re-exports them) builds worlds and histories with the auction, so the
auction reading its input types from the market would be a circle between the two packages.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Mechanism(StrEnum):
    SECOND_PRICE = "second_price"
    FIRST_PRICE = "first_price"
    GSP = "gsp"


class MarketEvent(_Model):
    """A dated multiplier on demand (a sales event) or on competition (a competitor surge)."""

    name: str = Field(
        default="", description="e.g. 'prime_day', 'competitor_surge' (for explanations and evals)"
    )
    start: int = Field(ge=0, description="day index from the world's start date")
    end: int = Field(ge=0, description="inclusive")
    demand_mult: float = Field(default=1.0, gt=0)
    rival_bid_mult: float = Field(default=1.0, gt=0)
    rival_count_mult: float = Field(default=1.0, gt=0)


class KeywordMarket(_Model):
    """Demand and competition behind one keyword: everything the auction simulator needs for it."""

    keyword_id: str
    # Daily volume on day index d (0 = the world's start date), phases in radians:
    #   base_volume * (1 + weekly_amp*sin(2*pi*d/7 + weekly_phase)) * (1 + yearly_amp*sin(2*pi*d/365.25 + yearly_phase))
    #   * product of demand_mult over the events covering d
    base_volume: float = Field(ge=0, description="mean daily matched searches before seasonality")
    weekly_amp: float = Field(default=0.0, ge=0, lt=1)
    weekly_phase: float = Field(default=0.0, description="radians; see the volume formula above")
    yearly_amp: float = Field(default=0.0, ge=0, lt=1)
    yearly_phase: float = Field(default=0.0, description="radians; see the volume formula above")
    n_rivals: float = Field(ge=0, description="mean number of rival bidders per auction (Poisson)")
    rival_bid_mu: float = Field(description="log-mean of rival bids (lognormal)")
    rival_bid_sigma: float = Field(gt=0)
    rival_quality_a: float = Field(gt=0, description="Beta(a, b) of rival quality scores")
    rival_quality_b: float = Field(gt=0)
    quality: float = Field(gt=0, le=1, description="our ad's quality score")
    ctr_top: float = Field(gt=0, lt=1, description="click-through rate in the top slot")
    position_decay: float = Field(gt=0, le=1, description="CTR multiplier per slot further down")
    cvr: float = Field(gt=0, lt=1, description="conversion rate of a click")
    aov: float = Field(gt=0, description="average order value")
    organic_rate: float = Field(
        ge=0, lt=1, description="probability a searcher buys our product organically without our ad"
    )
    cannibalization: float = Field(
        ge=0, le=1, description="share of ad conversions that would have happened organically anyway"
    )
    n_slots: int = Field(default=4, ge=1)
    reserve: float = Field(default=0.05, ge=0)
    events: list[MarketEvent] = Field(default_factory=list)
