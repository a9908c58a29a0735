import numpy as np
import pytest

from tools.errors import InvalidInputError
from tools.market.experiments import EffectSetup, ExperimentKind, OutcomeKind, simulate_units
from tools.uplift.incrementality import ad_incrementality


def _holdout(seed: int, n: int = 20000, low: bool = False):
    return simulate_units(
        experiment_id="t",
        kind=ExperimentKind.AD_EXPOSURE,
        outcome=OutcomeKind.PURCHASE,
        n_units=n,
        treatment_share=0.5,
        setup=EffectSetup(scale=0.05, heterogeneity=0.0, low_signal=True)
        if low
        else EffectSetup(scale=0.4, heterogeneity=1.0, low_signal=False),
        seed=seed,
    )


def test_incremental_roas_is_below_attributed_and_covers_the_truth() -> None:
    units, truth = _holdout(seed=2)
    assert units.revenue is not None and units.ad_spend is not None and units.attributed_sales is not None
    res = ad_incrementality(units.revenue, units.treatment, units.ad_spend, units.attributed_sales)
    assert truth.true_iroas is not None
    assert res.incremental_roas.ci_low < truth.true_iroas < res.incremental_roas.ci_high
    assert res.attributed_roas.estimate > res.incremental_roas.ci_high
    assert 0 < res.incremental_share_of_attributed < 1
    assert "of attributed sales were caused by the ads" in res.verdict
    assert res.ad_spend == pytest.approx(units.ad_spend.sum())


def test_weak_ads_are_reported_as_not_significant() -> None:
    units, _ = _holdout(seed=5, n=4000, low=True)
    assert units.revenue is not None and units.ad_spend is not None and units.attributed_sales is not None
    res = ad_incrementality(units.revenue, units.treatment, units.ad_spend, units.attributed_sales)
    assert not res.incremental_roas.significant
    assert "not significant" in res.verdict


def test_leaky_holdout_warns_and_bad_input_is_refused() -> None:
    y = np.array([0.0, 5.0, 0.0, 7.0, 1.0, 0.0])
    t = np.array([0, 1, 0, 1, 0, 1])
    spend = np.array([0.1, 1.0, 0.0, 1.0, 0.0, 1.0])
    res = ad_incrementality(y, t, spend, y * t)
    assert any("holdout leaked" in w for w in res.warnings)
    with pytest.raises(InvalidInputError, match="ad_spend must be >= 0"):
        ad_incrementality(y, t, -spend, y * t)
    with pytest.raises(InvalidInputError, match="no ad spend"):
        ad_incrementality(y, t, np.zeros(6), y * t)
