"""Input checks shared by every estimator: bad input gets an InvalidInputError naming the field, or a
warning with the reason; never a silent number."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tools.errors import InvalidInputError

PROPENSITY_CLIP = 0.01  # estimated or given propensities are clipped to [0.01, 0.99] for the weights
OVERLAP_WARN_SHARE = 0.01  # warn when more than 1% of rows sit outside the clip range
MIN_ROWS_PER_ARM_PER_FOLD = 10


@dataclass
class CausalData:
    """Checked arrays: X float64 [n, p], treatment int64 [n] (0 = control), outcome float64 [n]."""

    X: np.ndarray
    treatment: np.ndarray
    outcome: np.ndarray
    arms: list[int]  # treatment values other than control, sorted
    binary_outcome: bool
    covariate_names: list[str]
    propensity: np.ndarray | None = None  # [n, 1 + len(arms)] P(T = value | X), columns in [0] + arms order
    warnings: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.outcome.shape[0])


def as_vector(name: str, values: object, n: int | None = None) -> np.ndarray:
    """A finite float vector, or InvalidInputError naming the field (NaNs, infinities, wrong length)."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numeric ({exc})", field=name, allowed="numbers") from None
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional (got shape {arr.shape})", field=name)
    if n is not None and arr.shape[0] != n:
        raise InvalidInputError(
            f"{name} must have {n} rows like the other inputs (got {arr.shape[0]})", field=name
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InvalidInputError(
            f"{name} has {int(bad.sum())} missing or infinite values (first at row {int(np.argmax(bad))}); "
            "drop or impute them first",
            field=name,
            allowed="finite numbers",
        )
    return arr


def as_matrix(name: str, X: object, n: int) -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numeric ({exc})", field=name, allowed="numbers") from None
    if arr.ndim == 1 and arr.shape[0] == n and n > 0:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InvalidInputError(
            f"{name} must have shape [n_rows={n}, n_covariates] (got {arr.shape})", field=name
        )
    if arr.shape[1] == 0:
        raise InvalidInputError(f"{name} has no covariate columns; pass at least one", field=name)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise InvalidInputError(
            f"{name} has {int(bad.sum())} missing or infinite values (column {int(cols[0])}, row {int(rows[0])}); "
            "drop or impute them first",
            field=name,
            allowed="finite numbers",
        )
    return arr


def as_treatment(values: object, n: int | None = None) -> tuple[np.ndarray, list[int]]:
    t = as_vector("treatment", values, n)
    if (t != np.round(t)).any() or (t < 0).any():
        raise InvalidInputError(
            "treatment must hold integers >= 0 (0 = control, 1..k = treatment arms)",
            field="treatment",
            allowed="0 (control), 1..k",
        )
    t_int = t.astype(np.int64)
    values_seen = sorted(int(v) for v in np.unique(t_int))
    if len(values_seen) < 2:
        which = "control" if values_seen == [0] else f"treated (value {values_seen[0]})"
        raise InvalidInputError(
            f"treatment has a single value: every row is {which}; an effect needs both treated and control rows",
            field="treatment",
            allowed="at least one control row (0) and one treated row",
        )
    if values_seen[0] != 0:
        raise InvalidInputError(
            "treatment has no control rows (value 0); an effect needs a control group",
            field="treatment",
            allowed="0 (control), 1..k",
        )
    return t_int, values_seen[1:]


def prepare(
    X: object,
    treatment: object,
    outcome: object,
    *,
    propensity: object | None = None,
    covariate_names: Sequence[str] | None = None,
    n_folds: int = 2,
) -> CausalData:
    """Check and convert inputs; raise InvalidInputError for what cannot be estimated."""
    y = as_vector("outcome", outcome)
    n = y.shape[0]
    t, arms = as_treatment(treatment, n)
    x = as_matrix("X", X, n)
    names = list(covariate_names) if covariate_names is not None else [f"x{j}" for j in range(x.shape[1])]
    if len(names) != x.shape[1]:
        raise InvalidInputError(
            f"covariate_names has {len(names)} names for {x.shape[1]} columns of X", field="covariate_names"
        )
    need = n_folds * MIN_ROWS_PER_ARM_PER_FOLD
    for value in [0, *arms]:
        count = int((t == value).sum())
        if count < need:
            raise InvalidInputError(
                f"too few rows for cross-fitting: treatment value {value} has {count} rows, need at least {need} "
                f"({n_folds} folds x {MIN_ROWS_PER_ARM_PER_FOLD})",
                field="treatment",
                allowed=f">= {need} rows per treatment value",
            )
    binary = bool(np.isin(y, (0.0, 1.0)).all())
    data = CausalData(X=x, treatment=t, outcome=y, arms=arms, binary_outcome=binary, covariate_names=names)
    if propensity is not None:
        data.propensity = _check_propensity(propensity, n, arms)
        data.warnings += overlap_warnings(data.propensity, "given")
    return data


def _check_propensity(propensity: object, n: int, arms: list[int]) -> np.ndarray:
    try:
        p = np.asarray(propensity, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"propensity must be numeric ({exc})", field="propensity") from None
    k = 1 + len(arms)
    if p.ndim == 1 and k == 2:
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2 or p.shape != (n, k):
        want = f"[{n}]" if k == 2 else f"[{n}, {k}] (columns: control, then arms {arms})"
        raise InvalidInputError(f"propensity must have shape {want} (got {p.shape})", field="propensity")
    if not np.isfinite(p).all():
        raise InvalidInputError(
            "propensity has missing or infinite values", field="propensity", allowed="(0, 1)"
        )
    outside = (p <= 0) | (p >= 1)
    if outside.any():
        row = int(np.nonzero(outside.any(axis=1))[0][0])
        raise InvalidInputError(
            f"propensity must lie strictly between 0 and 1: {int(outside.any(axis=1).sum())} rows do not "
            f"(first at row {row}: {p[row].tolist()})",
            field="propensity",
            allowed="(0, 1)",
        )
    if k > 2 and np.abs(p.sum(axis=1) - 1).max() > 1e-6:
        raise InvalidInputError("propensity rows must sum to 1 over control and arms", field="propensity")
    return p


def overlap_warnings(propensity: np.ndarray, source: str) -> list[str]:
    """'overlap violated: 12% of rows have propensity > 0.99' when extreme propensities are common."""
    out = []
    hi, lo = 1 - PROPENSITY_CLIP, PROPENSITY_CLIP
    for col in range(propensity.shape[1]):
        p = propensity[:, col]
        label = "control" if col == 0 else f"arm {col}"
        for share, op, bound in (((p > hi).mean(), ">", hi), ((p < lo).mean(), "<", lo)):
            if share > OVERLAP_WARN_SHARE and not (col == 0 and propensity.shape[1] == 2):
                out.append(
                    f"overlap violated: {share:.0%} of rows have {source} propensity of {label} {op} {bound:g}; "
                    f"clipped to [{lo:g}, {hi:g}], effects for those rows are extrapolated"
                )
    return out
