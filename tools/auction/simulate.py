"""Keyword/campaign day simulation with budget pacing (contract C).

The model, per keyword and day index d (0 = the world's start date):

* Matched searches: Poisson with mean ``base_volume * (1 + weekly_amp*sin(2*pi*d/7 + weekly_phase))
  * (1 + yearly_amp*sin(2*pi*d/365.25 + yearly_phase)) * prod(event demand_mult)``, spread over the day by
  the fixed diurnal profile ``HOURLY_TRAFFIC``.
* Each search runs a GSP auction: Poisson(``n_rivals`` x event ``rival_count_mult``) rivals with
  lognormal(``rival_bid_mu`` + log(event ``rival_bid_mult``), ``rival_bid_sigma``) bids and
  Beta(``rival_quality_a``, ``rival_quality_b``) quality scores. Bidders whose bid is below ``reserve``
  do not take part. Ads are ranked by bid x quality; ``n_slots`` are filled; the ad in a slot pays per
  click ``max(reserve, next ad's bid x quality / own quality)``.
* Our ad in slot s is clicked with probability ``ctr_top * position_decay**(s-1)``; a click converts
  with ``cvr`` into an order worth ``aov``. A share ``cannibalization`` of those orders would have
  happened organically anyway, so ``incremental = ad-attributed x (1 - cannibalization)`` in expectation.
* Organic sales are ``organic_rate x searches x aov`` *minus* the orders the ads cannibalized (those
  buyers bought through the ad instead); ``organic + ad-attributed = organic-without-ads + incremental``.
  Keep ``organic_rate >= cannibalization x ctr_top x cvr`` (true of any realistic keyword): if the ads
  would cannibalize more than the organic pool, organic sales are floored at zero.
* Pacing: a campaign's clicks happen in time order over the day; when the next click would take the
  campaign's spend above its daily budget, the campaign leaves every auction for the rest of the day.
  Spend never exceeds the budget; ``budget_exhausted_at`` is the fraction of the day when it left.

How it is computed (exact, not a sample of auctions): the rivals above our ad and those below it are
independent Poisson counts (Poisson thinning), so our slot distribution and our per-click price
distribution follow in closed form from the rival-score survival function, which is integrated over
``N_QUALITY_NODES`` Beta quantile nodes with the lognormal CDF; the price distribution is tabulated on
``N_PRICE_GRID`` + 1 points between reserve and bid (piecewise-linear CDF, so its mean is the
trapezoid rule). Tests check all of this against explicitly cleared auctions (tools.auction.core).

* ``expected=True``: deterministic expected values. Pacing is applied to expected spend (a fluid
  limit): a campaign whose expected spend exceeds its budget serves the same share budget/spend of
  every keyword's traffic, ending at the time of day when that share of searches has passed.
* ``expected=False``: one random day. Outcomes of a keyword-day are independent Poisson counts (a
  marked Poisson process of searches), each drawn by inverting its CDF with a counter-based uniform
  (tools.auction.randomness); each click gets its own price and time of day, and campaigns over
  budget are cut at the click that would overspend. ``avg_position`` is the expected position of an
  impression that day (not re-sampled).

Common random numbers: the uniforms hash (seed, replicate, day, keyword id, stream, event index), so
runs that differ in one bid or budget share all their randomness, a zero change gives exactly zero
difference, and a keyword's outcome does not depend on which other keywords are in the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from scipy import special

from tools.auction import randomness as rnd
from tools.auction.params import KeywordMarket
from tools.errors import InvalidInputError

N_QUALITY_NODES = 16
N_PRICE_GRID = 16
MAX_BID = 1000.0
MAX_BUDGET = 1e9
MAX_DAY = 100 * 366
MAX_CELLS = 50_000_000  # days x keywords in one call (bounded memory; call per advertiser or in chunks)
_BLOCK_ROWS = 1 << 17  # keyword-days processed at once
_REGIME_BLOCK = 1 << 14  # auction regimes evaluated at once ([block, grid, nodes] floats)

# Share of a day's searches in each hour: low at night, peak in the afternoon.
_hours = np.arange(24) + 0.5
HOURLY_TRAFFIC = 1.0 + 0.6 * np.sin(2 * np.pi * (_hours - 10.0) / 24.0)
HOURLY_TRAFFIC = HOURLY_TRAFFIC / HOURLY_TRAFFIC.sum()
_CUM_TRAFFIC = np.concatenate([[0.0], np.cumsum(HOURLY_TRAFFIC)])
_CUM_TRAFFIC[-1] = 1.0
_HOUR_EDGES = np.arange(25) / 24.0

# Random streams (salts for tools.auction.randomness.uniforms).
_S_NOIMP, _S_NONCLICK, _S_CLICK, _S_CANN, _S_INCR, _S_ORGANIC, _S_LOST, _S_PRICE, _S_TIME = range(1, 10)


def traffic_share_before(t: np.ndarray | float) -> np.ndarray:
    """Share of a day's searches that happen before time-of-day ``t`` (a fraction of the day)."""
    return np.asarray(np.interp(t, _HOUR_EDGES, _CUM_TRAFFIC))


def time_of_traffic_share(share: np.ndarray | float) -> np.ndarray:
    """Inverse of traffic_share_before: the time of day by which ``share`` of the searches have passed."""
    return np.asarray(np.interp(share, _CUM_TRAFFIC, _HOUR_EDGES))


@dataclass(frozen=True)
class MarketArrays:
    """Struct-of-arrays view of K KeywordMarkets (float64 [K] unless noted)."""

    keyword_ids: tuple[str, ...]
    key: np.ndarray  # uint64 [K], stable hash of the keyword id (random streams)
    base_volume: np.ndarray
    weekly_amp: np.ndarray
    weekly_phase: np.ndarray
    yearly_amp: np.ndarray
    yearly_phase: np.ndarray
    n_rivals: np.ndarray
    rival_bid_mu: np.ndarray
    rival_bid_sigma: np.ndarray
    rival_quality_nodes: np.ndarray  # [K, N_QUALITY_NODES] Beta quantiles at (j + 0.5) / N
    quality: np.ndarray
    ctr_top: np.ndarray
    position_decay: np.ndarray
    cvr: np.ndarray
    aov: np.ndarray
    organic_rate: np.ndarray
    cannibalization: np.ndarray
    reserve: np.ndarray
    n_slots: np.ndarray  # int64 [K]
    event_keyword: np.ndarray  # int64 [E] index into the keywords
    event_start: np.ndarray  # int64 [E]
    event_end: np.ndarray  # int64 [E], inclusive
    event_demand: np.ndarray  # [E]
    event_rival_bid: np.ndarray  # [E]
    event_rival_count: np.ndarray  # [E]

    @property
    def size(self) -> int:
        return len(self.keyword_ids)

    def take(self, index: Sequence[int] | np.ndarray) -> MarketArrays:
        """The markets of a subset of keywords (in the given order), events included."""
        idx = np.asarray(index, dtype=np.int64)
        remap = np.full(self.size, -1, dtype=np.int64)
        remap[idx] = np.arange(idx.size)
        ev = np.flatnonzero(remap[self.event_keyword] >= 0)
        values: dict[str, object] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "keyword_ids":
                values[f.name] = tuple(self.keyword_ids[i] for i in idx)
            elif f.name == "event_keyword":
                values[f.name] = remap[v[ev]]
            elif f.name.startswith("event_"):
                values[f.name] = v[ev]
            else:
                values[f.name] = v[idx]
        return MarketArrays(**values)  # type: ignore[arg-type]


def market_arrays(markets: Sequence[KeywordMarket]) -> MarketArrays:
    """Stack KeywordMarkets into arrays (validated by their pydantic model; ids must be unique)."""
    if len(markets) == 0:
        raise InvalidInputError(
            "markets must hold at least one keyword market", field="markets", allowed=">= 1"
        )
    ids = [m.keyword_id for m in markets]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInputError(
            f"keyword {dup} appears twice in markets", field="markets", allowed="unique keyword ids"
        )

    def col(name: str) -> np.ndarray:
        return np.array([float(getattr(m, name)) for m in markets], dtype=np.float64)

    a, b = col("rival_quality_a"), col("rival_quality_b")
    probs = (np.arange(N_QUALITY_NODES) + 0.5) / N_QUALITY_NODES
    nodes = special.betaincinv(a[:, None], b[:, None], probs[None, :])
    ev = [(i, e) for i, m in enumerate(markets) for e in m.events]
    return MarketArrays(
        keyword_ids=tuple(ids),
        key=rnd.stable_keys(ids),
        base_volume=col("base_volume"),
        weekly_amp=col("weekly_amp"),
        weekly_phase=col("weekly_phase"),
        yearly_amp=col("yearly_amp"),
        yearly_phase=col("yearly_phase"),
        n_rivals=col("n_rivals"),
        rival_bid_mu=col("rival_bid_mu"),
        rival_bid_sigma=col("rival_bid_sigma"),
        rival_quality_nodes=np.clip(nodes, 1e-12, None),
        quality=col("quality"),
        ctr_top=col("ctr_top"),
        position_decay=col("position_decay"),
        cvr=col("cvr"),
        aov=col("aov"),
        organic_rate=col("organic_rate"),
        cannibalization=col("cannibalization"),
        reserve=col("reserve"),
        n_slots=np.array([m.n_slots for m in markets], dtype=np.int64),
        event_keyword=np.array([i for i, _ in ev], dtype=np.int64),
        event_start=np.array([e.start for _, e in ev], dtype=np.int64),
        event_end=np.array([e.end for _, e in ev], dtype=np.int64),
        event_demand=np.array([e.demand_mult for _, e in ev], dtype=np.float64),
        event_rival_bid=np.array([e.rival_bid_mult for _, e in ev], dtype=np.float64),
        event_rival_count=np.array([e.rival_count_mult for _, e in ev], dtype=np.float64),
    )


@dataclass
class DaySimResult:
    """Outcomes of D days x K keywords (C campaigns); counts are floats (fractional when expected)."""

    searches: np.ndarray  # [D, K] matched searches (not in contract C's list; added)
    impressions: np.ndarray  # [D, K]
    clicks: np.ndarray
    spend: np.ndarray
    orders: np.ndarray  # ad-attributed
    sales: np.ndarray  # ad-attributed
    organic_sales: np.ndarray  # sales without an ad click (after cannibalization)
    incremental_orders: np.ndarray
    incremental_sales: np.ndarray
    avg_position: np.ndarray  # [D, K], nan when no impression
    impression_share: np.ndarray  # [D, K] impressions / searches, nan when no search
    budget_exhausted_at: np.ndarray  # [D, C] fraction of the day; nan if the budget was not reached


# --- validation -----------------------------------------------------------------------------------------


def _array(name: str, value: object, *, dtype: type = np.float64) -> np.ndarray:
    try:
        arr: np.ndarray = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be an array of numbers", field=name, allowed="numbers") from exc
    return arr


def _check_values(name: str, arr: np.ndarray, low: float, high: float) -> None:
    bad = ~np.isfinite(arr) | (arr < low) | (arr > high)
    if bad.any():
        first = arr[bad].ravel()[0]
        allowed = f">= {low:g} and <= {high:g}"
        raise InvalidInputError(f"{name} must be {allowed} (got {first!r})", field=name, allowed=allowed)


def _per_day(name: str, arr: np.ndarray, n_days: int, width: int, what: str) -> np.ndarray:
    if arr.shape == (width,):
        return np.broadcast_to(arr, (n_days, width))
    if arr.shape == (n_days, width):
        return arr
    allowed = f"shape ({width},) or ({n_days}, {width}) (one per {what}, optionally per day)"
    raise InvalidInputError(f"{name} has shape {arr.shape}; expected {allowed}", field=name, allowed=allowed)


def validate_inputs(
    markets: MarketArrays,
    bids: object,
    campaign_of: object,
    budgets: object,
    days: object,
    seed: object,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check simulate_days' arguments; returns bids [D,K], campaign_of [K], budgets [D,C], days [D]."""
    if not isinstance(markets, MarketArrays):
        raise InvalidInputError(
            "markets must be a MarketArrays (use market_arrays)", field="markets", allowed="MarketArrays"
        )
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or not 0 <= int(seed) < 2**63:
        raise InvalidInputError(f"seed must be an integer >= 0 (got {seed!r})", field="seed", allowed=">= 0")
    k = markets.size
    days_arr = _array("days", days)
    if days_arr.ndim != 1 or days_arr.size == 0:
        raise InvalidInputError(
            "days must be a non-empty 1-d array of day indices", field="days", allowed="[D], D >= 1"
        )
    _check_values("days", days_arr, 0, MAX_DAY)
    if np.any(days_arr != np.round(days_arr)):
        raise InvalidInputError("days must be whole day indices", field="days", allowed="integers")
    d = days_arr.size
    if d * k > MAX_CELLS:
        allowed = f"days x keywords <= {MAX_CELLS:,}"
        raise InvalidInputError(
            f"{d} days x {k} keywords is too large for one call; {allowed} (split by advertiser or date range)",
            field="days",
            allowed=allowed,
        )
    camp = _array("campaign_of", campaign_of)
    if camp.shape != (k,):
        raise InvalidInputError(
            f"campaign_of has shape {camp.shape}; expected ({k},), one campaign index per keyword",
            field="campaign_of",
            allowed=f"shape ({k},)",
        )
    budget_arr = _array("budgets", budgets)
    n_campaigns = budget_arr.shape[-1] if budget_arr.ndim in (1, 2) else 0
    if n_campaigns == 0:
        raise InvalidInputError(
            "budgets must be [C] or [D, C] with at least one campaign",
            field="budgets",
            allowed="[C] or [D, C]",
        )
    _check_values("campaign_of", camp, 0, n_campaigns - 1)
    if np.any(camp != np.round(camp)):
        raise InvalidInputError(
            "campaign_of must hold integer indices", field="campaign_of", allowed="integers"
        )
    budget_arr = _per_day("budgets", budget_arr, d, n_campaigns, "campaign")
    _check_values("budgets", budget_arr, 0.0, MAX_BUDGET)
    bid_arr = _per_day("bids", _array("bids", bids), d, k, "keyword")
    _check_values("bids", bid_arr, 0.0, MAX_BID)
    return bid_arr, camp.astype(np.int64), budget_arr, days_arr.astype(np.int64)


# --- the model ------------------------------------------------------------------------------------------


def day_factors(m: MarketArrays, days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected searches, rival bid multiplier and rival count multiplier, each [D, K]."""
    d = days.astype(np.float64)[:, None]
    volume = (
        m.base_volume
        * (1.0 + m.weekly_amp * np.sin(2 * np.pi * d / 7.0 + m.weekly_phase))
        * (1.0 + m.yearly_amp * np.sin(2 * np.pi * d / 365.25 + m.yearly_phase))
    )
    bid_mult = np.ones_like(volume)
    count_mult = np.ones_like(volume)
    if m.event_keyword.size:
        covers = (days[:, None] >= m.event_start[None, :]) & (days[:, None] <= m.event_end[None, :])
        di, ei = np.nonzero(covers)
        ki = m.event_keyword[ei]
        np.multiply.at(volume, (di, ki), m.event_demand[ei])
        np.multiply.at(bid_mult, (di, ki), m.event_rival_bid[ei])
        np.multiply.at(count_mult, (di, ki), m.event_rival_count[ei])
    return volume, bid_mult, count_mult


@dataclass
class AuctionTerms:
    """Our ad's auction outcome per search for R (keyword, bid, rival-field) regimes."""

    p_impression: np.ndarray  # [R] probability that a search shows our ad
    click_rate: np.ndarray  # [R] probability that a search gives us a click
    mean_position: np.ndarray  # [R] expected slot given an impression (nan if never shown)
    mean_price: np.ndarray  # [R] expected cost per click
    price_low: np.ndarray  # [R] reserve: the price grid runs from here ...
    price_high: np.ndarray  # [R] ... to our bid
    price_cdf: np.ndarray  # [R, N_PRICE_GRID + 1] P(price <= grid point)


def auction_terms(
    m: MarketArrays, k: np.ndarray, bid: np.ndarray, bid_mult: np.ndarray, count_mult: np.ndarray
) -> AuctionTerms:
    """Slot and price distribution of our ad for keywords ``k`` at ``bid`` (all [R])."""
    r = k.size
    out = AuctionTerms(
        p_impression=np.zeros(r),
        click_rate=np.zeros(r),
        mean_position=np.full(r, np.nan),
        mean_price=np.zeros(r),
        price_low=m.reserve[k].copy(),
        price_high=np.maximum(bid, m.reserve[k]),
        price_cdf=np.ones((r, N_PRICE_GRID + 1)),
    )
    for lo in range(0, r, _REGIME_BLOCK):
        sl = slice(lo, min(lo + _REGIME_BLOCK, r))
        _auction_terms_block(m, k[sl], bid[sl], bid_mult[sl], count_mult[sl], out, sl)
    return out


def _auction_terms_block(
    m: MarketArrays,
    k: np.ndarray,
    bid: np.ndarray,
    bid_mult: np.ndarray,
    count_mult: np.ndarray,
    out: AuctionTerms,
    sl: slice,
) -> None:
    reserve, q = m.reserve[k], m.quality[k]
    takes_part = (bid > 0) & (bid >= reserve)
    high = np.where(takes_part, bid, reserve)
    grid = np.linspace(0.0, 1.0, N_PRICE_GRID + 1)
    price = reserve[:, None] + (high - reserve)[:, None] * grid[None, :]  # [R, G+1]
    # Survival of eligible rival scores: A(y) = P(rival bid >= reserve and bid x quality > y), averaged
    # over the Beta quantile nodes of rival quality. Scores y = price x our quality.
    mu = m.rival_bid_mu[k] + np.log(bid_mult)
    sigma = m.rival_bid_sigma[k]
    nodes = m.rival_quality_nodes[k]  # [R, J]
    with np.errstate(divide="ignore"):
        log_y = np.log(price * q[:, None])  # [R, G+1]
        log_r = np.log(reserve)
    need = np.maximum(log_y[:, :, None] - np.log(nodes)[:, None, :], log_r[:, None, None])
    survival = special.ndtr((mu[:, None, None] - need) / sigma[:, None, None]).mean(axis=2)  # [R, G+1]
    lam = m.n_rivals[k] * count_mult
    above = lam * survival[:, -1]  # mean number of eligible rivals ranked above us
    n_slots = m.n_slots[k]
    s_max = int(n_slots.max())
    slots = np.arange(s_max)
    # P(exactly s rivals above us) = Poisson pmf, for s < n_slots
    log_pmf = (
        slots[None, :] * np.log(np.maximum(above, 1e-300))[:, None]
        - above[:, None]
        - special.gammaln(slots + 1)[None, :]
    )
    pmf = np.where((slots[None, :] < n_slots[:, None]) & takes_part[:, None], np.exp(log_pmf), 0.0)
    pmf[:, 0] = np.where(takes_part, np.exp(-above), 0.0)
    p_imp = pmf.sum(axis=1)
    decay = m.position_decay[k][:, None] ** slots[None, :]
    out.p_impression[sl] = p_imp
    out.click_rate[sl] = m.ctr_top[k] * (pmf * decay).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out.mean_position[sl] = np.where(p_imp > 0, (pmf * (slots + 1)[None, :]).sum(axis=1) / p_imp, np.nan)
    # Price given an impression: max(reserve, Y / q) with Y the best eligible rival score below ours;
    # the rivals below are Poisson, independent of those above, so P(price <= x) = exp(-lam (A(xq) - A(s))).
    cdf = np.exp(-lam[:, None] * np.maximum(survival - survival[:, -1:], 0.0))
    cdf[:, -1] = 1.0
    cdf = np.where(takes_part[:, None], cdf, 1.0)
    step = (high - reserve) / N_PRICE_GRID
    out.price_cdf[sl] = cdf
    out.mean_price[sl] = np.where(
        takes_part, reserve + step * (1.0 - 0.5 * (cdf[:, 1:] + cdf[:, :-1])).sum(axis=1), 0.0
    )
    out.price_high[sl] = high


def price_ppf(u: np.ndarray, regime: np.ndarray, terms: AuctionTerms) -> np.ndarray:
    """Per-click prices for uniforms ``u`` from the tabulated price distribution of each click's regime.

    A branch-free binary search per click in its regime's CDF row (padded to 32 entries with 2.0),
    so the work is a handful of 1-d gathers per click.
    """
    width = 32
    table = np.full((terms.price_cdf.shape[0], width), 2.0)
    table[:, : N_PRICE_GRID + 1] = terms.price_cdf
    flat = table.ravel()
    base = regime * width
    above = np.zeros(u.size, dtype=np.int64)  # number of grid points whose cdf < u
    for step in (16, 8, 4, 2, 1):
        probe = above + step
        above = np.where(flat[base + probe - 1] < u, probe, above)
    i = np.clip(above, 1, N_PRICE_GRID)
    c0, c1 = flat[base + i - 1], flat[base + i]
    frac = np.clip((u - c0) / np.maximum(c1 - c0, 1e-300), 0.0, 1.0)
    low, high = terms.price_low[regime], terms.price_high[regime]
    price = low + (high - low) * (i - 1 + frac) / N_PRICE_GRID
    return np.where(above == 0, low, price)  # the atom at the reserve


# --- the simulation -------------------------------------------------------------------------------------


def simulate_days(
    markets: MarketArrays,
    bids: np.ndarray,
    campaign_of: np.ndarray,
    budgets: np.ndarray,
    days: np.ndarray,
    seed: int,
    expected: bool = False,
) -> DaySimResult:
    """Simulate D days of K keywords in C campaigns with budget pacing (see the module docstring).

    bids [K] or [D, K] (0 = not bidding), campaign_of [K] (index into budgets), budgets [C] or [D, C],
    days [D] day indices since the world's start (seasonality, events). Raises InvalidInputError.
    """
    bid_arr, camp, budget_arr, day_arr = validate_inputs(markets, bids, campaign_of, budgets, days, seed)
    return simulate_rows(markets, bid_arr, camp, budget_arr, day_arr, int(seed), expected)


def simulate_rows(
    m: MarketArrays,
    bids: np.ndarray,
    campaign_of: np.ndarray,
    budgets: np.ndarray,
    days: np.ndarray,
    seed: int,
    expected: bool,
    replicate: np.ndarray | None = None,
) -> DaySimResult:
    """simulate_days on validated arrays; each row is one day, ``replicate`` [D] names its random stream.

    Rows that repeat a day with different replicates are independent draws of that day (Monte Carlo),
    rows with the same (day, replicate) share randomness (common random numbers).
    """
    n_days, k = bids.shape
    n_campaigns = budgets.shape[1]
    rep = np.zeros(n_days, dtype=np.int64) if replicate is None else np.asarray(replicate, dtype=np.int64)
    res = DaySimResult(
        **{
            f.name: np.full((n_days, n_campaigns if f.name == "budget_exhausted_at" else k), np.nan)
            for f in fields(DaySimResult)
        }
    )
    per_block = max(1, _BLOCK_ROWS // k)
    for d0 in range(0, n_days, per_block):
        d1 = min(n_days, d0 + per_block)
        _simulate_block(
            m, bids[d0:d1], campaign_of, budgets[d0:d1], days[d0:d1], rep[d0:d1], seed, expected, res, d0
        )
    return res


def _regimes(bids: np.ndarray, bid_mult: np.ndarray, count_mult: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows where a keyword's auction changes from the previous row (bid or rival field), and each
    row's regime number. Returns (start rows as flat indices, regime of every flat row)."""
    changed = np.ones(bids.shape, dtype=bool)
    changed[1:] = (
        (bids[1:] != bids[:-1]) | (bid_mult[1:] != bid_mult[:-1]) | (count_mult[1:] != count_mult[:-1])
    )
    flat = changed.ravel()
    number = np.cumsum(flat) - 1
    start = np.where(changed, np.arange(changed.size).reshape(changed.shape), -1)
    start = np.maximum.accumulate(start, axis=0).ravel()
    return np.flatnonzero(flat), number[start]


def _exhaustion_times(
    group: np.ndarray, t: np.ndarray, price: np.ndarray, budget: np.ndarray, cut: np.ndarray
) -> np.ndarray:
    """Time of day each cut (day, campaign) group leaves its auctions: the time of its first click
    (in time order) whose price would take the spend above the budget; 0 for a zero budget."""
    order = np.argsort(group + t * (1.0 - 1e-9))  # by group, then time of day (t < 1)
    g, ts, p = group[order], t[order], price[order]
    first = np.ones(g.size, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    seg = np.cumsum(first) - 1
    cum = np.cumsum(p)
    spent = cum - (cum[first] - p[first])[seg]  # spend of the group up to and including each click
    over = np.flatnonzero(spent > budget[g])
    first_over = over[np.r_[True, g[over][1:] != g[over][:-1]]] if over.size else over
    at = np.full(budget.size, np.nan)
    at[cut] = 1.0
    at[g[first_over]] = ts[first_over]
    at[cut & (budget <= 0)] = 0.0
    return at


def _simulate_block(
    m: MarketArrays,
    bids: np.ndarray,
    campaign_of: np.ndarray,
    budgets: np.ndarray,
    days: np.ndarray,
    rep: np.ndarray,
    seed: int,
    expected: bool,
    res: DaySimResult,
    d0: int,
) -> None:
    n_days, k = bids.shape
    n_campaigns = budgets.shape[1]
    volume, bid_mult, count_mult = day_factors(m, days)
    starts, regime = _regimes(bids, bid_mult, count_mult)
    kw = np.tile(np.arange(k), n_days)  # keyword of each flat row
    terms = auction_terms(
        m, kw[starts], bids.ravel()[starts], bid_mult.ravel()[starts], count_mult.ravel()[starts]
    )

    v = volume.ravel()
    m_imp = v * terms.p_impression[regime]
    m_click = v * terms.click_rate[regime]
    cvr, cann, aov = m.cvr[kw], m.cannibalization[kw], m.aov[kw]
    m_order = m_click * cvr
    m_organic = v * m.organic_rate[kw]
    group = np.repeat(np.arange(n_days), k) * n_campaigns + campaign_of[kw]  # (day, campaign) of each row
    budget = budgets.ravel()
    n_groups = n_days * n_campaigns

    if expected:
        group_spend = np.bincount(group, m_click * terms.mean_price[regime], minlength=n_groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(group_spend > budget, budget / group_spend, 1.0)
        share = np.where(budget <= 0, 0.0, share)
        exhausted_at = np.where(share < 1.0, time_of_traffic_share(share), np.nan)
        f = share[group]
        searches, impressions, clicks = v, m_imp * f, m_click * f
        spend = m_click * terms.mean_price[regime] * f
        orders, incremental = m_order * f, m_order * (1 - cann) * f
        organic = np.maximum(m_organic - m_order * cann * f, 0.0)
    else:
        keys = rnd.row_keys(seed, np.repeat(rep, k), np.repeat(days, k), m.key[kw])
        n_noimp = rnd.poisson_ppf(rnd.uniforms(keys, _S_NOIMP), v - m_imp)
        n_plain_clicks = rnd.poisson_ppf(rnd.uniforms(keys, _S_CLICK), m_click * (1 - cvr))
        n_cann = rnd.poisson_ppf(rnd.uniforms(keys, _S_CANN), m_order * cann)
        n_incr = rnd.poisson_ppf(rnd.uniforms(keys, _S_INCR), m_order * (1 - cann))
        n_clicks = n_cann + n_incr + n_plain_clicks
        # One event per click: its index j within the row fixes its kind (cannibalized order,
        # incremental order, no order) and, through the uniforms, its price and time of day.
        ev_row = np.repeat(np.arange(kw.size), n_clicks)
        ev_j = np.arange(ev_row.size) - np.repeat(np.cumsum(n_clicks) - n_clicks, n_clicks)
        ev_price = price_ppf(rnd.uniforms(keys[ev_row], _S_PRICE, ev_j), regime[ev_row], terms)
        row_spend = np.bincount(ev_row, ev_price, minlength=kw.size)
        group_spend = np.bincount(group, row_spend, minlength=n_groups)
        cut = (group_spend > budget) | (budget <= 0)
        exhausted_at = np.full(n_groups, np.nan)
        share_row = np.ones(kw.size)
        if cut.any():
            # Campaigns over budget: order their clicks in time and stop at the first that overspends.
            sel = np.flatnonzero(cut[group[ev_row]])
            t = time_of_traffic_share(rnd.uniforms(keys[ev_row[sel]], _S_TIME, ev_j[sel]))
            exhausted_at = _exhaustion_times(group[ev_row[sel]], t, ev_price[sel], budget, cut)
            keep = np.ones(ev_row.size, dtype=bool)
            keep[sel] = t < exhausted_at[group[ev_row[sel]]]
            kr, kj = ev_row[keep], ev_j[keep]
            was_cann = kj < n_cann[kr]
            was_incr = ~was_cann & (kj < (n_cann + n_incr)[kr])
            row_spend = np.bincount(kr, ev_price[keep], minlength=kw.size)
            n_clicks = np.bincount(kr, minlength=kw.size)
            n_cann = np.bincount(kr, was_cann, minlength=kw.size).astype(np.int64)
            n_incr = np.bincount(kr, was_incr, minlength=kw.size).astype(np.int64)
            share_row = np.where(cut[group], traffic_share_before(exhausted_at[group]), 1.0)
        n_nonclick = rnd.poisson_ppf(rnd.uniforms(keys, _S_NONCLICK), (m_imp - m_click) * share_row)
        n_lost = rnd.poisson_ppf(rnd.uniforms(keys, _S_LOST), m_imp * (1.0 - share_row))
        n_organic = rnd.poisson_ppf(
            rnd.uniforms(keys, _S_ORGANIC), np.maximum(m_organic - m_order * cann * share_row, 0.0)
        )
        impressions = (n_nonclick + n_clicks).astype(np.float64)
        searches = (n_noimp + n_lost).astype(np.float64) + impressions
        clicks, spend = n_clicks.astype(np.float64), row_spend
        orders, incremental = (n_cann + n_incr).astype(np.float64), n_incr.astype(np.float64)
        organic = n_organic.astype(np.float64)

    rows = slice(d0, d0 + n_days)
    shape = (n_days, k)
    res.searches[rows] = searches.reshape(shape)
    res.impressions[rows] = impressions.reshape(shape)
    res.clicks[rows] = clicks.reshape(shape)
    res.spend[rows] = spend.reshape(shape)
    res.orders[rows] = orders.reshape(shape)
    res.sales[rows] = (orders * aov).reshape(shape)
    res.incremental_orders[rows] = incremental.reshape(shape)
    res.incremental_sales[rows] = (incremental * aov).reshape(shape)
    res.organic_sales[rows] = (organic * aov).reshape(shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        res.avg_position[rows] = np.where(impressions > 0, terms.mean_position[regime], np.nan).reshape(shape)
        res.impression_share[rows] = np.where(searches > 0, impressions / searches, np.nan).reshape(shape)
    res.budget_exhausted_at[rows] = exhausted_at.reshape(n_days, n_campaigns)
