import numpy as np
import pytest

from tools.errors import InvalidInputError
from tools.uplift.metrics import pehe, uplift_at_k, uplift_curves


def _data(n: int = 20000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=n)
    t = rng.integers(0, 2, n)
    tau = 0.3 * x  # effect grows with x
    y = (rng.random(n) < 0.1 + tau * t).astype(float)
    return x, y, t, tau


def test_curves_reward_a_good_ranking_over_a_random_one() -> None:
    x, y, t, _ = _data()
    good = uplift_curves(x, y, t)
    rand = uplift_curves(np.random.default_rng(1).random(x.shape[0]), y, t)
    bad = uplift_curves(-x, y, t)
    assert good.qini_coefficient > 0.01 > abs(rand.qini_coefficient)
    assert bad.qini_coefficient < 0
    assert good.auuc > rand.auuc > bad.auuc
    # all curves end at the overall effect per population unit
    overall = y[t == 1].mean() - y[t == 0].mean()
    assert good.uplift[-1] == pytest.approx(overall)
    assert good.qini[-1] == pytest.approx(
        y[t == 1].sum() / x.shape[0] - y[t == 0].sum() / x.shape[0] * (t == 1).sum() / (t == 0).sum()
    )
    assert good.fraction[-1] == 1.0 and len(good.fraction) == 100


def test_uplift_at_k_finds_the_responders() -> None:
    x, y, t, tau = _data()
    top = uplift_at_k(x, y, t, k=0.2)
    assert top.ci_low < tau[np.argsort(-x)[:4000]].mean() < top.ci_high
    assert top.significant
    with pytest.raises(InvalidInputError, match="k must be"):
        uplift_at_k(x, y, t, k=0)


def test_pehe_and_bad_input() -> None:
    assert pehe([1.0, 2.0], [1.0, 4.0]) == pytest.approx(np.sqrt(2.0))
    with pytest.raises(InvalidInputError, match="treatment must be 0/1"):
        uplift_curves([1, 2, 3], [0, 1, 0], [0, 2, 1])
    with pytest.raises(InvalidInputError, match="single value"):
        uplift_curves([1, 2, 3], [0, 1, 0], [1, 1, 1])
    with pytest.raises(InvalidInputError, match="true_tau must have 2 rows"):
        pehe([1.0, 2.0], [1.0])
