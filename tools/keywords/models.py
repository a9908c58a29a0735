"""Outputs of the keyword engine. They are MCP tool results, so they stay compact: money rounded to cents,
ratios to 4 decimals, null where a figure does not apply, and one plain-words `reason` per suggestion.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tools.market.enums import MatchType


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- options (tool inputs besides the period; the engine validates its keyword arguments with these) -------


class NegativesOptions(_In):
    ad_group_id: str | None = Field(None, description="only this ad group; default: all")
    cvr_ratio: float = Field(
        0.5, gt=0, lt=1, description="'not converting' = below this x the ad group's CVR"
    )
    confidence: float = Field(0.9, ge=0.5, lt=1, description="posterior probability required")
    off_topic_similarity: float = Field(0.2, ge=-1, le=1, description="below: unrelated to what you sell")
    limit: int = Field(20, ge=1, le=500)


class RecommendOptions(_In):
    ad_group_id: str | None = Field(None, description="only this ad group; default: all")
    target_acos: float | None = Field(None, gt=0, le=10, description="default: the account's ACoS")
    min_orders: int = Field(2, ge=1, le=1000, description="orders a search term needs to be harvested")
    min_similarity: float = Field(0.5, ge=-1, le=1, description="for related (unproven) suggestions")
    candidates: list[str] = Field(default_factory=list, max_length=200, description="extra texts to consider")
    limit: int = Field(20, ge=1, le=500)


class SuggestionSource(StrEnum):
    HARVEST = "harvest"  # a converting search term promoted to its own exact keyword
    RELATED = "related"  # close in meaning to the products and best keywords, not proven yet


class NegativeKind(StrEnum):
    NOT_CONVERTING = "not_converting"  # converts well below its ad group, with enough clicks to be sure
    OFF_TOPIC = "off_topic"  # far in meaning from every product and converting keyword, no orders
    OFF_TOPIC_NOT_CONVERTING = "off_topic_not_converting"


class TermFigures(_Out):
    """What a search term did over the period (all zero for a candidate never seen as a search term)."""

    clicks: int
    orders: int
    spend: float
    sales: float
    acos: float | None = Field(description="spend / sales")
    cvr: float | None = Field(description="orders / clicks")
    similarity: float = Field(description="cosine similarity to the closest product or converting keyword")
    similar_to: str = Field(description="that closest product name or keyword text")


class KeywordSuggestion(TermFigures):
    text: str
    ad_group_id: str
    match_type: MatchType
    bid: float = Field(description="suggested starting bid")
    source: SuggestionSource
    reason: str


class KeywordRecommendations(_Out):
    start: dt.date
    end: dt.date
    target_acos: float | None = Field(description="ACoS the suggested bids aim at; null without any sales")
    suggestions: list[KeywordSuggestion]
    total: int = Field(description="suggestions before the limit")


class NegativeSuggestion(TermFigures):
    text: str
    ad_group_id: str
    match_type: MatchType
    kind: NegativeKind
    ad_group_cvr: float = Field(description="the ad group's conversion rate (shrunk toward the account's)")
    p_below: float = Field(
        description="posterior probability that the term converts below cvr_ratio x ad group"
    )
    reason: str


class NegativeSuggestions(_Out):
    start: dt.date
    end: dt.date
    suggestions: list[NegativeSuggestion]
    total: int = Field(description="suggestions before the limit")
    spend_saved: float = Field(description="spend of the suggestions shown, over the period")
    sales_lost: float = Field(description="attributed sales of the suggestions shown, over the period")
