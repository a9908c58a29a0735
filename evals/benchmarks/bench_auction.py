"""Auction simulator speed, side by side with a per-auction Python loop in AuctionGym's style.

    .venv/bin/python -m evals.benchmarks.bench_auction [--auctions 2000000] [--history]

Prints, in one run on one core:
* single-slot second-price auctions with 2 bidders per auction cleared per second: the vectorized
  core (tools.auction.core.clear_auctions), with the values drawn inside the timing and without, and a
  loop that clears one auction at a time (draw values, sort, second price) as AuctionGym does;
* the time of a 30-day simulation of a 50-keyword campaign with budget pacing (simulate_days), sampled
  and expected;
* with --history: a 120-day history of 5,000 keywords in 500 campaigns (what the world generator runs).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from tools.auction.core import clear_auctions  # noqa: E402
from tools.auction.simulate import market_arrays, simulate_days  # noqa: E402
from tools.market.data_model import KeywordMarket, MarketEvent  # noqa: E402


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def auctiongym_style_loop(n_auctions: int, rng: np.random.Generator) -> float:
    """One auction at a time: draw each bidder's value (truthful bid), sort, winner pays the second."""
    revenue = 0.0
    for _ in range(n_auctions):
        bids = rng.uniform(size=2)
        order = np.argsort(-bids)
        revenue += bids[order[1]]
    return revenue


def campaign_markets(n_keywords: int, rng: np.random.Generator, prefix: str = "kw") -> list[KeywordMarket]:
    return [
        KeywordMarket(
            keyword_id=f"{prefix}_{i:07d}",
            base_volume=float(rng.lognormal(6.0, 1.0)),
            weekly_amp=0.2,
            weekly_phase=float(rng.uniform(0, 6.28)),
            yearly_amp=0.15,
            n_rivals=float(rng.uniform(1, 8)),
            rival_bid_mu=float(np.log(rng.uniform(0.4, 1.5))),
            rival_bid_sigma=0.5,
            rival_quality_a=4.0,
            rival_quality_b=3.0,
            quality=float(rng.uniform(0.3, 0.9)),
            ctr_top=0.04,
            position_decay=0.7,
            cvr=0.1,
            aov=float(rng.uniform(15, 60)),
            organic_rate=0.02,
            cannibalization=0.3,
            events=[MarketEvent(start=12, end=14, demand_mult=2.0, rival_bid_mult=1.3)] if i % 4 == 0 else [],
        )
        for i in range(n_keywords)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--auctions", type=int, default=2_000_000, help="auctions for the vectorized core")
    parser.add_argument("--loop-auctions", type=int, default=20_000, help="auctions for the per-auction loop")
    parser.add_argument("--history", action="store_true", help="also time a 120-day, 5,000-keyword history")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    print("single-slot second-price auctions, 2 bidders each, one core")
    values = rng.random((args.auctions, 2))
    core_only = best_time(lambda: clear_auctions(values, mechanism="second_price"))
    with_draws = best_time(lambda: clear_auctions(rng.random((args.auctions, 2)), mechanism="second_price"))
    loop = best_time(lambda: auctiongym_style_loop(args.loop_auctions, rng), repeats=1)
    print(f"  vectorized core, values given      {args.auctions / core_only:>14,.0f} auctions/s")
    print(f"  vectorized core, drawing values    {args.auctions / with_draws:>14,.0f} auctions/s")
    print(f"  per-auction loop (AuctionGym style) {args.loop_auctions / loop:>13,.0f} auctions/s")
    print(
        f"  speed-up, core with draws vs loop  {(args.auctions / with_draws) / (args.loop_auctions / loop):>14,.0f} x"
    )

    markets = market_arrays(campaign_markets(50, rng))
    bids = np.full(50, 1.0)
    campaign_of = np.zeros(50, dtype=np.int64)
    budget = np.array([150.0])  # binds on most days: pacing cuts the campaign off in the afternoon
    days = np.arange(30)
    print("30-day simulation of a 50-keyword campaign with budget pacing")
    for expected in (False, True):
        t = time.perf_counter()
        res = simulate_days(markets, bids, campaign_of, budget, days, seed=1, expected=expected)
        first = time.perf_counter() - t

        def run(e: bool = expected) -> object:
            return simulate_days(markets, bids, campaign_of, budget, days, seed=1, expected=e)

        best = best_time(run)
        hit = np.mean(~np.isnan(res.budget_exhausted_at))
        kind = "expected" if expected else "sampled "
        print(
            f"  {kind}  {best * 1000:8.1f} ms (first call {first * 1000:.1f} ms); budget hit on {hit:.0%} of days"
        )

    if args.history:
        n_kw, n_days = 5000, 120
        hist = market_arrays(campaign_markets(n_kw, rng, prefix="h"))
        camp = np.arange(n_kw) // 10
        budgets = rng.uniform(20, 200, camp.max() + 1)
        t = time.perf_counter()
        simulate_days(hist, np.full(n_kw, 1.0), camp, budgets, np.arange(n_days), seed=2)
        elapsed = time.perf_counter() - t
        print(
            f"history: {n_days} days x {n_kw:,} keywords sampled in {elapsed:.1f} s "
            f"({n_days * n_kw / elapsed:,.0f} keyword-days/s)"
        )


if __name__ == "__main__":
    main()
