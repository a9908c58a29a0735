"""Vectorized auction core against auction theory, plus mechanics and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tools.auction.core import clear_auctions, vcg_prices
from tools.errors import InvalidInputError
from tools.market.data_model import Mechanism

N = 200_000  # auctions per Monte Carlo check: standard error of mean revenue ~ 0.0005


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_second_price_revenue_with_uniform_values_is_n_minus_1_over_n_plus_1(n: int) -> None:
    values = np.random.default_rng(n).random((N, n))
    result = clear_auctions(values, mechanism=Mechanism.SECOND_PRICE)
    per_auction = result.cost[:, 0]
    se = per_auction.std() / np.sqrt(N)
    assert abs(per_auction.mean() - (n - 1) / (n + 1)) < 4 * se
    # the winner is the highest value and pays the second-highest
    top2 = np.sort(values, axis=1)[:, -2:]
    assert np.array_equal(result.winner[:, 0], values.argmax(axis=1))
    assert np.allclose(result.price[:, 0], top2[:, 0])


@pytest.mark.parametrize("n", [2, 4])
def test_first_price_equilibrium_bids_give_revenue_equivalence(n: int) -> None:
    values = np.random.default_rng(10 + n).random((N, n))
    first = clear_auctions(values * (n - 1) / n, mechanism=Mechanism.FIRST_PRICE).cost[:, 0]
    second = clear_auctions(values, mechanism=Mechanism.SECOND_PRICE).cost[:, 0]
    se = np.hypot(first.std(), second.std()) / np.sqrt(N)
    assert abs(first.mean() - (n - 1) / (n + 1)) < 4 * se
    assert abs(first.mean() - second.mean()) < 4 * se


def test_first_price_equilibrium_bid_is_a_best_response() -> None:
    """Against rivals bidding (n-1)/n of U(0,1) values, a bidder of value v does best bidding (n-1)/n v."""
    n, v = 3, 0.8
    rng = np.random.default_rng(5)
    rivals = rng.random((N, n - 1)) * (n - 1) / n
    shades = np.linspace(0.4, 0.95, 12)
    utility = []
    for shade in shades:
        bids = np.column_stack([np.full(N, v * shade), rivals])
        won = clear_auctions(bids, mechanism=Mechanism.FIRST_PRICE).winner[:, 0] == 0
        utility.append(((v - v * shade) * won).mean())
    best = shades[int(np.argmax(utility))]
    assert abs(best - (n - 1) / n) <= 0.06  # grid step 0.05; theory: (v - b) (3b/2)^2 peaks at b = 2v/3


def test_gsp_truthful_revenue_at_least_vcg_and_equal_with_one_slot() -> None:
    rng = np.random.default_rng(7)
    values = rng.random((N // 4, 6))
    alpha = np.array([1.0, 0.6, 0.35])
    gsp = clear_auctions(values, mechanism=Mechanism.GSP, n_slots=3, position_ctr=alpha)
    vcg = vcg_prices(gsp, None, alpha)
    assert np.all(gsp.price >= vcg - 1e-12)  # slot by slot
    assert gsp.revenue > (vcg * gsp.clicks).sum()
    one = clear_auctions(values, mechanism=Mechanism.GSP, n_slots=1)
    assert np.allclose(vcg_prices(one, None, np.ones(1)), one.price)


def test_vcg_prices_are_the_externality_computed_by_brute_force() -> None:
    rng = np.random.default_rng(8)
    values, quality = rng.random((50, 5)), rng.uniform(0.3, 1.0, (50, 5))
    alpha = np.array([1.0, 0.5, 0.2])
    res = clear_auctions(values, quality, n_slots=3, position_ctr=alpha)
    prices = vcg_prices(res, quality, alpha)

    def welfare_of_others(a: int, bids: np.ndarray, exclude: int) -> float:
        r = clear_auctions(bids[None, :], quality[a][None, :], n_slots=3, position_ctr=alpha)
        return sum(
            alpha[j] * values[a, w] * quality[a, w]
            for j, w in enumerate(r.winner[0])
            if w >= 0 and w != exclude
        )

    for a in range(50):
        for j, w in enumerate(res.winner[a]):
            without = values[a].copy()
            without[w] = 0.0  # bidder w absent
            externality = welfare_of_others(a, without, w) - welfare_of_others(a, values[a], w)
            assert prices[a, j] * alpha[j] * quality[a, w] == pytest.approx(externality, abs=1e-12)


def test_gsp_envy_free_equilibrium_revenue_equals_vcg() -> None:
    """Edelman-Ostrovsky-Schwarz: in the lowest envy-free equilibrium each bidder bids the VCG
    per-click price of the slot above it, and GSP revenue equals truthful VCG revenue."""
    rng = np.random.default_rng(9)
    values = -np.sort(-rng.random((2000, 5)), axis=1)  # column i has the i-th highest value
    alpha = np.array([1.0, 0.7, 0.4, 0.2])
    truthful = clear_auctions(values, n_slots=4, position_ctr=alpha)
    vcg = vcg_prices(truthful, None, alpha)
    eq_bids = values.copy()
    eq_bids[:, 1:] = vcg  # the bidder ranked i+1 bids the VCG price of slot i
    eq = clear_auctions(eq_bids, n_slots=4, position_ctr=alpha)
    assert np.array_equal(eq.winner, truthful.winner)  # same efficient allocation
    assert np.allclose(eq.price, vcg)
    assert eq.revenue == pytest.approx((vcg * alpha).sum())


def test_ranking_with_quality_and_pricing_rule() -> None:
    bids = np.array([[2.0, 1.0, 3.0, 0.5]])
    quality = np.array([[0.5, 1.0, 0.5, 0.8]])  # scores 1.0, 1.0, 1.5, 0.4
    r = clear_auctions(bids, quality, mechanism="gsp", n_slots=3, reserve=0.1)
    assert r.winner.tolist() == [[2, 0, 1]]  # tie 1.0 vs 1.0 goes to the lower index (0)
    assert np.allclose(r.price, [[1.0 / 0.5, 1.0 / 0.5, 0.4 / 1.0]])
    assert r.slot_of.tolist() == [[1, 2, 0, -1]]
    assert np.allclose(r.ranked_scores, [[1.5, 1.0, 1.0, 0.4]])
    first = clear_auctions(bids, quality, mechanism="first_price", n_slots=3)
    assert np.allclose(first.price, [[3.0, 2.0, 1.0]])


def test_reserve_fewer_bidders_than_slots_and_exact_ties() -> None:
    bids = np.array([[0.05, 0.3, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    r = clear_auctions(bids, mechanism="gsp", n_slots=3, reserve=0.1)
    assert r.winner.tolist() == [[1, -1, -1], [0, 1, 2], [-1, -1, -1]]
    assert np.allclose(
        r.price, np.array([[0.1, 0, 0], [1.0, 1.0, 0.1], [0, 0, 0]])
    )  # lone bidder pays the reserve
    assert r.revenue == pytest.approx(0.1 + 2.1)
    per_row_reserve = clear_auctions(bids, n_slots=1, reserve=np.array([0.5, 0.0, 0.0]))
    assert per_row_reserve.winner[:, 0].tolist() == [-1, 0, -1]
    # permuting tied bidders never changes who wins: always the lowest index
    for perm in itertools.permutations(range(3)):
        tied = np.array([[1.0, 1.0, 1.0]])[:, perm]
        assert clear_auctions(tied, n_slots=1).winner[0, 0] == 0


def test_expected_and_sampled_clicks_agree() -> None:
    rng = np.random.default_rng(3)
    bids = rng.random((N, 4))
    ctr, cvr = rng.uniform(0.05, 0.3, (N, 4)), rng.uniform(0.1, 0.5, (N, 4))
    alpha = np.array([1.0, 0.5])
    exp = clear_auctions(bids, n_slots=2, position_ctr=alpha, ctr=ctr, cvr=cvr)
    smp = clear_auctions(bids, n_slots=2, position_ctr=alpha, ctr=ctr, cvr=cvr, rng=np.random.default_rng(4))
    for name in ("clicks", "conversions", "cost"):
        e, s = getattr(exp, name).sum(axis=1), getattr(smp, name).sum(axis=1)
        assert abs(s.mean() - e.mean()) < 4 * s.std() / np.sqrt(N), name
    assert set(np.unique(smp.clicks)) <= {0.0, 1.0}
    assert np.all(smp.conversions <= smp.clicks)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bids": np.array([[1.0, -0.5]])}, "bids"),
        ({"bids": np.array([[1.0, np.nan]])}, "bids"),
        ({"bids": np.ones(3)}, "bids"),
        ({"quality": np.ones((1, 3))}, "quality"),
        ({"quality": np.array([[1.0, 0.0]])}, "quality"),
        ({"mechanism": "vickrey_dutch"}, "mechanism"),
        ({"n_slots": 0}, "n_slots"),
        ({"n_slots": 2, "mechanism": "second_price"}, "n_slots"),
        ({"reserve": -1.0}, "reserve"),
        ({"reserve": np.ones(5)}, "reserve"),
        ({"n_slots": 2, "position_ctr": np.ones(3)}, "position_ctr"),
        ({"ctr": np.full((1, 2), 1.5)}, "ctr"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"bids": np.array([[1.0, 0.5]])}
    args.update(kwargs)
    bids = args.pop("bids")
    with pytest.raises(InvalidInputError) as err:
        clear_auctions(bids, **args)  # type: ignore[arg-type]
    assert err.value.field == field and err.value.allowed


def test_absurd_size_is_refused_before_any_work() -> None:
    huge = np.broadcast_to(np.ones(1), (300_000_000, 1))  # a view: no memory used
    with pytest.raises(InvalidInputError, match="too large"):
        clear_auctions(huge)
