"""Bid landscapes, what-if of a change, and the optimal bid for a goal, on top of the day simulator.

All three simulate future days with ``tools.auction.simulate``:

* Monte Carlo estimates are totals over the days and keywords, as a mean and an equal-tailed
  interval over ``n_sims`` independent replicates of those days (``n_sims=0``: exact expected values,
  interval collapsed to the mean).
* Common random numbers: every bid of a landscape and both arms of a what-if use the same replicates
  (the same uniforms), so curves are smooth and a difference measures the change, not the noise; a
  zero change gives exactly zero difference.
* ``incremental_profit = incremental_sales x margin - spend`` (margin = gross margin of the product);
  ACoS = spend / ad-attributed sales and ROAS = its inverse, as ad consoles report them.
* A keyword runs inside its campaign: ``others`` are the campaign's other keywords, at their own fixed
  ``other_bids``, sharing the daily ``budget`` with it. A higher bid on a budget-capped campaign takes
  budget from those keywords, so ``optimal_bid`` maximizes the profit of all of them together and reports
  the campaign's ``gain``; figures of points stay the keyword's own.

The pydantic models here are the results the MCP tools return.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tools.auction.params import KeywordMarket
from tools.auction.simulate import (
    MAX_BID,
    MAX_BUDGET,
    DaySimResult,
    market_arrays,
    simulate_rows,
    validate_inputs,
)
from tools.errors import InvalidInputError

MAX_SIMS = 2000
MAX_GRID = 200
MAX_DAYS = 366
MAX_ROWS = 20_000_000  # keyword-days simulated by one call (bids x sims x days x keywords)
_OPT_GRID = 96  # expected-value grid of the bid search (log-spaced), refined once around the best


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Estimate(_Result):
    """A total over the simulated days: Monte Carlo mean and equal-tailed interval."""

    mean: float
    low: float
    high: float


class Outcome(_Result):
    """What a setting yields over the simulated days (totals over its keywords)."""

    impressions: Estimate
    clicks: Estimate
    spend: Estimate
    orders: Estimate
    sales: Estimate = Field(description="ad-attributed sales")
    incremental_sales: Estimate = Field(description="sales that would not have happened without the ads")
    incremental_profit: Estimate = Field(description="incremental_sales x margin - spend")
    acos: float | None = Field(description="mean spend / mean attributed sales; None without sales")
    roas: float | None = Field(description="mean attributed sales / mean spend; None without spend")


class LandscapePoint(Outcome):
    bid: float


class BidLandscape(_Result):
    keyword_ids: list[str]
    n_days: int
    n_sims: int
    level: float = Field(description="coverage of the intervals")
    budget: float | None = Field(description="daily budget shared by the keywords; None = unlimited")
    points: list[LandscapePoint]


class WhatIf(_Result):
    """A change (bids and/or budgets) against the status quo over the same simulated days."""

    keyword_ids: list[str]
    n_days: int
    n_sims: int
    level: float
    status_quo: Outcome
    changed: Outcome
    difference: Outcome = Field(description="changed - status quo, paired replicate by replicate (CRN)")


class BidGoal(StrEnum):
    MAX_PROFIT = "max_incremental_profit"
    TARGET_ACOS = "target_acos"
    TARGET_ROAS = "target_roas"


class OptimalBid(_Result):
    goal: BidGoal
    target: float | None
    bid: float = Field(description="0 means: do not bid (no bid meets the goal)")
    feasible: bool
    at_bid: LandscapePoint
    current: LandscapePoint | None
    gain: Estimate | None = Field(
        description="incremental profit at `bid` minus at the current bid, of every keyword sharing the budget "
        "(paired replicates); None without a current bid"
    )
    note: str


# --- helpers ----------------------------------------------------------------------------------------------


def _check(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    v = float(value)
    ok = v == v and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        allowed = f"{'>' if low_open else '>='} {low:g} and {'<' if high_open else '<='} {high:g}"
        raise InvalidInputError(f"{name} must be {allowed} (got {value!r})", field=name, allowed=allowed)
    return v


def _check_int(name: str, value: int, low: int, high: int) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or not low <= value <= high:
        allowed = f">= {low} and <= {high}"
        raise InvalidInputError(
            f"{name} must be an integer {allowed} (got {value!r})", field=name, allowed=allowed
        )
    return int(value)


def _days(days: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = (
        np.asarray(list(days), dtype=np.int64) if not isinstance(days, np.ndarray) else days.astype(np.int64)
    )
    if arr.ndim != 1 or not 1 <= arr.size <= MAX_DAYS:
        allowed = f"1 to {MAX_DAYS} day indices"
        raise InvalidInputError(f"days must hold {allowed} (got {arr.size})", field="days", allowed=allowed)
    return arr


def _margins(margin: float | Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    arr = (
        np.broadcast_to(np.asarray(margin, dtype=np.float64), (k,))
        if np.ndim(margin) == 0
        else np.asarray(margin, dtype=np.float64)
    )
    if arr.shape != (k,):
        raise InvalidInputError(
            f"margin must be one number or one per keyword ({k}), got {arr.shape}",
            field="margin",
            allowed=f"number or ({k},)",
        )
    for v in arr:
        _check("margin", v, 0.0, 1.0, low_open=True, high_open=True)
    return arr


def _check_size(rows: int) -> None:
    if rows > MAX_ROWS:
        allowed = f"bids x n_sims x days x keywords <= {MAX_ROWS:,}"
        raise InvalidInputError(
            f"this asks for {rows:,} simulated keyword-days; {allowed} (use fewer simulations, days or bids)",
            field="n_sims",
            allowed=allowed,
        )


def _estimate(samples: np.ndarray, level: float) -> Estimate:
    """samples [n]; with one sample (expected values) the interval is the value itself."""
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(mean=float(samples.mean()), low=float(lo), high=float(hi))


def _totals(
    res: DaySimResult, margin: np.ndarray, n_groups: int, k: int | None = None
) -> dict[str, np.ndarray]:
    """Totals per group of rows: rows are laid out as [group, day] with n_groups groups; over the first ``k``
    keyword columns (None: all of them)."""
    cols = slice(None) if k is None else slice(0, k)

    def total(x: np.ndarray) -> np.ndarray:
        return x[:, cols].sum(axis=1).reshape(n_groups, -1).sum(axis=1)

    return {
        "impressions": total(res.impressions),
        "clicks": total(res.clicks),
        "spend": total(res.spend),
        "orders": total(res.orders),
        "sales": total(res.sales),
        "incremental_sales": total(res.incremental_sales),
        "incremental_profit": total(res.incremental_sales * margin[None, :] - res.spend),
    }


def _with_others(
    markets: Sequence[KeywordMarket],
    margins: np.ndarray,
    others: Sequence[KeywordMarket],
    other_bids: Sequence[float] | np.ndarray | None,
    other_margin: float | Sequence[float] | np.ndarray | None,
) -> tuple[list[KeywordMarket], np.ndarray, np.ndarray]:
    """The keywords given followed by the ones sharing their budget: all markets, all margins, and the
    fixed bids of the others."""
    n = len(others)
    fixed = (
        np.zeros(0) if n == 0 else np.asarray(other_bids if other_bids is not None else [], dtype=np.float64)
    )
    if fixed.shape != (n,):
        raise InvalidInputError(
            f"other_bids must hold one bid per other keyword ({n})",
            field="other_bids",
            allowed=f"shape ({n},)",
        )
    for v in fixed:
        _check("other_bids", v, 0.0, MAX_BID)
    extra = _margins(other_margin if other_margin is not None else margins.mean(), n) if n else np.zeros(0)
    return [*markets, *others], np.concatenate([margins, extra]), fixed


def _rows(grid_rows: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Bid rows [P, K] of the keywords given, with the others' fixed bids appended: [P, K + len(fixed)]."""
    return np.hstack([grid_rows, np.broadcast_to(fixed, (grid_rows.shape[0], fixed.size))])


def _outcome(t: dict[str, np.ndarray], level: float) -> dict[str, object]:
    """Outcome fields from per-replicate totals (each [n_sims])."""
    spend, sales = float(t["spend"].mean()), float(t["sales"].mean())
    fields: dict[str, object] = {name: _estimate(v, level) for name, v in t.items()}
    fields["acos"] = spend / sales if sales > 0 else None
    fields["roas"] = sales / spend if spend > 0 else None
    return fields


def _simulate_grid(
    markets: Sequence[KeywordMarket],
    bid_rows: np.ndarray,
    days: np.ndarray,
    budget: float | None,
    n_sims: int,
    seed: int,
) -> tuple[DaySimResult, int]:
    """Simulate each bid vector in bid_rows [P, K] over days x replicates; rows ordered [P, sim, day].
    Returns the result and the number of groups (P x replicates)."""
    m = market_arrays(markets)
    reps = max(n_sims, 1)
    n_points, k = bid_rows.shape
    _check_size(n_points * reps * days.size * k)
    bids = np.repeat(bid_rows, reps * days.size, axis=0)
    day_rows = np.tile(days, n_points * reps)
    replicate = np.tile(np.repeat(np.arange(reps), days.size), n_points)
    budgets = np.full((bids.shape[0], 1), MAX_BUDGET if budget is None else budget)
    res = simulate_rows(m, bids, np.zeros(k, dtype=np.int64), budgets, day_rows, seed, n_sims == 0, replicate)
    return res, n_points * reps


def _check_common(markets: Sequence[KeywordMarket], n_sims: int, seed: int, level: float) -> None:
    if len(markets) == 0:
        raise InvalidInputError(
            "markets must hold at least one keyword market", field="markets", allowed=">= 1"
        )
    _check_int("n_sims", n_sims, 0, MAX_SIMS)
    _check_int("seed", seed, 0, 2**63 - 1)
    _check("level", level, 0.0, 1.0, low_open=True, high_open=True)


# --- bid landscape ------------------------------------------------------------------------------------------


def bid_landscape(
    markets: Sequence[KeywordMarket],
    bids: Sequence[float] | np.ndarray,
    days: Sequence[int] | np.ndarray,
    *,
    margin: float | Sequence[float] | np.ndarray,
    budget: float | None = None,
    others: Sequence[KeywordMarket] = (),
    other_bids: Sequence[float] | np.ndarray | None = None,
    other_margin: float | Sequence[float] | np.ndarray | None = None,
    n_sims: int = 200,
    seed: int = 0,
    level: float = 0.9,
) -> BidLandscape:
    """Outcome over ``days`` at each bid (the same bid on every keyword given; usually one keyword).

    ``budget`` is a daily budget shared by these keywords and ``others`` (at ``other_bids``; None:
    unlimited). The points are the figures of the keywords given.
    """
    _check_common(markets, n_sims, seed, level)
    grid = np.asarray(list(bids), dtype=np.float64)
    if grid.ndim != 1 or not 1 <= grid.size <= MAX_GRID:
        allowed = f"1 to {MAX_GRID} bids"
        raise InvalidInputError(f"bids must hold {allowed} (got {grid.size})", field="bids", allowed=allowed)
    for b in grid:
        _check("bids", b, 0.0, MAX_BID)
    if budget is not None:
        _check("budget", budget, 0.0, MAX_BUDGET)
    day_arr = _days(days)
    k = len(markets)
    margins = _margins(margin, k)
    all_markets, all_margins, fixed = _with_others(markets, margins, others, other_bids, other_margin)
    rows = _rows(np.repeat(grid[:, None], k, axis=1), fixed)
    res, groups = _simulate_grid(all_markets, rows, day_arr, budget, n_sims, seed)
    totals = _totals(res, all_margins, groups, k)
    reps = max(n_sims, 1)
    points = [
        LandscapePoint(
            bid=float(b), **_outcome({n: v[i * reps : (i + 1) * reps] for n, v in totals.items()}, level)
        )  # type: ignore[arg-type]
        for i, b in enumerate(grid)
    ]
    return BidLandscape(
        keyword_ids=[mk.keyword_id for mk in markets],
        n_days=int(day_arr.size),
        n_sims=n_sims,
        level=level,
        budget=budget,
        points=points,
    )


# --- what-if -----------------------------------------------------------------------------------------------


def what_if(
    markets: Sequence[KeywordMarket],
    campaign_of: Sequence[int],
    bids: Sequence[float] | np.ndarray,
    budgets: Sequence[float],
    days: Sequence[int] | np.ndarray,
    *,
    new_bids: Sequence[float] | None = None,
    new_budgets: Sequence[float] | None = None,
    margin: float | Sequence[float] | np.ndarray,
    n_sims: int = 200,
    seed: int = 0,
    level: float = 0.9,
) -> WhatIf:
    """Status quo (``bids`` per keyword, ``budgets`` per campaign) against the change (``new_bids``,
    ``new_budgets``; None keeps the status quo) over the same future days and replicates."""
    _check_common(markets, n_sims, seed, level)
    day_arr = _days(days)
    k = len(markets)
    margins = _margins(margin, k)
    m = market_arrays(markets)
    before_bids = np.asarray(bids, dtype=np.float64)
    after_bids = before_bids if new_bids is None else np.asarray(new_bids, dtype=np.float64)
    before_budgets = np.asarray(budgets, dtype=np.float64)
    after_budgets = before_budgets if new_budgets is None else np.asarray(new_budgets, dtype=np.float64)
    for name, b in (("bids", before_bids), ("new_bids", after_bids)):
        if b.shape != (k,):
            raise InvalidInputError(
                f"{name} must hold one bid per keyword ({k})", field=name, allowed=f"shape ({k},)"
            )
        for v in b:
            _check(name, v, 0.0, MAX_BID)
    for name, b in (("budgets", before_budgets), ("new_budgets", after_budgets)):
        if b.ndim != 1 or b.shape != before_budgets.shape or b.size == 0:
            raise InvalidInputError(
                f"{name} must hold one budget per campaign", field=name, allowed="shape (C,)"
            )
        for v in b:
            _check(name, v, 0.0, MAX_BUDGET)
    reps = max(n_sims, 1)
    _check_size(2 * reps * day_arr.size * k)
    day_rows = np.tile(day_arr, reps)
    replicate = np.repeat(np.arange(reps), day_arr.size)
    totals = []
    for bid_vec, budget_vec in ((before_bids, before_budgets), (after_bids, after_budgets)):
        bid_m, camp, budget_m, _ = validate_inputs(m, bid_vec, campaign_of, budget_vec, day_rows, seed)
        res = simulate_rows(m, bid_m, camp, budget_m, day_rows, seed, n_sims == 0, replicate)
        totals.append(_totals(res, margins, reps))
    before, after = totals
    diff = {name: after[name] - before[name] for name in before}
    return WhatIf(
        keyword_ids=[mk.keyword_id for mk in markets],
        n_days=int(day_arr.size),
        n_sims=n_sims,
        level=level,
        status_quo=Outcome(**_outcome(before, level)),  # type: ignore[arg-type]
        changed=Outcome(**_outcome(after, level)),  # type: ignore[arg-type]
        difference=Outcome(**_outcome(diff, level) | {"acos": None, "roas": None}),  # type: ignore[arg-type]
    )


# --- optimal bid --------------------------------------------------------------------------------------------


def optimal_bid(
    markets: Sequence[KeywordMarket],
    goal: BidGoal | str,
    days: Sequence[int] | np.ndarray,
    *,
    margin: float | Sequence[float] | np.ndarray,
    target: float | None = None,
    budget: float | None = None,
    others: Sequence[KeywordMarket] = (),
    other_bids: Sequence[float] | np.ndarray | None = None,
    other_margin: float | Sequence[float] | np.ndarray | None = None,
    current_bid: float | None = None,
    min_bid: float = 0.02,
    max_bid: float | None = None,
    n_sims: int = 200,
    seed: int = 0,
    level: float = 0.9,
) -> OptimalBid:
    """The bid (the same on every keyword given) that best meets ``goal`` over ``days``:

    * max_incremental_profit: maximize incremental_sales x margin - spend, of these keywords and the
      ``others`` sharing the daily ``budget`` (the whole campaign: budget taken from its other keywords
      counts);
    * target_acos / target_roas: the bid with the most attributed sales of these keywords whose ACoS <=
      target (ROAS >= target), with the budget shared as above.

    The search runs on exact expected values (a log-spaced grid from ``min_bid`` to ``max_bid``,
    default 3 x the highest sales per click, refined once around the best); the chosen bid (and the
    current bid, if given) is then simulated with ``n_sims`` replicates for intervals.
    """
    _check_common(markets, n_sims, seed, level)
    try:
        goal = BidGoal(str(goal))
    except ValueError:
        allowed = ", ".join(g.value for g in BidGoal)
        raise InvalidInputError(
            f"unknown goal {goal!r}; one of {allowed}", field="goal", allowed=allowed
        ) from None
    if goal is not BidGoal.MAX_PROFIT:
        if target is None:
            raise InvalidInputError(f"{goal.value} needs a target", field="target", allowed="> 0")
        _check("target", target, 0.0, 1000.0, low_open=True)
    day_arr = _days(days)
    k = len(markets)
    margins = _margins(margin, k)
    _check("min_bid", min_bid, 0.0, MAX_BID, low_open=True)
    if max_bid is None:
        max_bid = min(MAX_BID, 3.0 * max(mk.cvr * mk.aov for mk in markets))
    _check("max_bid", max_bid, min_bid, MAX_BID, low_open=True)
    if budget is not None:
        _check("budget", budget, 0.0, MAX_BUDGET)
    if current_bid is not None:
        _check("current_bid", current_bid, 0.0, MAX_BID)

    all_markets, all_margins, fixed = _with_others(markets, margins, others, other_bids, other_margin)

    def simulate(grid: np.ndarray, sims: int) -> tuple[DaySimResult, int]:
        return _simulate_grid(
            all_markets, _rows(np.repeat(grid[:, None], k, axis=1), fixed), day_arr, budget, sims, seed
        )

    def expected_totals(grid: np.ndarray) -> dict[str, np.ndarray]:
        res, groups = simulate(grid, 0)
        own = _totals(res, all_margins, groups, k)
        return own | {"campaign_profit": _totals(res, all_margins, groups)["incremental_profit"]}

    def score(t: dict[str, np.ndarray]) -> np.ndarray:
        if goal is BidGoal.MAX_PROFIT:
            return t["campaign_profit"]
        sales, spend = t["sales"], t["spend"]
        ok = spend <= target * sales if goal is BidGoal.TARGET_ACOS else sales >= target * spend  # type: ignore[operator]
        return np.where(ok & (sales > 0), sales, -np.inf)

    grid = np.concatenate([[0.0], np.geomspace(min_bid, max_bid, _OPT_GRID)])
    s = score(expected_totals(grid))
    best = int(np.argmax(s))
    if best > 0:  # refine between the neighbours of the best grid point
        lo, hi = grid[best - 1] if best > 1 else min_bid, grid[min(best + 1, grid.size - 1)]
        fine = np.linspace(max(lo, min_bid), hi, 33)
        fs = score(expected_totals(fine))
        if fs.max() > s[best]:
            grid, s, best = fine, fs, int(np.argmax(fs))
    # grid[0] = 0 (not bidding) scores the others' profit alone, or -inf for a target: it wins only if
    # nothing better exists
    bid = float(grid[best])
    feasible = bid > 0
    points = np.array([bid] + ([current_bid] if current_bid is not None else []))
    res, groups = simulate(points, n_sims)
    own = _totals(res, all_margins, groups, k)
    reps = max(n_sims, 1)
    at = [
        LandscapePoint(
            bid=float(b), **_outcome({n: v[i * reps : (i + 1) * reps] for n, v in own.items()}, level)
        )  # type: ignore[arg-type]
        for i, b in enumerate(points)
    ]
    gain = None
    if current_bid is not None:
        campaign = _totals(res, all_margins, groups)["incremental_profit"]
        gain = _estimate(campaign[:reps] - campaign[reps:], level)
    if not feasible:
        note = (
            (
                "no bid adds incremental profit to the keywords sharing the budget: the budget earns more on the others"
                if others
                else "no bid makes incremental profit positive: the ads mostly buy sales that would happen anyway"
            )
            if goal is BidGoal.MAX_PROFIT
            else f"no bid between {min_bid:g} and {max_bid:g} meets {goal.value} {target:g}"
        )
    else:
        note = f"best of a search from {min_bid:g} to {max_bid:g} on expected values"
        if bid >= max_bid * 0.999:
            note += "; the best bid is at the top of the range, a higher max_bid may do better"
    return OptimalBid(
        goal=goal,
        target=target,
        bid=bid,
        feasible=feasible,
        at_bid=at[0],
        current=at[1] if current_bid is not None else None,
        gain=gain,
        note=note,
    )
