"""A/B test analysis: difference in means with CUPED, relative lift, power/MDE and a sample-ratio check."""

from __future__ import annotations

import numpy as np
from scipy import stats

from tools.errors import InvalidInputError
from tools.uplift.cate import EffectEstimate, effect_estimate
from tools.uplift.models import AbResult, SrmCheck
from tools.uplift.validation import as_vector

SRM_P_THRESHOLD = 0.001


def binary_treatment(treatment: object, n: int) -> np.ndarray:
    t = as_vector("treatment", treatment, n)
    if not np.isin(t, (0.0, 1.0)).all():
        raise InvalidInputError(
            "treatment must be 0 (control) or 1 (treatment)", field="treatment", allowed="0 or 1"
        )
    counts = (int((t == 0).sum()), int((t == 1).sum()))
    if min(counts) < 2:
        which = "control" if counts[0] < 2 else "treatment"
        raise InvalidInputError(
            f"the {which} group has {min(counts)} rows; an A/B comparison needs at least 2 in each group "
            "(all rows in one group?)",
            field="treatment",
        )
    return t == 1


def srm_check(n_control: int, n_treatment: int, expected_treatment_share: float = 0.5) -> SrmCheck:
    """Chi-square test of the observed split against the planned one (p < 0.001 flags a mismatch)."""
    if not 0 < expected_treatment_share < 1:
        raise InvalidInputError(
            f"expected_treatment_share must be > 0 and < 1 (got {expected_treatment_share})",
            field="expected_treatment_share",
            allowed="(0, 1)",
        )
    n = n_control + n_treatment
    expected = np.array([n * (1 - expected_treatment_share), n * expected_treatment_share])
    chi2 = float((((np.array([n_control, n_treatment]) - expected) ** 2) / expected).sum())
    p = float(stats.chi2.sf(chi2, df=1))
    observed = n_treatment / n
    mismatch = p < SRM_P_THRESHOLD
    message = (
        f"sample ratio mismatch: {observed:.1%} of units are in treatment, planned {expected_treatment_share:.1%} "
        f"(p = {p:.2g}); assignment or logging is broken and the comparison is unreliable"
        if mismatch
        else f"split {observed:.1%} treatment matches the planned {expected_treatment_share:.1%} (p = {p:.2g})"
    )
    return SrmCheck(
        n_control=n_control,
        n_treatment=n_treatment,
        expected_treatment_share=expected_treatment_share,
        observed_treatment_share=observed,
        p_value=p,
        mismatch=mismatch,
        message=message,
    )


def minimum_detectable_effect(
    sd_control: float,
    sd_treatment: float,
    n_control: int,
    n_treatment: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Smallest absolute difference a two-sided test at `alpha` detects with probability `power`."""
    _check_alpha_power(alpha, power)
    se = np.sqrt(sd_control**2 / n_control + sd_treatment**2 / n_treatment)
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)


def required_sample_size(
    mde: float, sd: float, *, treatment_share: float = 0.5, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Total units needed to detect an absolute effect `mde` for a metric with standard deviation `sd`."""
    _check_alpha_power(alpha, power)
    if mde <= 0 or sd <= 0:
        raise InvalidInputError(f"mde and sd must be > 0 (got mde={mde}, sd={sd})", field="mde")
    if not 0 < treatment_share < 1:
        raise InvalidInputError(
            f"treatment_share must be in (0, 1) (got {treatment_share})", field="treatment_share"
        )
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = (z * sd / mde) ** 2 * (1 / treatment_share + 1 / (1 - treatment_share))
    return int(np.ceil(n))


def _check_alpha_power(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must be > 0 and < 1 (got {alpha})", field="alpha", allowed="(0, 1)")
    if not 0 < power < 1:
        raise InvalidInputError(f"power must be > 0 and < 1 (got {power})", field="power", allowed="(0, 1)")


def cuped_adjust(y: np.ndarray, pre: np.ndarray) -> tuple[np.ndarray, float]:
    """Y - theta (X_pre - mean X_pre), theta = cov(Y, X_pre) / var(X_pre) on the pooled sample."""
    var = float(pre.var())
    if var == 0:
        return y, 0.0
    theta = float(np.cov(y, pre, ddof=0)[0, 1] / var)
    return y - theta * (pre - pre.mean()), theta


def analyze_ab(
    outcome: object,
    treatment: object,
    *,
    pre_outcome: object | None = None,
    expected_treatment_share: float | None = None,
    level: float = 0.95,
    power: float = 0.8,
    metric: str = "outcome",
) -> AbResult:
    """Compare treatment with control on one metric; `pre_outcome` (same metric before the test) turns on CUPED.

    `expected_treatment_share` is the planned split for the sample-ratio check (0.5 when not given).
    """
    if not 0.5 <= level < 1:
        raise InvalidInputError(f"level must be >= 0.5 and < 1 (got {level})", field="level")
    y = as_vector("outcome", outcome)
    treated = binary_treatment(treatment, y.shape[0])
    warnings: list[str] = []
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    share = 0.5 if expected_treatment_share is None else expected_treatment_share
    srm = srm_check(n_c, n_t, share)
    if srm.mismatch:
        warnings.append(srm.message)

    y_adj, cuped = y, False
    if pre_outcome is not None:
        pre = as_vector("pre_outcome", pre_outcome, y.shape[0])
        y_adj, theta = cuped_adjust(y, pre)
        cuped = theta != 0
        if not cuped:
            warnings.append("pre_outcome is constant: CUPED not applied")
    yt, yc = y_adj[treated], y_adj[~treated]
    var_raw = y[treated].var(ddof=1) / n_t + y[~treated].var(ddof=1) / n_c
    var_adj = yt.var(ddof=1) / n_t + yc.var(ddof=1) / n_c
    diff = effect_estimate(float(yt.mean() - yc.mean()), float(np.sqrt(var_adj)), level)
    mean_c, mean_t = float(yc.mean()), float(yt.mean())
    lift = None
    if mean_c != 0:
        var_lift = (yt.var(ddof=1) / n_t) / mean_c**2 + mean_t**2 * (yc.var(ddof=1) / n_c) / mean_c**4
        lift = effect_estimate(mean_t / mean_c - 1, float(np.sqrt(var_lift)), level)
    else:
        warnings.append("control mean is 0: relative lift is undefined")
    mde = minimum_detectable_effect(
        float(yc.std(ddof=1)), float(yt.std(ddof=1)), n_c, n_t, alpha=1 - level, power=power
    )
    verdict = _verdict(metric, diff, lift, mde, power, srm)
    return AbResult(
        metric=metric,
        n_control=n_c,
        n_treatment=n_t,
        mean_control=float(y[~treated].mean()),
        mean_treatment=float(y[treated].mean()),
        difference=diff,
        relative_lift=lift,
        cuped=cuped,
        variance_reduction=float(max(0.0, 1 - var_adj / var_raw)) if var_raw > 0 else 0.0,
        mde=mde,
        power=power,
        srm=srm,
        significant=diff.significant and not srm.mismatch,
        verdict=verdict,
        warnings=warnings,
    )


def _verdict(
    metric: str, diff: EffectEstimate, lift: EffectEstimate | None, mde: float, power: float, srm: SrmCheck
) -> str:
    pct = int(round(diff.level * 100))
    ci = f"{pct}% CI {diff.ci_low:.4g} to {diff.ci_high:.4g}"
    rel = f" ({lift.estimate:+.1%})" if lift is not None else ""
    if srm.mismatch:
        return f"unreliable: {srm.message}"
    if diff.significant:
        direction = "increased" if diff.estimate > 0 else "decreased"
        return f"significant: treatment {direction} {metric} by {diff.estimate:.4g}{rel}, {ci}, p = {diff.p_value:.2g}"
    return (
        f"not significant: difference {diff.estimate:.4g}{rel}, {ci} includes 0 (p = {diff.p_value:.2g}); "
        f"with this sample only effects of at least {mde:.4g} in size are detected with {power:.0%} power"
    )
