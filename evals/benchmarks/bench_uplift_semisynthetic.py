"""Uplift benchmark on semi-synthetic data that packages ship: IHDP response surface B and ACIC 2016.

Data (written by `uplift_peers.py --export-data` inside `.venv-peers`, which has the packages):
- IHDP surface B (Hill 2011) from EconML's `ihdp_surface_B`: 747 children, 25 covariates, a heavy-tailed
  exponential control surface; replication r is `random_state=r`.
- ACIC 2016: the ten challenge instances causallib ships (`load_acic16`, 4,802 rows, 79 dummy-coded
  covariates), one realization of each of ten data-generating processes; causallib 0.10.0 ships no more.
  Draw 0 of an instance is the shipped outcome; draw d > 0 keeps its covariates and treatment and redraws the
  outcome noise around the true surfaces (y = mu_T(x) + normal noise with the SD of the shipped residuals,
  which are normal with SD about 1), so that coverage can be counted over more than ten intervals. The
  draws of one instance share its data-generating process: they are not independent instances.

Per replication, one 70/30 split (scikit-learn's `train_test_split`, `random_state` = replication, the same
for every estimator): each estimator fits on the 70% and predicts effects for the held-out 30%, scored by
sqrt-PEHE there. The ATE is that of the training rows (truth: the mean true effect over them); coverage is
the share of replications whose 95% interval holds it. The split's random_state is the replication
(IHDP) or 100 * draw + instance (ACIC).

Printed per data set and estimator: mean, median and worst sqrt-PEHE, mean |ATE error|, coverage, and the
paired difference `ours auto - this` (mean +- standard error over replications; negative: auto is better).
Then the issue's targets, checked; on ACIC, per instance, auto's choices and mean against the best peer's;
and the coverage benchmark: auto's interval over `--coverage-reps` IHDP replications and the ACIC instances,
naming the intervals that an extrapolation term widened (rows with almost no chance of an arm, see
tools/uplift/cate.py, OVERLAP_MIN).

    .venv/bin/python evals/benchmarks/bench_uplift_semisynthetic.py [--ihdp-reps 30] [--acic-draws 2]
        [--coverage-reps 100] [--coverage-acic-draws 5] [--sets ihdp,acic] [--no-peers]

Our learners other than auto, and the other auto variants, run with one nuisance split for the ATE
(ate_splits=1) to save time; auto runs as shipped.

Results and the conditions they were measured under: evals/benchmarks/RESULTS_uplift.md.
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
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tools.uplift.cate as cate  # noqa: E402
from tools.uplift.cate import fit_cate  # noqa: E402

PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
PEERS_SCRIPT = Path(__file__).with_name("uplift_peers.py")
AUTO = "ours auto"
# ours: name -> (estimator, tail guard); beside the shipped auto run round 7's rule (the stack whenever
# heterogeneity is detected) and the guard without its one-standard-error fallback (the lowest DR loss)
ARGMIN = "ours auto, guard at 0 SE"
OURS = {
    AUTO: ("auto", True),
    "ours auto, round 7 rule": ("auto", False),
    ARGMIN: ("auto", True),
    "ours constant": ("constant", True),
    "ours linear": ("linear", True),
    "ours x": ("x", True),
    "ours dr": ("dr", True),
    "ours stack": ("stack", True),
}
OWN_LEARNERS = ["ours constant", "ours linear", "ours x", "ours dr", "ours stack"]
ACIC_INSTANCES = range(1, 11)
Rep = int | tuple[int, int]  # IHDP replication, or ACIC (instance, draw)


def load_data(ihdp_reps: int) -> dict[str, np.ndarray]:
    if not PEERS_PY.exists():
        sys.exit(
            "the IHDP and ACIC 2016 data come from EconML and causallib, installed in .venv-peers: "
            "python -m venv .venv-peers && .venv-peers/bin/pip install econml causalml causallib lightgbm"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        proc = subprocess.run(
            [str(PEERS_PY), str(PEERS_SCRIPT), "--export-data", str(path), str(ihdp_reps)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"exporting the data failed: {proc.stderr.strip().splitlines()[-1:]}")
        with np.load(path) as data:
            return {k: data[k] for k in data.files}


def replication(data: dict[str, np.ndarray], kind: str, r: Rep) -> dict:
    if kind == "ihdp":
        assert isinstance(r, int)
        X, t, y, tau = data["ihdp_X"], data["ihdp_t"], data[f"ihdp_{r}_y"], data[f"ihdp_{r}_tau"]
        state = r
    else:
        assert isinstance(r, tuple)
        instance, draw = r
        X, t, y, tau = (data[f"acic_{instance}_{k}"] for k in ("X", "t", "y", "tau"))
        state = 100 * draw + instance
        if draw > 0:  # the same surfaces and treatment, new outcome noise (see the module docstring)
            mu = np.where(t == 1, data[f"acic_{instance}_mu1"], data[f"acic_{instance}_mu0"])
            sd = float((y - mu).std())
            y = mu + sd * np.random.default_rng(10_000 * instance + draw).normal(size=y.shape[0])
    train, test = train_test_split(np.arange(y.shape[0]), test_size=0.3, random_state=state)
    return dict(X=X[train], t=t[train], y=y[train], X_test=X[test], tau_test=tau[test], ate=tau[train].mean())


def _seed(r: Rep) -> int:
    return r if isinstance(r, int) else 100 * r[1] + r[0]


def run_ours(d: dict, estimator: str, tail_guard: bool, seed: int, ate_splits: int | None = None) -> dict:
    start = time.perf_counter()
    fit = fit_cate(
        d["X"], d["t"], d["y"], estimator=estimator, seed=seed, tail_guard=tail_guard, ate_splits=ate_splits
    )
    cate = fit.predict(d["X_test"])
    arm = fit.summary.arms[0]
    return dict(
        cate=cate,
        ate=arm.ate.estimate,
        ci=(arm.ate.ci_low, arm.ate.ci_high),
        seconds=time.perf_counter() - start,
        chosen=arm.estimator.value,
        extrapolation=arm.ate_extrapolation,
    )


def run_peers(d: dict) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", X=d["X"], treatment=d["t"], outcome=d["y"], X_test=d["X_test"])
        proc = subprocess.run(
            [str(PEERS_PY), str(PEERS_SCRIPT), str(Path(tmp) / "in.npz"), str(Path(tmp) / "out.json")],
            capture_output=True,
            text=True,
            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin"},
        )
        if proc.returncode != 0:
            return {"peers": {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}}
        result: dict[str, dict] = json.loads((Path(tmp) / "out.json").read_text())
        return result


def score(r: dict, d: dict) -> dict:
    pehe = float(np.sqrt(np.mean((np.asarray(r["cate"], dtype=float) - d["tau_test"]) ** 2)))
    ci = r.get("ci")
    return dict(
        pehe=pehe,
        ate_err=abs(float(r["ate"]) - d["ate"]),
        covered=None if ci is None else bool(ci[0] <= d["ate"] <= ci[1]),
        seconds=float(r["seconds"]),
    )


# auto's ATE interval per (kind, replication), kept from run_set for the coverage count
# (ci low, ci high, true ATE, the interval's extrapolation term)
AUTO_INTERVALS: dict[tuple[str, Rep], tuple[float, float, float, float]] = {}


def run_set(data: dict, kind: str, reps: list[Rep], peers: bool) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for r in reps:
        d = replication(data, kind, r)
        chosen = ""
        for name, (est, guard) in OURS.items():
            shipped = cate.GUARD_SE
            cate.GUARD_SE = 0.0 if name == ARGMIN else shipped
            try:
                res = run_ours(d, est, guard, seed=_seed(r), ate_splits=None if name == AUTO else 1)
            finally:
                cate.GUARD_SE = shipped
            rows.setdefault(name, []).append(score(res, d) | {"chosen": res["chosen"], "rep": r})
            if name == AUTO:
                chosen = res["chosen"]
                AUTO_INTERVALS[(kind, r)] = (*res["ci"], d["ate"], res["extrapolation"])
        for name, res in (run_peers(d) if peers else {}).items():
            if "error" in res:
                print(f"  {kind} {r}: {name} failed: {res['error'][:120]}")
                continue
            rows.setdefault(name, []).append(score(res, d) | {"rep": r})
        print(
            f"  {kind} {r}: auto chose {chosen}, sqrt-PEHE {rows[AUTO][-1]['pehe']:.3f} "
            f"(round 7 rule {rows['ours auto, round 7 rule'][-1]['pehe']:.3f}), ATE covered "
            f"{rows[AUTO][-1]['covered']}",
            flush=True,
        )
    return rows


def report(title: str, rows: dict[str, list[dict]]) -> dict[str, float | bool]:
    n = len(rows[AUTO])
    auto = np.array([v["pehe"] for v in rows[AUTO]])
    print(f"\n{title}: {n} replications; sqrt-PEHE on the held-out 30%; paired = auto - this, mean +- SE")
    print(
        f"{'estimator':34s} {'mean':>8s} {'median':>8s} {'worst':>8s} {'|ATE err|':>10s} {'coverage':>9s} "
        f"{'fit s':>7s}  {'paired sqrt-PEHE':>18s}  {'paired |ATE err|':>18s}"
    )
    auto_ate = np.array([v["ate_err"] for v in rows[AUTO]])
    for name, vals in rows.items():
        if len(vals) != n:
            print(f"{name:34s} only {len(vals)} of {n} replications ran")
            continue
        pehe = np.array([v["pehe"] for v in vals])
        ate_err = np.array([v["ate_err"] for v in vals])
        cov = [v["covered"] for v in vals if v["covered"] is not None]
        cov_s = f"{np.mean(cov):.0%}" if cov else "-"
        paired = "" if name == AUTO else _paired(auto - pehe)
        paired_ate = "" if name == AUTO else _paired(auto_ate - ate_err)
        print(
            f"{name:34s} {pehe.mean():8.3f} {np.median(pehe):8.3f} {pehe.max():8.3f} {ate_err.mean():10.3f} "
            f"{cov_s:>9s} {np.mean([v['seconds'] for v in vals]):7.2f}  {paired:>18s}  {paired_ate:>18s}"
        )
    chosen: dict[str, int] = {}
    for v in rows[AUTO]:
        chosen[v["chosen"]] = chosen.get(v["chosen"], 0) + 1
    print("auto chose: " + ", ".join(f"{k} {c}" for k, c in sorted(chosen.items(), key=lambda kv: -kv[1])))

    # the targets
    means = {k: float(np.mean([v["pehe"] for v in vals])) for k, vals in rows.items() if len(vals) == n}
    best_own = min(OWN_LEARNERS, key=lambda k: means[k])
    verdict: dict[str, float | bool] = {"auto_mean": means[AUTO], "best_own": means[best_own]}
    ratio = means[AUTO] / means[best_own]
    verdict["within_10pct_of_own"] = ratio <= 1.10
    print(
        f"target: auto mean within 10% of its best own learner ({best_own} {means[best_own]:.3f}): "
        f"{ratio - 1:+.1%} -> {'met' if ratio <= 1.10 else 'MISSED'}"
    )
    peers = [k for k in means if not k.startswith("ours")]
    if peers:
        best_peer = min(peers, key=lambda k: means[k])
        diff = auto - np.array([v["pehe"] for v in rows[best_peer]])
        se = float(diff.std(ddof=1) / np.sqrt(n))
        ok = float(diff.mean()) <= se
        print(
            f"target: auto mean not worse than the best peer ({best_peer} {means[best_peer]:.3f}) by more than "
            f"one paired SE: {diff.mean():+.3f} +- {se:.3f} -> {'met' if ok else 'MISSED'}"
        )
        worst_peer = max(v["pehe"] for v in rows[best_peer])
        ok_worst = float(auto.max()) <= worst_peer
        print(
            f"target: auto's worst replication ({auto.max():.3f}) no worse than the best peer's worst "
            f"({worst_peer:.3f}) -> {'met' if ok_worst else 'MISSED'}; the lowest worst of any peer: "
            f"{min(max(v['pehe'] for v in rows[k]) for k in peers):.3f}"
        )
        verdict |= {"vs_best_peer": ok, "worst_vs_best_peer": ok_worst}
        if isinstance(rows[AUTO][0]["rep"], tuple):
            per_instance(rows, best_peer)
    return verdict


def per_instance(rows: dict[str, list[dict]], best_peer: str) -> None:
    """Where auto wins and loses: per ACIC instance, auto's mean sqrt-PEHE over the draws and what it chose,
    the best peer's, and the estimator (ours or a peer) with the lowest mean on that instance."""
    print(f"\nper instance (mean over draws): auto (chose) vs {best_peer}; lowest of all estimators")
    by: dict[str, dict[int, list[float]]] = {}
    for name, vals in rows.items():
        for v in vals:
            by.setdefault(name, {}).setdefault(v["rep"][0], []).append(v["pehe"])
    for instance in sorted(by[AUTO]):
        means = {name: float(np.mean(per[instance])) for name, per in by.items() if instance in per}
        winner = min(means, key=lambda k: means[k])
        chosen = " ".join(v["chosen"] for v in rows[AUTO] if v["rep"][0] == instance)
        print(
            f"  instance {instance:2d}: auto {means[AUTO]:6.3f} ({chosen}); {best_peer} "
            f"{means.get(best_peer, float('nan')):6.3f}; lowest {winner} {means[winner]:.3f} "
            f"(auto {means[AUTO] - means[best_peer]:+.3f} vs the peer)"
        )


def _paired(diff: np.ndarray) -> str:
    se = diff.std(ddof=1) / np.sqrt(diff.shape[0]) if diff.shape[0] > 1 else float("nan")
    return f"{diff.mean():+.3f} +- {se:.3f}"


def coverage(data: dict, ihdp_reps: int, acic_draws: int) -> None:
    """auto's 95% ATE interval over many IHDP replications and ACIC draws (ours only: cheap); intervals
    already fitted by run_set are reused."""
    print("\ncoverage of auto's 95% ATE interval (truth: the training rows' mean effect)")
    hits: dict[str, list[bool]] = {}
    widths: dict[str, list[float]] = {}
    sets: list[tuple[str, str, list[Rep]]] = [
        ("IHDP surface B", "ihdp", list(range(ihdp_reps))),
        ("ACIC 2016", "acic", [(i, d) for d in range(acic_draws) for i in ACIC_INSTANCES]),
    ]
    for label, kind, reps in sets:
        missed: list[str] = []
        widened: list[str] = []
        for r in reps:
            if (kind, r) not in AUTO_INTERVALS:
                d = replication(data, kind, r)
                res = run_ours(d, "auto", True, seed=_seed(r))
                AUTO_INTERVALS[(kind, r)] = (*res["ci"], d["ate"], res["extrapolation"])
            lo, hi, ate, extrapolation = AUTO_INTERVALS[(kind, r)]
            hits.setdefault(label, []).append(bool(lo <= ate <= hi))
            widths.setdefault(label, []).append(hi - lo)
            if not lo <= ate <= hi:
                missed.append(f"{r} ({(lo + hi) / 2 - ate:+.3f})")
            if extrapolation > 0.1:
                widened.append(
                    f"{r} ({extrapolation:.2f}, error {(lo + hi) / 2 - ate:+.3f}, "
                    f"{'covered' if lo <= ate <= hi else 'missed'})"
                )
        if missed and reps:
            print(f"  {label} missed (estimate - truth): " + ", ".join(missed))
        if widened:
            print(f"  {label} extrapolation term above 0.1 (the term, error, covered): " + ", ".join(widened))
    for label, h in hits.items():
        k, n = sum(h), len(h)
        if not n:
            continue
        verdict = "met" if 0.90 <= k / n <= 0.98 else "MISSED"
        print(
            f"  {label:16s} {k}/{n} = {k / n:.1%} (binomial SE at 95%: {np.sqrt(0.95 * 0.05 / n):.1%}); mean width "
            f"{np.mean(widths[label]):.3f} -> {verdict} (target 0.90-0.98)"
        )
    total = [h for v in hits.values() for h in v]
    k, n = sum(total), len(total)
    print(f"  {'all':16s} {k}/{n} = {k / n:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ihdp-reps", type=int, default=30)
    parser.add_argument("--acic-draws", type=int, default=2, help="draws of each ACIC instance (see above)")
    parser.add_argument(
        "--coverage-reps", type=int, default=100, help="IHDP replications for coverage; 0: skip"
    )
    parser.add_argument("--coverage-acic-draws", type=int, default=5, help="ACIC draws for coverage")
    parser.add_argument("--sets", default="ihdp,acic")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    peers = not args.no_peers
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"started {started}, load average {load} on {os.cpu_count()} cores; peers: {peers}")
    data = load_data(max(args.ihdp_reps, args.coverage_reps))
    sets = [s.strip() for s in args.sets.split(",")]
    if "ihdp" in sets:
        rows = run_set(data, "ihdp", list(range(args.ihdp_reps)), peers)
        report("IHDP surface B", rows)
    if "acic" in sets:
        reps: list[Rep] = [(i, d) for d in range(args.acic_draws) for i in ACIC_INSTANCES]
        rows = run_set(data, "acic", reps, peers)
        report(f"ACIC 2016 (causallib's 10 instances x {args.acic_draws} draws)", rows)
    if args.coverage_reps or args.coverage_acic_draws:
        coverage(data, args.coverage_reps, args.coverage_acic_draws)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nfinished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load}")


if __name__ == "__main__":
    main()
