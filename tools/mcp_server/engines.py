"""Engine-backed tools: keyword recommendations, auction simulator, optimizers, uplift.

Each handler reads what the engine needs through the advertiser-scoped store and adapts one engine
function to its schema in schemas.py. Engines raise tools.errors types for bad input; the server turns
those into structured tool errors. Engines are imported inside handlers so the server starts fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from tools.mcp_server.context import ToolContext, check_member
from tools.mcp_server.results import resolve_period
from tools.mcp_server.schemas import Impact, KeywordIdeasIn, NegativeIdeasIn, ProposeIn


def _check_ad_group(ctx: ToolContext, ad_group_id: str | None) -> None:
    if ad_group_id is not None:
        ids = {g.id for g in ctx.adv.ad_groups()}
        check_member("ad group", ad_group_id, ids, ctx.advertiser_id, "ad_group_id")


def keyword_ideas(ctx: ToolContext, args: KeywordIdeasIn) -> BaseModel:
    from tools.keywords.engine import recommend_keywords

    period = resolve_period(args.start, args.end, ctx.store.start_date, ctx.store.end_date)
    _check_ad_group(ctx, args.ad_group_id)
    adv = ctx.adv
    return recommend_keywords(
        adv.search_term_days(period.start, period.end),
        adv.keywords(),
        adv.products(),
        adv.negatives(),
        ad_group_id=args.ad_group_id,
        target_acos=args.target_acos or adv.advertiser.target_acos,
        limit=args.limit,
    )


def negative_ideas(ctx: ToolContext, args: NegativeIdeasIn) -> BaseModel:
    from tools.keywords.engine import suggest_negatives

    period = resolve_period(args.start, args.end, ctx.store.start_date, ctx.store.end_date)
    _check_ad_group(ctx, args.ad_group_id)
    adv = ctx.adv
    return suggest_negatives(
        adv.search_term_days(period.start, period.end),
        adv.keywords(),
        adv.products(),
        adv.negatives(),
        ad_group_id=args.ad_group_id,
        limit=args.limit,
    )


HANDLERS: dict[str, Callable[[ToolContext, Any], BaseModel]] = {
    "keyword_ideas": keyword_ideas,
    "negative_ideas": negative_ideas,
}


def change_impact(ctx: ToolContext, args: ProposeIn) -> Impact | None:
    """Simulated effect of a proposed change (status quo vs change); None where no simulation applies."""
    return None
