"""Peer CATE estimators (EconML, causalml) for bench_uplift.py, run inside .venv-peers by subprocess.

Usage: .venv-peers/bin/python evals/benchmarks/uplift_peers.py IN.npz OUT.json [NAME,NAME]
IN.npz holds X, treatment, outcome, and `propensity` when the design is randomized (known share).
Prints nothing; writes {estimator: {"cate": [...], "ate": .., "ci": [lo, hi] | null, "seconds": ..} | {"error": ..}}.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from typing import Any

import numpy as np


def _lgbm_reg() -> Any:
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=100, verbose=-1, n_jobs=1)


def _lgbm_clf() -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=100, verbose=-1, n_jobs=1)


def run(path: str) -> dict[str, Any]:
    data = np.load(path)
    X, t, y = data["X"], data["treatment"].astype(int), data["outcome"].astype(float)
    p = data["propensity"] if "propensity" in data.files else None
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
        from econml.dml import LinearDML

        start = time.perf_counter()
        est = LinearDML(
            model_y=_lgbm_reg(), model_t=_lgbm_clf(), discrete_treatment=True, cv=2, random_state=0
        )
        est.fit(y, t, X=X)
        cate = est.effect(X)
        seconds = time.perf_counter() - start
        lo, hi = est.ate_interval(X, alpha=0.05)
        return cate, est.ate(X), (lo, hi), seconds

    def econml_dr() -> Any:
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
        cate = est.effect(X)
        return cate, float(np.mean(cate)), None, time.perf_counter() - start

    def causalml_x() -> Any:
        from causalml.inference.meta import BaseXRegressor

        start = time.perf_counter()
        est = BaseXRegressor(learner=_lgbm_reg(), control_name=0)
        cate = est.fit_predict(X, t, y, p=p)
        seconds = time.perf_counter() - start
        ate, lo, hi = est.estimate_ate(X, t, y, p=p)
        return cate, np.ravel(ate)[0], (np.ravel(lo)[0], np.ravel(hi)[0]), seconds

    def causalml_dr() -> Any:
        from causalml.inference.meta import BaseDRRegressor

        start = time.perf_counter()
        est = BaseDRRegressor(learner=_lgbm_reg(), control_name=0)
        cate = est.fit_predict(X, t, y, p=p)
        return cate, float(np.mean(cate)), None, time.perf_counter() - start

    wanted = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    peers = {
        "econml LinearDML (LGBM)": econml_linear_dml,
        "econml DRLearner (LGBM)": econml_dr,
        "causalml X-learner (LGBM)": causalml_x,
        "causalml DR-learner (LGBM)": causalml_dr,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in peers.items():
            if wanted is None or any(w in name for w in wanted):
                timed(name, fn)
    return out


if __name__ == "__main__":
    result = run(sys.argv[1])
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)
