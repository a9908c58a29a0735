import numpy as np
import pytest

from tools.errors import InvalidInputError
from tools.uplift.ab import analyze_ab, minimum_detectable_effect, required_sample_size, srm_check


def _ab(n: int = 20000, effect: float = 0.0, seed: int = 0, share: float = 0.5):
    rng = np.random.default_rng(seed)
    pre = rng.gamma(2.0, 5.0, n)
    t = (rng.random(n) < share).astype(int)
    y = 0.8 * pre + rng.normal(0, 4, n) + effect * t
    return y, t, pre


def test_significant_effect_with_cuped_shrinking_the_interval() -> None:
    y, t, pre = _ab(effect=0.3)
    plain = analyze_ab(y, t)
    cuped = analyze_ab(y, t, pre_outcome=pre, metric="revenue")
    assert cuped.cuped and cuped.variance_reduction > 0.5
    assert cuped.difference.std_error < 0.7 * plain.difference.std_error
    assert cuped.significant and cuped.verdict.startswith("significant: treatment increased revenue")
    assert cuped.difference.ci_low < 0.3 < cuped.difference.ci_high
    assert cuped.relative_lift is not None and cuped.relative_lift.estimate > 0
    assert not cuped.srm.mismatch


def test_no_effect_is_reported_as_not_significant_with_the_mde() -> None:
    y, t, pre = _ab(effect=0.0, seed=4)
    res = analyze_ab(y, t, pre_outcome=pre)
    assert not res.significant
    assert res.verdict.startswith("not significant") and "includes 0" in res.verdict
    assert f"{res.mde:.4g}" in res.verdict


def test_sample_ratio_mismatch_is_flagged() -> None:
    y, t, _ = _ab(share=0.55, effect=1.0)
    res = analyze_ab(y, t, expected_treatment_share=0.5)
    assert res.srm.mismatch and not res.significant
    assert res.verdict.startswith("unreliable: sample ratio mismatch")
    assert not srm_check(5000, 5020).mismatch


def test_power_and_sample_size_agree() -> None:
    n = required_sample_size(0.5, 4.0, treatment_share=0.5)
    mde = minimum_detectable_effect(4.0, 4.0, n // 2, n // 2)
    assert mde == pytest.approx(0.5, rel=0.01)
    with pytest.raises(InvalidInputError, match="power must be"):
        required_sample_size(0.5, 4.0, power=1.2)


def test_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="control group has 0 rows"):
        analyze_ab([1.0, 2.0, 3.0], [1, 1, 1])
    with pytest.raises(InvalidInputError, match="0 \\(control\\) or 1"):
        analyze_ab([1.0, 2.0, 3.0], [0, 1, 2])
    with pytest.raises(InvalidInputError, match="pre_outcome has 1 missing"):
        analyze_ab([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1], pre_outcome=[1.0, np.nan, 2.0, 3.0])
