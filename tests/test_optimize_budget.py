"""Budget allocation: against brute force over a grid, bounds, saturation, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.test_auction_simulate import make_market
from tools.auction.simulate import market_arrays, simulate_days
from tools.errors import InvalidInputError
from tools.market.data_model import KeywordMarket
from tools.optimize.budget import CampaignInput, CampaignLimit, Objective, allocate_budget
from tools.optimize.models import Decision

DAYS = list(range(120, 134))


def campaigns() -> list[CampaignInput]:
    out = [
        CampaignInput(
            campaign_id=f"cmp_{c}",
            markets=[make_market(10 * c + i, ctr_top=0.03 + 0.01 * c) for i in range(3)],
            bids=[0.6 + 0.3 * c] * 3,
            margin=0.35,
            current_budget=8.0,
        )
        for c in range(3)
    ]
    return out


def objective_by_brute_force(
    camps: list[CampaignInput], budget_rows: np.ndarray, objective: Objective
) -> np.ndarray:
    """The objective of each row of daily budgets [P, C], straight from simulate_days."""
    markets = [mk for c in camps for mk in c.markets]
    m = market_arrays(markets)
    campaign_of = np.repeat(np.arange(len(camps)), [len(c.markets) for c in camps])
    bids = np.concatenate([c.bids for c in camps])
    margin = np.array([c.margin for c in camps])[campaign_of]
    out = []
    for row in budget_rows:
        r = simulate_days(m, bids, campaign_of, row, np.array(DAYS), seed=0, expected=True)
        value = (
            r.incremental_sales * margin - r.spend
            if objective is Objective.INCREMENTAL_PROFIT
            else r.incremental_sales
        )
        out.append(value.sum())
    return np.array(out)


@pytest.mark.parametrize("objective", list(Objective))
def test_within_one_percent_of_brute_force(objective: Objective) -> None:
    camps = campaigns()
    total = 30.0
    alloc = allocate_budget(camps, total, DAYS, objective=objective, resolution=60)
    steps = np.linspace(0, total, 41)
    rows = np.array(
        [(a, b, total - a - b) for a, b in itertools.product(steps, steps) if a + b <= total + 1e-9]
    )
    brute = objective_by_brute_force(camps, rows, objective)
    assert alloc.objective_value >= brute.max() - 0.01 * abs(brute.max())
    assert alloc.allocated <= total + 1e-9
    chosen = objective_by_brute_force(camps, np.array([[c.budget for c in alloc.campaigns]]), objective)[0]
    assert chosen == pytest.approx(alloc.objective_value)  # the reported value is the simulator's
    assert alloc.total_budget_binds and any(c.limit is CampaignLimit.TOTAL_BUDGET for c in alloc.campaigns)
    assert alloc.current_value is not None and alloc.objective_value >= alloc.current_value


def test_a_large_total_saturates_campaigns_and_does_not_bind() -> None:
    camps = campaigns()
    alloc = allocate_budget(camps, 10_000.0, DAYS, objective="incremental_sales")
    assert not alloc.total_budget_binds and alloc.allocated < 10_000.0
    for c in alloc.campaigns:
        assert c.limit is CampaignLimit.SATURATED and c.budget == pytest.approx(c.saturation_budget)
        assert c.marginal_value == 0.0
    assert "does not bind" in alloc.binding[0]


def test_unprofitable_campaign_gets_nothing_and_bounds_are_respected() -> None:
    camps = campaigns()
    camps[0] = camps[0].model_copy(
        update={"markets": [make_market(90 + i, cannibalization=1.0, organic_rate=0.2) for i in range(3)]}
    )
    alloc = allocate_budget(camps, 40.0, DAYS)
    first = alloc.campaigns[0]
    assert first.budget == 0.0 and first.limit is CampaignLimit.UNPROFITABLE and first.marginal_value < 0
    # force a floor on the loser and a cap on the best: both bind
    camps[0] = camps[0].model_copy(update={"min_budget": 5.0})
    best = max(range(1, 3), key=lambda i: alloc.campaigns[i].budget)
    camps[best] = camps[best].model_copy(update={"max_budget": 4.0})
    bounded = allocate_budget(camps, 40.0, DAYS)
    assert (
        bounded.campaigns[0].budget == pytest.approx(5.0)
        and bounded.campaigns[0].limit is CampaignLimit.MIN_BUDGET
    )
    assert bounded.campaigns[best].budget == pytest.approx(4.0)
    assert bounded.campaigns[best].limit is CampaignLimit.MAX_BUDGET
    assert any("max_budget" in line for line in bounded.binding)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total_budget": -1.0}, "total_budget"),
        ({"total_budget": float("nan")}, "total_budget"),
        ({"total_budget": 1.0, "min": 5.0}, "total_budget"),
        ({"objective": "revenue"}, "objective"),
        ({"resolution": 1}, "resolution"),
        ({"days": []}, "days"),
        ({"bids": [1.0]}, "bids"),
        ({"bids": [1.0, -1.0, 1.0]}, "bids"),
        ({"max": 1.0, "min": 2.0}, "max_budget"),
    ],
)
def test_bad_input_names_the_field(change: dict[str, object], field: str) -> None:
    camps = campaigns()
    if "bids" in change:
        camps[0] = camps[0].model_copy(update={"bids": change.pop("bids")})
    if "min" in change or "max" in change:
        camps[0] = camps[0].model_copy(
            update={"min_budget": change.pop("min", 0.0), "max_budget": change.pop("max", None)}
        )
    kwargs: dict[str, object] = {"total_budget": 30.0, "days": DAYS} | change
    with pytest.raises(InvalidInputError) as err:
        allocate_budget(camps, **kwargs)  # type: ignore[arg-type]
    assert err.value.field == field and err.value.allowed


def test_absurd_size_is_refused() -> None:
    big = [
        CampaignInput(
            campaign_id=f"c{c}",
            markets=[make_market(100 * c + i) for i in range(40)],
            bids=[1.0] * 40,
            margin=0.3,
        )
        for c in range(3)
    ]
    with pytest.raises(InvalidInputError, match="simulated keyword-days") as err:
        allocate_budget(big, 100.0, list(range(366)), resolution=1000)
    assert err.value.field == "resolution"


def test_each_campaign_alone_raises_a_capped_profitable_campaign_to_its_best_budget() -> None:
    """A reallocation of today's total can only reshuffle; best_budget/best_gain say how much more budget a
    capped campaign should get, and match brute force on that campaign's own curve."""
    camps = campaigns()
    total = sum(c.current_budget or 0.0 for c in camps)
    alloc = allocate_budget(camps, total, DAYS)
    assert alloc.allocated <= total + 1e-9
    capped = [c for c in alloc.campaigns if c.saturation_budget > 1.5 * (c.current_budget or 0.0)]
    assert capped, "the fixture's campaigns are budget-capped at 8 a day"
    for i, c in enumerate(alloc.campaigns):
        grid = np.linspace(0.0, c.saturation_budget, 201)
        rows = np.tile([x.current_budget or 0.0 for x in camps], (grid.size + 2, 1))
        rows[:-2, i] = grid
        rows[-2, i] = c.best_budget
        brute = objective_by_brute_force(camps, rows, Objective.INCREMENTAL_PROFIT)
        now = objective_by_brute_force(camps, rows[-1:], Objective.INCREMENTAL_PROFIT)[0]
        assert c.best_gain == pytest.approx(brute[-2] - now, rel=1e-6, abs=1e-6)  # the simulator's own figure
        assert brute[-2] >= brute[:-2].max() - 0.005 * abs(brute[:-2].max())  # as good as a fine grid
        assert c.best_budget <= c.saturation_budget + 1e-9
    best = max(alloc.campaigns, key=lambda c: c.best_gain or 0.0)
    if (best.best_gain or 0.0) > 0 and best in capped:
        assert best.best_budget > (best.current_budget or 0.0)  # the raise the total alone would not give


def test_keyword_margins_override_the_campaign_margin() -> None:
    base = campaigns()[:1]
    same = allocate_budget(base, 8.0, DAYS)
    per_kw = allocate_budget([base[0].model_copy(update={"keyword_margins": [0.35] * 3})], 8.0, DAYS)
    assert per_kw.objective_value == pytest.approx(same.objective_value)
    richer = allocate_budget([base[0].model_copy(update={"keyword_margins": [0.35, 0.35, 0.7]})], 8.0, DAYS)
    assert richer.campaigns[0].best_gain is not None and richer.objective_value > same.objective_value
    with pytest.raises(InvalidInputError) as err:
        allocate_budget([base[0].model_copy(update={"keyword_margins": [0.3]})], 8.0, DAYS)
    assert err.value.field == "keyword_margins"


def _draws_with(camps: list[CampaignInput], n: int, **overrides: object) -> list[list[list[KeywordMarket]]]:
    """n posterior draws equal to the point estimate but for `overrides` on every keyword."""
    return [[[m.model_copy(update=overrides) for m in c.markets] for c in camps] for _ in range(n)]


def test_draws_that_agree_with_the_point_estimate_change_nothing() -> None:
    camps = campaigns()
    total = sum(c.current_budget or 0.0 for c in camps)
    plain = allocate_budget(camps, total, DAYS)
    sure = allocate_budget(camps, total, DAYS, draws=_draws_with(camps, 10))
    for a, b in zip(plain.campaigns, sure.campaigns, strict=True):
        assert a.best_gain_low is None and a.point_best_budget is None and not a.held_for_uncertainty
        assert b.point_best_budget == pytest.approx(a.best_budget)
        assert b.best_gain == pytest.approx(a.best_gain)
        # a move that gains nothing (a saturated campaign's cut to its saturation) may stay at today's budget
        assert b.best_budget == pytest.approx(a.best_budget if (a.best_gain or 0.0) > 0 else b.best_budget)
        assert b.best_gain_low == pytest.approx(a.best_gain, abs=1e-6)
        assert b.best_gain_high == pytest.approx(a.best_gain, abs=1e-6)
        assert not b.held_for_uncertainty


def test_a_move_whose_range_includes_a_loss_is_held_back_by_the_safe_decision() -> None:
    """Where a quarter of the model's draws say the ads' sales would have happened anyway, raising a capped
    campaign loses money in those draws: its 90% range includes a loss, so the safe decision keeps today's
    budget (doing nothing) rather than the point estimate's raise, and says so."""
    camps = campaigns()
    total = sum(c.current_budget or 0.0 for c in camps)
    point = allocate_budget(camps, total, DAYS)
    raised = [
        c for c in point.campaigns if (c.best_gain or 0.0) > 1.0 and c.best_budget > (c.current_budget or 0.0)
    ]
    assert raised, "the fixture has a capped campaign whose raise pays on the point estimate"
    draws = _draws_with(camps, 9) + _draws_with(camps, 3, cannibalization=1.0)
    robust = allocate_budget(camps, total, DAYS, draws=draws, decision=Decision.SAFE)
    for c in robust.campaigns:
        p = next(x for x in point.campaigns if x.campaign_id == c.campaign_id)
        assert c.point_best_budget == pytest.approx(p.best_budget)
        assert c.best_gain_low is not None and c.best_gain_low >= 0.0  # what is proposed never risks a loss
    held = [c for c in robust.campaigns if c.campaign_id in {r.campaign_id for r in raised}]
    for c in held:
        assert c.held_for_uncertainty
        assert c.best_budget == pytest.approx(c.current_budget) and c.best_gain == 0.0
        assert (c.point_best_gain or 0.0) > 1.0
        assert any(
            line.startswith(f"{c.campaign_id}:") and "doing nothing" in line for line in robust.binding
        )
    # the reallocation of the total itself is unchanged (the draws only bound the moves proposed alone)
    assert [c.budget for c in robust.campaigns] == pytest.approx([c.budget for c in point.campaigns])


def test_the_expected_gain_decision_weighs_the_draws_gains_and_losses() -> None:
    """The default decision takes each campaign's budget with the most gain on average over the draws: where
    a quarter of them say the ads' sales would have happened anyway, a raise that pays in the other three
    quarters is still proposed (at the budget that gains most on average, its loss probability said), and
    where three quarters say so, no raise gains on average (today's budget is kept, or cut)."""
    camps = campaigns()
    total = sum(c.current_budget or 0.0 for c in camps)
    point = allocate_budget(camps, total, DAYS)
    raised = {
        c.campaign_id
        for c in point.campaigns
        if (c.best_gain or 0.0) > 1.0 and c.best_budget > (c.current_budget or 0.0)
    }
    assert raised
    mostly_sure = allocate_budget(
        camps, total, DAYS, draws=_draws_with(camps, 9) + _draws_with(camps, 3, cannibalization=1.0)
    )
    for c in mostly_sure.campaigns:
        if c.campaign_id not in raised:
            continue
        assert not c.held_for_uncertainty and c.best_budget > (c.current_budget or 0.0)
        assert c.loss_probability == pytest.approx(0.25)
        # the mean over the draws: 3/4 of the move's gain on the point estimate, less 1/4 of its cost
        assert c.best_gain is not None and 0.0 < c.best_gain < (c.point_best_gain or 0.0)
        assert c.best_gain_low is not None and c.best_gain_low < 0.0  # its range includes the loss, said
    mostly_lost = allocate_budget(
        camps, total, DAYS, draws=_draws_with(camps, 3) + _draws_with(camps, 9, cannibalization=1.0)
    )
    for c in mostly_lost.campaigns:
        if c.campaign_id in raised:
            # no raise gains on average: today's budget, or a cut that saves what the ads mostly waste
            assert c.best_budget <= (c.current_budget or 0.0) + 1e-9
            assert c.loss_probability is not None and c.loss_probability <= 0.25 + 1e-9
            assert any(
                line.startswith(f"{c.campaign_id}:") and "on average" in line for line in mostly_lost.binding
            )


def test_draws_must_match_the_campaigns() -> None:
    camps = campaigns()
    bad = _draws_with(camps, 2)
    bad[1] = bad[1][:2]
    with pytest.raises(InvalidInputError) as err:
        allocate_budget(camps, 24.0, DAYS, draws=bad)
    assert err.value.field == "draws"
