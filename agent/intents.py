"""What a seller can ask for, as typed intents with slots: the vocabulary the expert policy plans from.

An `Intent` is the meaning of one user turn, independent of its wording: a kind and the slots it needs
(which keyword, which campaign, what value). The expert policy (agent/expert.py) turns an intent into a plan
of tool calls and an answer; it is *given* the intent and never parses language. Who produces intents:

- the curriculum (agent/curriculum/) samples them from a world and renders them in many phrasings, so a
  model learns language -> calls from (phrasing, expert trajectory) pairs;
- the teacher chat backend reads them off the message with keyword rules (agent/backends/teacher.py), which
  is exactly as good as its rules: the evals measure that honestly.

Slots carry the user's own words for entities (`keyword="bamboo cutting board"`), because the tools resolve
names inside the caller's scope (tools/mcp_server/resolve.py); an id is a valid mention too. A follow-up turn
leaves an entity slot empty and the policy takes it from the thread (`inherit`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class IntentKind(StrEnum):
    # small talk and scope
    GREETING = "greeting"  # hi / what can you do: answered without tools
    # reading the account
    OVERVIEW = "overview"  # account totals for a period
    CAMPAIGNS = "campaigns"  # campaign table, sorted by a metric
    KEYWORDS = "keywords"  # keyword table, sorted by a metric, optionally within a campaign
    ENTITY_PERFORMANCE = "entity_performance"  # one campaign's / keyword's / ad group's numbers
    WORST_ACOS = "worst_acos"  # the least efficient keyword
    BUDGET_CAPPED = "budget_capped"  # campaigns that run out of budget
    SEARCH_TERMS = "search_terms"  # what shoppers searched, optionally for one keyword / campaign / ad group
    KPI_CHANGE = "kpi_change"  # why a KPI moved between two periods
    # simulation and advice
    WHAT_IF_BID = "what_if_bid"  # simulate a keyword at a bid
    WHAT_IF_BUDGET = "what_if_budget"  # simulate a campaign at a daily budget
    BID_LANDSCAPE = "bid_landscape"  # a keyword at several bids
    BEST_BID = "best_bid"  # the best bid of a keyword for a goal
    APPLY_BEST_BID = "apply_best_bid"  # the best bid of a keyword, proposed as a change ("... and set it")
    ALLOCATE = "allocate"  # split a total daily budget across campaigns
    FIX_ACOS = "fix_acos"  # lower ACoS: find the bid change that earns most, propose it
    FIX_BUDGET = "fix_budget"  # budgets: find the budget change that earns most, propose it
    CUT_WORST = "cut_worst"  # change the budget of whichever campaign has the worst ACoS
    # experiments
    EXPERIMENT_EFFECT = "experiment_effect"  # causal effect / incrementality of an experiment
    AB_TEST = "ab_test"  # A/B readout: significance, lift
    # keywords
    KEYWORD_IDEAS = "keyword_ideas"
    NEGATIVE_IDEAS = "negative_ideas"
    # changes (always a proposal that waits for confirmation)
    SET_BID = "set_bid"
    SET_BUDGET = "set_budget"
    PAUSE = "pause"
    ENABLE = "enable"
    ADD_NEGATIVE = "add_negative"
    ADD_KEYWORD = "add_keyword"
    # answers to the agent
    CONFIRM = "confirm"  # yes to a pending proposal
    REJECT = "reject"  # no to a pending proposal
    CHOOSE = "choose"  # picks one of the candidates the agent asked about
    # refused
    REFUSE_OFF_TOPIC = "refuse_off_topic"
    REFUSE_HARMFUL = "refuse_harmful"
    REFUSE_OTHER_ACCOUNT = "refuse_other_account"
    REFUSE_INJECTION = "refuse_injection"


class Metric(StrEnum):
    """Sort keys of the performance and search-term reports."""

    SPEND = "spend"
    SALES = "sales"
    ORDERS = "orders"
    CLICKS = "clicks"
    IMPRESSIONS = "impressions"
    ACOS = "acos"


class Kpi(StrEnum):
    """KPIs kpi_change explains (the tool's own enum values)."""

    SALES = "sales"
    ACOS = "acos"
    ROAS = "roas"
    SPEND = "spend"
    ORDERS = "orders"
    CLICKS = "clicks"


class EntityKind(StrEnum):
    KEYWORD = "keyword"
    CAMPAIGN = "campaign"
    AD_GROUP = "ad_group"
    EXPERIMENT = "experiment"


class Goal(StrEnum):
    """recommend_bid goals (the tool's own enum values)."""

    MAX_PROFIT = "max_incremental_profit"
    TARGET_ACOS = "target_acos"
    TARGET_ROAS = "target_roas"


class Intent(BaseModel):
    """One user turn's meaning. Entity slots hold the user's words (or an id); None means "not named"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: IntentKind
    keyword: str | None = None
    campaign: str | None = None
    ad_group: str | None = None
    experiment: str | None = None
    entity_kind: EntityKind | None = Field(
        None, description="pause/enable/entity_performance: what `entity` is"
    )
    entity: str | None = None
    value: float | None = Field(None, gt=0, description="a bid or daily budget in the account currency")
    relative: float | None = Field(
        None, gt=-1, le=10, description="a change by a fraction: -0.2 = a fifth less"
    )
    total: float | None = Field(None, gt=0, description="allocate: total daily budget")
    target: float | None = Field(None, gt=0, description="target ACoS (0.25) or ROAS (4)")
    goal: Goal | None = None
    kpi: Kpi | None = None
    metric: Metric | None = None
    term: str | None = Field(None, description="a search term (negatives, new keywords)")
    last_days: int | None = Field(None, ge=1, le=365, description="the period: the last N days")
    choice: str | None = Field(None, description="choose: the candidate's words or id")
    other_advertiser: str | None = Field(None, description="refuse_other_account: the id they asked for")

    @property
    def writes(self) -> bool:
        return self.kind in WRITE_INTENTS


WRITE_INTENTS = frozenset(
    {
        IntentKind.SET_BID,
        IntentKind.SET_BUDGET,
        IntentKind.PAUSE,
        IntentKind.ENABLE,
        IntentKind.ADD_NEGATIVE,
        IntentKind.ADD_KEYWORD,
        IntentKind.CUT_WORST,
    }
)
REFUSALS = frozenset(
    {
        IntentKind.REFUSE_OFF_TOPIC,
        IntentKind.REFUSE_HARMFUL,
        IntentKind.REFUSE_OTHER_ACCOUNT,
        IntentKind.REFUSE_INJECTION,
    }
)
