"""The average effect's estimate and interval: AIPW with outcome regressions m +- e * tau (_dr_split), averaged
over independent nuisance splits with their spread in the variance (_dr_average)."""

import numpy as np
import pytest

import tools.uplift.cate as cate
from tools.errors import InvalidInputError
from tools.uplift.cate import (
    OVERLAP_MIN,
    _aipw_estimates,
    _combine,
    _dr_average,
    _dr_split,
    _DrSplit,
    _extrapolation,
    _Nuisances,
    effect_estimate,
    fit_cate,
)
from tools.uplift.validation import PROPENSITY_CLIP


def _nuisances(
    seed: int, n: int = 40_000
):  # -> (y, t, nuisances: true m and e, useless arm models, tau, ate)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    e = 1 / (1 + np.exp(-1.5 * x))
    t = (rng.random(n) < e).astype(int)
    tau = 1.0 + x
    mu0 = 2 * x + np.sin(3 * x)
    y = mu0 + t * tau + rng.normal(size=n)
    nz = _Nuisances(
        mu=np.zeros((n, 2)),  # the arms' own outcome models know nothing
        m=mu0 + e * tau,
        e=np.column_stack([1 - e, e]),
        outcome_models=[],
    )
    return y, t, nz, tau, float(tau.mean())


def test_dr_split_is_unbiased_for_any_effect_model_and_uses_the_decomposition_where_it_fits() -> None:
    """With the true E[Y|X] and propensity the mean pseudo-outcome is unbiased whatever the effect model
    (the truth, 0, or 3 everywhere) and however bad the arms' own outcome models; with the true effect the
    outcome regression m +- e tau is exact, the combination takes it, and the standard error is the
    smallest. A sign or weight error in the pseudo-outcome breaks the first check."""
    y, t, nz, tau, ate = _nuisances(0)
    is_arm, is_ctl = t == 1, t == 0
    ses = {}
    for name, guess in {"true": tau, "zero": np.zeros_like(tau), "three": np.full_like(tau, 3.0)}.items():
        sp = _dr_split(y, is_arm, is_ctl, nz, 1, guess)
        se = float(sp.phi.std(ddof=1) / np.sqrt(sp.phi.shape[0]))
        assert abs(sp.phi.mean() - ate) < 3 * se, name
        # the residuals of the partially linear estimate are y - m and t - e (e clipped to [0.01, 0.99])
        assert np.allclose(sp.y_res, y - nz.m)
        assert np.allclose(sp.t_res, t - np.clip(nz.e[:, 1], PROPENSITY_CLIP, 1 - PROPENSITY_CLIP))
        ses[name] = se
    assert ses["true"] < 0.8 * min(ses["zero"], ses["three"])


def test_outcome_regressions_combine_toward_the_one_that_fits_the_arm() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    truth = rng.normal(size=n)
    y = truth + 0.1 * rng.normal(size=n)
    rows = rng.random(n) < 0.3
    noise = rng.normal(size=n)
    assert np.allclose(_combine(y, rows, truth + noise, truth), truth, atol=0.05)  # w near 1
    assert np.allclose(_combine(y, rows, truth, truth + noise), truth, atol=0.05)  # w near 0
    # both alike: the combination is no worse on the arm's rows than either
    mixed = _combine(y, rows, truth + noise, truth - noise)
    assert np.mean((mixed - truth)[rows] ** 2) < 0.1


def test_repeated_splits_average_the_estimates_and_add_their_spread_to_the_variance() -> None:
    one = _dr_average([(2.0, 0.1)], 0.95)
    assert one == effect_estimate(2.0, 0.1)
    same = _dr_average([(2.0, 0.1)] * 3, 0.95)
    assert same.estimate == pytest.approx(2.0) and same.std_error == pytest.approx(0.1)
    spread = _dr_average([(1.8, 0.1), (2.0, 0.1), (2.2, 0.1)], 0.95)
    assert spread.estimate == pytest.approx(2.0)
    # mean over splits of se^2 + (theta_s - theta)^2: (0.01 + 0.04 + 0.01 + 0 + 0.01 + 0.04) / 3
    assert spread.std_error == pytest.approx(np.sqrt(0.11 / 3))
    assert spread.ci_high - spread.ci_low > same.ci_high - same.ci_low


def _confounded(seed: int, n: int = 1500):  # -> (X, t, y, true ATE of these rows)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10))
    e = 1 / (1 + np.exp(-(-1.6 + 1.5 * X[:, 0] + 1.0 * X[:, 1])))
    t = (rng.random(n) < e).astype(int)
    mu0 = 4 * np.sin(1.5 * X[:, 0]) + 2 * X[:, 1] ** 2 + 2 * X[:, 2] * X[:, 3] + 3 * X[:, 0]
    tau = 1 + 0.5 * X[:, 4]
    return X, t, mu0 + t * tau + rng.normal(size=n), float(tau.mean())


def test_auto_reports_the_split_averaged_interval_and_it_covers_on_a_confounded_design() -> None:
    """A small treated arm (about 25%), propensities down to about 0.01 and a non-linear control surface:
    auto's 95% interval, averaged over 3 nuisance splits, holds the true ATE on at least 5 of 6 seeds, and
    with one split the fit says so and its estimate is that split's."""
    covered = 0
    for seed in range(6):
        X, t, y, ate = _confounded(seed)
        arm = fit_cate(X, t, y, seed=seed).summary.arms[0]
        assert arm.ate_splits == 3
        covered += arm.ate.ci_low <= ate <= arm.ate.ci_high
    assert covered >= 5
    X, t, y, _ = _confounded(0)
    single = fit_cate(X, t, y, seed=0, ate_splits=1).summary.arms[0]
    assert single.ate_splits == 1
    with pytest.raises(InvalidInputError, match="ate_splits"):
        fit_cate(X, t, y, ate_splits=0)


def test_extrapolation_term_is_the_outside_share_times_the_regressions_honest_error() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    rows = np.array([True, True, False, False])
    regression = np.array([0.0, 4.0, 9.0, 9.0])  # errors 1 and 2 on the arm's rows: RMSE sqrt(2.5)
    e = np.array([0.001, 0.5, 0.5, 0.01])  # half the rows below OVERLAP_MIN
    assert _extrapolation(y, rows, regression, e) == pytest.approx(0.5 * np.sqrt(2.5))
    assert _extrapolation(y, rows, regression, np.full(4, OVERLAP_MIN)) == 0.0


def _never_treated_half(seed: int, n: int = 2000):  # -> (X, t, y, true ATE of these rows)
    """ACIC 2016 instance 1 in small: the rows with x0 < 0 are never treated (propensity 0), and the effect
    there is not what a smooth extrapolation of the treated rows gives."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    e = np.where(X[:, 0] < 0, 0.0, 0.5)
    t = (rng.random(n) < e).astype(int)
    tau = 1 + 2 * np.maximum(-X[:, 0], 0) ** 2
    mu0 = X[:, 1] + np.sin(2 * X[:, 0])
    return X, t, mu0 + t * tau + rng.normal(size=n), float(tau.mean())


def test_the_interval_widens_where_an_arm_is_never_seen_and_then_covers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Half the rows are never treated: their part of the ATE is an extrapolation that the influence function
    does not see. The interval says so (a positive extrapolation term, named in the message) and covers the
    true ATE on 4 of 4 seeds; without the term it covers on none."""
    covered = {True: 0, False: 0}
    for with_term in (True, False):
        if not with_term:
            monkeypatch.setattr(cate, "OVERLAP_MIN", 0.0)
        for seed in range(4):
            X, t, y, ate = _never_treated_half(seed)
            arm = fit_cate(X, t, y, seed=seed, ate_splits=1).summary.arms[0]
            covered[with_term] += arm.ate.ci_low <= ate <= arm.ate.ci_high
            if with_term:
                assert arm.ate_method == "aipw" and arm.ate_extrapolation > 0.3
                assert "extrapolated" in arm.message
            else:
                assert arm.ate_extrapolation == 0.0
    assert covered[True] == 4 and covered[False] == 0


def test_the_standard_error_adds_the_regression_spread_and_the_extrapolation_term() -> None:
    """The spread is half the gap between the AIPW estimates with either candidate regression alone; each
    split's standard error is the influence function's with both terms added in quadrature."""
    y, t, nz, tau, _ = _nuisances(3, n=5000)
    is_arm, is_ctl = t == 1, t == 0
    guess = np.full_like(tau, 3.0)
    sp = _dr_split(y, is_arm, is_ctl, nz, 1, guess)
    e = np.clip(nz.e[:, 1], PROPENSITY_CLIP, 1 - PROPENSITY_CLIP)

    def aipw(r1: np.ndarray, r0: np.ndarray) -> float:
        return float(np.mean(r1 - r0 + is_arm * (y - r1) / e - is_ctl * (y - r0) / (1 - e)))

    assert nz.m is not None
    own = aipw(nz.mu[:, 1], nz.mu[:, 0])
    decomposed = aipw(nz.m + (1 - e) * guess, nz.m - e * guess)
    assert sp.regression_spread == pytest.approx(abs(own - decomposed) / 2)
    phi = np.array([1.0, 2.0, 3.0, 6.0])
    ((estimate, se),) = _aipw_estimates([_DrSplit(phi, phi, phi, extrapolation=0.3, regression_spread=0.4)])
    assert estimate == pytest.approx(3.0)
    assert se == pytest.approx(np.sqrt(phi.var(ddof=1) / 4 + 0.09 + 0.16))
