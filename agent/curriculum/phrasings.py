"""Phrasing patterns: how sellers word each intent, grouped in families of one register each.

One YAML file per intent under `phrasings/` (format in phrasings/README.md). A pattern is a sentence with
slots in braces (`{keyword}`, `{value}`), filled by the renderers (agent/curriculum/render.py) with an
entity's words and a value written one of several ways. A pattern may fix slots its words imply
(`{text: "double the budget of {campaign}", set: {relative: 1.0}}`).

Families are registers (terse, casual, formal, chatty, indirect, messy). The curriculum trains on some
families of each intent and holds the others out (`heldout_families`), so an evaluation on the held-out
families measures phrasings the model never saw; the hand-written seller set (evals/) measures wordings
no pattern wrote.
"""

from __future__ import annotations

import functools
import hashlib
import string
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.intents import IntentKind

PHRASINGS_DIR = Path(__file__).parent / "phrasings"
MIN_PATTERNS = 25  # per intent, over all families (the curriculum issue's floor)
MIN_PER_FAMILY = 4
HELD_OUT_PER_INTENT = 2


class Family(StrEnum):
    TERSE = "terse"  # telegraphic: "bid for {keyword}?"
    CASUAL = "casual"  # everyday, conversational
    FORMAL = "formal"  # polite, complete sentences
    CHATTY = "chatty"  # context or a story first, then the ask
    INDIRECT = "indirect"  # a goal or worry instead of the action's name
    MESSY = "messy"  # typos, abbreviations, no punctuation, run-ons


class Section(StrEnum):
    FIRST = "first"  # the intent in full, as a first message
    FOLLOWUP = "followup"  # a later turn on the same entity: the entity slot is left out
    SWITCH = "switch"  # a later turn that names only a new entity: the intent is the previous turn's


# The slots each intent's patterns may use (entity slots hold words; the rest values). A FIRST pattern must
# use every slot of one of its `required` alternatives; FOLLOWUP patterns drop the entity slots; SWITCH
# patterns use exactly one entity slot and nothing else.
SLOTS: dict[IntentKind, dict[str, Any]] = {
    IntentKind.GREETING: {"allowed": [], "required": [[]]},
    IntentKind.OVERVIEW: {"allowed": ["period"], "required": [[]]},
    IntentKind.CAMPAIGNS: {"allowed": ["metric", "period"], "required": [[]]},
    IntentKind.KEYWORDS: {"allowed": ["metric", "campaign", "period"], "required": [[]]},
    IntentKind.ENTITY_PERFORMANCE: {
        "allowed": ["keyword", "campaign", "ad_group", "period"],
        "required": [["keyword"], ["campaign"], ["ad_group"]],
    },
    IntentKind.WORST_ACOS: {"allowed": ["period"], "required": [[]]},
    IntentKind.BUDGET_CAPPED: {"allowed": ["period"], "required": [[]]},
    IntentKind.SEARCH_TERMS: {"allowed": ["keyword", "campaign", "ad_group", "period"], "required": [[]]},
    IntentKind.KPI_CHANGE: {"allowed": ["kpi", "campaign"], "required": [["kpi"]]},
    IntentKind.WHAT_IF_BID: {
        "allowed": ["keyword", "value", "pct_up", "pct_down"],
        "required": [["keyword", "value"], ["keyword", "pct_up"], ["keyword", "pct_down"]],
    },
    IntentKind.WHAT_IF_BUDGET: {
        "allowed": ["campaign", "value", "pct_up", "pct_down"],
        "required": [["campaign", "value"], ["campaign", "pct_up"], ["campaign", "pct_down"]],
    },
    IntentKind.BID_LANDSCAPE: {"allowed": ["keyword"], "required": [["keyword"]]},
    IntentKind.BEST_BID: {"allowed": ["keyword", "target_acos", "target_roas"], "required": [["keyword"]]},
    IntentKind.APPLY_BEST_BID: {
        "allowed": ["keyword", "target_acos", "target_roas"],
        "required": [["keyword"]],
    },
    IntentKind.ALLOCATE: {"allowed": ["total"], "required": [[]]},
    IntentKind.FIX_ACOS: {"allowed": [], "required": [[]]},
    IntentKind.FIX_BUDGET: {"allowed": [], "required": [[]]},
    IntentKind.CUT_WORST: {"allowed": ["pct_down"], "required": [["pct_down"]]},
    IntentKind.EXPERIMENT_EFFECT: {"allowed": ["experiment"], "required": [["experiment"]]},
    IntentKind.AB_TEST: {"allowed": ["experiment"], "required": [["experiment"]]},
    IntentKind.KEYWORD_IDEAS: {"allowed": ["ad_group"], "required": [[]]},
    IntentKind.NEGATIVE_IDEAS: {"allowed": ["ad_group"], "required": [[]]},
    IntentKind.SET_BID: {
        "allowed": ["keyword", "value", "pct_up", "pct_down"],
        "required": [["keyword", "value"], ["keyword", "pct_up"], ["keyword", "pct_down"]],
    },
    IntentKind.SET_BUDGET: {
        "allowed": ["campaign", "value", "pct_up", "pct_down"],
        "required": [["campaign", "value"], ["campaign", "pct_up"], ["campaign", "pct_down"]],
    },
    IntentKind.PAUSE: {"allowed": ["keyword", "campaign"], "required": [["keyword"], ["campaign"]]},
    IntentKind.ENABLE: {"allowed": ["keyword", "campaign"], "required": [["keyword"], ["campaign"]]},
    IntentKind.ADD_NEGATIVE: {"allowed": ["term", "ad_group"], "required": [["term", "ad_group"]]},
    IntentKind.ADD_KEYWORD: {"allowed": ["term", "ad_group", "value"], "required": [["term", "ad_group"]]},
    IntentKind.CONFIRM: {"allowed": [], "required": [[]]},
    IntentKind.REJECT: {"allowed": [], "required": [[]]},
    IntentKind.CHOOSE: {"allowed": ["choice"], "required": [["choice"]]},
    IntentKind.REFUSE_OFF_TOPIC: {"allowed": [], "required": [[]]},
    IntentKind.REFUSE_HARMFUL: {"allowed": [], "required": [[]]},
    IntentKind.REFUSE_OTHER_ACCOUNT: {
        "allowed": ["other_advertiser"],
        "required": [["other_advertiser"], []],
    },
    IntentKind.REFUSE_INJECTION: {"allowed": [], "required": [[]]},
}
ENTITY_SLOTS = frozenset({"keyword", "campaign", "ad_group", "experiment"})
# Values a pattern may fix with `set:` (its words imply them): slot -> allowed type
SETTABLE = {"relative": float, "metric": str, "kpi": str, "last_days": int, "goal": str, "value": float}


class Pattern(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=2, max_length=400)
    set: dict[str, Any] = Field(default_factory=dict, description="slot values the words imply")

    @property
    def slots(self) -> frozenset[str]:
        return frozenset(name for _, name, _, _ in string.Formatter().parse(self.text) if name)


class PhrasingSet(BaseModel):
    """Every pattern of one intent: families of first messages, and optional follow-up / switch turns."""

    model_config = ConfigDict(extra="forbid")

    intent: IntentKind
    first: dict[Family, list[Pattern]]
    followup: dict[Family, list[Pattern]] = Field(default_factory=dict)
    switch: dict[Family, list[Pattern]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PhrasingSet:
        spec = SLOTS[self.intent]
        allowed = set(spec["allowed"])
        problems: list[str] = []
        missing = [f.value for f in Family if len(self.first.get(f, [])) < MIN_PER_FAMILY]
        if missing:
            problems.append(f"first: families {missing} need at least {MIN_PER_FAMILY} patterns each")
        total = sum(len(v) for v in self.first.values())
        if total < MIN_PATTERNS:
            problems.append(f"first: {total} patterns, at least {MIN_PATTERNS} needed")
        seen: set[str] = set()
        for section, families in (
            ("first", self.first),
            ("followup", self.followup),
            ("switch", self.switch),
        ):
            for family, patterns in families.items():
                for p in patterns:
                    where = f"{section}.{family.value}: {p.text!r}"
                    key = " ".join(p.text.lower().split())
                    if key in seen:
                        problems.append(f"{where} is a duplicate")
                    seen.add(key)
                    unknown = sorted(p.slots - allowed)
                    if unknown:
                        problems.append(
                            f"{where} uses slots {unknown}; {self.intent.value} allows {sorted(allowed)}"
                        )
                    bad_set = sorted(set(p.set) - set(SETTABLE))
                    if bad_set:
                        problems.append(f"{where} sets {bad_set}; settable: {sorted(SETTABLE)}")
                    present = p.slots | set(p.set)
                    if "relative" in p.set:  # "double it": the words give the size of the change
                        present |= {"value", "pct_up", "pct_down"}
                    if section == "first" and not any(set(req) <= present for req in spec["required"]):
                        problems.append(f"{where} lacks the required slots (one of {spec['required']})")
                    if section == "followup" and p.slots & ENTITY_SLOTS:
                        problems.append(
                            f"{where}: a follow-up leaves the entity out (it comes from the thread)"
                        )
                    if section == "switch" and (len(p.slots & ENTITY_SLOTS) != 1 or p.slots - ENTITY_SLOTS):
                        problems.append(f"{where}: a switch names exactly one entity slot and nothing else")
        if problems:
            raise ValueError(
                "; ".join(problems[:8]) + (f" (and {len(problems) - 8} more)" if len(problems) > 8 else "")
            )
        return self


class PhrasingError(ValueError):
    """A phrasing file that does not load; the message names the file and what is wrong."""


def load_file(path: Path) -> PhrasingSet:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PhrasingError(f"{path}: cannot read ({exc})") from None
    if isinstance(data, dict):  # plain strings are patterns without `set`
        for section in ("first", "followup", "switch"):
            for family, items in (data.get(section) or {}).items():
                data[section][family] = [{"text": x} if isinstance(x, str) else x for x in items or []]
    try:
        return PhrasingSet.model_validate(data)
    except ValidationError as exc:
        raise PhrasingError(f"{path}: {exc.errors(include_url=False)[0]['msg']}") from None


@functools.cache
def load_phrasings(directory: Path = PHRASINGS_DIR) -> dict[IntentKind, PhrasingSet]:
    out: dict[IntentKind, PhrasingSet] = {}
    for path in sorted(directory.glob("*.yaml")):
        ps = load_file(path)
        if ps.intent in out:
            raise PhrasingError(f"{path}: intent {ps.intent.value} has another file")
        out[ps.intent] = ps
    return out


def heldout_families(intent: IntentKind) -> frozenset[Family]:
    """The families of `intent` never used to train: two per intent, spread so that every family is trained
    on for most intents and held out for some (a fixed hash, so the split never moves)."""
    families = list(Family)
    h = int(hashlib.sha256(intent.value.encode()).hexdigest(), 16)
    first = h % len(families)
    second = (first + 1 + (h // len(families)) % (len(families) - 1)) % len(families)
    return frozenset({families[first], families[second]})


class HeldOutHalf(StrEnum):
    """The held-out patterns in two halves, so that the failures read while building (the dev draw) never show
    the patterns the gated evaluation scores: a rule or a train pattern written after reading a dev failure can
    only fit phrasings of the dev half."""

    DEV = "dev"
    GATED = "gated"


def pattern_half(intent: IntentKind, pattern: Pattern) -> HeldOutHalf:
    """A held-out pattern's half: a fixed hash of its intent and words, so a new pattern never moves another."""
    h = int(hashlib.sha256(f"{intent.value}/{pattern.text}".encode()).hexdigest(), 16)
    return HeldOutHalf.DEV if h % 2 == 0 else HeldOutHalf.GATED


def patterns(
    intent: IntentKind, section: Section, *, heldout: bool, half: HeldOutHalf | None = None
) -> list[tuple[Family, Pattern]]:
    """The patterns of one intent and section, from the train families (heldout=False) or the held-out ones, and
    of those only `half`'s where given (a section with few held-out patterns, a follow-up or a switch, may have
    none in one half: then both halves draw all of them)."""
    ps = load_phrasings().get(intent)
    if ps is None:
        return []
    held = heldout_families(intent)
    families: dict[Family, list[Pattern]] = getattr(ps, section.value)
    out = [(f, p) for f, items in families.items() if (f in held) == heldout for p in items]
    if heldout and half is not None:
        return [(f, p) for f, p in out if pattern_half(intent, p) == half] or out
    return out
