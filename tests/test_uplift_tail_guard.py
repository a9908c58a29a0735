"""auto's tail guard: once heterogeneity is detected, the candidates are compared by out-of-fold DR loss,
unstable ones are dropped, and the simplest within one standard error of the best is used."""

import numpy as np
import pytest

from tools.uplift.cate import Estimator, _guarded_choice, fit_cate
from tools.uplift.metrics import pehe


def _no_treated_level(seed: int, n: int = 1000):  # -> (X, t, y, tau)
    """IHDP surface B's failure in small: a heavy-tailed exponential control surface, and a rare binary
    covariate whose rows are never treated (IHDP: no treated child with prenatal = 0). There the linear
    effect's coefficient is unidentified, and the R-loss, which weights rows by (T - e)^2, cannot see it."""
    rng = np.random.default_rng(seed)
    rare = (rng.random(n) < 0.04).astype(float)
    X = np.column_stack([rng.normal(size=(n, 8)), rare])
    t = (rng.random(n) < np.where(rare == 1, 0.0, 0.3)).astype(int)
    beta = np.array([0.4, 0.3, 0.2, 0, 0, 0, 0, 0, 0.0])
    mu0 = np.exp((X + 0.5) @ beta + 1.5 * rare)
    mu1 = X @ beta + 2
    y = np.where(t == 1, mu1, mu0) + rng.normal(size=n)
    return X, t, y, mu1 - mu0


def test_guard_keeps_auto_from_a_linear_effect_that_runs_wild_where_nobody_is_treated() -> None:
    for seed in (0, 1, 3):
        X, t, y, _ = _no_treated_level(seed)
        X_new, _, _, tau_new = _no_treated_level(1000 + seed)  # fresh rows: the wild ones are among them
        guarded = fit_cate(X, t, y, seed=0)
        round7 = fit_cate(X, t, y, seed=0, tail_guard=False)
        x_only = fit_cate(X, t, y, seed=0, estimator="x")
        arm = guarded.summary.arms[0]
        assert arm.heterogeneity_detected and arm.estimator is Estimator.X
        assert Estimator.LINEAR not in {Estimator(k) for k in arm.stack_weights}
        linear = next(c for c in arm.candidates if c.estimator is Estimator.LINEAR)
        # the linear model's DR loss is far above the best's, in standard errors of the paired difference
        assert linear.dr_excess is not None and linear.dr_excess_std_error is not None
        assert linear.dr_excess > 3 * linear.dr_excess_std_error
        assert "tail guard" in arm.message and "chose x" in arm.message
        guarded_pehe = pehe(guarded.predict(X_new), tau_new)
        assert guarded_pehe < 1.2 * pehe(x_only.predict(X_new), tau_new)
        assert pehe(round7.predict(X_new), tau_new) > 20 * guarded_pehe  # round 7's rule kept linear


def _candidate_oof(n: int, seed: int) -> tuple[dict[Estimator, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tau = rng.normal(size=n)
    phi = tau + rng.normal(scale=2.0, size=n)  # a noisy but unbiased pseudo-outcome
    x = tau + rng.normal(scale=0.25, size=n)
    oof = {
        Estimator.CONSTANT: np.full(n, phi.mean()),
        Estimator.LINEAR: x + rng.normal(scale=0.03, size=n),  # x's errors and a little more
        Estimator.X: x,
    }
    fold = np.arange(n) % 2
    return oof, phi, fold


def test_guard_takes_the_simplest_model_within_one_standard_error_of_the_best() -> None:
    oof, phi, fold = _candidate_oof(4000, seed=0)
    sub = np.ones(phi.shape[0], dtype=bool)
    weights, scores = _guarded_choice({Estimator.LINEAR: 0.4, Estimator.X: 0.6}, oof, phi, sub, fold)
    by_name = {s.estimator: s for s in scores}
    assert [s.estimator for s in scores] == [
        Estimator.CONSTANT,
        Estimator.LINEAR,
        Estimator.X,
        Estimator.STACK,
    ]
    best = min(scores, key=lambda s: s.loss)
    assert best.estimator is not Estimator.LINEAR and by_name[best.estimator].excess == 0.0
    # linear is a little worse than the best but within one standard error: the simpler model is used
    assert 0 < by_name[Estimator.LINEAR].excess <= by_name[Estimator.LINEAR].excess_se
    assert weights == {Estimator.LINEAR: 1.0}
    assert by_name[Estimator.CONSTANT].excess > 10 * by_name[Estimator.CONSTANT].excess_se


def test_guard_drops_a_model_that_fails_in_one_fold_and_falls_back_to_the_constant_when_nothing_helps() -> (
    None
):
    rng = np.random.default_rng(1)
    n = 4000
    tau = rng.normal(size=n)
    phi = tau + rng.normal(scale=2.0, size=n)
    fold = np.arange(n) % 2
    sub = np.ones(n, dtype=bool)
    # linear is exact on fold 0 and worse than the constant on fold 1: the lowest loss overall, but unstable
    linear = tau + np.where(fold == 1, rng.normal(scale=1.2, size=n), 0.0)
    oof = {
        Estimator.CONSTANT: np.full(n, phi.mean()),
        Estimator.LINEAR: linear,
        Estimator.X: tau + rng.normal(scale=0.9, size=n),
    }
    weights, scores = _guarded_choice({}, oof, phi, sub, fold)
    by_name = {s.estimator: s for s in scores}
    assert min(scores, key=lambda s: s.loss).estimator is Estimator.LINEAR
    assert not by_name[Estimator.LINEAR].stable and by_name[Estimator.X].stable
    assert weights == {Estimator.X: 1.0}
    # every model of the spread is useless: the constant is the best and nothing comes within one SE
    noise = {
        Estimator.CONSTANT: oof[Estimator.CONSTANT],
        Estimator.LINEAR: phi.mean() + np.random.default_rng(2).normal(scale=3.0, size=phi.shape[0]),
        Estimator.X: phi.mean() + np.random.default_rng(3).normal(scale=3.0, size=phi.shape[0]),
    }
    weights, scores = _guarded_choice({}, noise, phi, sub, fold)
    assert weights == {} and min(scores, key=lambda s: s.loss).estimator is Estimator.CONSTANT


def test_round7_rule_stays_available_and_the_guard_changes_nothing_without_detection() -> None:
    """Without detected heterogeneity both rules give the constant; tail_guard=False skips the guard."""
    rng = np.random.default_rng(5)
    n = 3000
    X = rng.normal(size=(n, 5))
    t = rng.integers(0, 2, n)
    y = X[:, 0] + 0.5 * t + rng.normal(size=n)
    guarded = fit_cate(X, t, y, randomized=True, seed=0).summary.arms[0]
    plain = fit_cate(X, t, y, randomized=True, seed=0, tail_guard=False).summary.arms[0]
    assert guarded.estimator is Estimator.CONSTANT and plain.estimator is Estimator.CONSTANT
    assert guarded.ate.estimate == pytest.approx(plain.ate.estimate)
    assert all(c.dr_loss is None for c in guarded.candidates)  # the guard never ran
