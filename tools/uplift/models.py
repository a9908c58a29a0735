"""The uplift engine's result types: plain pydantic, no numpy or scipy.

Apart from the estimators so that the MCP tool schemas (tools/mcp_server/schemas.py) can name them as tool
outputs without importing scikit-learn and scipy (about 1.5 s). The engine modules import them from here.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class EffectEstimate(BaseModel):
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    level: float
    p_value: float
    significant: bool  # the interval excludes 0


class SegmentEffect(BaseModel):
    segment: str
    n: int
    effect: EffectEstimate


class SrmCheck(BaseModel):
    n_control: int
    n_treatment: int
    expected_treatment_share: float
    observed_treatment_share: float
    p_value: float
    mismatch: bool
    message: str


class AbResult(BaseModel):
    metric: str
    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    difference: EffectEstimate  # treatment - control (CUPED-adjusted when a pre-period metric was given)
    relative_lift: EffectEstimate | None  # difference / control mean; None when the control mean is 0
    cuped: bool
    variance_reduction: float  # share of the difference's variance removed by CUPED (0 without it)
    mde: float  # smallest absolute effect this test detects with `power` at level `level`
    power: float
    srm: SrmCheck
    significant: bool
    verdict: str
    warnings: list[str]


class IncrementalityResult(BaseModel):
    n_treated: int
    n_control: int
    ad_spend: float  # total over treated units
    attributed_sales: float  # total over treated units
    incremental_sales: EffectEstimate  # total over treated units
    incremental_roas: EffectEstimate
    attributed_roas: EffectEstimate
    incremental_share_of_attributed: float  # incremental / attributed sales
    cuped: bool
    srm: SrmCheck
    verdict: str
    warnings: list[str]


class Kpi(StrEnum):
    SALES = "sales"
    ORDERS = "orders"
    CLICKS = "clicks"
    SPEND = "spend"
    ACOS = "acos"
    ROAS = "roas"


class Method(StrEnum):
    AUTO = "auto"  # lmdi when every driver is positive in both periods and no segments, else shapley
    LMDI = "lmdi"
    SHAPLEY = "shapley"


class Contribution(BaseModel):
    name: str
    value: float  # in KPI units; all contributions sum to the change
    share: float | None  # of the change (None when the change is 0: no share of nothing)


class Attribution(BaseModel):
    kpi: str
    before: float
    after: float
    change: float
    method: str
    contributions: list[Contribution]
    notes: list[str] = Field(default_factory=list)

    def total(self) -> float:
        return float(sum(c.value for c in self.contributions))
