"""The one place each MCP tool is defined: name, one-line description, input and output models, hints.

The server, the agent's prompts, the training data and the evals all derive tool specs from `TOOLS`.
Descriptions are short on purpose: every spec is sent to the model on every turn (`adguide tools list`
prints their token cost). Inputs forbid unknown fields so a misspelt argument is an error, not a no-op.
Outputs are plain JSON: money in the account currency rounded to cents, ratios to 4 decimals; a field
that does not apply is null. Long lists come a page at a time with `next_cursor`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Callable
from enum import StrEnum
from types import UnionType
from typing import Any, Literal, Union, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Only the engines' plain result types (numpy-free modules): importing this module must stay fast, since the
# agent, prompts and CLI read the tool specs without running any engine (tests/test_mcp_contract.py).
from tools.keywords.models import KeywordRecommendations, NegativeSuggestions
from tools.market.enums import MatchType, Status
from tools.optimize.models import BudgetAllocation
from tools.uplift.models import (
    AbResult,
    Attribution,
    EffectEstimate,
    IncrementalityResult,
    Kpi,
    SegmentEffect,
)


# Tool models build their validators on first use (defer_build): importing the specs stays fast for readers that
# never validate (prompts, the CLI); the server builds them all up front (build_models).
class ToolInput(BaseModel):
    """The base of every tool's input model: a misspelt argument is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class ToolOutput(BaseModel):
    """The base of a tool's output model (the engines' result types are plain pydantic models)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


def build_models() -> None:
    """Build every tool model's validator now, before worker threads first use them at once."""
    todo: list[type[BaseModel]] = [ToolInput, ToolOutput]
    while todo:
        model = todo.pop()
        todo.extend(model.__subclasses__())
        model.model_rebuild()


# --- shared pieces ----------------------------------------------------------------------------------


class Period(ToolInput):
    start: dt.date | None = Field(None, description="default: end - 29 days")
    end: dt.date | None = Field(None, description="default: last data day")
    last_days: int | None = Field(
        None, ge=1, le=365, description="instead of start/end: the last N days of data"
    )

    @model_validator(mode="after")
    def _one_way(self) -> Period:
        if self.last_days is not None and (self.start is not None or self.end is not None):
            raise ValueError("give either last_days or start/end, not both")
        return self


class Page(ToolInput):
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, description="next_cursor of the previous page")


class Metrics(ToolOutput):
    impressions: int
    clicks: int
    spend: float
    orders: int
    sales: float = Field(description="ad-attributed")
    ctr: float | None
    cpc: float | None
    cvr: float | None
    acos: float | None = Field(description="spend / sales")


class DateRange(ToolOutput):
    start: dt.date
    end: dt.date


class Change(ToolOutput):
    id: str
    field: str
    before: Any
    after: Any
    name: str | None = Field(None, description="the keyword's text or the campaign's / ad group's name")


SortKey = Literal["spend", "sales", "orders", "clicks", "impressions", "acos"]


# --- data tools ---------------------------------------------------------------------------------------


class OverviewIn(Period):
    pass


class CampaignBrief(ToolOutput):
    id: str
    name: str
    status: Status
    daily_budget: float
    spend: float
    sales: float
    acos: float | None
    budget_capped_days: int = Field(description="days the budget ran out before the day ended")


class ExperimentBrief(ToolOutput):
    id: str
    kind: str
    start: dt.date
    end: dt.date
    outcome: str


class AdvertiserInfo(ToolOutput):
    id: str
    name: str
    category: str
    target_acos: float | None


class OverviewOut(ToolOutput):
    advertiser: AdvertiserInfo
    history: DateRange
    period: DateRange
    totals: Metrics
    organic_sales: float
    counts: dict[str, int]
    campaigns: list[CampaignBrief]
    experiments: list[ExperimentBrief]


class Level(StrEnum):
    CAMPAIGN = "campaign"
    AD_GROUP = "ad_group"
    KEYWORD = "keyword"


class PerformanceIn(Period, Page):
    level: Level
    campaign_id: str | None = None
    ad_group_id: str | None = None
    keyword_id: str | None = Field(None, description="one keyword (level keyword)")
    daily: bool = Field(False, description="one row per day")
    sort: SortKey = "spend"


class PerformanceRow(Metrics):
    id: str
    name: str = Field(description="campaign/ad group name or keyword text")
    date: dt.date | None = None
    campaign_id: str | None = None
    ad_group_id: str | None = None
    status: Status | None = None
    match_type: MatchType | None = None
    bid: float | None = None
    daily_budget: float | None = None


class PerformanceOut(ToolOutput):
    level: Level
    period: DateRange
    totals: Metrics
    rows: list[PerformanceRow]
    total_rows: int
    next_cursor: str | None


class SearchTermsIn(Period, Page):
    campaign_id: str | None = None
    ad_group_id: str | None = None
    keyword_id: str | None = None
    min_clicks: int = Field(0, ge=0)
    sort: SortKey = "spend"


class SearchTermRow(Metrics):
    term: str
    keyword_id: str
    keyword: str
    match_type: MatchType


class SearchTermsOut(ToolOutput):
    period: DateRange
    totals: Metrics
    rows: list[SearchTermRow]
    total_rows: int
    next_cursor: str | None


# --- simulator tools (future days after the history; intervals are 90% Monte Carlo ranges) ------------------


class Range(ToolOutput):
    mean: float
    low: float
    high: float


class _SimFigures(ToolOutput):
    clicks: float
    spend: float
    orders: float
    sales: float = Field(description="ad-attributed")
    incremental_sales: float = Field(description="sales caused by the ads")
    incremental_profit: Range = Field(description="incremental_sales x margin - spend")
    acos: float | None


class SimOutcome(_SimFigures):
    """Totals over the simulated days."""


RELATIVE = Field(
    None, gt=-1, le=10, description="instead of value: change by a fraction of today's, -0.2 = a fifth less"
)
CHANGE_BY = Field(
    None,
    ge=-10_000,
    le=10_000,
    description="instead of value: change by an amount, -0.2 = 20 cents less, 50 = 50 more a day",
)


def _value_or_relative(
    value: float | None, relative: float | None, needed: bool, by: float | None = None
) -> None:
    given = sum(x is not None for x in (value, relative, by))
    if needed and given != 1:
        raise ValueError("give exactly one of value, relative_change and change_by")
    if not needed and (relative is not None or by is not None):
        raise ValueError("relative_change and change_by are only for set_bid and set_budget")


class WhatIfIn(ToolInput):
    change: Literal["bid", "budget"]
    id: str = Field(description="keyword (bid) or campaign (budget): id or name")
    value: float | None = Field(None, gt=0, description="new bid or daily budget")
    relative_change: float | None = RELATIVE
    days: int = Field(14, ge=1, le=90)
    change_by: float | None = CHANGE_BY

    @model_validator(mode="after")
    def _value(self) -> WhatIfIn:
        _value_or_relative(self.value, self.relative_change, True, self.change_by)
        return self


class WhatIfOut(ToolOutput):
    change: Change
    campaign_id: str
    keywords: int = Field(description="keywords simulated: the whole campaign, which shares the budget")
    days: int
    status_quo: SimOutcome
    changed: SimOutcome
    difference: dict[str, Range] = Field(description="changed - status quo on the same simulated days")
    market: str | None = Field(
        None, description="the market model the simulation ran on: information view and history"
    )


class LandscapeIn(ToolInput):
    keyword_id: str
    bids: list[float] | None = Field(
        None, min_length=1, max_length=12, description="default: 0.25x to 3x current"
    )
    days: int = Field(14, ge=1, le=90)


class _Bid(ToolOutput):
    bid: float


class LandscapeRow(_SimFigures, _Bid):
    """One bid and what it yields (bid listed first)."""


class LandscapeOut(ToolOutput):
    keyword_id: str
    keyword: str | None = Field(None, description="its text")
    current_bid: float
    days: int
    points: list[LandscapeRow]
    note: str
    market: str | None = Field(
        None, description="the market model the simulation ran on: information view and history"
    )


class BidGoal(StrEnum):
    MAX_PROFIT = "max_incremental_profit"
    TARGET_ACOS = "target_acos"
    TARGET_ROAS = "target_roas"


class RecommendBidIn(ToolInput):
    keyword_id: str
    goal: BidGoal = BidGoal.MAX_PROFIT
    target: float | None = Field(
        None, gt=0, description="ACoS (0.3) or ROAS (3); default: account target ACoS"
    )
    days: int = Field(14, ge=1, le=90)


class RecommendBidOut(ToolOutput):
    keyword_id: str
    keyword: str | None = Field(None, description="its text")
    goal: BidGoal
    target: float | None
    bid: float = Field(description="0: no bid meets the goal")
    current_bid: float
    feasible: bool
    at_bid: LandscapeRow
    at_current: LandscapeRow | None
    gain: Range | None = Field(
        None,
        description="campaign's incremental profit at bid minus at current bid (its keywords share the budget)",
    )
    note: str
    market: str | None = Field(
        None, description="the market model the simulation ran on: information view and history"
    )


# --- optimizer and causal tools --------------------------------------------------------------------------


class AllocateIn(ToolInput):
    total_budget: float | None = Field(None, gt=0, description="daily total; default: current total")
    campaign_ids: list[str] | None = Field(
        None, min_length=1, max_length=50, description="default: enabled ones"
    )
    objective: Literal["incremental_profit", "incremental_sales"] = "incremental_profit"
    days: int = Field(14, ge=1, le=90)


class ExperimentIn(ToolInput):
    experiment_id: str


class UpliftOut(ToolOutput):
    experiment_id: str
    kind: str
    outcome: str
    n_units: int
    ate: EffectEstimate = Field(description="average effect of treatment on the outcome, per unit")
    estimator: str
    heterogeneity_detected: bool
    by_predicted_effect: list[SegmentEffect] = Field(
        description="units grouped by predicted effect, low to high"
    )
    segments: list[SegmentEffect] = Field(description="effect within yes/no covariates")
    incrementality: IncrementalityResult | None = Field(description="ad holdouts: incremental vs attributed")
    message: str
    warnings: list[str]


class AbIn(ExperimentIn):
    metric: Literal["outcome", "revenue"] = "outcome"
    cuped: bool = Field(True, description="adjust with the pre-period metric")


class KpiChangeIn(ToolInput):
    kpi: Kpi = Kpi.SALES
    campaign_id: str | None = None
    by_keyword: bool = Field(True, description="attribute shifts between keywords too")
    before_start: dt.date | None = Field(None, description="default: the 7 days before after_start")
    before_end: dt.date | None = None
    after_start: dt.date | None = Field(None, description="default: the last 7 days")
    after_end: dt.date | None = None


# --- keyword tools (outputs are the keyword engine's own compact models) ------------------------------------


class KeywordIdeasIn(Period):
    ad_group_id: str | None = None
    target_acos: float | None = Field(None, gt=0, le=10, description="bids aim at it; default: the account's")
    limit: int = Field(10, ge=1, le=50)


class NegativeIdeasIn(Period):
    ad_group_id: str | None = None
    limit: int = Field(10, ge=1, le=50)


# --- finding things by name ------------------------------------------------------------------------------


class EntityKind(StrEnum):
    KEYWORD = "keyword"
    CAMPAIGN = "campaign"
    AD_GROUP = "ad_group"
    EXPERIMENT = "experiment"


class Candidate(BaseModel):
    """One thing a name may mean: its id, kind and the words that tell it apart."""

    id: str
    kind: EntityKind
    name: str
    detail: str = Field("", description="match type and campaign of a keyword, dates of an experiment, ...")


class Resolved(BaseModel):
    """What an argument given in words resolved to (listed in the tool's result under `resolved`)."""

    field: str
    query: str
    id: str
    kind: EntityKind
    name: str
    detail: str = ""
    how: str = Field(description="exact | alias | fuzzy | meaning")


class FindIn(ToolInput):
    query: str = Field(
        min_length=1, max_length=200, description="words: a name, part of one, a product, a month"
    )
    kind: EntityKind | None = Field(None, description="default: every kind")
    limit: int = Field(5, ge=1, le=20)


class FindMatch(Candidate):
    score: float = Field(description="0-100 similarity of the words")


class FindOut(ToolOutput):
    query: str
    matches: list[FindMatch]


# --- write actions ------------------------------------------------------------------------------------


class Action(StrEnum):
    SET_BID = "set_bid"
    SET_BUDGET = "set_budget"
    PAUSE = "pause"
    ENABLE = "enable"
    ADD_KEYWORDS = "add_keywords"
    ADD_NEGATIVES = "add_negatives"


class NewKeyword(ToolInput):
    text: str = Field(min_length=1, max_length=80)
    match_type: MatchType = MatchType.EXACT
    bid: float | None = Field(None, gt=0, le=100, description="add_keywords; default: ad group bid")


class ProposeIn(ToolInput):
    action: Action
    id: str = Field(
        description="keyword (set_bid), campaign (set_budget), campaign or keyword (pause, enable), "
        "ad group (add_*)"
    )
    value: float | None = Field(None, gt=0, description="new bid or daily budget")
    relative_change: float | None = RELATIVE
    keywords: list[NewKeyword] | None = Field(None, min_length=1, max_length=50)
    change_by: float | None = CHANGE_BY

    @model_validator(mode="after")
    def _value(self) -> ProposeIn:
        if self.relative_change is not None or self.change_by is not None:
            _value_or_relative(
                self.value,
                self.relative_change,
                self.action in (Action.SET_BID, Action.SET_BUDGET),
                self.change_by,
            )
        return self


class Impact(ToolOutput):
    """The simulator's view of a change, as in what_if."""

    campaign_id: str
    days: int
    status_quo: SimOutcome
    changed: SimOutcome
    difference: dict[str, Range]
    market: str | None = Field(
        None, description="the market model the simulation ran on: information view and history"
    )


class ProposeOut(ToolOutput):
    token: str
    expires_in_s: int
    action: Action
    changes: list[Change]
    impact: Impact | None
    note: str | None = None


class ApplyIn(ToolInput):
    token: str = Field(description="token from propose_change")


class ApplyOut(ToolOutput):
    applied: bool
    already_applied: bool
    changes: list[Change]
    audit: list[dict[str, Any]]


# --- the registry -------------------------------------------------------------------------------------


class Reference(BaseModel):
    """The kinds of entity an argument names; `by` picks them from another argument's value."""

    model_config = ConfigDict(frozen=True)

    kinds: tuple[EntityKind, ...] = ()
    by: str | None = None
    kinds_by: dict[str, tuple[EntityKind, ...]] = Field(default_factory=dict)

    def kinds_for(self, args: BaseModel) -> tuple[EntityKind, ...]:
        if self.by is None:
            return self.kinds
        value = getattr(args, self.by)
        return self.kinds_by.get(str(getattr(value, "value", value)), ())


_KW, _CMP, _AG, _EXP = (
    (EntityKind.KEYWORD,),
    (EntityKind.CAMPAIGN,),
    (EntityKind.AD_GROUP,),
    (EntityKind.EXPERIMENT,),
)
_FILTERS = {"campaign_id": Reference(kinds=_CMP), "ad_group_id": Reference(kinds=_AG)}


class Approval(StrEnum):
    """Who must agree before a call changes the account (the guardrails and the graph read it)."""

    NONE = "none"  # reads or simulates: runs when the model calls it
    # drafts a change and changes nothing; refused in read-only sessions, the user confirms
    PROPOSE = "propose"
    APPLY = "apply"  # applies a change the user confirmed: run by the graph after a yes, never by the model


class ToolSpec(BaseModel):
    """One tool: what the model reads (name, description, input schema), how the server runs it, and the hints
    the agent's guardrails read (approval; the entity arguments, each checked against the caller's scope)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    description: str
    handler: str = Field(
        description="module:function that runs it, (ToolContext, input) -> output; imported by "
        "the server only, so reading the specs loads no engine"
    )
    input: type[ToolInput]
    output: type[BaseModel]
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    cached: bool = Field(False, description="results kept in the Redis cache (expensive, deterministic)")
    heavy: bool = Field(False, description="runs in a worker thread so the event loop keeps serving")
    references: dict[str, Reference] = Field(
        default_factory=dict, description="arguments that name an entity: an id, or words the tool resolves"
    )
    approval: Approval = Field(Approval.NONE, description="who must agree before a call changes anything")

    @model_validator(mode="after")
    def _writes_need_approval(self) -> ToolSpec:
        # the design's rule: nothing changes the account without a proposal the user confirmed
        if (not self.read_only) != (self.approval == Approval.APPLY):
            raise ValueError(
                f"{self.name}: a tool that writes (read_only=False) is approval=apply, and only it"
            )
        return self

    @property
    def entity_arguments(self) -> tuple[str, ...]:
        """The arguments that name the caller's campaigns, ad groups, keywords or experiments."""
        return tuple(self.references)

    def load_handler(self) -> Callable[[Any, Any], BaseModel]:
        module, _, function = self.handler.partition(":")
        return cast(Callable[[Any, Any], BaseModel], getattr(importlib.import_module(module), function))


_DATA, _ENGINES, _ACTIONS = "tools.mcp_server.data", "tools.mcp_server.engines", "tools.mcp_server.actions"

TOOLS: list[ToolSpec] = [
    ToolSpec(
        name="account_overview",
        handler=f"{_DATA}:account_overview",
        description="Account summary for a period: totals, campaigns with budgets, experiments.",
        input=OverviewIn,
        output=OverviewOut,
    ),
    ToolSpec(
        name="performance",
        handler=f"{_DATA}:performance",
        description="Campaign, ad group or keyword metrics for a period, with totals; paginated.",
        input=PerformanceIn,
        output=PerformanceOut,
        references={**_FILTERS, "keyword_id": Reference(kinds=_KW)},
    ),
    ToolSpec(
        name="search_terms",
        handler=f"{_DATA}:search_terms",
        description="Customer search terms that matched keywords, with metrics; paginated.",
        input=SearchTermsIn,
        output=SearchTermsOut,
        references={**_FILTERS, "keyword_id": Reference(kinds=_KW)},
    ),
    ToolSpec(
        name="find",
        handler=f"{_DATA}:find",
        description="Find your campaigns, ad groups, keywords or experiments by words; ids and names.",
        input=FindIn,
        output=FindOut,
    ),
    ToolSpec(
        name="what_if",
        handler=f"{_ENGINES}:what_if_tool",
        description="Simulate a bid or budget change against the status quo over future days, with ranges.",
        input=WhatIfIn,
        output=WhatIfOut,
        references={"id": Reference(by="change", kinds_by={"bid": _KW, "budget": _CMP})},
        cached=True,
        heavy=True,
    ),
    ToolSpec(
        name="bid_landscape",
        handler=f"{_ENGINES}:bid_landscape_tool",
        description="Simulated clicks, spend, sales and profit of a keyword at several bids.",
        input=LandscapeIn,
        output=LandscapeOut,
        references={"keyword_id": Reference(kinds=_KW)},
        cached=True,
        heavy=True,
    ),
    ToolSpec(
        name="recommend_bid",
        handler=f"{_ENGINES}:recommend_bid_tool",
        description="Best bid for a keyword for a goal: max incremental profit, target ACoS or ROAS.",
        input=RecommendBidIn,
        output=RecommendBidOut,
        references={"keyword_id": Reference(kinds=_KW)},
        cached=True,
        heavy=True,
    ),
    ToolSpec(
        name="allocate_budget",
        handler=f"{_ENGINES}:allocate_budget_tool",
        description="Split a total daily budget across campaigns to maximize incremental profit or sales.",
        input=AllocateIn,
        output=BudgetAllocation,
        references={"campaign_ids": Reference(kinds=_CMP)},
        cached=True,
        heavy=True,
    ),
    ToolSpec(
        name="experiment_uplift",
        handler=f"{_ENGINES}:experiment_uplift",
        description="Causal effect of an experiment: average effect, who responds most, and for ad "
        "holdouts incremental vs attributed ROAS.",
        input=ExperimentIn,
        output=UpliftOut,
        references={"experiment_id": Reference(kinds=_EXP)},
        cached=True,
        heavy=True,
    ),
    ToolSpec(
        name="ab_test",
        handler=f"{_ENGINES}:ab_test",
        description="A/B test readout of an experiment: difference, lift, significance, CUPED, sample-ratio check.",
        input=AbIn,
        output=AbResult,
        references={"experiment_id": Reference(kinds=_EXP)},
        cached=True,
        heavy=True,
    ),
    ToolSpec(
        name="kpi_change",
        handler=f"{_ENGINES}:kpi_change",
        description="Why a KPI changed between two periods: exact split into funnel drivers (and keywords).",
        input=KpiChangeIn,
        output=Attribution,
        references={"campaign_id": Reference(kinds=_CMP)},
        cached=True,
        heavy=True,
    ),
    ToolSpec(
        name="keyword_ideas",
        handler=f"{_ENGINES}:keyword_ideas",
        description="New keywords to add: converting search terms and related terms, with bids and reasons.",
        input=KeywordIdeasIn,
        output=KeywordRecommendations,
        references={"ad_group_id": Reference(kinds=_AG)},
        cached=True,
        heavy=True,
    ),
    ToolSpec(
        name="negative_ideas",
        handler=f"{_ENGINES}:negative_ideas",
        description="Search terms to add as negative keywords (wasted spend, off topic), with reasons.",
        input=NegativeIdeasIn,
        output=NegativeSuggestions,
        references={"ad_group_id": Reference(kinds=_AG)},
        cached=True,
        heavy=True,
    ),
    ToolSpec(
        name="propose_change",
        handler=f"{_ENGINES}:propose_change",
        description="Dry-run a change (bid, budget, pause/enable, add keywords/negatives): diff, "
        "simulated impact and a token for apply_change. Changes nothing.",
        input=ProposeIn,
        output=ProposeOut,
        references={
            "id": Reference(
                by="action",
                kinds_by={
                    "set_bid": _KW,
                    "set_budget": _CMP,
                    "pause": _CMP + _KW,
                    "enable": _CMP + _KW,
                    "add_keywords": _AG,
                    "add_negatives": _AG,
                },
            )
        },
        idempotent=False,
        heavy=True,
        approval=Approval.PROPOSE,
    ),
    ToolSpec(
        name="apply_change",
        handler=f"{_ACTIONS}:apply_change",
        description="Apply a change proposed by propose_change, only after the user confirmed it.",
        input=ApplyIn,
        output=ApplyOut,
        read_only=False,
        destructive=True,
        idempotent=True,
        approval=Approval.APPLY,
    ),
]

TOOLS_BY_NAME: dict[str, ToolSpec] = {t.name: t for t in TOOLS}


def approval_of(name: str) -> Approval | None:
    """A registry tool's approval; None for a name the registry does not hold."""
    spec = TOOLS_BY_NAME.get(name)
    return spec.approval if spec is not None else None


def entity_arguments(*, lists: bool = True) -> frozenset[str]:
    """Every registry tool's entity arguments (`lists=False`: only those that name one entity, not a list)."""
    return frozenset(
        name
        for spec in TOOLS
        for name in spec.entity_arguments
        if lists or get_origin(_strip_none(spec.input.model_fields[name].annotation)) is not list
    )


def _strip_none(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if get_origin(annotation) in (Union, UnionType) and len(args) == 1 else annotation


# --- JSON schemas as the model sees them ----------------------------------------------------------------

ADVERTISER_ARG = {"type": "string", "description": "advertiser to act on (admin sessions only)"}


def _inline(node: Any, defs: dict[str, Any], *, drop_null: bool) -> Any:
    """Resolve $refs, drop titles; with drop_null, `X | None = None` becomes plain optional X."""
    if isinstance(node, list):
        return [_inline(v, defs, drop_null=drop_null) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs, drop_null=drop_null)
        return {
            **target,
            **_inline({k: v for k, v in node.items() if k != "$ref"}, defs, drop_null=drop_null),
        }
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "additionalProperties"):
            continue
        if key == "properties":
            out[key] = {name: _inline(prop, defs, drop_null=drop_null) for name, prop in value.items()}
        else:
            out[key] = _inline(value, defs, drop_null=drop_null)
    if drop_null and "anyOf" in out:
        kinds = [k for k in out["anyOf"] if k != {"type": "null"}]
        if len(kinds) == 1 and len(kinds) < len(out["anyOf"]):
            out = {**kinds[0], **{k: v for k, v in out.items() if k != "anyOf"}}
    if drop_null and "default" in out and out["default"] is None:
        del out["default"]
    return out


def input_schema(spec: ToolSpec, *, admin: bool = False) -> dict[str, Any]:
    """The compact input schema: no titles, refs inlined, optional-null collapsed; admin adds advertiser_id."""
    raw = spec.input.model_json_schema()
    schema = _inline(raw, raw.get("$defs", {}), drop_null=True)
    schema.pop("$defs", None)
    schema.pop("description", None)
    props = schema.setdefault("properties", {})
    # the tool's own fields first, the shared period and paging fields last
    shared = [k for k in ("start", "end", "limit", "cursor") if k in props]
    schema["properties"] = {
        **{k: v for k, v in props.items() if k not in shared},
        **{k: props[k] for k in shared},
    }
    if admin:
        schema["properties"] = {"advertiser_id": ADVERTISER_ARG, **schema["properties"]}
        schema["required"] = ["advertiser_id", *schema.get("required", [])]
    return schema


def _nullable_numbers(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable_numbers(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_numbers(v) for k, v in node.items()}
    if out.get("type") == "number":
        out["type"] = ["number", "null"]
    return out


def output_schema(spec: ToolSpec) -> dict[str, Any]:
    """The result schema; every number may be null, which is how results report NaN or infinity. A tool that
    resolved names in its arguments lists what they resolved to under `resolved`."""
    raw = spec.output.model_json_schema(mode="serialization")
    schema = _nullable_numbers(_inline(raw, raw.get("$defs", {}), drop_null=False))
    schema.pop("$defs", None)
    if spec.references:
        resolved = Resolved.model_json_schema()
        item = _inline(resolved, resolved.get("$defs", {}), drop_null=False)
        item.pop("$defs", None)
        schema.setdefault("properties", {})["resolved"] = {"type": "array", "items": item}
    return schema


def openai_tools(*, admin: bool = False) -> list[dict[str, Any]]:
    """The tools as OpenAI function specs (contract E), for prompts, training data and evals."""
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": input_schema(spec, admin=admin),
            },
        }
        for spec in TOOLS
    ]


def rough_tokens(text: str) -> int:
    """A rough BPE-like count (words, numbers and punctuation marks); no tokenizer download needed."""
    return len(re.findall(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]+", text))
