"""Incrementality of advertising from a holdout: incremental ROAS versus the ROAS that attribution reports.

Attribution credits the ads with every exposed purchase, including the organic ones that would have
happened anyway, so attributed ROAS overstates what the ads caused. A randomized holdout measures the
causal part: incremental sales = (mean revenue of exposed - mean revenue of held-out users) x exposed users.
"""

from __future__ import annotations

import numpy as np

from tools.errors import InvalidInputError
from tools.uplift.ab import binary_treatment, cuped_adjust, srm_check
from tools.uplift.cate import EffectEstimate, effect_estimate
from tools.uplift.models import IncrementalityResult
from tools.uplift.validation import as_vector


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio of means and its delta-method variance contribution terms for one sample."""
    n = num.shape[0]
    r = float(num.mean() / den.mean())
    cov = np.cov(num, den, ddof=1)
    var = (cov[0, 0] + r**2 * cov[1, 1] - 2 * r * cov[0, 1]) / (n * den.mean() ** 2)
    return r, float(var)


def ad_incrementality(
    revenue: object,
    treatment: object,
    ad_spend: object,
    attributed_sales: object,
    *,
    pre_revenue: object | None = None,
    expected_treatment_share: float | None = None,
    level: float = 0.95,
) -> IncrementalityResult:
    """Incremental vs attributed ROAS from a user-level holdout (treatment 1 = could see ads)."""
    y = as_vector("revenue", revenue)
    n = y.shape[0]
    treated = binary_treatment(treatment, n)
    spend = as_vector("ad_spend", ad_spend, n)
    attributed = as_vector("attributed_sales", attributed_sales, n)
    for name, arr in (("ad_spend", spend), ("attributed_sales", attributed)):
        if (arr < 0).any():
            raise InvalidInputError(f"{name} must be >= 0 (got {arr.min():g})", field=name, allowed=">= 0")
    if spend[treated].sum() <= 0:
        raise InvalidInputError("treated units have no ad spend: ROAS is undefined", field="ad_spend")
    warnings: list[str] = []
    if spend[~treated].sum() > 0:
        warnings.append(
            f"control units have ad spend ({spend[~treated].sum():.2f}): the holdout leaked, "
            "incrementality is underestimated"
        )
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    srm = srm_check(n_c, n_t, 0.5 if expected_treatment_share is None else expected_treatment_share)
    if srm.mismatch:
        warnings.append(srm.message)
    cuped = False
    if pre_revenue is not None:
        y, theta = cuped_adjust(y, as_vector("pre_revenue", pre_revenue, n))
        cuped = theta != 0

    yt, yc, st, at = y[treated], y[~treated], spend[treated], attributed[treated]
    lift = float(yt.mean() - yc.mean())
    var_lift = yt.var(ddof=1) / n_t + yc.var(ddof=1) / n_c
    incremental = effect_estimate(lift * n_t, float(np.sqrt(var_lift)) * n_t, level)

    # iROAS = (mean_t(y) - mean_c(y)) / mean_t(spend): delta method, treated and control samples independent
    s_bar = float(st.mean())
    iroas = lift / s_bar
    cov_t = np.cov(yt, st, ddof=1)
    var_iroas = (
        cov_t[0, 0] / n_t
        + yc.var(ddof=1) / n_c
        + iroas**2 * cov_t[1, 1] / n_t
        - 2 * iroas * cov_t[0, 1] / n_t
    ) / s_bar**2
    aroas, var_aroas = _ratio(at, st)
    i_roas = effect_estimate(iroas, float(np.sqrt(max(var_iroas, 0.0))), level)
    a_roas = effect_estimate(aroas, float(np.sqrt(max(var_aroas, 0.0))), level)
    total_attr = float(at.sum())
    share = incremental.estimate / total_attr if total_attr > 0 else float("nan")
    verdict = _verdict(i_roas, a_roas, share)
    return IncrementalityResult(
        n_treated=n_t,
        n_control=n_c,
        ad_spend=float(st.sum()),
        attributed_sales=total_attr,
        incremental_sales=incremental,
        incremental_roas=i_roas,
        attributed_roas=a_roas,
        incremental_share_of_attributed=float(share),
        cuped=cuped,
        srm=srm,
        verdict=verdict,
        warnings=warnings,
    )


def _verdict(i_roas: EffectEstimate, a_roas: EffectEstimate, share: float) -> str:
    pct = int(round(i_roas.level * 100))
    head = (
        f"incremental ROAS {i_roas.estimate:.2f} ({pct}% CI {i_roas.ci_low:.2f} to {i_roas.ci_high:.2f}) "
        f"vs attributed ROAS {a_roas.estimate:.2f}"
    )
    if not i_roas.significant:
        return f"{head}: the ads' incremental effect is not significant; attribution may be crediting organic sales"
    return f"{head}: about {share:.0%} of attributed sales were caused by the ads"
