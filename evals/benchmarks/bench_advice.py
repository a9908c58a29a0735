"""Advice from the learned market model, judged on the truth (issue #16).

The advisor sees only what its view observes (tools/market/estimate.py: `seller` = the account's reports,
`platform` = those plus the platform's auction log) and picks, for every live keyword, the bid its
estimated market says earns most over the next 14 days (the same grid search as the judge's oracle, on its
own model). The judge scores every pick on the world's true market of the split (evals/outcomes.py): the
gain in true expected incremental profit over keeping today's bid, as a fraction of the truth oracle's
best. Beside it:

- doing nothing (0 by definition);
- the sellers' common rule: bid = target ACoS x average order value x conversion rate (both read from the
  reports over the history; target ACoS the advertiser's, else 0.30);
- the truth-reading advisor: the oracle itself, the ceiling (1.0).

Splits: in-distribution (the history's market goes on), the two shifted markets of evals/world.py (the
market moves on the first future day: the advisor cannot see it, the judge scores on it) and a world of the
held-out category. Per split and view it prints the fraction of the oracle's summed gain, the mean per-
keyword clipped fraction, and the paired margin over the ACoS rule (mean and standard error of the
per-keyword difference in gain / oracle gain).

Calibration: for each estimated pick, the model's predicted gain against the true expected gain, and the
90% interval (model draws plus 14 random days, as what_if reports) against the realized gain of one random
14-day draw of the true market (common random numbers between the status quo and the change). Beside it
the winner's curse corrected: a pick is the best of noisy estimates, so its predicted gain is optimistic;
each posterior draw plays the truth's part (its own best bid's gain on the draw minus that bid's gain on the
point estimate, averaged over the draws: `optimism`), and the predicted gain and its range are moved down by
that optimism.

Bias of the naive fits, beside the model's (in-distribution world, platform view):
- position effect on clicks: the decay per slot from a pooled fit across keywords (confounded: brand terms
  sit on top and are clicked more) and the within-keyword fit, against the true mean;
- incrementality: the share of attributed sales that is incremental, read naively from the reports (all
  of it), and the model's, against the truth (mean absolute error per keyword).

Sources of the ranges' market term (`--moves`, instead of the above): each posterior draw moves the whole
market by one fortnight-to-fortnight move, bootstrapped from the account's own history (what the tools do).
This mode measures, in every split, the 90% coverage and width of the picks' ranges with that term taken
from other observable sources: the moves of every account of the fitting worlds pooled (seeds 101-103, the
accounts the cannibalization prior is fit on; no truth read), and, as diagnostics that no observation
justifies, the own moves doubled and the whole range widened by a factor.

Run: python -m evals.benchmarks.bench_advice [--advertisers 24] [--moves] [--out DIR]   (about 5 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from evals.outcomes import HORIZON_DAYS, Account, Change, _best_bid, account_on, change_gain
from evals.scenario import Split
from evals.world import SHIFTS, apply_shift
from tools.auction.landscape import what_if
from tools.market.data_model import WorldConfig
from tools.market.estimate import MarketModel, View, fit_demand, fit_market_model, load_history, market_moves
from tools.market.generate import generate_world_file
from tools.market.store import AdvertiserStore, MarketStore
from tools.market.truth import TruthStore
from tools.market.world import HELD_OUT_CATEGORY_NAMES
from tools.mcp_server.engines import _widened
from tools.mcp_server.schemas import Range

DEFAULT_TARGET_ACOS = 0.30
EPS = 1.0
SPLITS = (Split.ID, Split.COMPETITOR_SURGE, Split.SEASONAL_PEAK, Split.NEW_CATEGORY)


def _acos_rule(adv: AdvertiserStore) -> dict[str, float]:
    """bid = target ACoS x AOV x CVR per keyword, from its reports over the history (clicks-weighted)."""
    h = load_history(adv)
    target = adv.advertiser.target_acos or DEFAULT_TARGET_ACOS
    out = {}
    for i, kw in enumerate(h.keywords):
        clicks, orders, sales = (float(np.nansum(x[i])) for x in (h.clicks, h.orders, h.sales))
        if clicks > 0 and orders > 0:
            out[kw.id] = round(max(0.02, target * (sales / orders) * (orders / clicks)), 2)
    return out


def _setting(
    acct: Account, change: Change
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """The change's campaign: its keywords, bids today and after the change, margins and daily budget."""
    cmp = acct.campaign_of[change.entity]
    kws = acct.by_campaign[cmp]
    bids = acct.bids(cmp)
    new = bids.copy()
    new[kws.index(change.entity)] = 0.0 if change.action == "pause" else float(change.value or 0.0)
    return kws, bids, new, np.array([acct.margins[k] for k in kws]), [acct.campaigns[cmp].daily_budget]


def _noise(est: Account, change: Change) -> Range:
    """The simulator's 90% range of the change's gain over HORIZON_DAYS random days, on the point estimate."""
    kws, bids, new, margins, budget = _setting(est, change)
    res = what_if(
        [est.markets[k] for k in kws],
        [0] * len(kws),
        bids,
        budget,
        est.days,
        new_bids=new.tolist(),
        margin=margins,
        n_sims=200,
        seed=0,
    )
    noise = res.difference.incremental_profit
    return Range(mean=noise.mean, low=noise.low, high=noise.high)


def _draw_gains(model: MarketModel, est: Account, adv: AdvertiserStore, change: Change) -> np.ndarray:
    """The change's expected gain on each of the model's posterior draws."""
    kws, bids, new, margins, budget = _setting(est, change)
    keywords = {k.id: k for k in adv.keywords()}
    spread = []
    for d in range(len(model.draws)):
        ms = model.for_keywords([keywords[k] for k in kws], adv.negatives(), d)
        r = what_if(
            ms, [0] * len(kws), bids, budget, est.days, new_bids=new.tolist(), margin=margins, n_sims=0
        )
        spread.append(r.difference.incremental_profit.mean)
    return np.asarray(spread)


def _interval(
    model: MarketModel, est: Account, adv: AdvertiserStore, change: Change
) -> tuple[float, float, float]:
    """Predicted gain and its 90% interval over HORIZON_DAYS random days (model draws widen it)."""
    rng = _widened(_noise(est, change), _draw_gains(model, est, adv, change))
    return rng.mean, rng.low, rng.high


def optimism(est: Account, draws: list[Account], keyword_id: str) -> float:
    """How much the pick's predicted gain overstates what it earns, because the pick is the best of noisy
    estimates (the winner's curse): each posterior draw plays the truth's part and the point estimate the
    model's. The draw's own best bid is scored on the draw (its in-sample gain) and on the point estimate
    (what it earns elsewhere); their mean difference is the optimism a pick's predicted gain carries."""
    gaps = []
    for d in draws:
        if keyword_id not in d.markets:
            continue
        in_sample, pick = _best_bid(d, keyword_id)
        gaps.append(in_sample - (float(change_gain(est, pick) or 0.0) if pick is not None else 0.0))
    return float(np.mean(gaps)) if gaps else 0.0


def stable_seed(*parts: object) -> int:
    """A realization's seed from its names, the same in every run (str hashes are salted per process)."""
    return zlib.crc32(repr(parts).encode()) % 1000 + 7


def _realized(truth: Account, change: Change, seed: int) -> float:
    """One random draw of the true market over the horizon: the change's realized gain."""
    kws, bids, new, margins, budget = _setting(truth, change)
    res = what_if(
        [truth.markets[k] for k in kws],
        [0] * len(kws),
        bids,
        budget,
        truth.days,
        new_bids=new.tolist(),
        margin=margins,
        n_sims=1,
        seed=seed,
    )
    return float(res.difference.incremental_profit.mean)


def judged_keywords(truth: Account, est: Account) -> Iterator[tuple[str, float]]:
    """The keywords advice is judged on, with the truth's best gain: live, in both markets, the truth's best above 0."""
    for kw_id in truth.keywords:
        if kw_id not in truth.markets or kw_id not in est.markets or not truth.live(kw_id):
            continue
        best, _ = _best_bid(truth, kw_id)
        if best > EPS:
            yield kw_id, best


def evaluate_world(path: Path, view: View, n_adv: int, calibrate: bool) -> dict[str, object]:
    rows: list[dict[str, float]] = []
    with MarketStore.open(path) as store, TruthStore.open(path) as truth_store:
        days = np.arange(store.days, store.days + HORIZON_DAYS)
        for aid in store.advertiser_ids()[:n_adv]:
            adv = store.scoped(aid)
            truth = account_on(adv, truth_store.keyword_markets(adv), days)
            model = fit_market_model(adv, view)
            est_markets = model.by_keyword(adv.keywords(), adv.negatives())
            est = account_on(adv, est_markets, days)
            draws = (
                [
                    account_on(
                        adv,
                        model.by_keyword(adv.keywords(), adv.negatives(), d),
                        days,
                    )
                    for d in range(len(model.draws))
                ]
                if calibrate
                else []
            )
            rule = _acos_rule(adv)
            for kw_id, best in judged_keywords(truth, est):
                predicted, pick = _best_bid(est, kw_id)
                gain = 0.0 if pick is None else float(change_gain(truth, pick) or 0.0)
                acos_gain = 0.0
                if kw_id in rule:
                    acos_gain = float(
                        change_gain(truth, Change(action="set_bid", entity=kw_id, value=rule[kw_id])) or 0.0
                    )
                row = {"oracle": best, "model": gain, "acos_rule": acos_gain, "predicted": predicted}
                if calibrate and pick is not None:
                    _, lo, hi = _interval(model, est, adv, pick)
                    shift = optimism(est, draws, kw_id)
                    row |= {
                        "low": lo,
                        "high": hi,
                        "optimism": shift,
                        "realized": _realized(truth, pick, seed=stable_seed(kw_id)),
                    }
                rows.append(row)
    return summarize(rows)


def summarize(rows: list[dict[str, float]]) -> dict[str, object]:
    if not rows:
        return {"keywords": 0}
    oracle = np.array([r["oracle"] for r in rows])
    out: dict[str, object] = {"keywords": len(rows)}
    fractions = {}
    for name in ("model", "acos_rule"):
        g = np.array([r[name] for r in rows])
        fractions[name] = np.clip(g / oracle, -1, 1)
        out[name] = {
            "share_of_oracle_gain": float(g.sum() / oracle.sum()),
            "mean_fraction": float(fractions[name].mean()),
        }
    diff = fractions["model"] - fractions["acos_rule"]
    out["model_minus_acos_rule"] = {
        "mean": float(diff.mean()),
        "se": float(diff.std(ddof=1) / np.sqrt(diff.size)),
    }
    cal = [r for r in rows if "low" in r]
    if cal:
        pred = np.array([r["predicted"] for r in rows])
        true = np.array([r["model"] for r in rows])
        inside = [r["low"] <= r["realized"] <= r["high"] for r in cal]
        # the winner's curse corrected: the predicted gain and its range less the pick's optimism
        shift = np.array([r["optimism"] for r in cal])
        inside_corrected = [
            r["low"] - s <= r["realized"] <= r["high"] - s for r, s in zip(cal, shift, strict=True)
        ]
        picked = np.array([r["predicted"] for r in cal])
        out["calibration"] = {
            "predicted_gain_sum": float(pred.sum()),
            "true_gain_sum": float(true.sum()),
            "corr": float(np.corrcoef(pred, true)[0, 1]) if pred.size > 2 else None,
            "interval_coverage_90": float(np.mean(inside)),
            "n_intervals": len(cal),
            "corrected_predicted_gain_sum": float((picked - shift).sum()),
            "corrected_true_gain_sum": float(np.array([r["model"] for r in cal]).sum()),
            "corrected_interval_coverage_90": float(np.mean(inside_corrected)),
        }
    return out


def own_moves(adv: AdvertiserStore) -> np.ndarray:
    """The account's own fortnight-to-fortnight market moves, as fit_market_model bootstraps them."""
    h = load_history(adv)
    return market_moves(h, fit_demand(h))


# the fitting worlds: the cannibalization prior is fit on their accounts (bench_budget_incrementality), and their
# market moves are pooled here
FIT_SEEDS, FIT_ACCOUNTS = (101, 102, 103), 40
HISTORY_DAYS = 120


def history_world(root: Path, seed: int, n: int) -> Path:
    """A generated world of `n` accounts with HISTORY_DAYS of history, under root/seed<seed>/."""
    path = root / f"seed{seed}" / "world.sqlite"
    generate_world_file(WorldConfig(n_advertisers=n, days=HISTORY_DAYS, seed=seed), path)
    return path


def pooled_moves(root: Path) -> np.ndarray:
    """The market moves of every account of the fitting worlds (the cannibalization prior's: seeds 101-103, 40
    accounts each), pooled: the marketplace's evidence of how far an account's market moves in a fortnight."""
    out = []
    for seed in FIT_SEEDS:
        with MarketStore.open(history_world(root, seed, FIT_ACCOUNTS)) as store:
            for aid in store.advertiser_ids():
                adv = store.scoped(aid)
                if adv.keywords():
                    out.append(own_moves(adv))
    return np.concatenate(out)


WIDTH_FACTORS = (1.25, 1.5)  # diagnostic: the own-moves range widened about its mean


def coverage_by_moves(path: Path, view: View, n_adv: int, pooled: np.ndarray) -> dict[str, object]:
    """90% coverage and width of every pick's range, with the draws' market moves from each source."""
    sources = {
        "own": lambda adv: None,
        "pooled": lambda adv: pooled,
        "own_x2": lambda adv: 2.0 * own_moves(adv),
    }
    ranges: dict[str, list[tuple[float, float]]] = {name: [] for name in sources}
    centers, realized = [], []
    with MarketStore.open(path) as store, TruthStore.open(path) as truth_store:
        days = np.arange(store.days, store.days + HORIZON_DAYS)
        for aid in store.advertiser_ids()[:n_adv]:
            adv = store.scoped(aid)
            truth = account_on(adv, truth_store.keyword_markets(adv), days)
            models = {name: fit_market_model(adv, view, moves=f(adv)) for name, f in sources.items()}
            est = account_on(
                adv,
                models["own"].by_keyword(adv.keywords(), adv.negatives()),
                days,
            )
            for kw_id, _best in judged_keywords(truth, est):
                _, pick = _best_bid(est, kw_id)
                if pick is None:
                    continue
                noise = _noise(est, pick)
                for name, model in models.items():
                    rg = _widened(noise, _draw_gains(model, est, adv, pick))
                    ranges[name].append((rg.low, rg.high))
                centers.append(noise.mean)
                realized.append(_realized(truth, pick, seed=stable_seed(kw_id)))
    if not realized:
        return {"intervals": 0}
    r, c = np.array(realized), np.array(centers)
    out: dict[str, object] = {"intervals": int(r.size)}
    widened = {f"own_width_x{f}": (f, np.array(ranges["own"])) for f in WIDTH_FACTORS}
    for name, (factor, bounds) in {**{n: (1.0, np.array(v)) for n, v in ranges.items()}, **widened}.items():
        lo, hi = c - factor * (c - bounds[:, 0]), c + factor * (bounds[:, 1] - c)
        out[name] = {
            "coverage_90": float(np.mean((lo <= r) & (r <= hi))),
            "median_width": float(np.median(hi - lo)),
            "mean_width": float(np.mean(hi - lo)),
        }
    return out


def naive_bias(path: Path, n_adv: int) -> dict[str, object]:
    """Position decay (pooled vs within-keyword) and incremental share (naive vs model) against the truth."""
    decay_true, decay_naive, decay_model, inc_err_naive, inc_err_model = [], [], [], [], []
    with MarketStore.open(path) as store, TruthStore.open(path) as truth_store:
        for aid in store.advertiser_ids()[:n_adv]:
            adv = store.scoped(aid)
            model = fit_market_model(adv, View.PLATFORM)
            truth = truth_store.keyword_markets(adv)
            decay_true.append(float(np.mean([m.position_decay for m in truth.values()])))
            decay_naive.append(model.fit["naive_position_decay"])
            decay_model.append(model.fit["position_decay"])
            for kid, est in model.markets.items():
                true_share = 1 - truth[kid].cannibalization
                inc_err_naive.append(abs(1.0 - true_share))
                inc_err_model.append(abs((1 - est.cannibalization) - true_share))
    t, n, d = (np.array(x) for x in (decay_true, decay_naive, decay_model))
    return {
        "position_decay": {
            "true_mean": float(t.mean()),
            "naive_pooled_bias": float((n - t).mean()),
            "naive_pooled_mae": float(np.abs(n - t).mean()),
            "within_keyword_bias": float((d - t).mean()),
            "within_keyword_mae": float(np.abs(d - t).mean()),
        },
        "incremental_share_mae": {
            "naive_all_attributed": float(np.mean(inc_err_naive)),
            "model": float(np.mean(inc_err_model)),
        },
    }


def build_worlds(
    root: Path, n_adv: int, seed: int, splits: tuple[Split, ...] | list[Split] = SPLITS
) -> dict[Split, Path]:
    """The splits' worlds under `root` (only those of `splits`: the new category is a world of its own, the
    shifted markets are the in-distribution world moved)."""
    config = WorldConfig(n_advertisers=n_adv, days=120, seed=seed)
    paths = {}
    if set(splits) - {Split.NEW_CATEGORY}:
        base = root / "id" / "world.sqlite"
        generate_world_file(config, base)
        paths[Split.ID] = base
    for split in (Split.COMPETITOR_SURGE, Split.SEASONAL_PEAK):
        if split not in splits:
            continue
        dest = root / split.value / "world.sqlite"
        dest.parent.mkdir(parents=True)
        for src, dst in ((base, dest), (base.with_name("truth.sqlite"), dest.with_name("truth.sqlite"))):
            dst.write_bytes(src.read_bytes())
        apply_shift(dest, SHIFTS[split], split.value)
        paths[split] = dest
    if Split.NEW_CATEGORY in splits:
        garden = root / "new_category" / "world.sqlite"
        generate_world_file(config.model_copy(update={"categories": list(HELD_OUT_CATEGORY_NAMES)}), garden)
        paths[Split.NEW_CATEGORY] = garden
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--advertisers", type=int, default=24)
    ap.add_argument("--seed", type=int, default=2027, help="world seed (not the eval or training worlds')")
    ap.add_argument("--out", type=Path, default=None, help="write results.json here")
    ap.add_argument(
        "--views",
        nargs="+",
        default=[v.value for v in (View.PLATFORM, View.SELLER)],
        choices=[v.value for v in View],
    )
    ap.add_argument(
        "--moves", action="store_true", help="only the ranges' coverage by source of their market moves"
    )
    args = ap.parse_args()
    t0 = time.time()
    results: dict[str, object] = {
        "advertisers": args.advertisers,
        "seed": args.seed,
        "horizon_days": HORIZON_DAYS,
    }
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_worlds(Path(tmp), args.advertisers, args.seed)
        print(f"worlds built in {time.time() - t0:.0f} s", flush=True)
        if args.moves:
            pooled = pooled_moves(Path(tmp) / "fit")
            results["pooled_moves"] = {
                "moves": int(pooled.shape[0]),
                "abs_quantiles_0.5_0.9_0.99_max": {
                    "demand": np.quantile(np.abs(pooled[:, 0]), [0.5, 0.9, 0.99, 1.0]).round(3).tolist(),
                    "cpc": np.quantile(np.abs(pooled[:, 1]), [0.5, 0.9, 0.99, 1.0]).round(3).tolist(),
                },
            }
            print("pooled moves", json.dumps(results["pooled_moves"]), flush=True)
        for view in map(View, args.views):
            if args.moves:
                for split in SPLITS:
                    res = coverage_by_moves(paths[split], view, args.advertisers, pooled)
                    results[f"{view.value}/{split.value}/moves"] = res
                    print(f"{view.value:9s} {split.value:17s} {json.dumps(res)}", flush=True)
                continue
            for split in SPLITS:
                res = evaluate_world(
                    paths[split], view, args.advertisers, calibrate=split == Split.ID or view == View.PLATFORM
                )
                results[f"{view.value}/{split.value}"] = res
                print(f"{view.value:9s} {split.value:17s} {json.dumps(res)}", flush=True)
        if not args.moves:
            results["naive_bias"] = naive_bias(paths[Split.ID], args.advertisers)
            print("naive bias", json.dumps(results["naive_bias"]), flush=True)
    results["seconds"] = round(time.time() - t0, 1)
    print(f"done in {results['seconds']} s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
