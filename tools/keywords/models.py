"""Outputs of the keyword engine. They are MCP tool results, so they stay compact: money rounded to cents,
ratios to 4 decimals, null where a figure does not apply, and one plain-words `reason` per suggestion.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tools.market.data_model import MatchType


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
