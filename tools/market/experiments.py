"""The marketplace's randomized experiments, with known truth (contract D).

Two kinds of user-level holdouts an advertiser runs:

- ``ad_exposure``: treated users can see the advertiser's ads, control users are held out (ghost ads).
  Treated units carry ``ad_spend`` and ``attributed_sales``; attribution credits every exposed purchase,
  including the organic ones that would have happened without the ad, so attributed ROAS overstates
  incremental ROAS.
- ``promotion``: treated users get a discount. It lifts purchase probability (most for price-sensitive
  users) but gives the discount away to loyal buyers who would have bought anyway, so the revenue effect
  changes sign across users.

Every experiment has user covariates (some drive the outcome or the effect, two are irrelevant), an
unobserved intent that links the pre-period and the experiment-period outcome (what CUPED exploits), and a
heterogeneous true effect ``tau`` per unit on the outcome's scale (purchase probability or expected
revenue). How strong the effect and its heterogeneity are is hidden: it follows from the experiment id,
and about a third of experiments are low-signal setups where heterogeneity is hard to detect.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from tools.market.data_model import Advertiser, Campaign, Experiment, Product


class ExperimentKind(StrEnum):
    AD_EXPOSURE = "ad_exposure"
    PROMOTION = "promotion"


class OutcomeKind(StrEnum):
    PURCHASE = "purchase"  # binary
    REVENUE = "revenue"  # continuous, >= 0


COVARIATES: list[str] = [
    "past_purchases_90d",  # count
    "days_since_last_visit",  # recency
    "sessions_30d",  # count
    "is_mobile",  # 0/1 device
    "loyalty_member",  # 0/1
    "price_sensitivity",  # 0..1
    "account_age_days",  # irrelevant
    "signup_weekday",  # irrelevant, 0..6
]


class EffectSetup(BaseModel):
    """Hidden strength of the effect: ``scale`` moves the average, ``heterogeneity`` its spread."""

    model_config = ConfigDict(extra="forbid")
    scale: float
    heterogeneity: float
    low_signal: bool


@dataclass
class ExperimentUnits:
    """What an advertiser can read about an experiment: one row per user."""

    experiment_id: str
    covariate_names: list[str]
    X: np.ndarray  # [n, p] float64
    treatment: np.ndarray  # [n] int64, 0 = control
    outcome: np.ndarray  # [n] float64 (0/1 for purchase)
    pre_outcome: np.ndarray  # [n] same metric in the pre-period (for CUPED)
    revenue: np.ndarray | None = None  # [n] experiment-period revenue (== outcome for revenue outcomes)
    ad_spend: np.ndarray | None = None  # [n] ad_exposure only; 0 for control units
    attributed_sales: np.ndarray | None = None  # [n] ad_exposure only; 0 for control units

    @property
    def n(self) -> int:
        return int(self.treatment.shape[0])

    def to_bytes(self) -> bytes:
        arrays = {k: v for k, v in _array_fields(self).items() if v is not None}
        return _pack({"experiment_id": self.experiment_id, "covariate_names": self.covariate_names}, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> ExperimentUnits:
        meta, arrays = _unpack(data)
        return cls(
            experiment_id=str(meta["experiment_id"]), covariate_names=list(meta["covariate_names"]), **arrays
        )


@dataclass
class ExperimentUnitTruth:
    """Ground truth: for evals and tests only (kept in the truth store)."""

    experiment_id: str
    tau: np.ndarray  # [n] true individual effect on the outcome's scale
    ate: float  # mean of tau over the units (sample average treatment effect)
    cate_formula: str
    tau_revenue: np.ndarray | None = None  # [n] expected revenue effect (ad_exposure)
    true_iroas: float | None = None  # expected incremental revenue / expected ad spend, treated units

    def to_bytes(self) -> bytes:
        meta = {
            "experiment_id": self.experiment_id,
            "ate": self.ate,
            "cate_formula": self.cate_formula,
            "true_iroas": self.true_iroas,
        }
        arrays: dict[str, Any] = {"tau": self.tau}
        if self.tau_revenue is not None:
            arrays["tau_revenue"] = self.tau_revenue
        return _pack(meta, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> ExperimentUnitTruth:
        meta, arrays = _unpack(data)
        iroas = meta.get("true_iroas")
        return cls(
            experiment_id=str(meta["experiment_id"]),
            ate=float(meta["ate"]),
            cate_formula=str(meta["cate_formula"]),
            true_iroas=None if iroas is None else float(iroas),
            tau=arrays["tau"],
            tau_revenue=arrays.get("tau_revenue"),
        )


def _array_fields(units: ExperimentUnits) -> dict[str, np.ndarray | None]:
    return {
        "X": units.X,
        "treatment": units.treatment,
        "outcome": units.outcome,
        "pre_outcome": units.pre_outcome,
        "revenue": units.revenue,
        "ad_spend": units.ad_spend,
        "attributed_sales": units.attributed_sales,
    }


def _pack(meta: dict[str, Any], arrays: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    arrays = {"__meta__": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays}
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _unpack(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    return meta, arrays


# --- planning --------------------------------------------------------------------------------------------


def plan_experiments(
    advertiser: Advertiser,
    campaigns: list[Campaign],
    products: list[Product],
    start: dt.date,
    end: dt.date,
    rng: np.random.Generator,
) -> list[Experiment]:
    """0-2 experiments for one advertiser, each inside [start, end] and at least 14 days long."""
    n_days = (end - start).days + 1
    if n_days < 14:
        return []
    count = int(rng.choice([0, 1, 2], p=[0.3, 0.45, 0.25]))
    if not campaigns:  # an ad holdout needs ads
        count = min(count, 1)
    experiments: list[Experiment] = []
    kinds = [ExperimentKind.AD_EXPOSURE, ExperimentKind.PROMOTION]
    for i in range(count):
        kind = kinds[i % 2] if campaigns else ExperimentKind.PROMOTION
        if i == 0 and campaigns and rng.random() < 0.5:
            kind = ExperimentKind.PROMOTION
            kinds = [ExperimentKind.PROMOTION, ExperimentKind.AD_EXPOSURE]
        length = int(rng.integers(14, min(28, n_days) + 1))
        first = start + dt.timedelta(days=int(rng.integers(0, n_days - length + 1)))
        outcome = OutcomeKind.REVENUE if rng.random() < 0.5 else OutcomeKind.PURCHASE
        experiments.append(
            Experiment(
                id=f"exp_{advertiser.id.removeprefix('adv_')}_{i + 1}",
                advertiser_id=advertiser.id,
                kind=kind.value,
                start=first,
                end=first + dt.timedelta(days=length - 1),
                n_units=int(rng.integers(3, 11)) * 1000,
                covariates=list(COVARIATES),
                outcome=outcome.value,
                treatment_share=float(rng.choice([0.5, 0.5, 0.7, 0.8, 0.9])),
            )
        )
    return experiments


def hidden_setup(experiment: Experiment) -> EffectSetup:
    """The experiment's hidden effect strength, a pure function of its id (so a world is reproducible)."""
    h = int.from_bytes(hashlib.sha256(experiment.id.encode()).digest()[:8], "little")
    u1, u2, u3 = (h % 1000) / 1000, ((h // 1000) % 1000) / 1000, ((h // 1_000_000) % 3)
    low = u3 == 0
    if low:
        return EffectSetup(scale=0.05 + 0.1 * u1, heterogeneity=0.1 * u2, low_signal=True)
    return EffectSetup(scale=0.2 + 0.3 * u1, heterogeneity=0.6 + 0.8 * u2, low_signal=False)


# --- simulation ------------------------------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def simulate_experiment(experiment: Experiment, seed: int) -> tuple[ExperimentUnits, ExperimentUnitTruth]:
    """Draw the experiment's units and their truth; the same (experiment, seed) gives the same arrays."""
    return simulate_units(
        experiment_id=experiment.id,
        kind=ExperimentKind(experiment.kind),
        outcome=OutcomeKind(experiment.outcome),
        n_units=experiment.n_units,
        treatment_share=experiment.treatment_share,
        setup=hidden_setup(experiment),
        seed=seed,
    )


def simulate_units(
    *,
    experiment_id: str,
    kind: ExperimentKind,
    outcome: OutcomeKind,
    n_units: int,
    treatment_share: float,
    setup: EffectSetup,
    seed: int,
    avg_order_value: float = 40.0,
    discount: float = 0.15,
) -> tuple[ExperimentUnits, ExperimentUnitTruth]:
    """The data-generating process behind every experiment (also used directly by tests and benchmarks)."""
    if n_units < 2:
        raise ValueError(f"n_units must be >= 2 (got {n_units})")
    if not 0 < treatment_share < 1:
        raise ValueError(f"treatment_share must be in (0, 1) (got {treatment_share})")
    rng = np.random.default_rng(seed)
    n = n_units

    # covariates
    past = rng.poisson(np.exp(rng.normal(0.3, 0.8, n)))
    lpp = np.log1p(past)
    recency = np.minimum(rng.exponential(20.0, n), 180.0)
    sessions = rng.poisson(1.5 + 2.0 * lpp + rng.exponential(1.0, n))
    mobile = (rng.random(n) < 0.6).astype(float)
    loyal = (rng.random(n) < _sigmoid(-1.4 + 0.9 * lpp)).astype(float)
    price_sens = rng.beta(2.0, 3.0, n)
    account_age = rng.uniform(30, 2000, n)
    weekday = rng.integers(0, 7, n).astype(float)
    X = np.column_stack([past, recency, sessions, mobile, loyal, price_sens, account_age, weekday]).astype(
        float
    )
    intent = rng.normal(0.0, 1.0, n)  # unobserved: drives both periods (what CUPED uses)

    base_logit = (
        -3.0
        + 0.6 * lpp
        - 0.35 * (np.log1p(recency) - 2.5)
        + 0.15 * np.log1p(sessions)
        + 0.4 * loyal
        - 0.2 * mobile
        - 0.5 * price_sens
        + intent
    )
    p0 = _sigmoid(base_logit)
    basket = avg_order_value * np.exp(0.15 * lpp + 0.2 * loyal)  # expected order value of this user

    s, het = setup.scale, setup.heterogeneity
    if kind is ExperimentKind.AD_EXPOSURE:
        # ads move engaged, non-loyal, mobile users most; loyal buyers buy anyway
        delta = s * (1.0 + het * (0.8 * (np.log1p(sessions) - 1.2) - 0.9 * loyal + 0.5 * mobile))
        formula = (
            f"logit shift = {s:.3f} * (1 + {het:.3f} * (0.8*(log1p(sessions_30d)-1.2) "
            f"- 0.9*loyalty_member + 0.5*is_mobile))"
        )
        price_factor = 1.0
    else:
        # a discount moves price-sensitive users, and is given away to those who would buy anyway
        delta = s * 2.0 * (1.0 + het * (2.5 * (price_sens - 0.4) - 0.5 * loyal))
        formula = (
            f"logit shift = {2 * s:.3f} * (1 + {het:.3f} * (2.5*(price_sensitivity-0.4) - 0.5*loyalty_member));"
            f" revenue at {1 - discount:.2f} of price"
        )
        price_factor = 1.0 - discount
    delta = np.maximum(delta, -0.3)
    p1 = _sigmoid(base_logit + delta)

    # randomize: exactly round(share * n) treated units
    treatment = np.zeros(n, dtype=np.int64)
    treatment[rng.permutation(n)[: int(round(treatment_share * n))]] = 1
    treated = treatment == 1

    # outcomes: purchase, then order value around the user's basket
    p = np.where(treated, p1, p0)
    purchase = (rng.random(n) < p).astype(float)
    order_value = basket * np.exp(rng.normal(-0.125, 0.5, n))  # mean-one lognormal noise
    revenue = purchase * order_value * np.where(treated, price_factor, 1.0)
    pre_purchase = (rng.random(n) < p0).astype(float)
    pre_revenue = pre_purchase * basket * np.exp(rng.normal(-0.125, 0.5, n))

    tau_revenue = (p1 * price_factor - p0) * basket
    if outcome is OutcomeKind.PURCHASE:
        y, y_pre, tau = purchase, pre_purchase, p1 - p0
        formula = f"P(purchase): {formula}"
    else:
        y, y_pre, tau = revenue, pre_revenue, tau_revenue
        formula = f"E[revenue] = P(purchase) * basket: {formula}"

    ad_spend = attributed = None
    true_iroas = None
    if kind is ExperimentKind.AD_EXPOSURE:
        impressions = rng.poisson(2.0 + 3.0 * np.log1p(sessions)) * treated
        ad_spend = impressions * rng.uniform(0.02, 0.06, n)
        # view-through attribution: an exposed purchase is credited to the ads, organic or not
        credited = treated & (impressions > 0) & (rng.random(n) < 0.9)
        attributed = revenue * credited
        true_iroas = float(tau_revenue[treated].sum() / max(ad_spend[treated].sum(), 1e-12))

    units = ExperimentUnits(
        experiment_id=experiment_id,
        covariate_names=list(COVARIATES),
        X=X,
        treatment=treatment,
        outcome=y,
        pre_outcome=y_pre,
        revenue=revenue,
        ad_spend=ad_spend,
        attributed_sales=attributed,
    )
    truth = ExperimentUnitTruth(
        experiment_id=experiment_id,
        tau=tau,
        ate=float(tau.mean()),
        cate_formula=formula,
        tau_revenue=tau_revenue,
        true_iroas=true_iroas,
    )
    return units, truth
