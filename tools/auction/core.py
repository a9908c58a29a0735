"""Vectorized auction clearing: many auctions (rows) x bidders (columns) at once.

Mechanisms (``params.Mechanism``), all with reserve prices and pay-per-click pricing:

* ``SECOND_PRICE``: one slot; the highest eligible bid x quality wins and pays per click
  ``max(reserve, runner-up bid x quality / own quality)`` (with equal qualities: the second bid).
* ``FIRST_PRICE``: n slots ranked by bid x quality; each winner pays its own bid.
* ``GSP``: n slots ranked by bid x quality; the ad in slot j pays per click
  ``max(reserve, bid x quality of the ad in slot j+1 / own quality)``.

A bidder takes part when its bid is > 0 and >= the reserve. Ties in bid x quality go to the lower
bidder index (deterministic). Fewer eligible bidders than slots leave the lower slots empty
(winner -1, price 0). Clicks: the ad in slot j is clicked with probability ``ctr x position_ctr[j]``
and a click converts with ``cvr``; with ``rng=None`` clicks and conversions are those probabilities
(expected values), with a numpy Generator they are sampled 0/1.

``vcg_prices`` gives the VCG per-click prices of the same allocation (no reserve), for comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.auction.params import Mechanism
from tools.errors import InvalidInputError

MAX_ELEMENTS = 200_000_000  # auctions x bidders in one call
MAX_SLOTS = 100
MAX_BID = 1e6
_BLOCK = 1 << 14


@dataclass
class AuctionResult:
    """Outcome of A auctions with B bidders and S slots."""

    winner: np.ndarray  # [A, S] int64 bidder index in each slot, -1 if the slot is empty
    price: np.ndarray  # [A, S] price per click, 0 for an empty slot
    slot_of: np.ndarray  # [A, B] int64 slot (0 = top) of each bidder, -1 if it got none
    ranked_scores: (
        np.ndarray
    )  # [A, S+1] bid x quality in rank order (the last one sets the lowest price); 0 if none
    clicks: np.ndarray  # [A, S] expected clicks (probabilities) or sampled 0/1
    conversions: np.ndarray  # [A, S]
    cost: np.ndarray  # [A, S] price x clicks (what the advertisers pay)

    @property
    def revenue(self) -> float:
        return float(self.cost.sum())


def _matrix(name: str, value: object, shape: tuple[int, ...] | None = None) -> np.ndarray:
    try:
        arr: np.ndarray = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numbers", field=name, allowed="numbers") from exc
    if shape is None and arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must be a 2-d array (auctions x bidders), got {arr.ndim}-d",
            field=name,
            allowed="shape (auctions, bidders)",
        )
    if shape is not None and arr.shape != shape:
        raise InvalidInputError(
            f"{name} has shape {arr.shape}; expected {shape}", field=name, allowed=f"shape {shape}"
        )
    return arr


def _in_range(name: str, arr: np.ndarray, low: float, high: float, low_open: bool = False) -> None:
    # min/max propagate NaN, so two fast reductions check finiteness and range together
    if arr.size == 0:
        return
    lo, hi = arr.min(), arr.max()
    if (lo > low if low_open else lo >= low) and hi <= high:
        return
    bad = ~np.isfinite(arr) | (arr <= low if low_open else arr < low) | (arr > high)
    allowed = f"{'>' if low_open else '>='} {low:g} and <= {high:g}"
    raise InvalidInputError(
        f"{name} must be {allowed} (got {arr[bad].ravel()[0]!r})", field=name, allowed=allowed
    )


def parse_mechanism(mechanism: object) -> Mechanism:
    try:
        return Mechanism(str(mechanism))
    except ValueError:
        allowed = ", ".join(m.value for m in Mechanism)
        raise InvalidInputError(
            f"unknown mechanism {mechanism!r}; one of {allowed}", field="mechanism", allowed=allowed
        ) from None


def clear_auctions(
    bids: np.ndarray,
    quality: np.ndarray | None = None,
    *,
    mechanism: Mechanism | str = Mechanism.GSP,
    n_slots: int = 1,
    reserve: float | np.ndarray = 0.0,
    position_ctr: np.ndarray | None = None,
    ctr: np.ndarray | None = None,
    cvr: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> AuctionResult:
    """Clear A auctions at once. bids, quality, ctr, cvr: [A, B]; reserve: scalar or [A];
    position_ctr: [n_slots] CTR multipliers by slot (default 1). See the module docstring."""
    mech = parse_mechanism(mechanism)
    bid = _matrix("bids", bids)
    n_auctions, n_bidders = bid.shape
    if bid.size > MAX_ELEMENTS:
        allowed = f"auctions x bidders <= {MAX_ELEMENTS:,}"
        raise InvalidInputError(
            f"{n_auctions} x {n_bidders} auctions is too large; {allowed}", field="bids", allowed=allowed
        )
    _in_range("bids", bid, 0.0, MAX_BID)
    if (
        not isinstance(n_slots, int | np.integer)
        or isinstance(n_slots, bool)
        or not 1 <= n_slots <= MAX_SLOTS
    ):
        allowed = f">= 1 and <= {MAX_SLOTS}"
        raise InvalidInputError(
            f"n_slots must be an integer {allowed} (got {n_slots!r})", field="n_slots", allowed=allowed
        )
    n_slots = int(n_slots)
    if mech is Mechanism.SECOND_PRICE and n_slots != 1:
        raise InvalidInputError(
            "second_price sells one slot; use gsp for several", field="n_slots", allowed="1 for second_price"
        )
    q = None
    if quality is not None:
        q = _matrix("quality", quality, bid.shape)
        _in_range("quality", q, 0.0, 1e6, low_open=True)
    res_arr = np.asarray(reserve, dtype=np.float64)
    if res_arr.shape not in ((), (n_auctions,)):
        allowed = f"a number or shape ({n_auctions},)"
        raise InvalidInputError(
            f"reserve has shape {res_arr.shape}; expected {allowed}", field="reserve", allowed=allowed
        )
    _in_range("reserve", res_arr, 0.0, MAX_BID)
    alpha = np.ones(n_slots) if position_ctr is None else np.asarray(position_ctr, dtype=np.float64)
    if alpha.shape != (n_slots,):
        raise InvalidInputError(
            f"position_ctr has shape {alpha.shape}; expected ({n_slots},)",
            field="position_ctr",
            allowed=f"shape ({n_slots},)",
        )
    _in_range("position_ctr", alpha, 0.0, 1.0)
    base_ctr = None if ctr is None else _matrix("ctr", ctr, bid.shape)
    if base_ctr is not None:
        _in_range("ctr", base_ctr, 0.0, 1.0)
    base_cvr = None if cvr is None else _matrix("cvr", cvr, bid.shape)
    if base_cvr is not None:
        _in_range("cvr", base_cvr, 0.0, 1.0)

    out = AuctionResult(
        winner=np.empty((n_auctions, n_slots), dtype=np.int64),
        price=np.empty((n_auctions, n_slots)),
        slot_of=np.full(bid.shape, -1, dtype=np.int64),
        ranked_scores=np.empty((n_auctions, n_slots + 1)),
        clicks=np.empty((n_auctions, n_slots)),
        conversions=np.empty((n_auctions, n_slots)),
        cost=np.empty((n_auctions, n_slots)),
    )
    # Blocks of rows small enough to stay in cache: the work is many passes over short arrays.
    for lo in range(0, n_auctions, _BLOCK):
        sl = slice(lo, min(lo + _BLOCK, n_auctions))
        _clear_block(
            mech,
            bid[sl],
            None if q is None else q[sl],
            res_arr if res_arr.ndim == 0 else res_arr[sl, None],
            alpha,
            None if base_ctr is None else base_ctr[sl],
            None if base_cvr is None else base_cvr[sl],
            rng,
            out,
            sl,
        )
    return out


def _clear_block(
    mech: Mechanism,
    bid: np.ndarray,
    q: np.ndarray | None,
    reserve: np.ndarray,
    alpha: np.ndarray,
    base_ctr: np.ndarray | None,
    base_cvr: np.ndarray | None,
    rng: np.random.Generator | None,
    out: AuctionResult,
    sl: slice,
) -> None:
    n_slots = alpha.size
    score = bid if q is None else bid * q
    eligible = (bid > 0) & (bid >= reserve)
    top_score, top_idx = _rank(np.where(eligible, score, -np.inf), n_slots)

    winner = top_idx[:, :n_slots]  # -1 where empty
    filled = winner >= 0
    safe = np.maximum(winner, 0)
    if mech is Mechanism.FIRST_PRICE:
        price = np.take_along_axis(bid, safe, axis=1)
    else:
        next_score = np.maximum(top_score[:, 1:], 0.0)  # -inf (nobody below) -> 0
        own_q = 1.0 if q is None else np.take_along_axis(q, safe, axis=1)
        price = np.maximum(next_score / own_q, reserve)
    price = np.where(filled, price, 0.0)

    slot_of = out.slot_of[sl]
    if n_slots * bid.shape[1] <= 32:  # few bidders and slots: compare per bidder, no scatter
        for b in range(bid.shape[1]):
            column = slot_of[:, b]
            for j in range(n_slots):
                column[winner[:, j] == b] = j
    else:
        rows = np.arange(bid.shape[0])
        for j in range(n_slots):
            f = filled[:, j]
            slot_of[rows[f], winner[f, j]] = j

    p_click = np.where(filled, alpha[None, :], 0.0)
    if base_ctr is not None:
        p_click = p_click * np.take_along_axis(base_ctr, safe, axis=1)
    if rng is None:
        clicks = p_click
        conversions = (
            np.zeros_like(p_click)
            if base_cvr is None
            else p_click * np.take_along_axis(base_cvr, safe, axis=1)
        )
    else:
        clicks = (rng.random(p_click.shape) < p_click).astype(np.float64)
        conversions = np.zeros_like(p_click)
        if base_cvr is not None:
            conversions = clicks * (rng.random(p_click.shape) < np.take_along_axis(base_cvr, safe, axis=1))
    out.winner[sl] = winner
    out.price[sl] = price
    out.ranked_scores[sl] = np.maximum(top_score, 0.0)
    out.clicks[sl] = clicks
    out.conversions[sl] = conversions
    out.cost[sl] = price * clicks


def _rank(score: np.ndarray, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Top n_slots + 1 scores and bidder indices per row, descending, ties to the lower index.

    One pass over the bidders (columns) with an insertion into a sorted list of n_slots + 1 entries,
    vectorized over the auctions: O(bidders x slots) array operations, no per-row sort.
    """
    n_auctions, n_bidders = score.shape
    depth = n_slots + 1
    if depth == 2:  # the common one-slot case, written out: best and runner-up
        best = score[:, 0].copy()
        best_i = np.where(best > -np.inf, 0, -1)
        second = np.full(n_auctions, -np.inf)
        second_i = np.full(n_auctions, -1, dtype=np.int64)
        for b in range(1, n_bidders):
            x = score[:, b]
            beats_best = x > best
            beats_second = x > second
            second_i = np.where(beats_best, best_i, np.where(beats_second, b, second_i))
            second = np.where(beats_best, best, np.where(beats_second, x, second))
            best_i = np.where(beats_best, b, best_i)
            best = np.where(beats_best, x, best)
        return np.stack([best, second], axis=1), np.stack([best_i, second_i], axis=1)
    tops = [np.full(n_auctions, -np.inf) for _ in range(depth)]
    idxs = [np.full(n_auctions, -1, dtype=np.int64) for _ in range(depth)]
    for b in range(n_bidders):
        x = score[:, b]
        pos = np.zeros(n_auctions, dtype=np.int64)  # insertion point: entries >= x stay ahead (ties)
        for t in tops:
            pos += t >= x
        for j in range(depth - 1, -1, -1):
            if j == 0:
                tops[0] = np.where(pos == 0, x, tops[0])
                idxs[0] = np.where(pos == 0, b, idxs[0])
            else:
                tops[j] = np.where(pos > j, tops[j], np.where(pos == j, x, tops[j - 1]))
                idxs[j] = np.where(pos > j, idxs[j], np.where(pos == j, b, idxs[j - 1]))
    return np.stack(tops, axis=1), np.stack(idxs, axis=1)


def vcg_prices(result: AuctionResult, quality: np.ndarray | None, position_ctr: np.ndarray) -> np.ndarray:
    """VCG per-click prices [A, S] for the allocation in ``result`` (rank by bid x quality, no reserve).

    The ad in slot j pays its externality: sum over the slots i >= j of (alpha_i - alpha_{i+1}) times
    the score of the ad ranked i+1, divided by alpha_j and its own quality; position_ctr (alpha) must
    be non-increasing and positive.
    """
    alpha = np.asarray(position_ctr, dtype=np.float64)
    n_slots = alpha.size
    if np.any(alpha <= 0) or np.any(np.diff(alpha) > 0):
        raise InvalidInputError(
            "position_ctr must be positive and non-increasing for VCG",
            field="position_ctr",
            allowed="alpha_1 >= alpha_2 >= ... > 0",
        )
    gaps = alpha - np.append(alpha[1:], 0.0)  # alpha_i - alpha_{i+1}
    below = result.ranked_scores[:, 1:]  # score of the ad ranked i+1, for i = 0..S-1
    externality = np.cumsum((gaps * below)[:, ::-1], axis=1)[:, ::-1]  # sum over i >= j
    safe = np.maximum(result.winner, 0)
    own_q = (
        1.0 if quality is None else np.take_along_axis(np.asarray(quality, dtype=np.float64), safe, axis=1)
    )
    price = externality / alpha[None, :n_slots] / own_q
    return np.where(result.winner >= 0, price, 0.0)
