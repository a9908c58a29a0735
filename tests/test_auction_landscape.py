"""Bid landscapes, what-if with common random numbers, optimal bids."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_auction_simulate import make_market
from tools.auction.landscape import BidGoal, bid_landscape, optimal_bid, what_if
from tools.errors import InvalidInputError
from tools.market.data_model import KeywordMarket

DAYS = list(range(120, 134))


@pytest.fixture(scope="module")
def markets() -> list[KeywordMarket]:
    return [make_market(i) for i in range(3)]


def test_landscape_is_monotone_with_intervals(markets: list[KeywordMarket]) -> None:
    land = bid_landscape(markets[:1], [0.3, 0.6, 1.0, 1.5, 2.5], DAYS, margin=0.4, n_sims=60, seed=1)
    clicks = [p.clicks.mean for p in land.points]
    cpc = [p.spend.mean / p.clicks.mean for p in land.points]
    assert np.all(np.diff(clicks) > 0) and np.all(np.diff(cpc) > 0)
    for p in land.points:
        for est in (p.impressions, p.clicks, p.spend, p.sales, p.incremental_profit):
            assert est.low <= est.mean <= est.high
        assert p.incremental_sales.mean < p.sales.mean  # cannibalization
        assert p.incremental_profit.mean == pytest.approx(0.4 * p.incremental_sales.mean - p.spend.mean)
    assert land.model_dump()["points"][0]["bid"] == 0.3  # serializable result


def test_landscape_expected_mode_is_exact_and_sampled_agrees(markets: list[KeywordMarket]) -> None:
    exp = bid_landscape(markets[:1], [0.8], DAYS, margin=0.4, n_sims=0)
    smp = bid_landscape(markets[:1], [0.8], DAYS, margin=0.4, n_sims=200, seed=3, level=0.99)
    e, s = exp.points[0], smp.points[0]
    assert e.clicks.low == e.clicks.mean == e.clicks.high
    assert s.clicks.low < e.clicks.mean < s.clicks.high
    assert s.clicks.mean == pytest.approx(e.clicks.mean, rel=0.03)
    assert s.spend.mean == pytest.approx(e.spend.mean, rel=0.03)


def test_what_if_of_no_change_is_exactly_zero(markets: list[KeywordMarket]) -> None:
    for n_sims in (0, 50):
        w = what_if(
            markets,
            [0, 0, 1],
            [1.0, 1.0, 1.0],
            [6.0, 100.0],
            DAYS,
            new_bids=[1.0, 1.0, 1.0],
            margin=0.4,
            n_sims=n_sims,
        )
        for name in (
            "impressions",
            "clicks",
            "spend",
            "orders",
            "sales",
            "incremental_sales",
            "incremental_profit",
        ):
            est = getattr(w.difference, name)
            assert est.mean == est.low == est.high == 0.0, name


def test_what_if_uses_common_random_numbers(markets: list[KeywordMarket]) -> None:
    args = dict(
        campaign_of=[0, 0, 1], bids=[1.0, 1.0, 1.0], budgets=[6.0, 100.0], days=DAYS, margin=0.4, n_sims=100
    )
    w = what_if(markets, new_budgets=[9.0, 100.0], **args)  # type: ignore[arg-type]
    assert w.difference.spend.mean == pytest.approx(w.changed.spend.mean - w.status_quo.spend.mean)
    assert w.difference.spend.low > 0  # more budget on a budget-bound campaign: surely more spend
    assert w.difference.spend.mean < 3.0 * len(DAYS) + 1e-9  # never more than the budget added
    # without CRN (a different seed for the second arm) the difference is much noisier
    other = what_if(markets, new_budgets=[9.0, 100.0], seed=1, **args)  # type: ignore[arg-type]
    crn_width = w.difference.spend.high - w.difference.spend.low
    spread = np.hypot(
        w.status_quo.spend.high - w.status_quo.spend.low, other.changed.spend.high - other.changed.spend.low
    )
    assert crn_width < 0.5 * spread


def test_optimal_bid_for_profit_matches_a_fine_grid(markets: list[KeywordMarket]) -> None:
    best = optimal_bid(markets[:1], BidGoal.MAX_PROFIT, DAYS, margin=0.5, current_bid=2.0, n_sims=20)
    assert best.feasible and best.bid > 0
    grid = np.linspace(0.05, 4.0, 200)
    land = bid_landscape(markets[:1], grid, DAYS, margin=0.5, n_sims=0)
    profits = np.array([p.incremental_profit.mean for p in land.points])
    at_best = (
        bid_landscape(markets[:1], [best.bid], DAYS, margin=0.5, n_sims=0).points[0].incremental_profit.mean
    )
    assert at_best >= profits.max() * (1 - 1e-3)
    assert abs(best.bid - grid[profits.argmax()]) < 0.1  # a flat optimum: the profit, not the bid, must match
    assert (
        best.current is not None
        and best.current.incremental_profit.mean < best.at_bid.incremental_profit.mean
    )


@pytest.mark.parametrize(("goal", "target"), [(BidGoal.TARGET_ACOS, 0.12), (BidGoal.TARGET_ROAS, 8.0)])
def test_optimal_bid_for_a_target_is_the_highest_that_meets_it(
    markets: list[KeywordMarket], goal: BidGoal, target: float
) -> None:
    best = optimal_bid(markets[:1], goal, DAYS, margin=0.5, target=target, n_sims=0)
    assert best.feasible
    acos = best.at_bid.acos
    assert acos is not None and acos <= (target if goal is BidGoal.TARGET_ACOS else 1 / target) + 1e-9
    higher = bid_landscape(markets[:1], [best.bid * 1.05], DAYS, margin=0.5, n_sims=0).points[0]
    limit = target if goal is BidGoal.TARGET_ACOS else 1 / target
    assert higher.acos is not None and higher.acos > limit  # a little more bid breaks the target


def test_unreachable_goals_say_do_not_bid(markets: list[KeywordMarket]) -> None:
    no_acos = optimal_bid(markets[:1], "target_acos", DAYS, margin=0.5, target=0.001, n_sims=0)
    assert not no_acos.feasible and no_acos.bid == 0.0 and "target_acos" in no_acos.note
    fully_cannibalized = make_market(0, cannibalization=1.0, organic_rate=0.2)
    no_profit = optimal_bid([fully_cannibalized], "max_incremental_profit", DAYS, margin=0.5, n_sims=0)
    assert not no_profit.feasible and no_profit.bid == 0.0 and no_profit.at_bid.spend.mean == 0.0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: optimal_bid(m, "max_revenue", DAYS, margin=0.5), "goal"),
        (lambda m: optimal_bid(m, "target_acos", DAYS, margin=0.5), "target"),
        (lambda m: optimal_bid(m, "target_roas", DAYS, margin=0.5, target=-2.0), "target"),
        (lambda m: bid_landscape(m, [1.0], DAYS, margin=1.5), "margin"),
        (lambda m: bid_landscape(m, [-1.0], DAYS, margin=0.5), "bids"),
        (lambda m: bid_landscape(m, [1.0], DAYS, margin=0.5, n_sims=10**6), "n_sims"),
        (lambda m: bid_landscape(m, [1.0], [], margin=0.5), "days"),
        (lambda m: bid_landscape(m, [1.0] * 200, list(range(366)), margin=0.5, n_sims=2000), "n_sims"),
        (lambda m: bid_landscape([], [1.0], DAYS, margin=0.5), "markets"),
        (lambda m: what_if(m, [0, 0, 0], [1.0] * 3, [5.0], DAYS, new_bids=[1.0], margin=0.5), "new_bids"),
        (
            lambda m: what_if(m, [0, 0, 0], [1.0] * 3, [5.0], DAYS, new_budgets=[float("nan")], margin=0.5),
            "new_budgets",
        ),
        (lambda m: what_if(m, [0, 0, 3], [1.0] * 3, [5.0], DAYS, margin=0.5), "campaign_of"),
    ],
)
def test_bad_input_names_the_field(markets: list[KeywordMarket], call: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        call(markets)  # type: ignore[operator]
    assert err.value.field == field and err.value.allowed


def test_optimal_bid_inside_a_budget_capped_campaign(markets: list[KeywordMarket]) -> None:
    """Keyword 0 shares a tight daily budget with keywords 1 and 2: its best bid maximizes the campaign's
    profit (budget it takes from the others counts), and `gain` is the campaign's change, as what_if has it."""
    budget, others = 6.0, [1.0, 1.0]
    kw = dict(margin=0.4, budget=budget, others=markets[1:], other_bids=others, current_bid=2.0, n_sims=0)
    inside = optimal_bid(markets[:1], BidGoal.MAX_PROFIT, DAYS, **kw)  # type: ignore[arg-type]
    alone = optimal_bid(markets[:1], BidGoal.MAX_PROFIT, DAYS, margin=0.4, current_bid=2.0, n_sims=0)

    def campaign(bid: float) -> float:
        w = what_if(markets, [0, 0, 0], [bid, *others], [budget], DAYS, margin=0.4, n_sims=0)
        return w.status_quo.incremental_profit.mean

    grid = np.linspace(0.05, 4.0, 80)
    assert campaign(inside.bid) >= max(campaign(b) for b in grid) - 1e-3 * abs(campaign(inside.bid))
    assert campaign(inside.bid) > campaign(alone.bid)  # ignoring the cap picks a worse bid for the campaign
    assert inside.gain is not None and inside.gain.mean == pytest.approx(
        campaign(inside.bid) - campaign(2.0), rel=1e-9
    )
    assert alone.gain is not None and inside.current is not None
    # the points are the keyword's own figures, under the shared cap
    land = bid_landscape(
        markets[:1],
        [0.5, 3.0],
        DAYS,
        margin=0.4,
        budget=budget,
        others=markets[1:],
        other_bids=others,
        n_sims=0,
    )
    free = bid_landscape(markets[:1], [3.0], DAYS, margin=0.4, n_sims=0)
    assert land.points[1].spend.mean <= budget * len(DAYS) + 1e-9 < free.points[0].spend.mean
    with pytest.raises(InvalidInputError) as err:
        optimal_bid(markets[:1], BidGoal.MAX_PROFIT, DAYS, margin=0.4, others=markets[1:], other_bids=[1.0])
    assert err.value.field == "other_bids"
