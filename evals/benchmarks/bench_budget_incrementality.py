"""How well the market model knows a campaign's cannibalization (issue #16: what budget advice rests on).

Budget advice turns on how much of a campaign's attributed sales would have happened anyway; an account's
history identifies it weakly. The estimator (tools/market/estimate.py) combines each campaign's own fit
(organic sales against the ad orders that budget caps and bid changes move) with a marketplace prior that
follows the campaign's organic orders per search, a line fit to many accounts' campaign fits. This benchmark:

1. refits that prior (fit_cannibalization_prior) on the histories of the fitting worlds (seeds 101-103, 40
   accounts each; no truth read) and prints it beside the constants the estimator ships with;
2. on other worlds (seeds 11 and 12, 24 accounts each, never used to fit or choose anything), scores each
   live campaign's cannibalization (the mean over its keywords, weighted by their ad orders in the history)
   against the truth: mean absolute error of the marketplace constant alone (0.3), of the estimator of git
   revision --before, of the prior line alone and of this tree's estimator, and how often the truth lies in
   the 90% range of the campaign's mean over the posterior draws.

Run: python -m evals.benchmarks.bench_budget_incrementality [--before REV] [--out DIR]   (about 3 minutes)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.benchmarks.bench_advice import FIT_ACCOUNTS, FIT_SEEDS, history_world
from evals.benchmarks.bench_budget_advice import estimate_module_at
from tools.market import estimate
from tools.market.data_model import Status
from tools.market.estimate import (
    CampaignEvidence,
    campaign_evidence,
    cannibalization_prior,
    fit_cannibalization_prior,
    fit_market_model,
    load_history,
)
from tools.market.store import MarketStore
from tools.market.truth import TruthStore

MEASURE_SEEDS, MEASURE_ACCOUNTS = (11, 12), 24


def refit_prior(root: Path) -> dict[str, Any]:
    evidence: list[CampaignEvidence] = []
    for seed in FIT_SEEDS:
        with MarketStore.open(history_world(root, seed, FIT_ACCOUNTS)) as store:
            for aid in store.advertiser_ids():
                evidence += campaign_evidence(load_history(store.scoped(aid))).values()
    return fit_cannibalization_prior(evidence)


def measure(root: Path, before: Any) -> dict[str, Any]:
    errors: dict[str, list[float]] = {"constant_prior": [], "before": [], "prior_line": [], "after": []}
    inside: dict[str, list[bool]] = {"before": [], "after": []}
    for seed in MEASURE_SEEDS:
        path = history_world(root, seed, MEASURE_ACCOUNTS)
        with MarketStore.open(path) as store, TruthStore.open(path) as truth_store:
            for aid in store.advertiser_ids():
                adv = store.scoped(aid)
                truth = truth_store.keyword_markets(adv)
                h = load_history(adv)
                evidence = campaign_evidence(h)
                models = {"before": before.fit_market_model(adv), "after": fit_market_model(adv)}
                live = {c.id for c in adv.campaigns() if c.status == Status.ENABLED}
                for c in dict.fromkeys(h.campaign_of):
                    rows = [k for k, cid in enumerate(h.campaign_of) if cid == c]
                    weight = np.array([np.nansum(h.orders[k]) for k in rows])
                    if c not in live or weight.sum() <= 0:
                        continue
                    ids = [h.keywords[k].id for k in rows]
                    true = float(np.average([truth[k].cannibalization for k in ids], weights=weight))
                    errors["constant_prior"].append(abs(estimate.CANNIBALIZATION_PRIOR - true))
                    if c in evidence:
                        line = cannibalization_prior(evidence[c].log_organic_per_search)[0]
                        errors["prior_line"].append(abs(line - true))
                    for name, model in models.items():
                        point = float(
                            np.average([model.markets[k].cannibalization for k in ids], weights=weight)
                        )
                        errors[name].append(abs(point - true))
                        draws = [
                            np.average([d[k].cannibalization for k in ids], weights=weight)
                            for d in model.draws
                        ]
                        lo, hi = np.quantile(draws, [0.05, 0.95])
                        inside[name].append(bool(lo <= true <= hi))
    return {
        "campaigns": len(errors["constant_prior"]),
        "mae": {name: float(np.mean(v)) for name, v in errors.items()},
        "coverage_90": {name: float(np.mean(v)) for name, v in inside.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="HEAD", help="git revision whose estimator is the 'before'")
    ap.add_argument("--out", type=Path, default=None, help="write results.json here")
    args = ap.parse_args()
    t0 = time.time()
    before = estimate_module_at(args.before)
    with tempfile.TemporaryDirectory() as tmp:
        refit = refit_prior(Path(tmp))
        shipped = {
            "line": estimate.PRIOR_LINE.tolist(),
            "se_scale": estimate.CANNIBALIZATION_SE_SCALE,
            "spread": estimate.PRIOR_SPREAD,
        }
        print(
            "prior refit on seeds", FIT_SEEDS, json.dumps(refit), "\nshipped", json.dumps(shipped), flush=True
        )
        measured = measure(Path(tmp), before)
        print("seeds", MEASURE_SEEDS, json.dumps(measured), flush=True)
    results = {
        "before": args.before,
        "prior_refit": refit,
        "prior_shipped": shipped,
        "measured": measured,
        "seconds": round(time.time() - t0, 1),
    }
    print(f"done in {results['seconds']} s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
