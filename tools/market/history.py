"""The past of a world: logged interventions and the daily reports they produced.

`plan_interventions` draws the bid, budget and status changes advertisers made on random dates and
turns them into per-day bids [D, K] and budgets [D, C]; `simulate_history` runs the auction simulator
(tools.auction.simulate, contract C) over a contiguous block of advertisers in one vectorized call and
returns report rows: keyword-days, campaign-days (sums, with budget pacing) and search-term-days (the
keyword's outcome split over its queries by share; orders follow relevance, so irrelevant queries spend
without selling). The true incremental outcome of each keyword-day goes to the truth store only.

Money is returned in integer cents, spend rounded *down* so that the cents of a campaign's keywords never
add up to more than its budget. A keyword-day's `bid` is 0 when the keyword or its campaign was paused.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np

from tools.auction.simulate import day_factors, market_arrays, simulate_days
from tools.market.data_model import Intervention, InterventionKind, Status
from tools.market.world import World

# Bid multipliers advertisers apply (cut or raise), and budget multipliers.
_BID_FACTORS = np.array([0.6, 0.7, 0.8, 0.85, 1.2, 1.3, 1.5, 1.8])
_BUDGET_FACTORS = np.array([0.5, 0.6, 0.75, 1.5, 2.0, 2.5])


@dataclass
class HistoryPlan:
    """What the advertisers did, as arrays the simulator reads day by day."""

    bids: np.ndarray  # [D, K], 0 where the keyword (or its campaign) was paused
    budgets: np.ndarray  # [D, C]
    interventions: list[Intervention]
    final_bids: np.ndarray  # [K] the bids as they stand after the last day
    final_budgets: np.ndarray  # [C]
    final_keyword_status: list[Status]


def plan_interventions(world: World) -> HistoryPlan:
    """Draw each advertiser's past changes; a third of them fall in the last two weeks of the history."""
    cfg = world.config
    n_days = cfg.days
    k_total, c_total = len(world.keywords), len(world.campaigns)
    bids = np.empty((n_days, k_total))
    budgets = np.empty((n_days, c_total))
    bids[:] = np.array([k.bid for k in world.keywords])
    budgets[:] = np.array([c.daily_budget for c in world.campaigns])
    kw_enabled = np.ones((n_days, k_total), dtype=bool)
    kw_enabled[:] = np.array([k.status is Status.ENABLED for k in world.keywords])
    camp_enabled = np.array([c.status is Status.ENABLED for c in world.campaigns])

    kw_adv = world.keyword_advertiser
    interventions: list[Intervention] = []
    for a, adv in enumerate(world.advertisers):
        if n_days < 8:
            break
        rng = np.random.default_rng([cfg.seed, a, 3])
        kws = np.flatnonzero(kw_adv == a)
        camps = np.flatnonzero(world.campaign_advertiser == a)
        n = int(rng.poisson(3.0))
        recent = rng.random(n) < 1 / 3
        dates = np.where(recent, rng.integers(max(1, n_days - 14), n_days, n), rng.integers(1, n_days, n))
        for day in sorted({int(d) for d in dates}):  # in date order, one a day: each holds until the next
            date = cfg.start_date + dt.timedelta(days=day)
            kind = rng.choice(3, p=[0.6, 0.3, 0.1])
            iid = f"int_{len(interventions) + 1:06d}"
            if kind == 0 and kws.size:
                k = int(rng.choice(kws))
                before = float(bids[day, k])
                after = float(np.clip(np.round(before * rng.choice(_BID_FACTORS), 2), 0.1, 50.0))
                bids[day:, k] = after
                interventions.append(
                    Intervention(
                        id=iid,
                        advertiser_id=adv.id,
                        date=date,
                        kind=InterventionKind.BID_CHANGE,
                        entity_id=world.keywords[k].id,
                        before=before,
                        after=after,
                    )
                )
            elif kind == 1 and camps.size:
                c = int(rng.choice(camps))
                before = float(budgets[day, c])
                after = float(max(5.0, np.round(before * rng.choice(_BUDGET_FACTORS))))
                budgets[day:, c] = after
                interventions.append(
                    Intervention(
                        id=iid,
                        advertiser_id=adv.id,
                        date=date,
                        kind=InterventionKind.BUDGET_CHANGE,
                        entity_id=world.campaigns[c].id,
                        before=before,
                        after=after,
                    )
                )
            elif kws.size:
                k = int(rng.choice(kws))
                pause = bool(kw_enabled[day, k])
                kw_enabled[day:, k] = not pause
                interventions.append(
                    Intervention(
                        id=iid,
                        advertiser_id=adv.id,
                        date=date,
                        kind=InterventionKind.PAUSE if pause else InterventionKind.ENABLE,
                        entity_id=world.keywords[k].id,
                        before=(Status.ENABLED if pause else Status.PAUSED).value,
                        after=(Status.PAUSED if pause else Status.ENABLED).value,
                    )
                )
    interventions.sort(key=lambda i: (i.advertiser_id, i.date, i.id))
    final_bids = bids[-1].copy()
    final_budgets = budgets[-1].copy()
    final_status = [Status.ENABLED if e else Status.PAUSED for e in kw_enabled[-1]]
    active = kw_enabled & camp_enabled[world.keyword_campaign][None, :]
    return HistoryPlan(
        bids=np.where(active, bids, 0.0),
        budgets=budgets,
        interventions=interventions,
        final_bids=final_bids,
        final_budgets=final_budgets,
        final_keyword_status=final_status,
    )


def apply_final_state(world: World, plan: HistoryPlan) -> None:
    """Set the entities to what they are after the history (the store holds today's state)."""
    for kw, bid, status in zip(world.keywords, plan.final_bids, plan.final_keyword_status, strict=True):
        kw.bid = float(bid)
        kw.status = status
    for camp, budget in zip(world.campaigns, plan.final_budgets, strict=True):
        camp.daily_budget = float(budget)


@dataclass
class HistoryChunk:
    """Report rows of a block of advertisers; every column an array, money in cents."""

    keyword_days: dict[str, np.ndarray]
    campaign_days: dict[str, np.ndarray]
    search_term_days: dict[str, np.ndarray]
    keyword_truth: dict[str, np.ndarray]  # incremental orders and sales per keyword-day (truth store)


@dataclass
class TermTable:
    """Search terms of all keywords, padded to [K, T] (index -1 / share 0 where a keyword has fewer)."""

    index: np.ndarray  # [K, T] global search-term index (position in world.search_terms), -1 = padding
    share: np.ndarray  # [K, T]
    relevance: np.ndarray  # [K, T]


def term_table(world: World) -> TermTable:
    pos = {kw.id: i for i, kw in enumerate(world.keywords)}
    k_of = np.array([pos[t.keyword_id] for t in world.search_terms], dtype=np.int64)
    counts = np.bincount(k_of, minlength=len(world.keywords))
    width = int(counts.max()) if counts.size else 1
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    order = np.argsort(k_of, kind="stable")
    slot = np.arange(len(order)) - first[k_of[order]]
    index = np.full((len(world.keywords), width), -1, dtype=np.int64)
    share = np.zeros((len(world.keywords), width))
    rel = np.zeros((len(world.keywords), width))
    index[k_of[order], slot] = order
    share[k_of[order], slot] = [world.search_terms[i].share for i in order]
    rel[k_of[order], slot] = [world.search_terms[i].relevance for i in order]
    share /= np.maximum(share.sum(axis=1, keepdims=True), 1e-12)
    return TermTable(index=index, share=share, relevance=rel)


def simulate_history(
    world: World, plan: HistoryPlan, terms: TermTable, adv_start: int, adv_end: int
) -> HistoryChunk:
    """Simulate advertisers [adv_start, adv_end) over the whole history in one call."""
    cfg = world.config
    kw_adv = world.keyword_advertiser
    kws = np.flatnonzero((kw_adv >= adv_start) & (kw_adv < adv_end))
    camps = np.flatnonzero((world.campaign_advertiser >= adv_start) & (world.campaign_advertiser < adv_end))
    if kws.size == 0:
        raise ValueError(f"advertisers {adv_start}..{adv_end - 1} have no keywords")
    days = np.arange(cfg.days)
    markets = market_arrays([world.markets[k] for k in kws])
    campaign_local = world.keyword_campaign[kws] - camps[0]
    res = simulate_days(
        markets,
        plan.bids[:, kws],
        campaign_local,
        plan.budgets[:, camps],
        days,
        seed=cfg.seed,
        expected=False,
    )
    n_days, n_kw = res.clicks.shape
    aov = np.array([world.markets[k].aov for k in kws])

    day_grid = np.repeat(days, n_kw)
    kw_grid = np.tile(kws, n_days)
    adv_grid = kw_adv[kw_grid]
    impressions = res.impressions.ravel().astype(np.int64)
    clicks = res.clicks.ravel().astype(np.int64)
    orders = res.orders.ravel().astype(np.int64)
    spend_c = np.floor(res.spend.ravel() * 100 + 1e-6).astype(np.int64)
    sales_c = np.round(res.sales.ravel() * 100).astype(np.int64)
    organic_c = np.round(res.organic_sales.ravel() * 100).astype(np.int64)
    keyword_days = {
        "adv": adv_grid,
        "day": day_grid,
        "keyword_idx": kw_grid + 1,  # keyword ids are 1-based: kw_0000001 has idx 1
        "impressions": impressions,
        "clicks": clicks,
        "spend_cents": spend_c,
        "orders": orders,
        "sales_cents": sales_c,
        "organic_cents": organic_c,
        "avg_position": np.round(res.avg_position.ravel(), 2),
        "impression_share": np.round(res.impression_share.ravel(), 4),
        "bid_cents": np.round(plan.bids[:, kws].ravel() * 100).astype(np.int64),
    }
    keyword_truth = {
        "adv": adv_grid,
        "day": day_grid,
        "keyword_idx": kw_grid + 1,
        "incremental_orders": res.incremental_orders.ravel().astype(np.int64),
        "incremental_cents": np.round(res.incremental_sales.ravel() * 100).astype(np.int64),
    }

    # campaign-days: sums of their keywords (in cents, so they match the keyword report exactly)
    n_camps = camps.size
    group = np.repeat(days, n_kw) * n_camps + np.tile(campaign_local, n_days)

    def per_campaign(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, values, minlength=n_days * n_camps).round().astype(np.int64)

    campaign_days = {
        "adv": np.tile(world.campaign_advertiser[camps], n_days),
        "day": np.repeat(days, n_camps),
        "campaign_idx": np.tile(camps + 1, n_days),
        "impressions": per_campaign(impressions),
        "clicks": per_campaign(clicks),
        "spend_cents": per_campaign(spend_c),
        "orders": per_campaign(orders),
        "sales_cents": per_campaign(sales_c),
        "organic_cents": per_campaign(organic_c),
        "budget_cents": np.round(plan.budgets[:, camps].ravel() * 100).astype(np.int64),
        "budget_exhausted_at": np.round(res.budget_exhausted_at.ravel(), 4),
    }

    rng = np.random.default_rng([cfg.seed, adv_start, 4])
    search_term_days = _split_over_terms(
        rng,
        terms,
        kw_grid,
        adv_grid,
        day_grid,
        impressions,
        clicks,
        orders,
        spend_c,
        organic_c,
        np.tile(aov, n_days),
    )
    return HistoryChunk(keyword_days, campaign_days, search_term_days, keyword_truth)


def _split_over_terms(
    rng: np.random.Generator,
    terms: TermTable,
    kw: np.ndarray,
    adv: np.ndarray,
    day: np.ndarray,
    impressions: np.ndarray,
    clicks: np.ndarray,
    orders: np.ndarray,
    spend_c: np.ndarray,
    organic_c: np.ndarray,
    aov: np.ndarray,
) -> dict[str, np.ndarray]:
    """Search-term rows for keyword-days with clicks: impressions by share, clicks among those impressions,
    orders among the clicks weighted by relevance. Keeps only terms with a click, as consoles do."""
    rows = np.flatnonzero(clicks > 0)
    kw, adv, day = kw[rows], adv[rows], day[rows]
    imp, clk, ords = impressions[rows], clicks[rows], orders[rows]
    spend_c, organic_c, aov = spend_c[rows], organic_c[rows], aov[rows]
    share, rel, index = terms.share[kw], terms.relevance[kw], terms.index[kw]
    n, width = share.shape

    # impressions: multinomial by share, as a chain of binomials
    imp_t = np.zeros((n, width), dtype=np.int64)
    left, p_left = imp.copy(), np.ones(n)
    for t in range(width):
        p = np.clip(share[:, t] / np.maximum(p_left, 1e-12), 0.0, 1.0)
        imp_t[:, t] = rng.binomial(left, p)
        left -= imp_t[:, t]
        p_left -= share[:, t]
    imp_t[:, 0] += left  # rounding leftovers
    # clicks: which of the impressions were clicked (multivariate hypergeometric, so clicks <= impressions)
    clk_t = np.zeros((n, width), dtype=np.int64)
    left_clk, left_imp = clk.copy(), imp_t.sum(axis=1)
    for t in range(width):
        good = imp_t[:, t]
        draw = rng.hypergeometric(good, np.maximum(left_imp - good, 0), np.minimum(left_clk, left_imp))
        clk_t[:, t] = draw
        left_clk -= draw
        left_imp -= good
    # orders: among the clicks, weighted by relevance, never more orders than clicks on a term
    weight = clk_t * rel
    ord_t = np.zeros((n, width), dtype=np.int64)
    left_ord, left_w = ords.copy(), weight.sum(axis=1)
    for t in range(width):
        p = np.clip(weight[:, t] / np.maximum(left_w, 1e-12), 0.0, 1.0)
        ord_t[:, t] = np.minimum(rng.binomial(left_ord, p), clk_t[:, t])
        left_ord -= ord_t[:, t]
        left_w -= weight[:, t]
    # leftovers (terms full): the most relevant terms with clicks to spare take them
    every = np.arange(n)
    for col_by_relevance in np.argsort(-rel, axis=1).T:
        if not left_ord.any():
            break
        room = clk_t[every, col_by_relevance] - ord_t[every, col_by_relevance]
        extra = np.minimum(room, left_ord)
        ord_t[every, col_by_relevance] += extra
        left_ord -= extra

    spend_t = np.floor(spend_c[:, None] * clk_t / np.maximum(clk[:, None], 1)).astype(np.int64)
    sales_t = np.round(ord_t * aov[:, None] * 100).astype(np.int64)
    organic_w = share * rel
    organic_t = np.round(
        organic_c[:, None] * organic_w / np.maximum(organic_w.sum(axis=1, keepdims=True), 1e-12)
    )

    keep = (clk_t > 0) & (index >= 0)
    row, col = np.nonzero(keep)
    return {
        "adv": adv[row],
        "day": day[row],
        "term_idx": index[row, col] + 1,  # search-term rows are 1-based like the other integer keys
        "impressions": imp_t[row, col],
        "clicks": clk_t[row, col],
        "spend_cents": spend_t[row, col],
        "orders": ord_t[row, col],
        "sales_cents": sales_t[row, col],
        "organic_cents": organic_t[row, col].astype(np.int64),
    }


# The platform's auction log: sampled auctions of each keyword over the last weeks of the history.
AUCTION_LOG_DAYS = 28
AUCTION_LOG_SIZE = 120


def auction_log(world: World, first: int, last: int) -> list[tuple[int, int, str]]:
    """(keyword position, advertiser position, JSON log) for the keywords of advertisers [first, last): each
    log holds the rival count, rival bids and quality scores of AUCTION_LOG_SIZE auctions on days drawn from
    the last AUCTION_LOG_DAYS of the history, as the platform logged them (events included)."""
    cfg = world.config
    kw_adv = world.keyword_advertiser
    out = []
    for a in range(first, last):
        kws = np.flatnonzero(kw_adv == a)
        if not kws.size:
            continue
        rng = np.random.default_rng([cfg.seed, a, 13])
        m = market_arrays([world.markets[k] for k in kws])
        n = AUCTION_LOG_SIZE
        days = rng.integers(max(0, cfg.days - AUCTION_LOG_DAYS), cfg.days, size=(kws.size, n))
        for j, k in enumerate(kws):
            _, bid_mult, count_mult = day_factors(m.take([j]), days[j])
            counts = rng.poisson(m.n_rivals[j] * count_mult[:, 0])
            total = int(counts.sum())
            bids = np.exp(rng.normal(m.rival_bid_mu[j], m.rival_bid_sigma[j], total)) * np.repeat(
                bid_mult[:, 0], counts
            )
            mk = world.markets[k]
            quality = rng.beta(mk.rival_quality_a, mk.rival_quality_b, total)
            log = {
                "days": days[j].tolist(),
                "counts": counts.tolist(),
                "bids": np.round(bids, 3).tolist(),
                "quality": np.round(quality, 3).tolist(),
            }
            out.append((int(k), int(a), json.dumps(log, separators=(",", ":"))))
    return out
