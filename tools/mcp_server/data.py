"""Data tools: account overview, performance by level, search-term report (reads only, advertiser-scoped).

The search-term report aggregates `SearchTermDay` rows; the hidden truth (search terms' relevance, the true
`KeywordMarket`s) is not in the store at all: it lives in truth.sqlite, which no tool opens.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tools.errors import InvalidInputError
from tools.market.data_model import Status
from tools.mcp_server.context import ToolContext, check_member
from tools.mcp_server.results import Totals, page, period_of, sort_rows, sum_rows
from tools.mcp_server.schemas import (
    AdvertiserInfo,
    CampaignBrief,
    ExperimentBrief,
    FindIn,
    FindMatch,
    FindOut,
    Level,
    OverviewIn,
    OverviewOut,
    PerformanceIn,
    PerformanceOut,
    SearchTermsIn,
    SearchTermsOut,
)

CAPPED_BEFORE = 0.999  # budget_exhausted_at below this: the campaign left auctions before the day ended


def account_overview(ctx: ToolContext, args: OverviewIn) -> OverviewOut:
    period = period_of(args, ctx.store.start_date, ctx.store.end_date)
    adv = ctx.adv
    campaigns = adv.campaigns()
    days = adv.campaign_days(period.start, period.end)
    by_campaign: dict[str, Totals] = defaultdict(Totals)
    capped: dict[str, int] = defaultdict(int)
    for d in days:
        by_campaign[d.campaign_id].add(d)
        if d.budget_exhausted_at is not None and d.budget_exhausted_at < CAPPED_BEFORE:
            capped[d.campaign_id] += 1
    totals = sum_rows(days)
    keywords = adv.keywords()
    briefs = []
    for c in campaigns:
        t = by_campaign[c.id]
        briefs.append(
            CampaignBrief(
                id=c.id,
                name=c.name,
                status=c.status,
                daily_budget=c.daily_budget,
                spend=t.spend,
                sales=t.sales,
                acos=t.metrics()["acos"],
                budget_capped_days=capped[c.id],
            )
        )
    a = adv.advertiser
    return OverviewOut(
        advertiser=AdvertiserInfo(id=a.id, name=a.name, category=a.category, target_acos=a.target_acos),
        history={"start": ctx.store.start_date, "end": ctx.store.end_date},
        period=period,
        totals=totals.model(),
        organic_sales=totals.organic_sales,
        counts={
            "campaigns": len(campaigns),
            "ad_groups": len(adv.ad_groups()),
            "keywords": len(keywords),
            "enabled_keywords": sum(k.status == Status.ENABLED for k in keywords),
        },
        campaigns=briefs,
        experiments=[
            ExperimentBrief(id=e.id, kind=e.kind, start=e.start, end=e.end, outcome=e.outcome)
            for e in adv.experiments()
        ],
    )


def _check_filters(ctx: ToolContext, campaign_id: str | None, ad_group_id: str | None) -> None:
    """Ids in filters must be the advertiser's own, and an ad group must sit in the named campaign."""
    if campaign_id is not None:
        ids = {c.id for c in ctx.adv.campaigns()}
        check_member("campaign", campaign_id, ids, ctx.advertiser_id, "campaign_id")
    if ad_group_id is not None:
        groups = {g.id: g for g in ctx.adv.ad_groups()}
        check_member("ad group", ad_group_id, set(groups), ctx.advertiser_id, "ad_group_id")
        if campaign_id is not None and groups[ad_group_id].campaign_id != campaign_id:
            raise InvalidInputError(
                f"ad group {ad_group_id} is not in campaign {campaign_id}",
                field="ad_group_id",
                allowed=f"an ad group of {campaign_id}, or leave campaign_id out",
            )


def performance(ctx: ToolContext, args: PerformanceIn) -> PerformanceOut:
    period = period_of(args, ctx.store.start_date, ctx.store.end_date)
    _check_filters(ctx, args.campaign_id, args.ad_group_id)
    adv = ctx.adv
    groups: dict[tuple[str, Any], Totals] = defaultdict(Totals)
    info: dict[str, dict[str, Any]] = {}

    if args.level == Level.CAMPAIGN:
        if args.keyword_id is not None:
            raise InvalidInputError(
                "keyword_id filters level keyword",
                field="keyword_id",
                allowed="level keyword, or leave keyword_id out",
            )
        if args.ad_group_id is not None:
            raise InvalidInputError(
                "ad_group_id filters ad_group or keyword levels, not campaigns",
                field="ad_group_id",
                allowed="leave it out at level campaign",
            )
        camps = [c for c in adv.campaigns() if args.campaign_id in (None, c.id)]
        for c in camps:
            info[c.id] = {"name": c.name, "status": c.status, "daily_budget": c.daily_budget}
        rows_in: list[Any] = adv.campaign_days(period.start, period.end, campaign_ids=[c.id for c in camps])
        for d in rows_in:
            groups[(d.campaign_id, d.date if args.daily else None)].add(d)
    else:
        keywords = adv.keywords(ad_group_id=args.ad_group_id, campaign_id=args.campaign_id)
        if args.keyword_id is not None:
            if args.level != Level.KEYWORD:
                raise InvalidInputError(
                    "keyword_id filters level keyword",
                    field="keyword_id",
                    allowed="level keyword, or leave keyword_id out",
                )
            check_member(
                "keyword", args.keyword_id, {k.id for k in keywords}, ctx.advertiser_id, "keyword_id"
            )
            keywords = [k for k in keywords if k.id == args.keyword_id]
        ad_groups = {g.id: g for g in adv.ad_groups(campaign_id=args.campaign_id)}
        kw_by_id = {k.id: k for k in keywords}
        if args.level == Level.AD_GROUP:
            for g in ad_groups.values():
                if args.ad_group_id in (None, g.id):
                    info[g.id] = {"name": g.name, "campaign_id": g.campaign_id}
        else:
            for k in keywords:
                info[k.id] = {
                    "name": k.text,
                    "campaign_id": ad_groups[k.ad_group_id].campaign_id
                    if k.ad_group_id in ad_groups
                    else None,
                    "ad_group_id": k.ad_group_id,
                    "status": k.status,
                    "match_type": k.match_type,
                    "bid": k.bid,
                }
        rows_in = adv.keyword_days(period.start, period.end, keyword_ids=list(kw_by_id))
        for d in rows_in:
            key_id = kw_by_id[d.keyword_id].ad_group_id if args.level == Level.AD_GROUP else d.keyword_id
            groups[(key_id, d.date if args.daily else None)].add(d)

    # entities with no rows in the period still appear (with zeros), unless rows are daily
    if not args.daily:
        for entity_id in info:
            groups.setdefault((entity_id, None), Totals())
    rows = [
        {"id": entity_id, **info.get(entity_id, {"name": entity_id}), "date": day, **t.metrics()}
        for (entity_id, day), t in groups.items()
        if entity_id in info
    ]
    rows = sort_rows(rows, args.sort)
    chunk, nxt = page(rows, args.limit, args.cursor)
    return PerformanceOut.model_validate(
        {
            "level": args.level,
            "period": period,
            "totals": sum_rows(rows_in).metrics(),
            "rows": chunk,
            "total_rows": len(rows),
            "next_cursor": nxt,
        }
    )


def search_terms(ctx: ToolContext, args: SearchTermsIn) -> SearchTermsOut:
    period = period_of(args, ctx.store.start_date, ctx.store.end_date)
    _check_filters(ctx, args.campaign_id, args.ad_group_id)
    keywords = {k.id: k for k in ctx.adv.keywords(ad_group_id=args.ad_group_id, campaign_id=args.campaign_id)}
    if args.keyword_id is not None:
        check_member("keyword", args.keyword_id, set(keywords), ctx.advertiser_id, "keyword_id")
        keywords = {args.keyword_id: keywords[args.keyword_id]}
    days = ctx.adv.search_term_days(period.start, period.end, keyword_ids=list(keywords))
    groups: dict[tuple[str, str], Totals] = defaultdict(Totals)
    for d in days:
        groups[(d.keyword_id, d.term)].add(d)
    rows = []
    for (kw_id, term), t in groups.items():
        if t.clicks < args.min_clicks:
            continue
        kw = keywords[kw_id]
        rows.append(
            {
                "term": term,
                "keyword_id": kw_id,
                "keyword": kw.text,
                "match_type": kw.match_type,
                **t.metrics(),
            }
        )
    rows = sort_rows(rows, args.sort)
    chunk, nxt = page(rows, args.limit, args.cursor)
    return SearchTermsOut.model_validate(
        {
            "period": period,
            "totals": sum_rows(days).metrics(),
            "rows": chunk,
            "total_rows": len(rows),
            "next_cursor": nxt,
        }
    )


def find(ctx: ToolContext, args: FindIn) -> FindOut:
    """The advertiser's things whose words best match the query (the same index the id arguments resolve on)."""
    if ctx.resolver is None:
        raise InvalidInputError("find needs the server's name index", field="query")
    kinds = [args.kind] if args.kind is not None else None
    return FindOut(
        query=args.query,
        matches=[
            FindMatch(**c.model_dump(), score=round(score, 1))
            for c, score in ctx.resolver.find(args.query, kinds, args.limit)
        ],
    )
