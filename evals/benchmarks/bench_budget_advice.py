"""Budget advice from the learned market model, judged on the truth (issue #16), before and after a change of
the model or the optimizer, in one run.

For every advertiser of every split (bench_advice's worlds: in-distribution, competitor surge, seasonal peak,
new category), the advisor asks the budget optimizer (tools/optimize/budget.py, as the allocate_budget tool
does) for each campaign's best budget on its own and proposes the move that adds the most (the expert's
"fix my budgets" plan, agent/expert.py: gain above $1, a move of at least $1, budget under $1 = pause). The
judge scores it on the split's true market against the truth oracle's best single budget move
(evals/outcomes.py: fraction of the oracle's gain, clipped to [-1, 1]; 1 where the oracle finds nothing and
the advice loses nothing). Rows:

- doing nothing;
- the sellers' budget rule: the campaign that ran out of budget on most of the last 30 days, among those
  whose ACoS is under the target (the advertiser's, else 0.30), gets 25% more;
- before: the estimator of git revision --before (default HEAD) and its point estimate's best move;
- before's estimator with the optimizer's safe decision on its draws (a move whose 90% range over the
  posterior draws includes a loss is held back; what allocate_budget did before #16's second pass), and with
  the expected-gain decision (each campaign's budget with the most gain on average over the draws);
- this tree's estimator: its point estimate, the safe decision on its draws, and the expected-gain decision
  (`after`: what the allocate_budget tool now does).

Coverage: the 90% interval of a campaign's what-if gain (the simulator's day-to-day range widened by the
model's draws, as what_if reports it) against one random 14-day draw of the true market, for every live
campaign at 0.5x and 1.5x its budget and for every keyword's best bid (bench_advice's picks), old draws and
new draws side by side on the same realizations.

Run: python -m evals.benchmarks.bench_budget_advice [--advertisers 12] [--before REV|none] [--splits ...] [--out DIR]

More advertisers measure the same advice on a larger sample (the paired margins' standard errors shrink as
1/sqrt(advertisers)); `--before none` leaves out the previous estimator's rows (half the fitting) and
`--splits` runs only the splits named, so a large sample of one split stays affordable.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from evals.benchmarks.bench_advice import SPLITS, _realized, build_worlds, stable_seed
from evals.outcomes import HORIZON_DAYS, Account, Change, _best_bid, account_on, change_gain, fraction, oracle
from evals.scenario import OracleKind
from tools.auction.landscape import what_if
from tools.market.data_model import Keyword, KeywordMarket, Status
from tools.market.estimate import View, fit_market_model, load_history
from tools.market.store import AdvertiserStore, MarketStore
from tools.market.truth import TruthStore
from tools.mcp_server.engines import _widened
from tools.mcp_server.schemas import Range
from tools.optimize.budget import CampaignInput, allocate_budget
from tools.optimize.models import Decision

MIN_GAIN = 1.0  # the expert's threshold (agent/expert.py)
# the advisors compared: the estimator of --before and this tree's, each by its point estimate alone and with
# the optimizer's two decisions on its posterior draws (tools/optimize/budget.py)
PICKS = (
    "before",
    "rule_on_old_draws",
    "expected_on_old_draws",
    "new_point",
    "safe_on_new_draws",
    "after",
)
DEFAULT_TARGET_ACOS = 0.30
RULE_RAISE = 1.25
RULE_DAYS = 30
EPS = 1.0
ROOT = Path(__file__).resolve().parents[2]


def estimate_module_at(rev: str) -> ModuleType:
    """tools/market/estimate.py as it was at git revision `rev`, loaded as its own module."""
    text = subprocess.run(
        ["git", "show", f"{rev}:tools/market/estimate.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "estimate_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("estimate_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["estimate_before"] = module
    spec.loader.exec_module(module)
    return module


def _live_campaigns(acct: Account) -> list[str]:
    return [c for c, camp in acct.campaigns.items() if camp.status == Status.ENABLED and acct.by_campaign[c]]


def _draw_markets(
    model: Any, adv: AdvertiserStore, keywords: dict[str, Keyword]
) -> list[dict[str, KeywordMarket]]:
    negatives = adv.negatives()
    kws = list(keywords.values())
    return [model.by_keyword(kws, negatives, d) for d in range(len(model.draws))]


def budget_advice(
    est: Account,
    draws: list[dict[str, KeywordMarket]] | None,
    days: np.ndarray,
    decision: Decision = Decision.EXPECTED_GAIN,
) -> tuple[Change | None, float]:
    """The expert's budget plan on the optimizer's result: the campaign move with the most gain (and that gain)."""
    cids = _live_campaigns(est)
    inputs = [
        CampaignInput(
            campaign_id=c,
            markets=[est.markets[k] for k in est.by_campaign[c]],
            bids=est.bids(c).tolist(),
            margin=float(np.mean([est.margins[k] for k in est.by_campaign[c]])),
            keyword_margins=[est.margins[k] for k in est.by_campaign[c]],
            current_budget=est.campaigns[c].daily_budget,
        )
        for c in cids
    ]
    per_draw = None
    if draws is not None:
        per_draw = [
            [[d[k] for k in est.by_campaign[c]] for c in cids]
            for d in draws
            if all(k in d for c in cids for k in est.by_campaign[c])
        ]
    total = sum(c.current_budget or 0.0 for c in inputs)
    alloc = allocate_budget(inputs, total, days, seed=0, draws=per_draw, decision=decision)
    moves = [
        c
        for c in alloc.campaigns
        if c.current_budget
        and (c.best_gain or 0) > MIN_GAIN
        and abs(round(c.best_budget) - c.current_budget) >= 1
    ]
    if not moves:
        return None, 0.0
    best = max(moves, key=lambda c: c.best_gain or 0.0)
    new = float(round(best.best_budget))
    if new < 1:
        return Change(action="pause", entity=best.campaign_id), float(best.best_gain or 0.0)
    return Change(action="set_budget", entity=best.campaign_id, value=new), float(best.best_gain or 0.0)


def rule_advice(adv: AdvertiserStore, acct: Account) -> Change | None:
    """The sellers' budget rule: +25% for the campaign capped on most recent days among those under target ACoS."""
    h = load_history(adv)
    target = adv.advertiser.target_acos or DEFAULT_TARGET_ACOS
    recent = slice(max(0, h.days.size - RULE_DAYS), h.days.size)
    best: tuple[int, str] | None = None
    for c in _live_campaigns(acct):
        rows = [i for i, cid in enumerate(h.campaign_of) if cid == c]
        if not rows:
            continue
        spend = float(np.nansum(h.spend[rows, recent]))
        sales = float(np.nansum(h.sales[rows, recent]))
        served = np.nanmin(np.where(np.isfinite(h.served[rows, recent]), h.served[rows, recent], 1.0), axis=0)
        capped = int((served < 0.999).sum())
        if sales > 0 and spend / sales < target and capped > 0 and (best is None or capped > best[0]):
            best = (capped, c)
    if best is None:
        return None
    c = best[1]
    return Change(action="set_budget", entity=c, value=round(acct.campaigns[c].daily_budget * RULE_RAISE, 2))


def _interval(
    est: Account, draws: list[dict[str, KeywordMarket]], cmp: str, bids: np.ndarray, budget: float
) -> tuple[float, float]:
    """The what-if range of a campaign change (new bids, new budget): 200 random days' 90% range widened by the
    draws' spread, as the what_if tool reports it."""
    kws = est.by_campaign[cmp]
    margins = np.array([est.margins[k] for k in kws])
    common = dict(new_bids=bids.tolist(), new_budgets=[budget], margin=margins)
    res = what_if(
        [est.markets[k] for k in kws],
        [0] * len(kws),
        est.bids(cmp),
        [est.campaigns[cmp].daily_budget],
        est.days,
        n_sims=200,
        seed=0,
        **common,
    )
    noise = res.difference.incremental_profit
    spread = [
        what_if(
            [d[k] for k in kws],
            [0] * len(kws),
            est.bids(cmp),
            [est.campaigns[cmp].daily_budget],
            est.days,
            n_sims=0,
            **common,
        ).difference.incremental_profit.mean
        for d in draws
        if all(k in d for k in kws)
    ]
    r = _widened(Range(mean=noise.mean, low=noise.low, high=noise.high), np.asarray(spread))
    return r.low, r.high


def _realized_budget(truth: Account, cmp: str, budget: float, seed: int) -> float:
    kws = truth.by_campaign[cmp]
    res = what_if(
        [truth.markets[k] for k in kws],
        [0] * len(kws),
        truth.bids(cmp),
        [truth.campaigns[cmp].daily_budget],
        truth.days,
        new_budgets=[budget],
        margin=np.array([truth.margins[k] for k in kws]),
        n_sims=1,
        seed=seed,
    )
    return float(res.difference.incremental_profit.mean)


def evaluate_world(path: Path, n_adv: int, old: ModuleType | None, view: View, bids: bool) -> dict[str, Any]:
    """Every advertiser's budget advice on the world at `path`, scored on its truth; `old` None leaves out the
    previous estimator's rows."""
    rows: list[dict[str, Any]] = []
    cover: dict[str, list[bool]] = {"budget_old": [], "budget_new": [], "bid_old": [], "bid_new": []}
    with MarketStore.open(path) as store, TruthStore.open(path) as truth_store:
        days = np.arange(store.days, store.days + HORIZON_DAYS)
        for aid in store.advertiser_ids()[:n_adv]:
            adv = store.scoped(aid)
            truth = account_on(adv, truth_store.keyword_markets(adv), days)
            keywords = {k.id: k for k in adv.keywords()}
            new_model = fit_market_model(adv, view)
            est = account_on(
                adv,
                new_model.by_keyword(list(keywords.values()), adv.negatives()),
                days,
            )
            new_draws = _draw_markets(new_model, adv, keywords)
            best_gain, best_change = oracle(truth, OracleKind.BEST_SINGLE_BUDGET)
            row: dict[str, Any] = {"advertiser": aid, "oracle": best_gain, "oracle_change": str(best_change)}
            picks = {
                "new_point": budget_advice(est, None, days),
                "safe_on_new_draws": budget_advice(est, new_draws, days, Decision.SAFE),
                "after": budget_advice(est, new_draws, days),
            }
            compared = [("new", est, new_draws)]
            if old is not None:
                old_model = old.fit_market_model(adv, view)
                old_draws = _draw_markets(old_model, adv, keywords)
                old_est = account_on(
                    adv,
                    {
                        m.keyword_id: m
                        for m in old_model.for_keywords(list(keywords.values()), adv.negatives())
                    },
                    days,
                )
                picks |= {
                    "before": budget_advice(old_est, None, days),
                    "rule_on_old_draws": budget_advice(old_est, old_draws, days, Decision.SAFE),
                    "expected_on_old_draws": budget_advice(old_est, old_draws, days),
                }
                compared.insert(0, ("old", old_est, old_draws))
            rule = rule_advice(adv, truth)
            for name, (change, predicted) in picks.items():
                gain = 0.0 if change is None else float(change_gain(truth, change) or 0.0)
                row[name] = {"gain": gain, "predicted": predicted, "change": str(change)}
            rule_gain = 0.0 if rule is None else float(change_gain(truth, rule) or 0.0)
            row["acos_rule"] = {"gain": rule_gain, "change": str(rule)}
            rows.append(row)
            # coverage of budget what-ifs: every live campaign at 0.5x and 1.5x its budget
            for c in _live_campaigns(truth):
                if c not in est.by_campaign or est.by_campaign[c] != truth.by_campaign[c]:
                    continue
                for mult in (0.5, 1.5):
                    budget = truth.campaigns[c].daily_budget * mult
                    realized = _realized_budget(truth, c, budget, seed=stable_seed(aid, c, mult))
                    for tag, point, draws in compared:
                        lo, hi = _interval(point, draws, c, point.bids(c), budget)
                        cover[f"budget_{tag}"].append(lo <= realized <= hi)
            if not bids:
                continue
            for kw_id in truth.keywords:
                if kw_id not in truth.markets or kw_id not in est.markets or not truth.live(kw_id):
                    continue
                _, pick = _best_bid(est, kw_id)
                if pick is None:
                    continue
                cmp = est.campaign_of[kw_id]
                new_bids = est.bids(cmp)
                new_bids[est.by_campaign[cmp].index(kw_id)] = (
                    0.0 if pick.action == "pause" else float(pick.value or 0)
                )
                realized = _realized(truth, pick, seed=stable_seed(kw_id))
                for tag, _, draws in compared:
                    lo, hi = _interval(est, draws, cmp, new_bids, est.campaigns[cmp].daily_budget)
                    cover[f"bid_{tag}"].append(lo <= realized <= hi)
    return summarize(rows, cover)


def summarize(rows: list[dict[str, Any]], cover: dict[str, list[bool]]) -> dict[str, Any]:
    oracle_gain = np.array([r["oracle"] for r in rows])
    out: dict[str, Any] = {"advertisers": len(rows), "oracle_gain_sum": float(oracle_gain.sum())}
    fr: dict[str, np.ndarray] = {}
    present = [p for p in PICKS if rows and p in rows[0]]
    for name in ("doing_nothing", "acos_rule", *present):
        g = np.zeros(len(rows)) if name == "doing_nothing" else np.array([r[name]["gain"] for r in rows])
        fr[name] = np.array([fraction(x, o) for x, o in zip(g, oracle_gain, strict=True)])
        out[name] = {
            "mean_fraction": float(fr[name].mean()),
            "share_of_oracle_gain": float(g.sum() / max(oracle_gain.sum(), EPS)),
            "true_gain_sum": float(g.sum()),
            "losing_moves": int((g < -EPS).sum()),
            "moves": int(sum(r[name]["change"] != "None" for r in rows)) if name != "doing_nothing" else 0,
        }
    for a, b in (
        ("after", "before"),
        ("after", "rule_on_old_draws"),
        ("after", "acos_rule"),
        ("after", "doing_nothing"),
    ):
        if a not in fr or b not in fr:
            continue
        d = fr[a] - fr[b]
        out[f"{a}_minus_{b}"] = {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(d.size))}
    out["coverage_90"] = {k: (float(np.mean(v)), len(v)) for k, v in cover.items() if v}
    out["rows"] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--advertisers", type=int, default=12)
    ap.add_argument("--seed", type=int, default=2027, help="world seed (not the eval or training worlds')")
    ap.add_argument(
        "--before", default="HEAD", help="git revision whose estimator is the 'before' ('none': leave it out)"
    )
    ap.add_argument(
        "--splits", nargs="+", default=[s.value for s in SPLITS], choices=[s.value for s in SPLITS]
    )
    ap.add_argument("--view", default="platform", choices=[v.value for v in View])
    ap.add_argument("--no-bids", action="store_true", help="skip the bid picks' coverage (the slow part)")
    ap.add_argument("--out", type=Path, default=None, help="write results.json here")
    args = ap.parse_args()
    t0 = time.time()
    old = None if args.before == "none" else estimate_module_at(args.before)
    results: dict[str, Any] = {
        "advertisers": args.advertisers,
        "seed": args.seed,
        "before": args.before,
        "view": args.view,
        "splits": args.splits,
    }
    with tempfile.TemporaryDirectory() as tmp:
        splits = [s for s in SPLITS if s.value in args.splits]
        paths = build_worlds(Path(tmp), args.advertisers, args.seed, splits)
        print(f"worlds built in {time.time() - t0:.0f} s", flush=True)
        for split in splits:
            res = evaluate_world(paths[split], args.advertisers, old, View(args.view), not args.no_bids)
            results[split.value] = res
            brief = {k: v for k, v in res.items() if k != "rows"}
            print(f"{split.value:17s} {json.dumps(brief)}", flush=True)
    results["seconds"] = round(time.time() - t0, 1)
    print(f"done in {results['seconds']} s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
