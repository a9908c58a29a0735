"""The average effect's estimate and interval: AIPW with outcome regressions m +- e * tau (_dr_split), averaged
over independent nuisance splits with their spread in the variance (_dr_average)."""

import numpy as np
import pytest

from tools.errors import InvalidInputError
from tools.uplift.cate import _combine, _dr_average, _dr_split, _Nuisances, effect_estimate, fit_cate
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
