"""The budget optimizer's result types: plain pydantic, no numpy.

Apart from the optimizer so that the MCP tool schemas (tools/mcp_server/schemas.py) can name them as a tool
output without importing the simulator. budget.py imports them from here.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Objective(StrEnum):
    INCREMENTAL_PROFIT = "incremental_profit"
    INCREMENTAL_SALES = "incremental_sales"


class Decision(StrEnum):
    """How the market model's posterior draws pick each campaign's budget move on its own."""

    EXPECTED_GAIN = "expected_gain"  # the budget with the most gain on average over the draws
    SAFE = "safe"  # the best point-estimate budget whose gain stays >= 0 in 95% of the draws


class CampaignLimit(StrEnum):
    SATURATED = "saturated"
    MAX_BUDGET = "max_budget"
    MIN_BUDGET = "min_budget"
    UNPROFITABLE = "unprofitable"
    TOTAL_BUDGET = "total_budget"


class CampaignAllocation(BaseModel):
    campaign_id: str
    budget: float = Field(description="recommended daily budget")
    current_budget: float | None
    spend: float = Field(description="expected spend over the planning days")
    incremental_sales: float
    incremental_profit: float
    saturation_budget: float = Field(description="daily budget beyond which the campaign cannot spend more")
    marginal_value: float = Field(
        description="objective gained over the planning days per extra unit of daily budget, at this budget"
    )
    limit: CampaignLimit
    best_budget: float = Field(
        description="daily budget with the most objective for this campaign on its own, the total aside "
        "(at most its saturation or max_budget)"
    )
    best_gain: float | None = Field(
        description="objective over the planning days at best_budget minus at current_budget (with the market "
        "model's draws: its mean over them under the expected_gain decision, the point estimate's under safe)"
    )
    best_gain_low: float | None = Field(
        None,
        description="5th percentile of best_gain over the market model's posterior draws (None without draws)",
    )
    best_gain_high: float | None = Field(None, description="95th percentile of the same")
    point_best_budget: float | None = Field(
        None,
        description="the budget the model's point estimate alone would pick; differs from best_budget where "
        "that move does not hold up over the market model's draws",
    )
    point_best_gain: float | None = Field(None, description="its gain on the point estimate")
    loss_probability: float | None = Field(
        None, description="share of the market model's draws in which best_budget loses against today's"
    )
    held_for_uncertainty: bool = Field(
        False,
        description="true where the point estimate's move does not hold up over the draws (expected_gain: no "
        "move gains on average; safe: every move's 90% range includes a loss): best_budget is then today's "
        "budget (doing nothing) and best_gain 0",
    )


class BudgetAllocation(BaseModel):
    objective: Objective
    total_budget: float
    allocated: float
    n_days: int
    objective_value: float = Field(description="expected objective over the planning days")
    current_value: float | None = Field(description="the same at the current budgets, when all are given")
    total_budget_binds: bool
    binding: list[str] = Field(description="which constraints bind, in words")
    campaigns: list[CampaignAllocation]
    market: str | None = Field(
        None, description="the market model the simulation ran on (set by the tool server)"
    )
