"""Uplift benchmark: PEHE, ATE error and interval coverage per estimator and data set, plus speed.

Data sets: the Nie & Wager designs A-D (8 covariates) and the marketplace's experiments (ad holdout and
promotion, high and low signal). Estimators: ours (auto: the guarded choice among the constant, linear, x
and the stack; auto with round 7's rule, the stack whenever heterogeneity is detected; linear DML, DR-,
X-learner), the "no heterogeneity" baseline (the AIPW average effect for everyone), and, when
`.venv-peers` exists, EconML and causalml run in that environment by subprocess (otherwise they are
reported as "not installed").
Speed: one fit + predict at 100,000 rows x 8 covariates.

    .venv/bin/python evals/benchmarks/bench_uplift.py [--n 10000] [--seeds 2] [--speed-n 100000] [--no-peers]

Latest figures, with the conditions they were measured under: evals/benchmarks/RESULTS_uplift.md.
Ours report wall and CPU seconds: on a shared machine the wall time includes waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.market.experiments import EffectSetup, ExperimentKind, OutcomeKind, simulate_units  # noqa: E402
from tools.uplift.cate import fit_cate  # noqa: E402
from tools.uplift.synthetic import nie_wager  # noqa: E402

PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
PEERS_SCRIPT = Path(__file__).with_name("uplift_peers.py")
# auto without the tail guard: the stack whenever heterogeneity is detected
AUTO_ROUND7 = "auto, round 7 rule"
OURS = ["auto", AUTO_ROUND7, "linear", "dr", "x"]


def datasets(n: int, seed: int) -> dict[str, dict]:
    out = {}
    for s in "ABCD":
        d = nie_wager(s, n, p=8, seed=seed)
        out[f"nie-wager {s}"] = dict(X=d.X, t=d.treatment, y=d.outcome, tau=d.tau, randomized=False)
    market = [
        ("market ad holdout, revenue", ExperimentKind.AD_EXPOSURE, OutcomeKind.REVENUE, 0.35, 1.0),
        ("market promotion, purchase", ExperimentKind.PROMOTION, OutcomeKind.PURCHASE, 0.35, 1.0),
        (
            "market ad holdout, purchase, low signal",
            ExperimentKind.AD_EXPOSURE,
            OutcomeKind.PURCHASE,
            0.08,
            0.05,
        ),
    ]
    for name, kind, outcome, scale, het in market:
        units, truth = simulate_units(
            experiment_id="bench",
            kind=kind,
            outcome=outcome,
            n_units=n,
            treatment_share=0.5,
            setup=EffectSetup(scale=scale, heterogeneity=het, low_signal=scale < 0.1),
            seed=seed,
        )
        out[name] = dict(X=units.X, t=units.treatment, y=units.outcome, tau=truth.tau, randomized=True)
    return out


def run_ours(d: dict, estimator: str, seed: int) -> dict:
    start, cpu_start = time.perf_counter(), time.process_time()
    fit = fit_cate(
        d["X"],
        d["t"],
        d["y"],
        estimator="auto" if estimator == AUTO_ROUND7 else estimator,
        randomized=d["randomized"],
        seed=seed,
        tail_guard=estimator != AUTO_ROUND7,
    )
    cate = fit.predict(d["X"])
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    ate = fit.summary.arms[0].ate
    return dict(
        cate=cate,
        ate=ate.estimate,
        ci=(ate.ci_low, ate.ci_high),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        chosen=fit.summary.arms[0].estimator,
    )


def run_peers(d: dict, only: str | None = None) -> dict[str, dict] | None:
    if not PEERS_PY.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        arrays = dict(X=d["X"], treatment=d["t"], outcome=d["y"])
        if d["randomized"]:
            arrays["propensity"] = np.full(d["t"].shape[0], d["t"].mean())
        np.savez(Path(tmp) / "in.npz", **arrays)
        cmd = [str(PEERS_PY), str(PEERS_SCRIPT), str(Path(tmp) / "in.npz"), str(Path(tmp) / "out.json")]
        if only:
            cmd.append(only)
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin"}
        )
        if proc.returncode != 0:
            return {"peers": {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}}
        result: dict[str, dict] = json.loads((Path(tmp) / "out.json").read_text())
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--speed-n", type=int, default=100_000)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1"
    )
    parser.add_argument("--sets", default="", help="data set names separated by ';' (default: all)")
    args = parser.parse_args()
    peers_available = PEERS_PY.exists() and not args.no_peers
    print(
        f"peers (EconML, causalml): {'in ' + str(PEERS_PY.parent.parent) if peers_available else 'not installed'}"
    )

    if not args.skip_accuracy:
        print(
            f"\naccuracy at n={args.n:,}, 8 covariates, {args.seeds} seed(s); "
            "coverage = share of seeds whose 95% CI holds the true ATE"
        )
        print(
            f"{'data set':42s} {'estimator':34s} {'PEHE':>9s} {'|ATE err|':>10s} {'coverage':>9s} {'fit+pred s':>10s}"
        )
        wanted = [w.strip() for w in args.sets.split(";") if w.strip()]  # names contain commas
        for name in datasets(200, 0):  # one data set at a time, printed as soon as it is done
            if wanted and name not in wanted:
                continue
            rows: dict[str, list] = {}
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                d = datasets(args.n, seed)[name]
                true_ate = float(d["tau"].mean())
                for est in OURS:
                    r = run_ours(d, est, seed)
                    rows.setdefault(f"ours {est}", []).append(_score(r, d["tau"], true_ate))
                    if est == "auto":
                        const = dict(
                            cate=np.full(d["tau"].shape[0], r["ate"]), ate=r["ate"], ci=r["ci"], seconds=0.0
                        )
                        rows.setdefault("no heterogeneity (ATE for all)", []).append(
                            _score(const, d["tau"], true_ate)
                        )
                        rows.setdefault("ours auto: chose", []).append(r["chosen"].value)
                if peers_available:
                    for peer, r in (run_peers(d) or {}).items():
                        if "error" in r:
                            rows.setdefault(peer, []).append(("error", r["error"][:80]))
                            continue
                        r["cate"] = np.asarray(r["cate"])
                        rows.setdefault(peer, []).append(_score(r, d["tau"], true_ate))
            _print_rows(name, rows)
            _print_paired(rows)

    # speed: one fit + predict at speed_n x 8
    d = datasets(args.speed_n, 0)["nie-wager D"]
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"speed: fit + predict, {args.speed_n:,} rows x 8 covariates (Nie-Wager D, propensity estimated); "
        f"load average before: {load} on {os.cpu_count()} cores"
    )
    for est in ["auto", "linear"]:
        r = run_ours(d, est, 0)
        pe, ae, _, sec = _score(r, d["tau"], float(d["tau"].mean()))
        print(
            f"  ours {est:28s} {sec:7.2f} s   PEHE {pe:.4f}  |ATE err| {ae:.4f}  (CPU {r['cpu_seconds']:.2f} s)"
        )
    if peers_available:
        for peer, r in (run_peers(d, "LinearDML,X-learner") or {}).items():
            if "error" in r:
                print(f"  {peer:33s} error: {r['error'][:100]}")
                continue
            pe, ae, _, sec = _score({**r, "cate": np.asarray(r["cate"])}, d["tau"], float(d["tau"].mean()))
            print(f"  {peer:33s} {sec:7.2f} s   PEHE {pe:.4f}  |ATE err| {ae:.4f}")
        print(f"  load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    else:
        print(
            "  peers: not installed (python -m venv .venv-peers && .venv-peers/bin/pip install econml causalml)"
        )


def _print_rows(name: str, rows: dict[str, list]) -> None:
    for est, vals in rows.items():
        if est == "ours auto: chose":
            print(f"{name:42s} {'  auto chose':34s} {', '.join(vals)}")
            continue
        if vals and vals[0][0] == "error":
            print(f"{name:42s} {est:34s} error: {vals[0][1]}")
            continue
        arr = np.array([(v[0], v[1], np.nan if v[2] is None else v[2], v[3]) for v in vals], dtype=float)
        cov = "-" if np.isnan(arr[:, 2]).all() else f"{np.nanmean(arr[:, 2]):.0%}"
        print(
            f"{name:42s} {est:34s} {arr[:, 0].mean():9.4f} {arr[:, 1].mean():10.4f} {cov:>9s} {arr[:, 3].mean():10.2f}"
        )


def _print_paired(rows: dict[str, list]) -> None:
    """ours auto minus the "no heterogeneity" baseline and minus the best peer, seed by seed on the same
    data: mean difference +- its standard error, so a gap can be told from seed noise (negative: ours is
    better). The best peer is chosen per metric, by its mean."""

    def scores(vals: list) -> np.ndarray:
        return np.array([v[:2] for v in vals], dtype=float)

    auto = scores(rows["ours auto"])
    if auto.shape[0] >= 2:
        baseline = "no heterogeneity (ATE for all)"
        peers = {
            k: scores(vals)
            for k, vals in rows.items()
            if not k.startswith(("ours", "no heterogeneity")) and vals and vals[0][0] != "error"
        }
        for col, metric in enumerate(["PEHE", "|ATE err|"]):
            against = [(baseline, scores(rows[baseline]))] if col == 0 else []  # same ATE as auto
            if col == 0 and f"ours {AUTO_ROUND7}" in rows:
                against.append((AUTO_ROUND7, scores(rows[f"ours {AUTO_ROUND7}"])))
            if peers:
                best = min(peers, key=lambda k: float(peers[k][:, col].mean()))
                against.append((f"best peer, {best}", peers[best]))
            for label, other in against:
                diff = auto[:, col] - other[:, col]
                se = diff.std(ddof=1) / np.sqrt(len(diff))
                print(f"{'':44s}auto - {label}, {metric}: {diff.mean():+.4f} +- {se:.4f} ({len(diff)} seeds)")
    print(flush=True)


def _score(r: dict, tau: np.ndarray, true_ate: float) -> tuple[float, float, bool | None, float]:
    pehe = float(np.sqrt(np.mean((np.asarray(r["cate"]) - tau) ** 2)))
    ci = r.get("ci")
    covered = None if ci is None else bool(ci[0] <= true_ate <= ci[1])
    return pehe, abs(float(r["ate"]) - true_ate), covered, float(r["seconds"])


if __name__ == "__main__":
    main()
