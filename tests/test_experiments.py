import datetime as dt

import numpy as np
import pytest

from tools.market.data_model import Advertiser, Campaign, Experiment, Product
from tools.market.experiments import (
    COVARIATES,
    EffectSetup,
    ExperimentKind,
    ExperimentUnits,
    ExperimentUnitTruth,
    OutcomeKind,
    hidden_setup,
    plan_experiments,
    simulate_experiment,
    simulate_units,
)

ADV = Advertiser(id="adv_0007", name="Acme", category="kitchen")
CAMPAIGNS = [Campaign(id="cmp_00001", advertiser_id="adv_0007", name="c1", daily_budget=50.0)]
PRODUCTS = [
    Product(id="prd_000001", advertiser_id="adv_0007", name="pan", category="kitchen", price=30, margin=0.3)
]
START, END = dt.date(2026, 6, 1), dt.date(2026, 9, 28)


def _experiment(kind: str = "ad_exposure", outcome: str = "revenue", n: int = 4000) -> Experiment:
    return Experiment(
        id="exp_0007_1",
        advertiser_id="adv_0007",
        kind=kind,
        start=START,
        end=START + dt.timedelta(days=20),
        n_units=n,
        covariates=list(COVARIATES),
        outcome=outcome,
        treatment_share=0.5,
    )


def test_plan_experiments_is_reproducible_and_within_range() -> None:
    plans = [
        plan_experiments(ADV, CAMPAIGNS, PRODUCTS, START, END, np.random.default_rng(s)) for s in range(40)
    ]
    again = [
        plan_experiments(ADV, CAMPAIGNS, PRODUCTS, START, END, np.random.default_rng(s)) for s in range(40)
    ]
    assert plans == again
    counts = {len(p) for p in plans}
    assert counts <= {0, 1, 2} and len(counts) > 1
    for exps in plans:
        assert len({e.id for e in exps}) == len(exps)
        for e in exps:
            assert START <= e.start <= e.end <= END
            assert (e.end - e.start).days + 1 >= 14
            assert e.kind in {k.value for k in ExperimentKind}
            assert e.outcome in {k.value for k in OutcomeKind}
            assert e.covariates == COVARIATES


def test_no_ad_holdout_without_campaigns_and_none_for_short_windows() -> None:
    for s in range(30):
        for e in plan_experiments(ADV, [], PRODUCTS, START, END, np.random.default_rng(s)):
            assert e.kind == "promotion"
    assert (
        plan_experiments(
            ADV, CAMPAIGNS, PRODUCTS, START, START + dt.timedelta(days=5), np.random.default_rng(0)
        )
        == []
    )


def test_simulate_experiment_shapes_truth_and_reproducibility() -> None:
    exp = _experiment()
    units, truth = simulate_experiment(exp, seed=3)
    units2, truth2 = simulate_experiment(exp, seed=3)
    assert np.array_equal(units.outcome, units2.outcome) and np.array_equal(truth.tau, truth2.tau)
    n = exp.n_units
    assert units.X.shape == (n, len(COVARIATES)) and units.covariate_names == COVARIATES
    assert units.treatment.shape == units.outcome.shape == units.pre_outcome.shape == truth.tau.shape == (n,)
    assert set(np.unique(units.treatment)) == {0, 1}
    assert abs(units.treatment.mean() - 0.5) < 1e-3
    assert truth.ate == pytest.approx(truth.tau.mean())
    assert np.isfinite(units.X).all() and (units.outcome >= 0).all()
    # ad holdout: spend only on treated units, attribution over-credits the ads
    assert units.ad_spend is not None and units.attributed_sales is not None
    assert (units.ad_spend[units.treatment == 0] == 0).all()
    attributed_roas = units.attributed_sales.sum() / units.ad_spend.sum()
    assert truth.true_iroas is not None and attributed_roas > truth.true_iroas


def test_binary_outcome_and_promotion_has_effects_of_both_signs() -> None:
    units, truth = simulate_units(
        experiment_id="e",
        kind=ExperimentKind.PROMOTION,
        outcome=OutcomeKind.REVENUE,
        n_units=5000,
        treatment_share=0.5,
        setup=EffectSetup(scale=0.3, heterogeneity=1.2, low_signal=False),
        seed=1,
    )
    assert units.ad_spend is None
    assert (truth.tau > 0).any() and (truth.tau < 0).any()
    units_b, truth_b = simulate_experiment(_experiment(kind="promotion", outcome="purchase"), seed=2)
    assert set(np.unique(units_b.outcome)) <= {0.0, 1.0}
    assert ((truth_b.tau > -1) & (truth_b.tau < 1)).all()


def test_difference_in_means_recovers_the_true_ate() -> None:
    # a large randomized experiment: the naive estimate must be close to the truth (checks the DGP is consistent)
    units, truth = simulate_units(
        experiment_id="e",
        kind=ExperimentKind.AD_EXPOSURE,
        outcome=OutcomeKind.PURCHASE,
        n_units=200_000,
        treatment_share=0.5,
        setup=EffectSetup(scale=0.3, heterogeneity=1.0, low_signal=False),
        seed=5,
    )
    t = units.treatment == 1
    diff = units.outcome[t].mean() - units.outcome[~t].mean()
    assert diff == pytest.approx(truth.ate, abs=0.004)


def test_hidden_setup_is_deterministic_and_mixes_low_and_high_signal() -> None:
    setups = [hidden_setup(_experiment().model_copy(update={"id": f"exp_{i:04d}_1"})) for i in range(60)]
    assert hidden_setup(_experiment()) == hidden_setup(_experiment())
    lows = sum(s.low_signal for s in setups)
    assert 5 < lows < 40


def test_units_and_truth_round_trip_through_bytes() -> None:
    units, truth = simulate_experiment(_experiment(n=1000), seed=9)
    back = ExperimentUnits.from_bytes(units.to_bytes())
    assert back.experiment_id == units.experiment_id and back.covariate_names == units.covariate_names
    for name in ["X", "treatment", "outcome", "pre_outcome", "revenue", "ad_spend", "attributed_sales"]:
        assert np.array_equal(getattr(back, name), getattr(units, name)), name
    tback = ExperimentUnitTruth.from_bytes(truth.to_bytes())
    assert tback.ate == truth.ate and tback.true_iroas == truth.true_iroas
    assert np.array_equal(tback.tau, truth.tau) and tback.cate_formula == truth.cate_formula
    promo_units, promo_truth = simulate_experiment(_experiment(kind="promotion", n=500), seed=1)
    assert ExperimentUnits.from_bytes(promo_units.to_bytes()).ad_spend is None


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="treatment_share"):
        simulate_units(
            experiment_id="e",
            kind=ExperimentKind.PROMOTION,
            outcome=OutcomeKind.PURCHASE,
            n_units=100,
            treatment_share=1.0,
            setup=EffectSetup(scale=0.3, heterogeneity=1.0, low_signal=False),
            seed=0,
        )
