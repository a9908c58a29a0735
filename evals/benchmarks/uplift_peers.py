"""Peer CATE estimators (EconML, causalml) for the uplift benchmarks, run inside .venv-peers by subprocess.

Usage: .venv-peers/bin/python evals/benchmarks/uplift_peers.py IN.npz OUT.json [NAME,NAME]
IN.npz holds X, treatment, outcome, `propensity` when the design is randomized (known share), and
optionally X_test: the effects are then predicted for X_test (the ATE is always the training rows').
Prints nothing; writes {estimator: {"cate": [...], "ate": .., "ci": [lo, hi] | null, "seconds": ..} | {"error": ..}}.

       .venv-peers/bin/python evals/benchmarks/uplift_peers.py --export-data OUT.npz [IHDP_REPLICATIONS]
writes the semi-synthetic benchmark data that the peers' packages ship (bench_uplift_semisynthetic.py):
IHDP response surface B (Hill 2011) from EconML's `econml.data.dgps.ihdp_surface_B` (747 IHDP children, 25
covariates; replication r is random_state=r), and the ten ACIC 2016 challenge instances that causallib ships
(`causallib.datasets.load_acic16`, 4,802 rows, 58 covariates dummy-coded to 79), with their true expected
potential outcomes (mu0, mu1), from which the benchmark draws further outcome noise.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from typing import Any

import numpy as np


def _lgbm_reg() -> Any:
    # lazy: lightgbm is heavy and needed only here
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=100, verbose=-1, n_jobs=1)


def _lgbm_clf() -> Any:
    # lazy: lightgbm is heavy and needed only here
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=100, verbose=-1, n_jobs=1)


def run(path: str) -> dict[str, Any]:
    data = np.load(path)
    X, t, y = data["X"], data["treatment"].astype(int), data["outcome"].astype(float)
    p = data["propensity"] if "propensity" in data.files else None
    X_pred = data["X_test"] if "X_test" in data.files else X  # where the effects are predicted
    out: dict[str, Any] = {}

    def timed(name: str, fn: Any) -> None:
        try:
            cate, ate, ci, seconds = fn()
            out[name] = {
                "cate": np.asarray(cate, dtype=float).ravel().tolist(),
                "ate": float(ate),
                "ci": None if ci is None else [float(ci[0]), float(ci[1])],
                "seconds": seconds,  # fit + predict only (intervals computed after the clock stops)
            }
        except Exception as exc:  # a peer failing is a result, not a crash
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}

    def econml_linear_dml() -> Any:
        # lazy: econml is heavy and needed only here
        from econml.dml import LinearDML

        start = time.perf_counter()
        est = LinearDML(
            model_y=_lgbm_reg(), model_t=_lgbm_clf(), discrete_treatment=True, cv=2, random_state=0
        )
        est.fit(y, t, X=X)
        cate = est.effect(X_pred)
        seconds = time.perf_counter() - start
        lo, hi = est.ate_interval(X, alpha=0.05)
        return cate, est.ate(X), (lo, hi), seconds

    def econml_causal_forest() -> Any:
        # lazy: econml is heavy and needed only here
        from econml.dml import CausalForestDML

        start = time.perf_counter()
        est = CausalForestDML(
            model_y=_lgbm_reg(), model_t=_lgbm_clf(), discrete_treatment=True, cv=2, n_jobs=1, random_state=0
        )
        est.fit(y, t, X=X)
        cate = est.effect(X_pred)
        seconds = time.perf_counter() - start
        lo, hi = est.ate_interval(X, alpha=0.05)
        return cate, est.ate(X), (lo, hi), seconds

    def econml_dr() -> Any:
        # lazy: econml is heavy and needed only here
        from econml.dr import DRLearner

        start = time.perf_counter()
        est = DRLearner(
            model_propensity=_lgbm_clf(),
            model_regression=_lgbm_reg(),
            model_final=_lgbm_reg(),
            cv=2,
            random_state=0,
        )
        est.fit(y, t, X=X)
        cate = est.effect(X_pred)
        return cate, float(np.mean(est.effect(X))), None, time.perf_counter() - start

    def causalml_x() -> Any:
        # lazy: causalml is heavy and needed only here
        from causalml.inference.meta import BaseXRegressor

        start = time.perf_counter()
        est = BaseXRegressor(learner=_lgbm_reg(), control_name=0)
        cate = est.fit_predict(X, t, y, p=p)
        if X_pred is not X:  # blends its arms' effects by the propensity: its own model's, or the known share
            cate = est.predict(X_pred, p=None if p is None else np.full(X_pred.shape[0], float(np.mean(p))))
        seconds = time.perf_counter() - start
        ate, lo, hi = est.estimate_ate(X, t, y, p=p)
        return cate, np.ravel(ate)[0], (np.ravel(lo)[0], np.ravel(hi)[0]), seconds

    def causalml_t() -> Any:
        # lazy: causalml is heavy and needed only here
        from causalml.inference.meta import BaseTRegressor

        start = time.perf_counter()
        est = BaseTRegressor(learner=_lgbm_reg(), control_name=0)
        est.fit(X, t, y)
        cate = est.predict(X_pred)
        seconds = time.perf_counter() - start
        ate, lo, hi = est.estimate_ate(X, t, y)
        return cate, np.ravel(ate)[0], (np.ravel(lo)[0], np.ravel(hi)[0]), seconds

    def causalml_dr() -> Any:
        # lazy: causalml is heavy and needed only here
        from causalml.inference.meta import BaseDRRegressor

        start = time.perf_counter()
        est = BaseDRRegressor(learner=_lgbm_reg(), control_name=0)
        cate = est.fit_predict(X, t, y, p=p)
        ate = float(np.mean(cate))
        if X_pred is not X:
            cate = est.predict(X_pred)
        return cate, ate, None, time.perf_counter() - start

    wanted = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    peers = {
        "econml LinearDML (LGBM)": econml_linear_dml,
        "econml DRLearner (LGBM)": econml_dr,
        "econml CausalForestDML (LGBM)": econml_causal_forest,
        "causalml T-learner (LGBM)": causalml_t,
        "causalml X-learner (LGBM)": causalml_x,
        "causalml DR-learner (LGBM)": causalml_dr,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in peers.items():
            if wanted is None or any(w in name for w in wanted):
                timed(name, fn)
    return out


def export_data(path: str, ihdp_replications: int) -> None:
    """The semi-synthetic data sets as arrays (see the module docstring)."""
    # lazy: pandas is heavy and needed only here
    import pandas as pd

    # lazy: causallib is heavy and needed only here
    from causallib.datasets import load_acic16

    # lazy: econml is heavy and needed only here
    from econml.data.dgps import ihdp_surface_B

    arrays: dict[str, np.ndarray] = {}
    for r in range(ihdp_replications):
        y, t, x, tau = ihdp_surface_B(random_state=r)
        arrays[f"ihdp_{r}_y"], arrays[f"ihdp_{r}_tau"] = np.asarray(y, float), np.asarray(tau, float)
    arrays["ihdp_X"] = np.asarray(x[:, 1:], float)  # EconML prepends a column of ones
    arrays["ihdp_t"] = np.asarray(t, int)
    for i in range(1, 11):
        d = load_acic16(instance=i)
        po = pd.DataFrame(d["po"])
        arrays[f"acic_{i}_X"] = np.asarray(d["X"], float)
        arrays[f"acic_{i}_t"] = np.asarray(d["a"], int)
        arrays[f"acic_{i}_y"] = np.asarray(d["y"], float)
        arrays[f"acic_{i}_tau"] = np.asarray(po["1"] - po["0"], float)
        arrays[f"acic_{i}_mu0"], arrays[f"acic_{i}_mu1"] = (
            np.asarray(po["0"], float),
            np.asarray(po["1"], float),
        )
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as bool


if __name__ == "__main__":
    if sys.argv[1] == "--export-data":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_data(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 100)
        sys.exit(0)
    result = run(sys.argv[1])
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)
