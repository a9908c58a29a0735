"""Engine-backed tools: keyword recommendations, auction simulator, optimizers, uplift.

Each handler reads what the engine needs through the advertiser-scoped store and adapts one engine
function to its schema in schemas.py. Engines raise tools.errors types for bad input; the server turns
those into structured tool errors. Engines are imported inside handlers so the server starts fast.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from tools.auction.landscape import bid_landscape, optimal_bid, what_if
from tools.errors import InvalidInputError
from tools.market.data_model import Campaign, Keyword, KeywordMarket, Status
from tools.market.estimate import MarketModel, View, fit_market_model
from tools.mcp_server import actions
from tools.mcp_server.context import ToolContext, check_member
from tools.mcp_server.results import new_value, period_of, resolve_period
from tools.mcp_server.schemas import (
    AbIn,
    Action,
    AllocateIn,
    BidGoal,
    Change,
    ExperimentIn,
    Impact,
    KeywordIdeasIn,
    KpiChangeIn,
    LandscapeIn,
    LandscapeOut,
    LandscapeRow,
    NegativeIdeasIn,
    ProposeIn,
    ProposeOut,
    Range,
    RecommendBidIn,
    RecommendBidOut,
    SimOutcome,
    UpliftOut,
    WhatIfIn,
    WhatIfOut,
)
from tools.optimize.budget import CampaignInput, allocate_budget
from tools.settings import ToolSettings
from tools.uplift.attribution import funnel_attribution

SEED = 0  # fixed: the same question gets the same simulated answer (and a cache hit)
# Monte Carlo draws per simulation (its 90% ranges). ADGUIDE_SIM_DRAWS lowers it where only plausible figures
# matter and speed does (the training curriculum's data stage uses 50).
N_SIMS = ToolSettings.from_env().sim_draws
IMPACT_DAYS = 7
LANDSCAPE_STEPS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)


def _check_ad_group(ctx: ToolContext, ad_group_id: str | None) -> None:
    if ad_group_id is not None:
        ids = {g.id for g in ctx.adv.ad_groups()}
        check_member("ad group", ad_group_id, ids, ctx.advertiser_id, "ad_group_id")


def keyword_ideas(ctx: ToolContext, args: KeywordIdeasIn) -> BaseModel:
    # lazy: pulls in scipy.stats, scipy.interpolate and sqlite3 at import (~0.2 s of the MCP server's start)
    from tools.keywords.engine import recommend_keywords

    period = period_of(args, ctx.store.start_date, ctx.store.end_date)
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
    # lazy: pulls in scipy.stats, scipy.interpolate and sqlite3 at import (~0.2 s of the MCP server's start)
    from tools.keywords.engine import suggest_negatives

    period = period_of(args, ctx.store.start_date, ctx.store.end_date)
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


# --- simulator ---------------------------------------------------------------------------------------------

# The simulator runs on a market model estimated from what the advertiser (or the platform) observes, never
# on the world's true markets (tools/market/estimate.py). ADGUIDE_MARKET_VIEW=seller|platform overrides the
# view the store offers (platform where the platform's auction log is there).
MODEL_CACHE_SIZE = 64
_models: OrderedDict[tuple[str, str, str, str], MarketModel] = OrderedDict()
_models_lock = threading.Lock()


def market_view() -> View | None:
    name = ToolSettings.from_env().market_view
    return View(name) if name else None


def market_model(ctx: ToolContext) -> MarketModel:
    """The advertiser's estimated market (fit from its history once per world and view, then cached: writes
    change bids and budgets, not the history it is fit on)."""
    view = market_view()
    key = (str(ctx.store.path), ctx.store.generation_id, ctx.advertiser_id, view.value if view else "")
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    model = fit_market_model(ctx.adv, view)
    with _models_lock:
        _models[key] = model
        while len(_models) > MODEL_CACHE_SIZE:
            _models.popitem(last=False)
    return model


def _markets(ctx: ToolContext, keywords: list[Keyword], draw: int | None = None) -> list[KeywordMarket]:
    return market_model(ctx).for_keywords(keywords, ctx.adv.negatives(), draw)


@dataclass
class _CampaignSim:
    """A campaign as the simulator runs it: its keywords share one daily budget."""

    campaign: Campaign
    keywords: list[Keyword]
    markets: list[KeywordMarket]
    margins: np.ndarray  # [K] gross margin of each keyword's ad group products
    bids: np.ndarray  # [K] today's bids; 0 where the keyword or the campaign is paused


def _margins(ctx: ToolContext, keywords: list[Keyword]) -> np.ndarray:
    products = {p.id: p for p in ctx.adv.products()}
    groups = {g.id: g for g in ctx.adv.ad_groups()}
    default = float(np.mean([p.margin for p in products.values()])) if products else 0.3
    out = []
    for k in keywords:
        ms = [products[p].margin for p in groups[k.ad_group_id].product_ids if p in products]
        out.append(float(np.mean(ms)) if ms else default)
    return np.asarray(out)


def _campaign_sim(ctx: ToolContext, campaign_id: str) -> _CampaignSim:
    camps = {c.id: c for c in ctx.adv.campaigns()}
    check_member("campaign", campaign_id, set(camps), ctx.advertiser_id, "id")
    keywords = ctx.adv.keywords(campaign_id=campaign_id)
    markets = market_model(ctx).by_keyword(keywords, ctx.adv.negatives())
    keywords = [k for k in keywords if k.id in markets]
    campaign = camps[campaign_id]
    live = campaign.status == Status.ENABLED
    bids = np.asarray([k.bid if live and k.status == Status.ENABLED else 0.0 for k in keywords])
    return _CampaignSim(campaign, keywords, [markets[k.id] for k in keywords], _margins(ctx, keywords), bids)


def _keyword(ctx: ToolContext, keyword_id: str, field: str) -> Keyword:
    kws = {k.id: k for k in ctx.adv.keywords()}
    check_member("keyword", keyword_id, set(kws), ctx.advertiser_id, field)
    return kws[keyword_id]


def _future_days(ctx: ToolContext, n: int) -> np.ndarray:
    """Day indices right after the history (the simulator's market parameters cover them)."""
    return np.arange(ctx.store.days, ctx.store.days + n)


def _sim_outcome(o: Any) -> dict[str, Any]:
    """The engine's Outcome (every figure with an interval) → means, with the profit's range kept."""
    return {
        "clicks": o.clicks.mean,
        "spend": o.spend.mean,
        "orders": o.orders.mean,
        "sales": o.sales.mean,
        "incremental_sales": o.incremental_sales.mean,
        "incremental_profit": Range(**o.incremental_profit.model_dump()),
        "acos": o.acos,
    }


def _campaign_what_if(
    ctx: ToolContext, sim: _CampaignSim, new_bids: np.ndarray, new_budget: float, days: int, n_sims: int
) -> Impact:
    res = what_if(
        sim.markets,
        [0] * len(sim.markets),
        sim.bids,
        [sim.campaign.daily_budget],
        _future_days(ctx, days),
        new_bids=new_bids.tolist(),
        new_budgets=[new_budget],
        margin=sim.margins,
        n_sims=n_sims,
        seed=SEED,
    )
    diff = res.difference
    spread = _model_spread(ctx, sim, new_bids, new_budget, days)
    return Impact(
        campaign_id=sim.campaign.id,
        days=days,
        status_quo=SimOutcome(**_sim_outcome(res.status_quo)),
        changed=SimOutcome(**_sim_outcome(res.changed)),
        difference={
            name: _widened(Range(**getattr(diff, name).model_dump()), spread.get(name))
            for name in ("spend", "sales", "incremental_sales", "incremental_profit")
        },
        market=market_model(ctx).note,
    )


def _model_spread(
    ctx: ToolContext, sim: _CampaignSim, new_bids: np.ndarray, new_budget: float, days: int
) -> dict[str, np.ndarray]:
    """The change's expected difference under each posterior draw of the market model (its uncertainty)."""
    model = market_model(ctx)
    out: dict[str, list[float]] = {
        name: [] for name in ("spend", "sales", "incremental_sales", "incremental_profit")
    }
    if not sim.keywords:
        return {}
    negatives = ctx.adv.negatives()  # read once for all the draws
    for d in range(len(model.draws)):
        markets = model.for_keywords(sim.keywords, negatives, d)
        if len(markets) != len(sim.keywords):
            continue
        res = what_if(
            markets,
            [0] * len(markets),
            sim.bids,
            [sim.campaign.daily_budget],
            _future_days(ctx, days),
            new_bids=new_bids.tolist(),
            new_budgets=[new_budget],
            margin=sim.margins,
            n_sims=0,
            seed=SEED,
        )
        for name in out:
            out[name].append(getattr(res.difference, name).mean)
    return {name: np.asarray(v) for name, v in out.items() if v}


def _widened(noise: Range, draws: np.ndarray | None) -> Range:
    """The simulator's 90% range (day-to-day chance) widened by the model's: the two spreads add in quadrature."""
    if draws is None or draws.size < 2:
        return noise
    lo_m, hi_m = np.quantile(draws, [0.05, 0.95])
    center = float(np.median(draws))
    below = float(np.hypot(noise.mean - noise.low, center - lo_m))
    above = float(np.hypot(noise.high - noise.mean, hi_m - center))
    return Range(mean=noise.mean, low=noise.mean - below, high=noise.mean + above)


def what_if_tool(ctx: ToolContext, args: WhatIfIn) -> WhatIfOut:
    if args.change == "bid":
        kw = _keyword(ctx, args.id, "id")
        value = new_value(kw.bid, args)
        campaign_id = next(g.campaign_id for g in ctx.adv.ad_groups() if g.id == kw.ad_group_id)
        sim = _campaign_sim(ctx, campaign_id)
        new_bids = sim.bids.copy()
        ids = [k.id for k in sim.keywords]
        if kw.id not in ids:
            raise InvalidInputError(
                f"keyword {kw.id} has no market to simulate", field="id", allowed="a keyword with history"
            )
        new_bids[ids.index(kw.id)] = value
        change = Change(id=kw.id, field="bid", before=kw.bid, after=value, name=kw.text)
        new_budget = sim.campaign.daily_budget
    else:
        sim = _campaign_sim(ctx, args.id)
        budget = sim.campaign.daily_budget
        value = new_value(budget, args)
        new_bids = sim.bids
        change = Change(id=args.id, field="daily_budget", before=budget, after=value, name=sim.campaign.name)
        new_budget = value
    impact = _campaign_what_if(ctx, sim, new_bids, new_budget, args.days, N_SIMS)
    return WhatIfOut(
        change=change,
        keywords=len(sim.keywords),
        **impact.model_dump(),
    )


def _row(point: Any) -> LandscapeRow:
    return LandscapeRow(bid=point.bid, **_sim_outcome(point))


def _in_campaign(ctx: ToolContext, kw: Keyword) -> tuple[_CampaignSim, int | None]:
    """The keyword's campaign as the simulator runs it, and the keyword's index in it (None: no market)."""
    campaign_id = next(g.campaign_id for g in ctx.adv.ad_groups() if g.id == kw.ad_group_id)
    sim = _campaign_sim(ctx, campaign_id)
    ids = [k.id for k in sim.keywords]
    return sim, ids.index(kw.id) if kw.id in ids else None


def _others(sim: _CampaignSim, i: int | None) -> dict[str, Any]:
    """The campaign's other keywords, at today's bids, sharing its daily budget with keyword i."""
    keep = [j for j in range(len(sim.keywords)) if j != i]
    return {
        "budget": sim.campaign.daily_budget,
        "others": [sim.markets[j] for j in keep],
        "other_bids": sim.bids[keep],
        "other_margin": sim.margins[keep] if keep else None,
    }


def bid_landscape_tool(ctx: ToolContext, args: LandscapeIn) -> LandscapeOut:
    kw = _keyword(ctx, args.keyword_id, "keyword_id")
    bids = args.bids or sorted({round(kw.bid * s, 2) for s in LANDSCAPE_STEPS if kw.bid * s >= 0.02})
    markets = _markets(ctx, [kw])
    sim, i = _in_campaign(ctx, kw)
    res = bid_landscape(
        markets,
        bids,
        _future_days(ctx, args.days),
        margin=_margins(ctx, [kw]),
        n_sims=N_SIMS,
        seed=SEED,
        **_others(sim, i),
    )
    return LandscapeOut(
        keyword_id=kw.id,
        keyword=kw.text,
        current_bid=kw.bid,
        days=args.days,
        points=[_row(p) for p in res.points],
        note="This keyword's own figures inside its campaign (its other keywords share the daily budget); "
        "what_if and recommend_bid's gain count the whole campaign.",
        market=market_model(ctx).note,
    )


def recommend_bid_tool(ctx: ToolContext, args: RecommendBidIn) -> RecommendBidOut:
    """The best bid inside the keyword's campaign: its other keywords keep their bids and share the daily
    budget, so on a budget-capped campaign a higher bid is charged for the sales it takes from them."""
    kw = _keyword(ctx, args.keyword_id, "keyword_id")
    target = args.target
    if args.goal == BidGoal.TARGET_ACOS and target is None:
        target = ctx.adv.advertiser.target_acos
    if args.goal != BidGoal.MAX_PROFIT and target is None:
        raise InvalidInputError(f"{args.goal.value} needs a target", field="target", allowed="> 0")
    sim, i = _in_campaign(ctx, kw)
    res = optimal_bid(
        _markets(ctx, [kw]),
        args.goal.value,
        _future_days(ctx, args.days),
        margin=_margins(ctx, [kw]),
        target=target,
        current_bid=kw.bid if i is None else float(sim.bids[i]),
        n_sims=N_SIMS,
        seed=SEED,
        **_others(sim, i),
    )
    gain = Range(**res.gain.model_dump()) if res.gain is not None else None
    note = res.note
    if gain is not None and i is not None:
        # the gain's range carries the market model's uncertainty too, as what_if's do
        new_bids = sim.bids.copy()
        new_bids[i] = res.bid
        spread = _model_spread(ctx, sim, new_bids, sim.campaign.daily_budget, args.days)
        gain = _widened(gain, spread.get("incremental_profit"))
        if res.feasible and gain.low < 0 < gain.high:
            note = f"{note}. {RISKY_BID_NOTE}"
    return RecommendBidOut(
        keyword_id=kw.id,
        keyword=kw.text,
        goal=args.goal,
        target=target,
        bid=res.bid,
        current_bid=kw.bid,
        feasible=res.feasible,
        at_bid=_row(res.at_bid),
        at_current=_row(res.current) if res.current is not None else None,
        gain=gain,
        note=note,
        market=market_model(ctx).note,
    )


RISKY_BID_NOTE = (
    "The gain's 90% range (the market model's uncertainty included) includes a loss: the history cannot tell "
    "this bid from one that loses money, and keeping today's bid may be the better choice."
)


# --- optimizer ---------------------------------------------------------------------------------------------


def allocate_budget_tool(ctx: ToolContext, args: AllocateIn) -> BaseModel:
    camps = {c.id: c for c in ctx.adv.campaigns()}
    if args.campaign_ids is None:
        ids = [c.id for c in camps.values() if c.status == Status.ENABLED]
    else:
        ids = list(dict.fromkeys(args.campaign_ids))
        for cid in ids:
            check_member("campaign", cid, set(camps), ctx.advertiser_id, "campaign_ids")
    inputs = []
    sims = []
    for cid in ids:
        sim = _campaign_sim(ctx, cid)
        if sim.keywords:
            sims.append(sim)
            inputs.append(
                CampaignInput(
                    campaign_id=cid,
                    markets=sim.markets,
                    bids=sim.bids.tolist(),
                    margin=float(sim.margins.mean()),
                    keyword_margins=sim.margins.tolist(),
                    current_budget=sim.campaign.daily_budget,
                )
            )
    if not inputs:
        raise InvalidInputError("none of these campaigns has keywords to simulate", field="campaign_ids")
    total = args.total_budget if args.total_budget is not None else sum(c.current_budget or 0 for c in inputs)
    result = allocate_budget(
        inputs,
        total,
        _future_days(ctx, args.days),
        objective=args.objective,
        seed=SEED,
        draws=_campaign_draws(ctx, sims),
    )
    return result.model_copy(update={"market": market_model(ctx).note})


def _campaign_draws(ctx: ToolContext, sims: list[_CampaignSim]) -> list[list[list[KeywordMarket]]]:
    """The market model's posterior draws of these campaigns' markets (a draw that lacks a keyword is left
    out): the optimizer holds back a budget move whose gain is below zero in too many of them."""
    model = market_model(ctx)
    negatives = ctx.adv.negatives()
    out = []
    for d in range(len(model.draws)):
        draw = []
        for sim in sims:
            by_id = model.by_keyword(sim.keywords, negatives, d)
            if any(k.id not in by_id for k in sim.keywords):
                break
            draw.append([by_id[k.id] for k in sim.keywords])
        else:
            out.append(draw)
    return out


# --- causal tools -------------------------------------------------------------------------------------------

GATES_GROUPS = 4
MAX_SEGMENT_COVARIATES = 4


def _experiment(ctx: ToolContext, experiment_id: str) -> tuple[Any, Any]:
    exps = {e.id: e for e in ctx.adv.experiments()}
    check_member("experiment", experiment_id, set(exps), ctx.advertiser_id, "experiment_id")
    return exps[experiment_id], ctx.adv.experiment_units(experiment_id)


def experiment_uplift(ctx: ToolContext, args: ExperimentIn) -> UpliftOut:
    # lazy: pulls in sklearn at import
    from tools.uplift.cate import fit_cate
    from tools.uplift.effects import effects_by_predicted_group, segment_effects
    from tools.uplift.incrementality import ad_incrementality

    exp, units = _experiment(ctx, args.experiment_id)
    fit = fit_cate(
        units.X,
        units.treatment,
        units.outcome,
        randomized=True,
        covariate_names=units.covariate_names,
        seed=SEED,
    )
    arm = fit.summary.arms[0]
    segments: list[Any] = []
    for j, name in enumerate(units.covariate_names):
        values = np.unique(units.X[:, j])
        if len(values) == 2 and len(segments) < 2 * MAX_SEGMENT_COVARIATES:
            labels = np.where(units.X[:, j] == values[1], f"{name}=yes", f"{name}=no")
            segments += segment_effects(fit, labels)
    incrementality = None
    if units.ad_spend is not None and units.attributed_sales is not None:
        revenue = units.revenue if units.revenue is not None else units.outcome
        incrementality = ad_incrementality(
            revenue,
            units.treatment,
            units.ad_spend,
            units.attributed_sales,
            expected_treatment_share=exp.treatment_share,
        )
    return UpliftOut(
        experiment_id=exp.id,
        kind=exp.kind,
        outcome=exp.outcome,
        n_units=units.n,
        ate=arm.ate,
        estimator=str(arm.estimator),
        heterogeneity_detected=arm.heterogeneity_detected,
        by_predicted_effect=effects_by_predicted_group(fit, n_groups=GATES_GROUPS),
        segments=segments,
        incrementality=incrementality,
        message=arm.message,
        warnings=fit.summary.warnings,
    )


def ab_test(ctx: ToolContext, args: AbIn) -> BaseModel:
    # lazy: pulls in sklearn at import
    from tools.uplift.ab import analyze_ab

    exp, units = _experiment(ctx, args.experiment_id)
    if args.metric == "revenue":
        if units.revenue is None:
            raise InvalidInputError(
                f"experiment {exp.id} has no revenue metric", field="metric", allowed="outcome"
            )
        y, pre = units.revenue, None
    else:
        y, pre = units.outcome, units.pre_outcome
    return analyze_ab(
        y,
        units.treatment,
        pre_outcome=pre if args.cuped else None,
        expected_treatment_share=exp.treatment_share,
        metric=exp.outcome if args.metric == "outcome" else "revenue",
    )


def kpi_change(ctx: ToolContext, args: KpiChangeIn) -> BaseModel:
    first, last = ctx.store.start_date, ctx.store.end_date
    after_end = args.after_end or last
    after = resolve_period(args.after_start or after_end - dt.timedelta(days=6), after_end, first, last)
    length = (after.end - after.start).days
    before_end = args.before_end or after.start - dt.timedelta(days=1)
    before_start = args.before_start or before_end - dt.timedelta(days=length)
    if before_end < first:
        raise InvalidInputError(
            "there is no data before the after period to compare with",
            field="after_start",
            allowed=f"after {first.isoformat()}",
        )
    before = resolve_period(max(before_start, first), before_end, first, last)
    if args.campaign_id is not None:
        check_member(
            "campaign",
            args.campaign_id,
            {c.id for c in ctx.adv.campaigns()},
            ctx.advertiser_id,
            "campaign_id",
        )
    ids = [k.id for k in ctx.adv.keywords(campaign_id=args.campaign_id)]
    rows = [ctx.adv.keyword_days(p.start, p.end, keyword_ids=ids) for p in (before, after)]
    result = funnel_attribution(
        rows[0], rows[1], kpi=args.kpi, segment_by="keyword_id" if args.by_keyword else None
    )
    note = f"before {before.start}..{before.end}, after {after.start}..{after.end}"
    return result.model_copy(update={"notes": [note, *result.notes]})


def change_impact(ctx: ToolContext, args: ProposeIn) -> Impact | None:
    """Simulated effect of a proposed change over the next week; None where no simulation applies
    (new keywords and negatives). Bad ids are left for plan_changes to report."""
    adv = ctx.adv
    if args.action == Action.SET_BUDGET and args.value is not None:
        if args.id not in {c.id for c in adv.campaigns()}:
            return None
        sim = _campaign_sim(ctx, args.id)
        return _campaign_what_if(ctx, sim, sim.bids, args.value, IMPACT_DAYS, N_SIMS)
    if args.action in (Action.SET_BID, Action.PAUSE, Action.ENABLE):
        kws = {k.id: k for k in adv.keywords()}
        if args.id in kws:
            kw = kws[args.id]
            campaign_id = next(g.campaign_id for g in adv.ad_groups() if g.id == kw.ad_group_id)
            sim = _campaign_sim(ctx, campaign_id)
            if kw.id not in [k.id for k in sim.keywords]:
                return None
            new_bids = sim.bids.copy()
            i = [k.id for k in sim.keywords].index(kw.id)
            if args.action == Action.SET_BID:
                if args.value is None:
                    return None
                new_bids[i] = args.value if kw.status == Status.ENABLED else 0.0
            else:
                new_bids[i] = 0.0 if args.action == Action.PAUSE else kw.bid
            if sim.campaign.status != Status.ENABLED:
                new_bids[:] = 0.0
            return _campaign_what_if(ctx, sim, new_bids, sim.campaign.daily_budget, IMPACT_DAYS, N_SIMS)
        if args.action != Action.SET_BID and args.id in {c.id for c in adv.campaigns()}:
            sim = _campaign_sim(ctx, args.id)
            if args.action == Action.PAUSE:
                new_bids = np.zeros_like(sim.bids)
            else:
                new_bids = np.asarray([k.bid if k.status == Status.ENABLED else 0.0 for k in sim.keywords])
            return _campaign_what_if(ctx, sim, new_bids, sim.campaign.daily_budget, IMPACT_DAYS, N_SIMS)
    return None


def propose_change(ctx: ToolContext, args: ProposeIn) -> ProposeOut:
    """The propose_change tool: the diff, its simulated impact and a confirmation token."""
    args = actions.with_absolute_value(ctx, args)  # "a fifth less" -> the value, so the impact simulates it
    impact = change_impact(ctx, args)
    out = actions.propose(ctx, args, str(ctx.store_key), impact)
    profit = impact.difference.get("incremental_profit") if impact is not None else None
    if profit is not None and profit.low < 0 < profit.high:
        out = out.model_copy(update={"note": f"{out.note or ''} {RISKY_NOTE}".strip()})
    return out


# Said with a proposal whose simulated gain may as well be a loss (its range, the market model's uncertainty
# included, straddles zero): the history cannot tell this change from one that loses money.
RISKY_NOTE = (
    "The simulated incremental profit's 90% range includes a loss: the history cannot tell this change from one "
    "that loses money, and keeping things as they are may be the better choice."
)
