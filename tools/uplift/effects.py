"""Average and segment-level effects with intervals from the AIPW influence function."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from tools.errors import InvalidInputError
from tools.uplift.cate import CateFit, EffectEstimate, Estimator, effect_estimate, fit_cate
from tools.uplift.models import SegmentEffect


class AverageEffects(BaseModel):
    arm: int
    ate: EffectEstimate
    att: EffectEstimate
    n_treated: int
    n_control: int


def average_effects(
    X: object,
    treatment: object,
    outcome: object,
    *,
    propensity: object | None = None,
    randomized: bool = False,
    n_folds: int = 2,
    seed: int = 0,
    level: float = 0.95,
) -> list[AverageEffects]:
    """ATE and ATT of every arm versus control (AIPW with cross-fitted nuisances), one entry per arm."""
    fit = fit_cate(
        X,
        treatment,
        outcome,
        estimator=Estimator.CONSTANT,
        propensity=propensity,
        randomized=randomized,
        n_folds=n_folds,
        seed=seed,
        level=level,
    )
    return [
        AverageEffects(arm=a.arm, ate=a.ate, att=a.att, n_treated=a.n_treated, n_control=a.n_control)
        for a in fit.summary.arms
    ]


def segment_effects(
    fit: CateFit, segments: Sequence[object] | np.ndarray, *, arm: int | None = None, level: float = 0.95
) -> list[SegmentEffect]:
    """Effect within each segment (e.g. device, loyalty tier): the mean AIPW pseudo-outcome over its rows."""
    phi = fit.pseudo_outcome(arm)
    labels = np.asarray(segments)
    if labels.shape != phi.shape:
        raise InvalidInputError(
            f"segments must have one label per training row ({phi.shape[0]}), got shape {labels.shape}",
            field="segments",
        )
    out = []
    for label in np.unique(labels):
        rows = labels == label
        n = int(rows.sum())
        if n < 2:
            raise InvalidInputError(f"segment {label!r} has {n} row; need at least 2", field="segments")
        out.append(
            SegmentEffect(
                segment=str(label),
                n=n,
                effect=effect_estimate(
                    float(phi[rows].mean()), float(phi[rows].std(ddof=1) / np.sqrt(n)), level
                ),
            )
        )
    return out


def effects_by_predicted_group(
    fit: CateFit, *, n_groups: int = 4, arm: int | None = None, level: float = 0.95
) -> list[SegmentEffect]:
    """Sorted group effects (GATES): rows grouped by their out-of-fold predicted effect, each group's
    effect estimated from its pseudo-outcomes. Rising group effects are evidence of real heterogeneity."""
    if not 2 <= n_groups <= 20:
        raise InvalidInputError(f"n_groups must be >= 2 and <= 20 (got {n_groups})", field="n_groups")
    pred = fit.oof_cate(arm)
    if np.ptp(pred) == 0:
        return segment_effects(fit, np.full(pred.shape[0], "all"), arm=arm, level=level)
    ranks = np.argsort(np.argsort(pred, kind="stable"), kind="stable")
    group = ranks * n_groups // pred.shape[0]
    labels = np.array([f"group {g + 1} of {n_groups} (predicted effect rank)" for g in group])
    return segment_effects(fit, labels, arm=arm, level=level)
