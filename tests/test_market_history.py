"""The simulated history: reports add up, budgets hold, interventions and market shifts show, truth differs."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tools.auction.simulate import market_arrays, simulate_days
from tools.market.data_model import InterventionKind, WorldConfig
from tools.market.generate import generate_world_file
from tools.market.history import plan_interventions
from tools.market.store import MarketStore
from tools.market.truth import TruthStore
from tools.market.world import generate_world

CONFIG = WorldConfig(n_advertisers=12, days=45, seed=5)


@pytest.fixture(scope="module")
def world_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("history") / "world.sqlite"
    generate_world_file(CONFIG, out)
    return out


@pytest.fixture(scope="module")
def store(world_path: Path):
    with MarketStore.open(world_path) as s:
        yield s


@pytest.fixture(scope="module")
def truth(world_path: Path):
    with TruthStore.open(world_path) as t:
        yield t


def _all(store, method):
    rows = []
    for a in store.advertiser_ids():
        rows += getattr(store.scoped(a), method)(store.start_date, store.end_date)
    return rows


def test_budgets_are_never_exceeded_and_pacing_happens(store):
    days = _all(store, "campaign_days")
    assert len(days) > 0
    assert all(d.spend <= d.budget + 1e-9 for d in days)
    capped = [d for d in days if d.budget_exhausted_at is not None]
    assert 0.05 * len(days) < len(capped) < 0.95 * len(days)
    assert all(0 <= d.budget_exhausted_at <= 1 for d in capped)
    # a campaign that ran out spent (nearly) all of its budget
    assert np.median([d.spend / d.budget for d in capped]) > 0.9


def test_campaign_reports_are_the_sum_of_their_keywords(store):
    for adv_id in store.advertiser_ids():
        adv = store.scoped(adv_id)
        campaign_of = {g.id: g.campaign_id for g in adv.ad_groups()}
        kw_campaign = {k.id: campaign_of[k.ad_group_id] for k in adv.keywords()}
        sums: dict[tuple[dt.date, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0, 0.0])
        for d in adv.keyword_days(store.start_date, store.end_date):
            s = sums[(d.date, kw_campaign[d.keyword_id])]
            s[0] += d.impressions
            s[1] += d.clicks
            s[2] += d.spend
            s[3] += d.orders
            s[4] += d.sales
        for c in adv.campaign_days(store.start_date, store.end_date):
            s = sums[(c.date, c.campaign_id)]
            assert (c.impressions, c.clicks, c.orders) == (s[0], s[1], s[3])
            assert c.spend == pytest.approx(s[2], abs=0.01) and c.sales == pytest.approx(s[4], abs=0.01)


def test_search_term_reports_split_the_keyword_and_follow_relevance(store, truth):
    relevant = [0, 0]  # clicks, orders
    irrelevant = [0, 0]
    for adv_id in store.advertiser_ids():
        adv = store.scoped(adv_id)
        relevance = {(t.keyword_id, t.term): t.relevance for t in truth.search_term_truth(adv)}
        kw_days = {(d.date, d.keyword_id): d for d in adv.keyword_days(store.start_date, store.end_date)}
        per_kw: dict[tuple[dt.date, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
        for t in adv.search_term_days(store.start_date, store.end_date):
            assert 0 < t.clicks <= t.impressions and t.orders <= t.clicks
            s = per_kw[(t.date, t.keyword_id)]
            s[0] += t.clicks
            s[1] += t.orders
            s[2] += t.spend
            bucket = irrelevant if relevance[(t.keyword_id, t.term)] < 0.05 else relevant
            bucket[0] += t.clicks
            bucket[1] += t.orders
        for key, (clicks, orders, spend) in per_kw.items():
            kw = kw_days[key]
            assert clicks == kw.clicks and orders == kw.orders
            assert spend <= kw.spend + 1e-9
    assert irrelevant[0] > 0, "irrelevant queries get clicks (that is the waste to find)"
    assert irrelevant[1] / irrelevant[0] < 0.2 * relevant[1] / relevant[0]


def test_interventions_are_logged_and_hold_from_their_date(store):
    seen = 0
    for adv_id in store.advertiser_ids():
        adv = store.scoped(adv_id)
        changes = adv.interventions()
        assert [c.date for c in changes] == sorted(c.date for c in changes)
        for n, change in enumerate(changes):
            assert store.start_date < change.date <= store.end_date
            later = [c for c in changes[n + 1 :] if c.entity_id == change.entity_id]  # in the order applied
            until = min([c.date for c in later], default=store.end_date + dt.timedelta(days=1))
            if change.kind is InterventionKind.BID_CHANGE:
                rows = adv.keyword_days(store.start_date, store.end_date, [change.entity_id])
                active = [r for r in rows if r.bid > 0]  # 0 = paused that day
                assert all(r.bid == change.after for r in active if change.date <= r.date < until)
                assert any(r.bid == change.before for r in active if r.date < change.date)
                seen += 1
            elif change.kind is InterventionKind.BUDGET_CHANGE:
                rows = adv.campaign_days(store.start_date, store.end_date, [change.entity_id])
                assert all(r.budget == change.after for r in rows if change.date <= r.date < until)
                assert any(r.budget == change.before for r in rows if r.date < change.date)
                seen += 1
        # the entities hold the state after the last change
        for change in changes:
            last = [c for c in changes if c.entity_id == change.entity_id][-1]
            if last.kind is InterventionKind.BID_CHANGE:
                assert adv.keywords_by_id([last.entity_id])[0].bid == last.after
            if last.kind is InterventionKind.BUDGET_CHANGE:
                assert next(c for c in adv.campaigns() if c.id == last.entity_id).daily_budget == last.after
    assert seen >= 10


def test_a_logged_bid_increase_raises_impressions_after_its_date_in_expectation():
    world = generate_world(CONFIG)
    plan = plan_interventions(world)
    pos = {k.id: i for i, k in enumerate(world.keywords)}
    raises = [c for c in plan.interventions if c.kind is InterventionKind.BID_CHANGE and c.after > c.before]
    assert raises
    checked = 0
    for change in raises:
        k = pos[change.entity_id]
        day = (change.date - CONFIG.start_date).days
        if plan.bids[day, k] == 0:  # paused at that time
            continue
        camp = world.keyword_campaign[k]
        kws = np.flatnonzero(world.keyword_campaign == camp)
        markets = market_arrays([world.markets[i] for i in kws])
        days = np.arange(CONFIG.days)
        with_change = plan.bids[:, kws]
        without = with_change.copy()
        j = int(np.flatnonzero(kws == k)[0])
        without[day:, j] = np.where(without[day:, j] == change.after, change.before, without[day:, j])
        budgets = plan.budgets[:, [camp]]
        a = simulate_days(markets, with_change, np.zeros(kws.size, int), budgets, days, seed=1, expected=True)
        b = simulate_days(markets, without, np.zeros(kws.size, int), budgets, days, seed=1, expected=True)
        np.testing.assert_allclose(a.impressions[:day, j], b.impressions[:day, j])
        uncapped = np.isnan(a.budget_exhausted_at[day:, 0]) & np.isnan(b.budget_exhausted_at[day:, 0])
        if not uncapped.any():
            continue
        after = slice(day, None)
        assert a.impressions[after, j][uncapped].sum() > b.impressions[after, j][uncapped].sum()
        assert np.nanmean(a.avg_position[after, j][uncapped]) <= np.nanmean(
            b.avg_position[after, j][uncapped]
        )
        checked += 1
    assert checked >= 1


def test_a_competitor_surge_makes_clicks_dearer_from_its_start():
    world = generate_world(WorldConfig(n_advertisers=30, days=60, seed=5))
    surge = next(e for e in world.events if e.name == "competitor_surge")
    pos = {k.id: i for i, k in enumerate(world.keywords)}
    idx = [pos[k] for k in surge.keyword_ids]
    markets = [world.markets[i] for i in idx]
    calm = [
        m.model_copy(update={"events": [e for e in m.events if e.name != "competitor_surge"]})
        for m in markets
    ]
    bids = np.array([world.keywords[i].bid for i in idx])
    days = np.arange(60)
    start = (surge.start - world.config.start_date).days
    budgets = np.array([1e6])  # no pacing: isolate the auction
    hot = simulate_days(
        market_arrays(markets), bids, np.zeros(len(idx), int), budgets, days, seed=1, expected=True
    )
    cold = simulate_days(
        market_arrays(calm), bids, np.zeros(len(idx), int), budgets, days, seed=1, expected=True
    )
    np.testing.assert_allclose(hot.spend[:start], cold.spend[:start])
    cpc_hot = hot.spend[start:].sum() / hot.clicks[start:].sum()
    cpc_cold = cold.spend[start:].sum() / cold.clicks[start:].sum()
    assert cpc_hot > cpc_cold
    assert hot.impressions[start:].sum() < cold.impressions[start:].sum()


def test_attributed_sales_overstate_incremental_sales(store, truth):
    attributed = incremental = organic = 0.0
    for adv_id in store.advertiser_ids():
        adv = store.scoped(adv_id)
        cann = {k: m.cannibalization for k, m in truth.keyword_markets(adv).items()}
        days = {(d.date, d.keyword_id): d for d in adv.keyword_days(store.start_date, store.end_date)}
        truth_days = truth.incremental_days(adv_id, store.start_date, store.end_date)
        assert len(truth_days) == len(days)
        for t in truth_days:
            d = days[(t.date, t.keyword_id)]
            assert t.incremental_orders <= d.orders and t.incremental_sales <= d.sales + 1e-9
            if cann[t.keyword_id] == 0:
                assert t.incremental_orders == d.orders
            attributed += d.sales
            incremental += t.incremental_sales
            organic += d.organic_sales
    assert 0.4 * attributed < incremental < 0.9 * attributed
    assert organic > 0 and organic != attributed


def test_experiments_have_units_in_the_world_and_truth_apart(store, truth):
    experiments = [e for a in store.advertiser_ids() for e in store.scoped(a).experiments()]
    assert experiments
    for exp in experiments:
        units = store.scoped(exp.advertiser_id).experiment_units(exp.id)
        unit_truth = truth.experiment_unit_truth(exp.id)
        assert unit_truth.tau.shape == (units.n,)
        assert truth.experiment_truth(exp.id).true_ate == pytest.approx(float(unit_truth.tau.mean()))
        assert store.start_date <= exp.start <= exp.end <= store.end_date
    surges = truth.events()
    assert all(e.advertiser_id in store.advertiser_ids() for e in surges)
