"""Evaluation of uplift scores: Qini and uplift curves, AUUC, uplift@k, and PEHE when truth is known."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from tools.errors import InvalidInputError
from tools.uplift.cate import EffectEstimate, effect_estimate
from tools.uplift.validation import as_vector


class UpliftCurves(BaseModel):
    """Curves over the share of the population targeted, best-scored first; outcomes are per population unit.

    uplift: (mean treated outcome - mean control outcome) among the targeted, times the share targeted.
    qini: treated outcomes minus control outcomes rescaled to the treated count, per population unit.
    random: the Qini curve of random targeting (a straight line to the same end point).
    """

    fraction: list[float]
    uplift: list[float]
    qini: list[float]
    random: list[float]
    auuc: float  # area under the uplift curve (x from 0 to 1)
    qini_coefficient: float  # area between the Qini curve and the random line


def _binary_treatment(scores: object, outcome: object, treatment: object) -> tuple[np.ndarray, ...]:
    s = as_vector("scores", scores)
    y = as_vector("outcome", outcome, s.shape[0])
    t = as_vector("treatment", treatment, s.shape[0])
    if not np.isin(t, (0.0, 1.0)).all():
        raise InvalidInputError(
            "treatment must be 0/1 for uplift curves", field="treatment", allowed="0 or 1"
        )
    if t.min() == t.max():
        raise InvalidInputError(
            "treatment has a single value; curves need treated and control rows", field="treatment"
        )
    return s, y, t


def uplift_curves(scores: object, outcome: object, treatment: object, n_points: int = 100) -> UpliftCurves:
    s, y, t = _binary_treatment(scores, outcome, treatment)
    n = s.shape[0]
    order = np.argsort(-s, kind="stable")
    y, t = y[order], t[order]
    n_t, n_c = np.cumsum(t), np.cumsum(1 - t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * (1 - t))
    cut = np.unique(np.linspace(0, n, n_points + 1).round().astype(int))[1:] - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_t = np.where(n_t > 0, y_t / np.maximum(n_t, 1), 0.0)
        mean_c = np.where(n_c > 0, y_c / np.maximum(n_c, 1), 0.0)
        qini = np.where(n_c > 0, y_t - y_c * n_t / np.maximum(n_c, 1), 0.0) / n
    both = (n_t > 0) & (n_c > 0)
    uplift = np.where(both, (mean_t - mean_c) * np.arange(1, n + 1) / n, 0.0)
    frac = (cut + 1) / n
    q = qini[cut]
    rand = q[-1] * frac
    fx = np.concatenate([[0.0], frac])
    return UpliftCurves(
        fraction=frac.tolist(),
        uplift=uplift[cut].tolist(),
        qini=q.tolist(),
        random=rand.tolist(),
        auuc=float(np.trapezoid(np.concatenate([[0.0], uplift[cut]]), fx)),
        qini_coefficient=float(np.trapezoid(np.concatenate([[0.0], q - rand]), fx)),
    )


def uplift_at_k(
    scores: object, outcome: object, treatment: object, k: float = 0.1, level: float = 0.95
) -> EffectEstimate:
    """Difference in mean outcome (treated - control) among the top-k share by score, with its interval."""
    if not 0 < k <= 1:
        raise InvalidInputError(f"k must be > 0 and <= 1 (got {k})", field="k", allowed="(0, 1]")
    s, y, t = _binary_treatment(scores, outcome, treatment)
    top = np.argsort(-s, kind="stable")[: max(int(round(k * s.shape[0])), 1)]
    yt, yc = y[top][t[top] == 1], y[top][t[top] == 0]
    if yt.shape[0] < 2 or yc.shape[0] < 2:
        raise InvalidInputError(
            f"the top {k:.0%} holds {yt.shape[0]} treated and {yc.shape[0]} control rows; need at least 2 of each",
            field="k",
        )
    se = float(np.sqrt(yt.var(ddof=1) / yt.shape[0] + yc.var(ddof=1) / yc.shape[0]))
    return effect_estimate(float(yt.mean() - yc.mean()), se, level)


def pehe(predicted: object, true_tau: object) -> float:
    """Root mean squared error of predicted individual effects against the truth."""
    p = as_vector("predicted", predicted)
    tau = as_vector("true_tau", true_tau, p.shape[0])
    return float(np.sqrt(np.mean((p - tau) ** 2)))
