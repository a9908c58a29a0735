import numpy as np
import pytest

from tools.errors import InvalidInputError
from tools.market.experiments import (
    COVARIATES,
    EffectSetup,
    ExperimentKind,
    OutcomeKind,
    simulate_experiment,
    simulate_units,
)
from tools.uplift.cate import fit_cate
from tools.uplift.effects import average_effects, effects_by_predicted_group, segment_effects


def _promo(n: int = 6000, seed: int = 0):
    return simulate_units(
        experiment_id="t",
        kind=ExperimentKind.PROMOTION,
        outcome=OutcomeKind.PURCHASE,
        n_units=n,
        treatment_share=0.5,
        setup=EffectSetup(scale=0.5, heterogeneity=1.5, low_signal=False),
        seed=seed,
    )


def test_segment_effects_follow_the_true_effects_by_loyalty() -> None:
    units, truth = _promo()
    fit = fit_cate(units.X, units.treatment, units.outcome, randomized=True, estimator="constant")
    loyal = units.X[:, COVARIATES.index("loyalty_member")]
    segs = {s.segment: s for s in segment_effects(fit, np.where(loyal == 1, "loyal", "not loyal"))}
    assert set(segs) == {"loyal", "not loyal"}
    for name, mask in (("loyal", loyal == 1), ("not loyal", loyal == 0)):
        e = segs[name].effect
        assert segs[name].n == int(mask.sum())
        assert e.ci_low - 0.01 < truth.tau[mask].mean() < e.ci_high + 0.01


def test_sorted_group_effects_rise_when_effects_are_heterogeneous() -> None:
    units, _ = _promo(n=8000)
    fit = fit_cate(units.X, units.treatment, units.outcome, randomized=True, estimator="x")
    groups = effects_by_predicted_group(fit, n_groups=4)
    assert len(groups) == 4 and sum(g.n for g in groups) == units.n
    assert groups[-1].effect.estimate > groups[0].effect.estimate
    with pytest.raises(InvalidInputError, match="n_groups"):
        effects_by_predicted_group(fit, n_groups=1)
    with pytest.raises(InvalidInputError, match="one label per training row"):
        segment_effects(fit, ["a", "b"])


def test_average_effects_ate_and_att() -> None:
    units, truth = _promo(n=5000, seed=3)
    (eff,) = average_effects(units.X, units.treatment, units.outcome, randomized=True)
    treated = units.treatment == 1
    assert eff.ate.ci_low < truth.ate < eff.ate.ci_high
    assert eff.att.ci_low < truth.tau[treated].mean() < eff.att.ci_high
    assert eff.n_treated == int(treated.sum())


@pytest.mark.slow
def test_ate_intervals_cover_the_truth_on_marketplace_experiments() -> None:
    """Nominal 95% intervals cover the true ATE in >= 90% of seeds (both kinds, both outcomes): AIPW's, and
    auto's, which is the partially linear estimate whenever auto predicts one effect for everyone."""
    import datetime as dt

    from tools.market.data_model import Experiment

    hits, auto_hits, partially_linear, total = 0, 0, 0, 0
    for seed in range(80):
        kind = ["ad_exposure", "promotion"][seed % 2]
        outcome = ["purchase", "revenue"][(seed // 2) % 2]
        exp = Experiment(
            id=f"exp_{seed % 7:04d}_1",  # a few hidden setups, low and high signal
            advertiser_id="adv_0001",
            kind=kind,
            start=dt.date(2026, 6, 1),
            end=dt.date(2026, 6, 21),
            n_units=3000,
            covariates=list(COVARIATES),
            outcome=outcome,
            treatment_share=[0.5, 0.7][seed % 2],
        )
        units, truth = simulate_experiment(exp, seed=1000 + seed)
        (eff,) = average_effects(units.X, units.treatment, units.outcome, randomized=True, seed=seed)
        hits += eff.ate.ci_low <= truth.ate <= eff.ate.ci_high
        auto = fit_cate(units.X, units.treatment, units.outcome, randomized=True, seed=seed).summary.arms[0]
        auto_hits += auto.ate.ci_low <= truth.ate <= auto.ate.ci_high
        partially_linear += auto.ate_method == "partially linear"
        total += 1
    assert hits / total >= 0.9, f"coverage {hits}/{total}"
    assert auto_hits / total >= 0.9, f"auto's coverage {auto_hits}/{total}"
    assert partially_linear >= 40  # most of these fits predict one effect (62 of 80 when written)
