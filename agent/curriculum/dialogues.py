"""Curriculum dialogues: intents sampled from an advertiser's account, rendered in the seller's words,
planned and answered by the expert policy over the real MCP tools.

    ctx = await account_context(call_tool)                       # the account's names and values
    d = await write_dialogue(call_tool, ctx, rng, heldout=False)  # 1-3 turns, the expert's steps

A dialogue is a few turns. The first is an intent's `first` pattern; later turns are a follow-up on the same
entity ("ok and at 2.25?"), a switch to another entity ("and the yoga mat one?"), a typed answer to a
proposal ("yep go ahead"), a choice after a question back ("the exact one"), or a new question. The gold
intent of every turn is complete (inherited slots filled in from the thread: an entity the earlier turn
resolved is carried as its id), so the expert plans it without reading any words.

`heldout=True` draws only the held-out phrasing families and renderer styles; training draws only the
others (agent/curriculum/phrasings.py, render.py).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from agent import expert
from agent.curriculum import render
from agent.curriculum.phrasings import Family, HeldOutHalf, Pattern, Section, patterns
from agent.intents import WRITE_INTENTS, EntityKind, Goal, Intent, IntentKind, Kpi, Metric
from tools.mcp_server.outputs import failure, read, resolved
from tools.mcp_server.schemas import OverviewOut, PerformanceOut, SearchTermsOut

CallTool = Callable[[str, dict[str, Any]], Awaitable[str]]
Rng = np.random.Generator

# How often each kind of first turn is drawn (entity-heavy and advice intents more often).
WEIGHTS: dict[IntentKind, float] = {
    IntentKind.GREETING: 0.5,
    IntentKind.OVERVIEW: 1.0,
    IntentKind.CAMPAIGNS: 1.0,
    IntentKind.KEYWORDS: 1.0,
    IntentKind.ENTITY_PERFORMANCE: 2.0,
    IntentKind.WORST_ACOS: 0.8,
    IntentKind.BUDGET_CAPPED: 0.8,
    IntentKind.SEARCH_TERMS: 1.2,
    IntentKind.KPI_CHANGE: 1.5,
    IntentKind.WHAT_IF_BID: 2.5,
    IntentKind.WHAT_IF_BUDGET: 2.0,
    IntentKind.BID_LANDSCAPE: 1.0,
    IntentKind.BEST_BID: 2.5,
    IntentKind.ALLOCATE: 1.2,
    IntentKind.APPLY_BEST_BID: 1.0,
    IntentKind.FIX_ACOS: 1.0,
    IntentKind.FIX_BUDGET: 1.0,
    IntentKind.CUT_WORST: 1.0,
    IntentKind.EXPERIMENT_EFFECT: 1.5,
    IntentKind.AB_TEST: 1.2,
    IntentKind.KEYWORD_IDEAS: 1.0,
    IntentKind.NEGATIVE_IDEAS: 1.0,
    IntentKind.SET_BID: 2.0,
    IntentKind.SET_BUDGET: 2.0,
    IntentKind.PAUSE: 1.5,
    IntentKind.ENABLE: 0.8,
    IntentKind.ADD_NEGATIVE: 1.2,
    IntentKind.ADD_KEYWORD: 1.0,
    IntentKind.REFUSE_OFF_TOPIC: 0.8,
    IntentKind.REFUSE_HARMFUL: 0.6,
    IntentKind.REFUSE_OTHER_ACCOUNT: 0.6,
    IntentKind.REFUSE_INJECTION: 0.6,
}
PROPOSING = WRITE_INTENTS | {IntentKind.FIX_ACOS, IntentKind.FIX_BUDGET, IntentKind.APPLY_BEST_BID}
ENTITY_OF: dict[IntentKind, str] = {
    IntentKind.WHAT_IF_BID: "keyword",
    IntentKind.SET_BID: "keyword",
    IntentKind.BEST_BID: "keyword",
    IntentKind.APPLY_BEST_BID: "keyword",
    IntentKind.BID_LANDSCAPE: "keyword",
    IntentKind.WHAT_IF_BUDGET: "campaign",
    IntentKind.SET_BUDGET: "campaign",
    IntentKind.EXPERIMENT_EFFECT: "experiment",
    IntentKind.AB_TEST: "experiment",
    IntentKind.KPI_CHANGE: "campaign",
    IntentKind.KEYWORDS: "campaign",
    IntentKind.KEYWORD_IDEAS: "ad_group",
    IntentKind.NEGATIVE_IDEAS: "ad_group",
    IntentKind.ADD_NEGATIVE: "ad_group",
    IntentKind.ADD_KEYWORD: "ad_group",
}
JUNK_TERMS = [
    "refurbished",
    "used",
    "free",
    "diy",
    "replacement parts",
    "manual pdf",
    "repair",
    "cheap knockoff",
    "wholesale",
    "rental",
    "broken",
    "recall",
]


class Step(BaseModel):
    """One assistant message of a turn (tool calls, or the answer) and the results of its calls."""

    message: dict[str, Any]
    results: list[str] = Field(default_factory=list)


class Turn(BaseModel):
    user: str
    intent: Intent
    section: Section
    family: Family | None = None
    styles: list[str] = Field(default_factory=list, description="renderer styles of the slots")
    written_as: IntentKind | None = Field(
        None,
        description="the intent whose patterns wrote the words, where not the turn's own: a choice after a "
        "question back (choose's patterns) carries on the intent it answers",
    )
    decision: Literal["confirm", "reject"] | None = Field(
        None, description="a typed answer to a pending proposal"
    )
    steps: list[Step] = Field(default_factory=list)


class Dialogue(BaseModel):
    id: str
    advertiser_id: str
    heldout: bool
    turns: list[Turn]


# --- the account -------------------------------------------------------------------------------------------


def _rows(rows: Sequence[BaseModel]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in rows]


async def account_context(call_tool: CallTool) -> dict[str, Any]:
    """The names and values questions are phrased with, read through the same tools the dialogues use (each
    result read into its output model; the context holds them as plain JSON, as the tools wrote them)."""
    overview = read(OverviewOut, await call_tool("account_overview", {}))
    groups = read(PerformanceOut, await call_tool("performance", {"level": "ad_group", "limit": 100}))
    keywords = read(PerformanceOut, await call_tool("performance", {"level": "keyword", "limit": 100}))
    terms = read(SearchTermsOut, await call_tool("search_terms", {"limit": 100}))
    kws = [r for r in _rows(keywords.rows) if r.get("bid")]
    texts = [k["name"] for k in kws]
    return {
        "advertiser": overview.advertiser.model_dump(mode="json"),
        "campaigns": _rows(overview.campaigns),
        "experiments": _rows(overview.experiments),
        "ad_groups": _rows(groups.rows),
        "keywords": [
            {
                "id": k["id"],
                "text": k["name"],
                "match_type": k.get("match_type") or "exact",
                "bid": k["bid"],
                "status": k.get("status"),
                "spend": k.get("spend") or 0.0,
                "campaign_id": k.get("campaign_id"),
                "shared_text": texts.count(k["name"]) > 1,
            }
            for k in kws
        ],
        "terms": _rows(terms.rows),
    }


# --- slots ---------------------------------------------------------------------------------------------------


def _pick(rng: Rng, items: list[Any], weights: list[float] | None = None) -> Any:
    if weights is not None:
        p = np.asarray(weights, dtype=float) + 1e-9
        return items[int(rng.choice(len(items), p=p / p.sum()))]
    return items[int(rng.integers(len(items)))]


class Slots:
    """Fills one pattern's slots from the account: the text for each slot and the intent's values."""

    def __init__(
        self, ctx: dict[str, Any], rng: Rng, heldout: bool, messy: bool, status: str | None = None
    ) -> None:
        self.ctx, self.rng, self.heldout, self.messy = ctx, rng, heldout, messy
        self.status = status  # pause picks enabled things, enable paused ones
        self.values: dict[str, Any] = {}
        self.styles: list[str] = []
        self.entity: dict[str, Any] | None = None  # the chosen keyword / campaign (for values)

    def _style(self, pair: tuple[str, str]) -> str:
        text, style = pair
        self.styles.append(style)
        if self.messy and self.rng.random() < 0.25 and not re.search(r"_\d", text):
            text = render.typo(text, self.rng)
        return text

    def keyword(self, want_shared: bool = False) -> str:
        kws = [k for k in self.ctx["keywords"] if ":" not in k["text"]] or self.ctx["keywords"]
        if self.status is not None:
            kws = [k for k in kws if k.get("status") == self.status] or kws
        shared = [k for k in kws if k["shared_text"]]
        pool = shared if want_shared and shared else kws
        k = _pick(self.rng, pool, [1.0 + min(k["spend"], 500) / 50 for k in pool])
        self.entity = k
        text = self._style(render.keyword_mention(k, self.rng, self.heldout))
        self.values["keyword"] = text
        return text

    def campaign(self) -> str:
        camps = self.ctx["campaigns"]
        if self.status is not None:
            camps = [c for c in camps if c.get("status") == self.status] or camps
        c = _pick(self.rng, camps, [1.0 + min(c.get("spend") or 0, 3000) / 300 for c in camps])
        self.entity = c
        text = self._style(render.campaign_mention(c, self.rng, self.heldout))
        self.values["campaign"] = text
        return text

    def ad_group(self) -> str:
        g = _pick(self.rng, self.ctx["ad_groups"])
        text = self._style(render.ad_group_mention(g, self.rng, self.heldout))
        self.values["ad_group"] = text
        return text

    def experiment(self) -> str:
        exps = self.ctx["experiments"]
        e = _pick(self.rng, exps)
        text = self._style(render.experiment_mention(e, exps, self.rng, self.heldout))
        self.values["experiment"] = text
        return text

    def value(self, intent: IntentKind) -> str:
        if intent in (IntentKind.WHAT_IF_BID, IntentKind.SET_BID, IntentKind.ADD_KEYWORD):
            base = (self.entity or {}).get("bid") or float(self.rng.choice([0.6, 0.9, 1.2, 1.5, 2.5]))
            factor = float(self.rng.choice([0.5, 0.6, 0.75, 0.8, 0.9, 1.1, 1.2, 1.25, 1.5, 2.0]))
            amount = max(0.1, round(base * factor * 20) / 20)  # bids in 5-cent steps, as sellers type them
        else:
            base = float((self.entity or {}).get("daily_budget") or 50.0)
            factor = float(self.rng.choice([0.5, 0.6, 0.75, 0.8, 1.2, 1.25, 1.5, 2.0, 3.0]))
            amount = float(max(5, round(base * factor / 5) * 5))
        self.values["value"] = amount
        return self._style(render.money(amount, self.rng, self.heldout))

    def pct(self, sign: int) -> str:
        size, text, style = render.fraction(self.rng, self.heldout, upto=0.5 if sign < 0 else 1.0)
        self.values["relative"] = sign * size
        self.styles.append(style)
        return text

    def fill(self, name: str, intent: IntentKind) -> str:
        if name == "keyword":
            return self.keyword()
        if name == "campaign":
            return self.campaign()
        if name == "ad_group":
            return self.ad_group()
        if name == "experiment":
            return self.experiment()
        if name == "value":
            return self.value(intent)
        if name in ("pct_up", "pct_down"):
            return self.pct(1 if name == "pct_up" else -1)
        if name == "total":
            current = sum(
                float(c.get("daily_budget") or 0)
                for c in self.ctx["campaigns"]
                if c.get("status") == "enabled"
            )
            amount = float(
                max(10, round(current * float(self.rng.choice([0.7, 0.8, 1.0, 1.2, 1.5])) / 10) * 10)
            )
            self.values["total"] = amount
            return self._style(render.money(amount, self.rng, self.heldout))
        if name == "target_acos":
            value, text, style = render.target_acos(self.rng, self.heldout)
            self.values |= {"target": value, "goal": Goal.TARGET_ACOS}
            self.styles.append(style)
            return text
        if name == "target_roas":
            value, text, style = render.target_roas(self.rng, self.heldout)
            self.values |= {"target": value, "goal": Goal.TARGET_ROAS}
            self.styles.append(style)
            return text
        if name == "kpi":
            kpi = _pick(self.rng, list(render.KPI_WORDS))
            self.values["kpi"] = Kpi(kpi)
            return str(_pick(self.rng, render.KPI_WORDS[kpi]))
        if name == "metric":
            metric = _pick(self.rng, list(render.METRIC_WORDS))
            self.values["metric"] = Metric(metric)
            return str(_pick(self.rng, render.METRIC_WORDS[metric]))
        if name == "period":
            days, words = _pick(self.rng, render.PERIODS)
            self.values["last_days"] = days
            return str(_pick(self.rng, words))
        if name == "term":
            wasted = [t["term"] for t in self.ctx["terms"] if t.get("orders") == 0 and t.get("spend", 0) > 0]
            term = (
                str(_pick(self.rng, wasted))
                if wasted and self.rng.random() < 0.6
                else str(_pick(self.rng, JUNK_TERMS))
            )
            self.values["term"] = term
            return term
        if name == "other_advertiser":
            other, text, style = render.other_account_mention(
                str(self.ctx["advertiser"]["id"]), self.rng, self.heldout
            )
            self.values["other_advertiser"] = other
            self.styles.append(style)
            return text
        raise KeyError(f"no renderer for slot {name!r}")


def _slots_of(p: Pattern) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(p.text) if name]


def _usable(kind: IntentKind, p: Pattern, ctx: dict[str, Any]) -> bool:
    need = set(_slots_of(p))
    if "experiment" in need and not ctx["experiments"]:
        return False
    if "keyword" in need and not ctx["keywords"]:
        return False
    return not ("ad_group" in need and not ctx["ad_groups"])


def _intent(kind: IntentKind, values: dict[str, Any], fixed: dict[str, Any]) -> Intent:
    """The gold intent of a filled pattern (values the words imply override the rendered ones)."""
    v = {**values, **fixed}
    if "relative" in fixed:
        v.pop("value", None)
    fields: dict[str, Any] = {
        k: v[k]
        for k in (
            "keyword",
            "campaign",
            "ad_group",
            "experiment",
            "value",
            "relative",
            "total",
            "target",
            "goal",
            "term",
            "last_days",
            "other_advertiser",
        )
        if k in v
    }
    if "kpi" in v:
        fields["kpi"] = Kpi(v["kpi"])
    if "metric" in v:
        fields["metric"] = Metric(v["metric"])
    if kind in (IntentKind.PAUSE, IntentKind.ENABLE, IntentKind.ENTITY_PERFORMANCE):
        for slot in ("keyword", "campaign", "ad_group"):
            if slot in fields:
                fields["entity"], fields["entity_kind"] = fields[slot], EntityKind(slot)
    if kind == IntentKind.CUT_WORST and "relative" not in fields:
        fields["relative"] = -0.2
    return Intent(kind=kind, **fields)


def render_pattern(
    kind: IntentKind,
    section: Section,
    ctx: dict[str, Any],
    rng: Rng,
    heldout: bool,
    *,
    want_shared: bool = False,
    half: HeldOutHalf | None = None,
) -> tuple[str, Intent, Family, list[str], Slots] | None:
    """A message of `kind` from one of its patterns (of `half` of the held-out ones where given), with the intent
    it means."""
    options = [
        (f, p) for f, p in patterns(kind, section, heldout=heldout, half=half) if _usable(kind, p, ctx)
    ]
    if not options:
        return None
    family, pattern = options[int(rng.integers(len(options)))]
    status = {IntentKind.PAUSE: "enabled", IntentKind.ENABLE: "paused"}.get(kind)
    slots = Slots(ctx, rng, heldout, messy=family == Family.MESSY, status=status)
    names = _slots_of(pattern)
    # entities first, so values are drawn around the chosen keyword's bid / campaign's budget
    order = sorted(names, key=lambda n: n not in ("keyword", "campaign", "ad_group", "experiment"))
    filled = {}
    for name in order:
        filled[name] = slots.keyword(want_shared) if name == "keyword" else slots.fill(name, kind)
    text = pattern.text.format(**filled)
    fixed = dict(pattern.set)
    if "goal" in fixed:
        fixed["goal"] = Goal(fixed["goal"])
    return text, _intent(kind, slots.values, fixed), family, slots.styles, slots


# --- running turns -------------------------------------------------------------------------------------------


async def _play(intent: Intent, call_tool: CallTool, scope: str) -> list[Step]:
    """The expert's turn as steps: each assistant message with the results of its calls."""
    messages = await expert.run(intent, call_tool, scope)
    steps: list[Step] = []
    for m in messages:
        if m["role"] == "assistant":
            steps.append(Step(message=m))
        else:
            steps[-1].results.append(m["content"])
    return steps


def _resolved_entity(
    steps: list[Step], field_names: tuple[str, ...]
) -> tuple[str | None, list[dict[str, Any]]]:
    """The id the turn's first call resolved its entity to, and an ambiguity's candidates (if it had one)."""
    for s in steps:
        for call, result in zip(s.message.get("tool_calls") or [], s.results, strict=False):
            args = json.loads(call["function"]["arguments"])
            err = failure(result)
            if err and err.candidates:
                return None, [c.model_dump(mode="json") for c in err.candidates]
            if err:
                return None, []
            for r in resolved(result):
                if r.field in field_names:
                    return r.id, []
            for f in field_names:
                if isinstance(args.get(f), str):
                    return args[f], []
    return None, []


_FIELDS = {
    "keyword": ("keyword_id", "id"),
    "campaign": ("campaign_id", "id"),
    "ad_group": ("ad_group_id", "id"),
    "experiment": ("experiment_id",),
    "entity": ("id", "campaign_id", "keyword_id", "ad_group_id"),
}


def _entity_slot(intent: Intent) -> str | None:
    if intent.kind in (IntentKind.PAUSE, IntentKind.ENABLE, IntentKind.ENTITY_PERFORMANCE):
        return "entity"
    slot = ENTITY_OF.get(intent.kind)
    return slot if slot and getattr(intent, slot) else None


def _with_entity(intent: Intent, slot: str, value: str) -> Intent:
    update: dict[str, Any] = {slot: value}
    if slot == "entity" and intent.entity_kind is not None:
        update[intent.entity_kind.value] = value
    return intent.model_copy(update=update)


def _choice_words(candidate: dict[str, Any], rng: Rng) -> str:
    detail = str(candidate.get("detail") or "").split(",")[0]
    if candidate.get("kind") == "keyword" and detail in ("exact", "phrase", "broad"):
        return str(_pick(rng, [detail, f"the {detail} one", f"{detail} match", candidate["id"]]))
    return str(_pick(rng, [candidate["name"], candidate["id"]]))


def dialogue_kinds(ctx: dict[str, Any]) -> list[IntentKind]:
    """The kinds a dialogue on this account can open with (experiment questions need an experiment)."""
    return [
        k
        for k in WEIGHTS
        if k not in (IntentKind.EXPERIMENT_EFFECT, IntentKind.AB_TEST) or ctx["experiments"]
    ]


async def write_dialogue(
    call_tool: CallTool,
    ctx: dict[str, Any],
    rng: Rng,
    *,
    heldout: bool,
    dialogue_id: str,
    max_turns: int = 3,
    first_kind: IntentKind | None = None,
    half: HeldOutHalf | None = None,
) -> Dialogue | None:
    """One conversation of 1-3 turns (see the module docstring), played by the expert over the tools; it opens
    with `first_kind` where given (None where the account cannot have it), else a kind drawn by WEIGHTS. Held-out
    dialogues draw `half` of the held-out patterns where given."""
    scope = str(ctx["advertiser"]["id"])
    kinds = dialogue_kinds(ctx)
    if first_kind is None:
        first_kind = _pick(rng, kinds, [WEIGHTS[k] for k in kinds])
    elif first_kind not in kinds:
        return None
    want_shared = rng.random() < 0.15  # a name two keywords share: the turn must end in a question back
    made = render_pattern(first_kind, Section.FIRST, ctx, rng, heldout, want_shared=want_shared, half=half)
    if made is None:
        return None
    text, intent, family, styles, _ = made
    turns = [
        Turn(
            user=text,
            intent=intent,
            section=Section.FIRST,
            family=family,
            styles=styles,
            steps=await _play(intent, call_tool, scope),
        )
    ]
    n_turns = 1 + int(rng.choice([0, 1, 2], p=[0.55, 0.33, 0.12]))
    while len(turns) < min(n_turns, max_turns) and turns[-1].decision is None:
        nxt = await _next_turn(turns[-1], call_tool, ctx, rng, heldout, scope, half)
        if nxt is None:
            break
        turns.append(nxt)
    return Dialogue(id=dialogue_id, advertiser_id=scope, heldout=heldout, turns=turns)


# After a turn about one entity, a follow-up that acts on it ("ok do it at 2.25", "yeah pause it").
ACT_ON: dict[IntentKind, list[IntentKind]] = {
    IntentKind.WHAT_IF_BID: [IntentKind.SET_BID, IntentKind.PAUSE],
    IntentKind.BEST_BID: [IntentKind.SET_BID, IntentKind.APPLY_BEST_BID],
    IntentKind.BID_LANDSCAPE: [IntentKind.SET_BID, IntentKind.WHAT_IF_BID, IntentKind.APPLY_BEST_BID],
    IntentKind.WHAT_IF_BUDGET: [IntentKind.SET_BUDGET],
}


def _proposed(turn: Turn) -> bool:
    return bool(turn.steps) and "Proposed:" in str(turn.steps[-1].message.get("content") or "")


async def _turn(
    kind: IntentKind,
    section: Section,
    ctx: dict[str, Any],
    rng: Rng,
    heldout: bool,
    scope: str,
    call_tool: CallTool,
    base: Intent | None = None,
    slot: str | None = None,
    entity: str | None = None,
    half: HeldOutHalf | None = None,
) -> Turn | None:
    """A turn from one of `kind`'s patterns; with `base`, the earlier turn's intent supplies what the words
    leave out (its entity as the id it resolved to)."""
    made = render_pattern(kind, section, ctx, rng, heldout, half=half)
    if made is None:
        return None
    text, new, family, styles, _ = made
    intent = new
    if base is not None and slot is not None:
        fields = {k: v for k, v in new.model_dump(exclude_none=True).items() if k != "kind"}
        if "relative" in fields:
            fields["value"] = None
        elif "value" in fields:
            fields["relative"] = None
        target_slot = slot
        if kind != base.kind:  # acting on the entity with another intent: only its entity carries over
            target_slot = (
                "entity" if kind in (IntentKind.PAUSE, IntentKind.ENABLE) else ENTITY_OF.get(kind, slot)
            )
            base = Intent(
                kind=kind,
                entity_kind=EntityKind.KEYWORD if target_slot == "entity" else None,
                value=None if "value" in fields or "relative" in fields else base.value,
                relative=None if "value" in fields or "relative" in fields else base.relative,
            )
        intent = base.model_copy(update={**fields, "kind": kind})
        if entity is not None:
            intent = _with_entity(intent, target_slot, entity)
        if (
            intent.kind in (IntentKind.SET_BID, IntentKind.SET_BUDGET)
            and intent.value is None
            and intent.relative is None
        ):
            return None
    return Turn(
        user=text,
        intent=intent,
        section=section,
        family=family,
        styles=styles,
        steps=await _play(intent, call_tool, scope),
    )


async def _next_turn(
    prev: Turn,
    call_tool: CallTool,
    ctx: dict[str, Any],
    rng: Rng,
    heldout: bool,
    scope: str,
    half: HeldOutHalf | None = None,
) -> Turn | None:
    slot = _entity_slot(prev.intent)
    resolved, candidates = _resolved_entity(prev.steps, _FIELDS.get(slot or "", ())) if slot else (None, [])
    if candidates and slot:  # the agent asked which one: the user picks
        chosen = _pick(rng, candidates)
        options = patterns(IntentKind.CHOOSE, Section.FIRST, heldout=heldout, half=half)
        if not options:
            return None
        family, pattern = _pick(rng, options)
        intent = _with_entity(prev.intent, slot, chosen["id"])
        return Turn(
            user=pattern.text.format(choice=_choice_words(chosen, rng)),
            intent=intent,
            section=Section.FIRST,
            family=family,
            written_as=IntentKind.CHOOSE,
            steps=await _play(intent, call_tool, scope),
        )
    if _proposed(prev) and rng.random() < 0.75:  # a typed yes / no to the proposal waiting for it
        kind = IntentKind.CONFIRM if rng.random() < 0.6 else IntentKind.REJECT
        made = render_pattern(kind, Section.FIRST, ctx, rng, heldout, half=half)
        if made is None:
            return None
        text, intent, family, styles, _ = made
        return Turn(
            user=text,
            intent=intent,
            section=Section.FIRST,
            family=family,
            styles=styles,
            decision="confirm" if kind == IntentKind.CONFIRM else "reject",
        )
    r = rng.random()
    if slot and resolved and not _proposed(prev):
        act = ACT_ON.get(prev.intent.kind, [])
        if act and r < 0.3:
            turn = await _turn(
                _pick(rng, act),
                Section.FOLLOWUP,
                ctx,
                rng,
                heldout,
                scope,
                call_tool,
                prev.intent,
                slot,
                resolved,
                half,
            )
            if turn is not None:
                return turn
        elif r < 0.5:
            turn = await _turn(
                prev.intent.kind,
                Section.FOLLOWUP,
                ctx,
                rng,
                heldout,
                scope,
                call_tool,
                prev.intent,
                slot,
                resolved,
                half,
            )
            if turn is not None:
                return turn
    if slot and r < 0.75 and not prev.intent.writes:  # the same question about another entity
        made = render_pattern(prev.intent.kind, Section.SWITCH, ctx, rng, heldout, half=half)
        if made is not None:
            text, new, family, styles, _ = made
            kind_slot = (
                slot if slot != "entity" else (new.entity_kind.value if new.entity_kind else "campaign")
            )
            words = getattr(new, kind_slot, None) or new.entity
            if words:
                intent = _with_entity(prev.intent, slot, words)
                if slot == "entity" and new.entity_kind is not None:
                    intent = intent.model_copy(
                        update={
                            "entity_kind": new.entity_kind,
                            "keyword": None,
                            "campaign": None,
                            "ad_group": None,
                            new.entity_kind.value: words,
                        }
                    )
                return Turn(
                    user=text,
                    intent=intent,
                    section=Section.SWITCH,
                    family=family,
                    styles=styles,
                    steps=await _play(intent, call_tool, scope),
                )
    kinds = [
        k
        for k in WEIGHTS
        if k not in (IntentKind.EXPERIMENT_EFFECT, IntentKind.AB_TEST) or ctx["experiments"]
    ]
    return await _turn(
        _pick(rng, kinds, [WEIGHTS[k] for k in kinds]),
        Section.FIRST,
        ctx,
        rng,
        heldout,
        scope,
        call_tool,
        half=half,
    )
