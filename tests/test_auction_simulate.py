"""Day simulation (contract C): shapes, expected vs sampled, pacing, common random numbers, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from tools.auction import randomness as rnd
from tools.auction.core import clear_auctions
from tools.auction.simulate import (
    N_PRICE_GRID,
    DaySimResult,
    auction_terms,
    market_arrays,
    simulate_days,
    simulate_rows,
    time_of_traffic_share,
    traffic_share_before,
)
from tools.errors import InvalidInputError
from tools.market.data_model import KeywordMarket, MarketEvent


def make_market(i: int, **overrides: object) -> KeywordMarket:
    params: dict[str, object] = dict(
        keyword_id=f"kw_{i:07d}",
        base_volume=200.0 + 150.0 * (i % 7),
        weekly_amp=0.2,
        weekly_phase=0.3 * i,
        yearly_amp=0.1,
        n_rivals=1.0 + (i % 5),
        rival_bid_mu=np.log(0.8),
        rival_bid_sigma=0.5,
        rival_quality_a=4.0,
        rival_quality_b=3.0,
        quality=0.4 + 0.05 * (i % 10),
        ctr_top=0.04,
        position_decay=0.7,
        cvr=0.1,
        aov=30.0,
        organic_rate=0.02,
        cannibalization=0.3,
        n_slots=4,
        reserve=0.1,
    )
    params.update(overrides)
    return KeywordMarket.model_validate(params)


@pytest.fixture(scope="module")
def markets() -> list[KeywordMarket]:
    return [make_market(i) for i in range(12)]


def run(
    markets: list[KeywordMarket],
    bid: float = 1.0,
    budgets: list[float] | None = None,
    *,
    seed: int,
    expected: bool = False,
    n_days: int = 10,
) -> DaySimResult:
    k = len(markets)
    budget = np.array(budgets if budgets is not None else [1e6, 1e6, 1e6])
    return simulate_days(
        market_arrays(markets), np.full(k, bid), np.arange(k) % 3, budget, np.arange(n_days), seed, expected
    )


def test_result_shapes_and_contract(markets: list[KeywordMarket]) -> None:
    r = run(markets, seed=3)
    for name in [
        "searches",
        "impressions",
        "clicks",
        "spend",
        "orders",
        "sales",
        "organic_sales",
        "incremental_orders",
        "incremental_sales",
        "avg_position",
        "impression_share",
    ]:
        assert getattr(r, name).shape == (10, 12), name
    assert r.budget_exhausted_at.shape == (10, 3)
    assert np.all(np.isnan(r.budget_exhausted_at))  # budgets far above spend
    assert np.all(r.clicks <= r.impressions) and np.all(r.impressions <= r.searches)
    assert np.all(r.orders <= r.clicks) and np.all(r.incremental_orders <= r.orders)
    assert np.allclose(r.sales, r.orders * 30.0)
    shown = r.impressions > 0
    assert np.all((r.avg_position[shown] >= 1) & (r.avg_position[shown] <= 4))
    assert np.all(np.isnan(r.avg_position[~shown]))


@pytest.mark.parametrize(
    ("bid", "overrides", "bid_mult", "count_mult"),
    [
        (1.0, {}, 1.0, 1.0),
        (0.6, {"reserve": 0.0, "n_slots": 2, "quality": 0.9}, 1.0, 1.0),
        (1.4, {"n_rivals": 6.0, "rival_bid_sigma": 0.8}, 1.3, 1.5),  # an event: stronger, more rivals
    ],
)
def test_analytic_slot_and_price_model_matches_explicitly_cleared_gsp_auctions(
    bid: float, overrides: dict[str, object], bid_mult: float, count_mult: float
) -> None:
    """The closed-form slot and price distribution equals clearing the auctions one by one with the
    core: Poisson rivals, lognormal bids, Beta qualities, GSP with reserve and position CTR."""
    market = make_market(3, **overrides)
    terms = auction_terms(
        market_arrays([market]), np.array([0]), np.array([bid]), np.array([bid_mult]), np.array([count_mult])
    )
    rng, n, width = np.random.default_rng(0), 200_000, 30
    count = rng.poisson(market.n_rivals * count_mult, n)
    rival_bids = rng.lognormal(market.rival_bid_mu + np.log(bid_mult), market.rival_bid_sigma, (n, width))
    rival_bids[np.arange(width)[None, :] >= count[:, None]] = 0.0  # absent rivals
    rival_q = rng.beta(market.rival_quality_a, market.rival_quality_b, (n, width))
    alpha = market.ctr_top * market.position_decay ** np.arange(market.n_slots)
    res = clear_auctions(
        np.column_stack([np.full(n, bid), rival_bids]),
        np.column_stack([np.full(n, market.quality), rival_q]),
        mechanism="gsp",
        n_slots=market.n_slots,
        reserve=market.reserve,
        position_ctr=alpha,
    )
    slot = res.slot_of[:, 0]
    shown = slot >= 0
    assert (
        abs(shown.mean() - terms.p_impression[0]) < 4 * np.sqrt(shown.mean() * (1 - shown.mean()) / n) + 1e-4
    )
    clicks = np.where(shown, alpha[np.maximum(slot, 0)], 0.0)
    assert abs(clicks.mean() - terms.click_rate[0]) < 4 * clicks.std() / np.sqrt(n)
    assert (slot[shown] + 1).mean() == pytest.approx(terms.mean_position[0], abs=0.01)
    price = res.price[np.flatnonzero(shown), slot[shown]]
    # quadrature over rival quality and the price grid: within 1% of the exact mean price
    assert price.mean() == pytest.approx(terms.mean_price[0], rel=0.01)
    grid = (
        terms.price_low[0]
        + (terms.price_high[0] - terms.price_low[0]) * np.arange(N_PRICE_GRID + 1) / N_PRICE_GRID
    )
    empirical_cdf = (price[:, None] <= grid[None, :] + 1e-12).mean(axis=0)
    assert np.max(np.abs(empirical_cdf - terms.price_cdf[0])) < 0.01


def test_zero_bid_or_bid_below_reserve_never_shows(markets: list[KeywordMarket]) -> None:
    for bid in (0.0, 0.05):  # reserve is 0.1
        for expected in (True, False):
            r = run(markets, bid=bid, seed=1, expected=expected)
            assert r.impressions.sum() == 0 and r.spend.sum() == 0 and r.orders.sum() == 0
            assert np.all(np.isnan(r.avg_position))
            assert r.organic_sales.sum() > 0  # organic sales go on without ads


def test_higher_bid_buys_more_in_expectation(markets: list[KeywordMarket]) -> None:
    low, high = run(markets, bid=0.5, seed=0, expected=True), run(markets, bid=1.5, seed=0, expected=True)
    assert np.all(high.impressions >= low.impressions) and np.all(high.clicks >= low.clicks)
    assert np.all(high.spend / high.clicks >= low.spend / low.clicks)  # higher CPC
    assert np.all(high.avg_position <= low.avg_position)
    # cannibalization: incremental is 70% of attributed, and organic sales shrink when ads sell more
    assert np.allclose(high.incremental_orders, 0.7 * high.orders)
    assert np.all(high.organic_sales < low.organic_sales)


def test_expected_and_sampled_agree_within_monte_carlo_error(markets: list[KeywordMarket]) -> None:
    m = market_arrays(markets)
    n_rep, k = 400, m.size
    days = np.full(n_rep, 5)
    bids = np.full((n_rep, k), 1.0)
    camp = np.zeros(k, dtype=np.int64)
    budgets = np.full((n_rep, 1), 1e6)
    exp = simulate_rows(m, bids, camp, budgets, days, 11, expected=True)
    smp = simulate_rows(m, bids, camp, budgets, days, 11, expected=False, replicate=np.arange(n_rep))
    for name in [
        "searches",
        "impressions",
        "clicks",
        "spend",
        "orders",
        "incremental_orders",
        "organic_sales",
    ]:
        e = getattr(exp, name).sum(axis=1)[0]
        s = getattr(smp, name).sum(axis=1)
        se = s.std(ddof=1) / np.sqrt(n_rep)
        assert abs(s.mean() - e) < 4 * se + 1e-9, (name, s.mean(), e, se)


def test_sampled_pacing_matches_expected_share_roughly(markets: list[KeywordMarket]) -> None:
    free = run(markets, seed=2, expected=True)
    budget = 0.5 * free.spend[:, 0::3].sum(axis=1).min()
    exp = run(markets, seed=2, expected=True, budgets=[budget, 1e6, 1e6])
    smp = run(markets, seed=2, expected=False, budgets=[budget, 1e6, 1e6])
    assert np.allclose(exp.spend[:, 0::3].sum(axis=1), budget)
    assert np.all(smp.spend[:, 0::3].sum(axis=1) <= budget + 1e-9)
    assert np.all(smp.spend[:, 0::3].sum(axis=1) > 0.9 * budget)  # a click costs far less than the budget
    gap = exp.budget_exhausted_at[:, 0] - smp.budget_exhausted_at[:, 0]  # sampling noise of ~50 clicks a day
    assert np.all(np.abs(gap) < 0.25) and abs(gap.mean()) < 0.05
    assert np.all(np.isnan(smp.budget_exhausted_at[:, 1:]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    budgets=st.lists(st.floats(0.0, 300.0), min_size=3, max_size=3),
    bid=st.floats(0.0, 5.0),
    seed=st.integers(0, 2**31),
    expected=st.booleans(),
)
def test_pacing_never_overspends(
    markets: list[KeywordMarket], budgets: list[float], bid: float, seed: int, expected: bool
) -> None:
    r = run(markets, bid=bid, budgets=budgets, seed=seed, expected=expected, n_days=3)
    for c, budget in enumerate(budgets):
        spent = r.spend[:, c::3].sum(axis=1)
        assert np.all(spent <= budget * (1 + 1e-12) + 1e-9)
        hit = ~np.isnan(r.budget_exhausted_at[:, c])
        assert np.all(r.budget_exhausted_at[hit, c] >= 0) and np.all(r.budget_exhausted_at[hit, c] <= 1)
        if budget == 0:
            assert r.impressions[:, c::3].sum() == 0


def test_common_random_numbers(markets: list[KeywordMarket]) -> None:
    a = run(markets, seed=9, budgets=[40.0, 1e6, 1e6])
    b = run(markets, seed=9, budgets=[40.0, 1e6, 1e6])
    c = run(markets, seed=9, budgets=[80.0, 1e6, 1e6])
    other = run(markets, seed=10, budgets=[40.0, 1e6, 1e6])
    assert np.array_equal(a.spend, b.spend) and np.array_equal(a.orders, b.orders)  # zero change, zero diff
    # a budget change moves only its own campaign's keywords
    assert np.array_equal(a.clicks[:, 1::3], c.clicks[:, 1::3])
    assert not np.array_equal(a.clicks[:, 0::3], c.clicks[:, 0::3])
    assert np.all(c.clicks[:, 0::3] >= a.clicks[:, 0::3])  # more budget, never fewer clicks (coupled draws)
    assert not np.array_equal(a.clicks, other.clicks)
    # a keyword's outcome does not depend on the other keywords in the call (no binding budget)
    sub = run(markets[4:6], seed=9, budgets=[1e6, 1e6, 1e6])
    full = run(markets, seed=9)
    assert np.array_equal(sub.clicks, full.clicks[:, 4:6]) and np.array_equal(sub.spend, full.spend[:, 4:6])


def test_events_raise_demand_and_competition() -> None:
    calm = make_market(1, weekly_amp=0.0, yearly_amp=0.0)
    busy = make_market(
        1,
        weekly_amp=0.0,
        yearly_amp=0.0,
        events=[MarketEvent(start=3, end=4, demand_mult=2.0, rival_bid_mult=1.5)],
    )
    r0, r1 = (
        simulate_days(
            market_arrays([mk]),
            np.array([1.0]),
            np.array([0]),
            np.array([1e6]),
            np.arange(7),
            seed=0,
            expected=True,
        )
        for mk in (calm, busy)
    )
    assert np.allclose(r1.searches[3:5], 2 * r0.searches[3:5]) and np.allclose(
        r1.searches[5:], r0.searches[5:]
    )
    # stronger rivals: lower position, and a lower impression share
    assert np.all(r1.avg_position[3:5] > r0.avg_position[3:5])
    assert np.all(r1.impression_share[3:5] < r0.impression_share[3:5])


def test_traffic_profile_round_trips() -> None:
    t = np.linspace(0, 1, 101)
    assert np.allclose(time_of_traffic_share(traffic_share_before(t)), t)
    assert traffic_share_before(0.5) > 0.3  # afternoon-heavy but not extreme


def test_poisson_ppf_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    u = rng.random(3000)
    mean = np.concatenate([rng.random(1000) * 5, rng.random(1000) * 60, rng.random(1000) * 5000])
    assert np.array_equal(rnd.poisson_ppf(u, mean), stats.poisson.ppf(u, mean).astype(np.int64))
    assert np.all(rnd.poisson_ppf(u, np.zeros(3000)) == 0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bids": np.full(12, -1.0)}, "bids"),
        ({"bids": np.full(12, np.nan)}, "bids"),
        ({"bids": np.ones(5)}, "bids"),
        ({"budgets": np.array([1.0, np.nan, 1.0])}, "budgets"),
        ({"budgets": np.array([-5.0, 1.0, 1.0])}, "budgets"),
        ({"campaign_of": np.arange(12)}, "campaign_of"),
        ({"campaign_of": np.zeros(3)}, "campaign_of"),
        ({"days": np.array([], dtype=int)}, "days"),
        ({"days": np.array([-1, 0])}, "days"),
        ({"days": np.arange(5_000_000)}, "days"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input_names_the_field(
    markets: list[KeywordMarket], change: dict[str, object], field: str
) -> None:
    args: dict[str, object] = dict(
        markets=market_arrays(markets),
        bids=np.ones(12),
        campaign_of=np.arange(12) % 3,
        budgets=np.ones(3),
        days=np.arange(3),
        seed=0,
    )
    args.update(change)
    with pytest.raises(InvalidInputError) as err:
        simulate_days(**args)  # type: ignore[arg-type]
    assert err.value.field == field and err.value.allowed


def test_market_arrays_rejects_empty_and_duplicates(markets: list[KeywordMarket]) -> None:
    with pytest.raises(InvalidInputError):
        market_arrays([])
    with pytest.raises(InvalidInputError, match="twice"):
        market_arrays([markets[0], markets[0]])
    m = market_arrays(markets)
    sub = m.take([3, 1])
    assert sub.keyword_ids == (markets[3].keyword_id, markets[1].keyword_id)
    assert sub.base_volume[0] == markets[3].base_volume


def test_counter_based_uniforms_are_uniform_and_streams_independent() -> None:
    keys = rnd.row_keys(5, np.zeros(2000, dtype=np.int64), np.arange(2000), rnd.stable_keys(["kw_a"])[0])
    index = np.arange(50)
    a = rnd.uniforms(np.repeat(keys, 50), 1, np.tile(index, 2000))
    b = rnd.uniforms(np.repeat(keys, 50), 2, np.tile(index, 2000))
    assert stats.kstest(a, "uniform").pvalue > 1e-3 and stats.kstest(b, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01 and abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.01
    assert np.all((a > 0) & (a < 1)) and np.unique(a).size == a.size
