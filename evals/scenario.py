"""Scenario files: the schema, the loader, and how a scenario becomes concrete cases.

A scenario is data (evals/scenarios/*.yaml, versioned, every scenario with an id): the user's turns, what
the user answers when the agent proposes a change, and what must hold afterwards, judged by state and
outcome rather than wording (tau-bench style): which writes the store shows, which change was proposed,
which facts the answers state, what they must never contain, whether the request was refused, and how
good the advice is on the simulator. Text fields may name slots in braces (`{kw_top}`, `{cmp_top_budget_up}`)
that are filled from the evaluation world per advertiser (evals/world.py), so no world id is hard-coded.

Suites (evals/scenarios/suites.yaml) say which world to generate, which advertisers and splits to run and
which scenarios belong (by tag).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import string
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.curriculum.phrasings import HeldOutHalf

SCENARIO_DIR = Path(__file__).parent / "scenarios"
SUITES_FILE = SCENARIO_DIR / "suites.yaml"
FORMAT_VERSION = 1


class Category(StrEnum):
    DIAGNOSE = "diagnose"  # one read, the answer states the right facts
    SIMULATE = "simulate"  # a what-if or best-bid question
    RECOMMEND = "recommend"  # advice judged by its simulated outcome
    MULTI_STEP = "multi_step"  # diagnose -> simulate -> recommend (-> confirm) over several turns
    FOLLOW_UP = "follow_up"  # a second turn that leans on the first
    WRITE = "write"  # a change through proposal and confirmation (or rejection)
    SAFETY = "safety"  # red-team: must be refused or must not change anything / leak anything
    BENIGN = "benign"  # look-alikes of attacks that must be answered, not refused


class Split(StrEnum):
    """Which market the case runs in. `id`: the world as generated; `competitor_surge` and `seasonal_peak`
    move its market over the simulator's future days; `new_category`: a world of a category held out of
    training (evals/world.py). Advice is judged where the market has shifted."""

    ID = "id"
    COMPETITOR_SURGE = "competitor_surge"
    SEASONAL_PEAK = "seasonal_peak"
    NEW_CATEGORY = "new_category"


class Fixture(StrEnum):
    NONE = "none"
    HOSTILE_SEARCH_TERMS = "hostile_search_terms"  # search terms whose text is a prompt injection


class Decision(StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"
    NONE = "none"  # the user does not answer the proposal (it stays pending, or the next turn drops it)


class OracleKind(StrEnum):
    BEST_BID = "best_bid"  # the best bid of one keyword (`keyword` slot), in its campaign
    BEST_SINGLE_BID = "best_single_bid"  # the best single bid change in the account
    BEST_SINGLE_BUDGET = "best_single_budget"  # the best single budget change in the account
    BEST_SINGLE_CHANGE = "best_single_change"  # the better of the two


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Turn(_Strict):
    user: str = Field(min_length=1, description="the user's message (slots allowed)")
    decision: Decision = Field(Decision.NONE, description="the answer to a proposal shown this turn")
    acknowledge_risk: bool = Field(False, description="the answer to a second confirmation (policy bounds)")


class ExpectedChange(_Strict):
    """One write: the store's audit action, the entity written and the value after (slots allowed)."""

    action: Literal["set_bid", "set_budget", "set_status", "add_keyword", "add_negative"]
    entity: str | None = Field(None, description="None: any entity of the advertiser; add_*: the ad group")
    after: str | float | None = Field(None, description="None: any value; add_*: the keyword text")


class Fact(_Strict):
    """Something the answers must state: a text (an id, a term) or a number at the precision shown."""

    text: str | None = None
    number: str | None = Field(None, description="a slot or literal; the answer must round it correctly")
    percent: bool = Field(False, description="the number is a ratio the answer states as a percent")
    rel_tol: float = Field(0.005, ge=0, le=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Fact:
        if (self.text is None) == (self.number is None):
            raise ValueError("a fact needs exactly one of text or number")
        return self


class ReferenceCall(_Strict):
    """A tool call of the expected trajectory; only the arguments named are compared."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Advice(_Strict):
    oracle: OracleKind
    keyword: str | None = Field(None, description="best_bid: the keyword slot")
    min_fraction: float | None = Field(
        None, ge=-1, le=1, description="success needs at least this fraction of the oracle's gain"
    )

    @model_validator(mode="after")
    def _keyword(self) -> Advice:
        if (self.oracle == OracleKind.BEST_BID) != (self.keyword is not None):
            raise ValueError("oracle best_bid needs `keyword`, and only it")
        return self


class Expect(_Strict):
    refuse: bool | None = Field(None, description="True: must be refused; False: must not be; None: either")
    changes: list[ExpectedChange] | Literal["proposed", "any"] = Field(
        default_factory=list,
        description="the store's writes afterwards, exactly ([] = nothing changed); 'proposed' = exactly the "
        "last proposal's changes; 'any' = not checked",
    )
    proposal: ExpectedChange | None = Field(
        None, description="a proposal shown to the user must carry this change"
    )
    facts: list[Fact] = Field(default_factory=list)
    forbid: list[str] = Field(
        default_factory=list, description="substrings no answer may contain (slots allowed)"
    )
    forbid_patterns: list[str] = Field(default_factory=list, description="regexes no answer may match")
    forbid_tools: list[str] = Field(default_factory=list, description="tools the model must not call")
    min_tool_calls: int = Field(0, ge=0, description="the answer must rest on at least this many tool calls")
    reference_calls: list[ReferenceCall] | None = Field(
        None, description="the expected calls, for tool-call accuracy/F1 ([] = none; None = not scored)"
    )
    advice: Advice | None = None
    clarify: bool | None = Field(
        None,
        description="True: the last turn must end in a question back that names the candidates (a name "
        "that matches several things), with no proposal; False: it must not",
    )

    @model_validator(mode="after")
    def _patterns_compile(self) -> Expect:
        for p in self.forbid_patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"forbid_patterns: {p!r} is not a regex ({exc})") from None
        return self


class Scenario(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{2,63}$")
    category: Category
    kind: str | None = Field(
        None,
        description="what a seller asks about (overview, bid_advice, ...), for reports "
        "per kind; the hand-written seller set names one per scenario",
    )
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    splits: list[Split] = Field(default_factory=lambda: [Split.ID], min_length=1)
    fixture: Fixture = Fixture.NONE
    turns: list[Turn] = Field(min_length=1, max_length=10)
    expect: Expect = Field(default_factory=Expect)

    def slots(self) -> set[str]:
        """Every slot name the scenario's texts use."""
        texts: list[str] = [t.user for t in self.turns]
        e = self.expect
        changes = e.changes if isinstance(e.changes, list) else []
        for c in [*changes, *([e.proposal] if e.proposal else [])]:
            texts += [c.entity or "", str(c.after or "")]
        texts += [f.text or f.number or "" for f in e.facts] + e.forbid
        texts += [str(v) for c in e.reference_calls or [] for v in c.args.values()]
        if e.advice and e.advice.keyword:
            texts.append(e.advice.keyword)
        return {name for t in texts for _, name, _, _ in string.Formatter().parse(t) if name}

    @property
    def writes(self) -> bool:
        """Whether running it may change the store (a turn confirms a proposal, a typed reply is expected to
        apply one, or any later message could: "yes" to a proposal nobody expected still applies it): it then
        needs its own copy, or one case's write would leak into every later case on the shared world."""
        expected = self.expect.changes
        return (
            any(t.decision == Decision.CONFIRM for t in self.turns)
            or expected == "proposed"
            or (isinstance(expected, list) and bool(expected))
            or len(self.turns) > 1
        )


class ScenarioFile(_Strict):
    version: int = Field(ge=1)
    scenarios: list[Scenario] = Field(min_length=1)


class WorldSpec(_Strict):
    n_advertisers: int = Field(ge=2, le=200, description="at least 2: cross-account cases need another")
    days: int = Field(ge=21, le=365)
    seed: int = Field(ge=0)
    start_date: str = "2026-06-01"


class CurriculumSpec(_Strict):
    """Held-out curriculum dialogues (evals/heldout.py) added to a suite's cases: per advertiser and split,
    `dialogues_per_kind` opening with each kind (every kind measured on the same number of conversations), or
    `dialogues_per_advertiser` opening with kinds drawn by the curriculum's weights. Exactly one of the two."""

    dialogues_per_kind: int | None = Field(None, ge=1, le=50)
    dialogues_per_advertiser: int | None = Field(None, ge=1, le=500)
    splits: list[Split] = Field(min_length=1)
    seed: int = 9001
    half: HeldOutHalf | None = Field(
        None,
        description="draw only this half of the held-out patterns (dev: read while building; gated: never read); "
        "none: all of them",
    )

    @model_validator(mode="after")
    def _one_count(self) -> CurriculumSpec:
        if (self.dialogues_per_kind is None) == (self.dialogues_per_advertiser is None):
            raise ValueError("give exactly one of dialogues_per_kind and dialogues_per_advertiser")
        return self


class Suite(_Strict):
    description: str = ""
    world: WorldSpec
    advertisers: int = Field(
        ge=1, le=50, description="the first N advertisers of the world run every scenario"
    )
    splits: list[Split] = Field(min_length=1)
    tags: list[str] = Field(default_factory=list, description="scenarios with any of these tags; [] = all")
    trials: int = Field(1, ge=1, le=20)
    curriculum: CurriculumSpec | None = Field(
        None, description="held-out curriculum cases for the advertisers"
    )


class SuitesFile(_Strict):
    version: int = Field(ge=1)
    suites: dict[str, Suite]


class ScenarioError(ValueError):
    """A scenario or suite file that does not load; the message names the file, the scenario and the field."""


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read ({exc})") from None


def _explain(path: Path, exc: ValidationError, data: Any) -> ScenarioError:
    lines = []
    for err in exc.errors()[:5]:
        loc = list(err["loc"])
        where = ".".join(str(x) for x in loc)
        if len(loc) >= 2 and loc[0] == "scenarios" and isinstance(loc[1], int):
            with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
                where = f"scenario {data['scenarios'][loc[1]].get('id', loc[1])!r} " + ".".join(
                    str(x) for x in loc[2:]
                )
        lines.append(f"  {where}: {err['msg']}")
    return ScenarioError(f"{path}: invalid\n" + "\n".join(lines))


def load_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    """Every scenario of every *.yaml file but suites.yaml; ids must be unique across files."""
    out: list[Scenario] = []
    seen: dict[str, Path] = {}
    files = sorted(p for p in directory.glob("*.yaml") if p.name != SUITES_FILE.name)
    if not files:
        raise ScenarioError(f"no scenario files (*.yaml) in {directory}")
    for path in files:
        data = _read_yaml(path)
        try:
            parsed = ScenarioFile.model_validate(data)
        except ValidationError as exc:
            raise _explain(path, exc, data) from None
        if parsed.version > FORMAT_VERSION:
            raise ScenarioError(
                f"{path}: format version {parsed.version}; this adguide reads up to {FORMAT_VERSION}"
            )
        for s in parsed.scenarios:
            if s.id in seen:
                raise ScenarioError(f"{path}: scenario id {s.id!r} is also used in {seen[s.id]}")
            seen[s.id] = path
            out.append(s)
    return out


def load_suites(path: Path = SUITES_FILE) -> dict[str, Suite]:
    data = _read_yaml(path)
    try:
        return SuitesFile.model_validate(data).suites
    except ValidationError as exc:
        raise _explain(path, exc, data) from None


def scenario_files_digest(directory: Path = SCENARIO_DIR) -> dict[str, str]:
    """sha256 (first 12 hex) of each scenario file, recorded in every result so runs say what they ran."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in sorted(directory.glob("*.yaml"))}


def select(scenarios: list[Scenario], suite: Suite) -> list[Scenario]:
    if not suite.tags:
        return list(scenarios)
    return [s for s in scenarios if set(s.tags) & set(suite.tags)]


def fill(text: str, slots: dict[str, str]) -> str:
    """The text with its slots filled; KeyError names a missing slot."""
    return string.Formatter().vformat(text, (), slots)
