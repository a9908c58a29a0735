"""Standard synthetic CATE designs with known truth (Nie & Wager 2021, setups A-D), for tests and benchmarks.

Y = b(X) + (T - 0.5) * tau(X) + sigma * noise, T ~ Bernoulli(e(X)).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict


class Setup(StrEnum):
    A = "A"  # difficult nuisance, easy effect, confounded
    B = "B"  # randomized trial, e = 0.5
    C = "C"  # easy propensity, strong confounding, constant effect tau = 1
    D = "D"  # unrelated treated and control arms


class SyntheticData(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    X: np.ndarray
    treatment: np.ndarray
    outcome: np.ndarray
    tau: np.ndarray
    propensity: np.ndarray
    ate: float


def nie_wager(setup: Setup | str, n: int, p: int = 8, sigma: float = 1.0, seed: int = 0) -> SyntheticData:
    """Draw one data set of a Nie & Wager design (p >= 5 covariates)."""
    setup = Setup(setup)
    if p < 5:
        raise ValueError(f"p must be >= 5 for the Nie & Wager designs (got {p})")
    rng = np.random.default_rng(seed)
    if setup is Setup.A:
        X = rng.uniform(0, 1, (n, p))
        b = np.sin(np.pi * X[:, 0] * X[:, 1]) + 2 * (X[:, 2] - 0.5) ** 2 + X[:, 3] + 0.5 * X[:, 4]
        e = np.clip(np.sin(np.pi * X[:, 0] * X[:, 1]), 0.1, 0.9)
        tau = (X[:, 0] + X[:, 1]) / 2
    else:
        X = rng.normal(size=(n, p))
        if setup is Setup.B:
            b = np.maximum.reduce([X[:, 0] + X[:, 1], X[:, 2], np.zeros(n)]) + np.maximum(
                X[:, 3] + X[:, 4], 0
            )
            e = np.full(n, 0.5)
            tau = X[:, 0] + np.log1p(np.exp(X[:, 1]))
        elif setup is Setup.C:
            b = 2 * np.log1p(np.exp(X[:, 0] + X[:, 1] + X[:, 2]))
            e = 1 / (1 + np.exp(X[:, 1] + X[:, 2]))
            tau = np.ones(n)
        else:
            b = (np.maximum(X[:, 0] + X[:, 1] + X[:, 2], 0) + np.maximum(X[:, 3] + X[:, 4], 0)) / 2
            e = 1 / (1 + np.exp(-X[:, 0]) + np.exp(-X[:, 1]))
            tau = np.maximum(X[:, 0] + X[:, 1] + X[:, 2], 0) - np.maximum(X[:, 3] + X[:, 4], 0)
    t = (rng.random(n) < e).astype(np.int64)
    y = b + (t - 0.5) * tau + sigma * rng.normal(size=n)
    return SyntheticData(X=X, treatment=t, outcome=y, tau=tau, propensity=e, ate=float(tau.mean()))
