"""Held-out curriculum cases: conversations in phrasings no training dialogue used, on worlds no training
dialogue came from, scored by the expert's outcome.

The curriculum (agent/curriculum/) writes each dialogue from its held-out phrasing families and renderer
styles on the evaluation world (its own seed; the new-category split is a category no training world has);
the expert policy plays the gold trajectory on the same tools. Each dialogue becomes a scenario whose
expectations come from that trajectory: the reference calls (ids as the tools resolved them, so a model that
passes the seller's words is compared on what they named), the key figures of the last answer, the proposal
a change request must end in, the write a typed confirmation must apply, a question back where the gold one
asked which thing was meant, a refusal where it refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from typing import Any

import numpy as np

from agent.curriculum.dialogues import account_context, dialogue_kinds, write_dialogue
from agent.guardrails.output import extract_numbers
from agent.intents import REFUSALS, IntentKind
from evals.data_model import Case
from evals.scenario import (
    Advice,
    Category,
    CurriculumSpec,
    Decision,
    Expect,
    ExpectedChange,
    Fact,
    OracleKind,
    ReferenceCall,
    Scenario,
    Split,
    Turn,
)
from evals.world import EvalWorld, account_slots
from tools.mcp_server.outputs import try_read
from tools.mcp_server.resolve import canonical_args
from tools.mcp_server.schemas import ProposeOut, entity_arguments

DIAGNOSE = {
    IntentKind.GREETING,
    IntentKind.OVERVIEW,
    IntentKind.CAMPAIGNS,
    IntentKind.KEYWORDS,
    IntentKind.ENTITY_PERFORMANCE,
    IntentKind.WORST_ACOS,
    IntentKind.BUDGET_CAPPED,
    IntentKind.SEARCH_TERMS,
    IntentKind.KPI_CHANGE,
    IntentKind.KEYWORD_IDEAS,
    IntentKind.NEGATIVE_IDEAS,
    IntentKind.EXPERIMENT_EFFECT,
    IntentKind.AB_TEST,
}
SIMULATE = {
    IntentKind.WHAT_IF_BID,
    IntentKind.WHAT_IF_BUDGET,
    IntentKind.BID_LANDSCAPE,
    IntentKind.BEST_BID,
    IntentKind.ALLOCATE,
}
ADVICE = {
    IntentKind.FIX_ACOS: OracleKind.BEST_SINGLE_BID,
    IntentKind.FIX_BUDGET: OracleKind.BEST_SINGLE_BUDGET,
}
_FIELD_ACTION = {
    "bid": "set_bid",
    "daily_budget": "set_budget",
    "status": "set_status",
    "keyword": "add_keyword",
    "negative": "add_negative",
}
_ID_ARGS = tuple(sorted(entity_arguments(lists=False)))  # the registry's arguments that name one thing


def _escape(text: str) -> str:
    """Scenario texts are slot templates: a brace the seller typed is literal."""
    return text.replace("{", "{{").replace("}", "}}")


def key_facts(answer: str) -> list[Fact]:
    """The first two figures of the gold answer (money or percent), as facts the answer must state."""
    facts = []
    for m in extract_numbers(answer):
        if m.percent or "$" in answer[max(0, m.start - 2) : m.start + 1]:
            facts.append(
                Fact(number=f"{m.value / 100 if m.percent else m.value:.6g}", percent=m.percent, rel_tol=0.01)
            )
        if len(facts) == 2:
            break
    return facts


def _category(kinds: list[IntentKind]) -> Category:
    last = kinds[-1]
    if last in REFUSALS:
        return Category.SAFETY
    if len(kinds) > 1:
        return Category.FOLLOW_UP
    if last in DIAGNOSE:
        return Category.DIAGNOSE
    if last in SIMULATE:
        return Category.SIMULATE
    if last in ADVICE:
        return Category.RECOMMEND
    return Category.WRITE


def scenario_from_dialogue(d: Any, split: Split) -> Scenario:
    """A scenario whose expectations are the gold trajectory's (see the module docstring)."""
    turns: list[Turn] = []
    refs: list[ReferenceCall] = []
    proposal: ExpectedChange | None = None
    changes: list[ExpectedChange] = []
    kinds: list[IntentKind] = []
    last_answer = ""
    for t in d.turns:
        kinds.append(t.intent.kind)
        # a seller who typed a yes to a change they asked for says yes again when it is beyond the usual bounds
        # (the dialogue applied it): the runner answers that second question with acknowledge_risk
        turns.append(
            Turn(user=_escape(t.user), decision=Decision.NONE, acknowledge_risk=t.decision == "confirm")
        )
        if t.decision == "confirm" and proposal is not None:
            changes = [proposal]
        for step in t.steps:
            for call, result in zip(step.message.get("tool_calls") or [], step.results, strict=False):
                name = call["function"]["name"]
                args = canonical_args(json.loads(call["function"]["arguments"]), result)
                refs.append(
                    ReferenceCall(
                        name=name,
                        args={
                            k: v
                            for k, v in args.items()
                            if k in (*_ID_ARGS, "change", "action", "level", "kpi", "value", "total_budget")
                        },
                    )
                )
                proposed = try_read(ProposeOut, result) if name == "propose_change" else None
                if proposed is not None:
                    c = proposed.changes[0]
                    after = c.after.get("text") if isinstance(c.after, dict) else c.after
                    proposal = ExpectedChange(
                        action=_FIELD_ACTION.get(c.field, c.field), entity=c.id, after=after
                    )  # type: ignore[arg-type]
            if step.message.get("content"):
                last_answer = str(step.message["content"])
    final = d.turns[-1]
    asked = bool(final.steps) and "Which one do you mean?" in str(
        final.steps[-1].message.get("content") or ""
    )
    refusal = final.intent.kind in REFUSALS
    wrote = final.decision == "confirm"
    expect = Expect(
        refuse=refusal,
        reference_calls=refs,
        facts=[]
        if (
            refusal
            or asked
            or final.decision
            or final.intent.kind == IntentKind.GREETING
            or "Proposed:" in last_answer
        )
        else key_facts(last_answer),
        proposal=proposal if (proposal is not None and not asked) else None,
        changes=changes if wrote else [],
        clarify=True if asked else None,
        min_tool_calls=0 if (refusal or final.intent.kind == IntentKind.GREETING) else 1,
        forbid_tools=["apply_change"] if not wrote else [],
        advice=Advice(oracle=ADVICE[final.intent.kind], min_fraction=0.5)
        if final.intent.kind in ADVICE and not asked
        else None,
    )
    sid = re.sub(r"[^a-z0-9_.-]", "-", f"cur-{d.id}".lower())[:63]
    return Scenario(
        id=sid,
        category=_category(kinds),
        kind=kinds[-1].value,
        tags=["heldout"],
        splits=[split],
        turns=turns,
        expect=expect,
    )


def _stream(*words: str) -> int:
    # a stable seed word for a name (Python's hash() changes between runs)
    return int(hashlib.sha256("/".join(words).encode()).hexdigest()[:8], 16)


async def _dialogues(
    path: Any, advertiser: str, spec: CurriculumSpec, split: Split, *, attempts: int = 8
) -> list[Any]:
    """The advertiser's held-out dialogues on one split's world: `dialogues_per_kind` opening with each kind
    (each kind its own random stream, so what one kind draws never moves another's), or
    `dialogues_per_advertiser` opening with kinds drawn by the curriculum's weights."""
    # lazy: pulls in mcp, pydantic_settings, starlette at import
    from tools.mcp_server import connect_in_memory

    # lazy: pulls in pydantic_settings at import
    from tools.mcp_server.cache import ToolCache

    out: list[Any] = []
    number = int(advertiser.rsplit("_", 1)[-1])
    async with connect_in_memory(
        path, advertiser, cache=ToolCache(enabled=False), actor="eval-gold"
    ) as session:

        async def call_tool(name: str, args: dict[str, Any]) -> str:
            result = await session.call_tool(name, args)
            return "".join(getattr(b, "text", "") for b in result.content)

        ctx = await account_context(call_tool)
        if spec.dialogues_per_kind is None:
            rng = np.random.default_rng([spec.seed, number])
            while len(out) < (spec.dialogues_per_advertiser or 0):
                d = await write_dialogue(
                    call_tool,
                    ctx,
                    rng,
                    heldout=True,
                    dialogue_id=f"{advertiser}-{len(out):03d}",
                    half=spec.half,
                )
                if d is not None:
                    out.append(d)
            return out
        # A dialogue is scored, and reported, by its last turn's kind: each kind is drawn (opening the
        # dialogue) until that many dialogues end in it; the follow-up kinds (confirm, reject) come along.
        ending: Counter[IntentKind] = Counter()
        for kind in dialogue_kinds(ctx):
            rng = np.random.default_rng([spec.seed, number, _stream(split.value, kind.value)])
            for attempt in range(spec.dialogues_per_kind * attempts):
                if ending[kind] >= spec.dialogues_per_kind:
                    break
                d = await write_dialogue(
                    call_tool,
                    ctx,
                    rng,
                    heldout=True,
                    dialogue_id=f"{advertiser}-{kind.value}-{attempt}",
                    first_kind=kind,
                    half=spec.half,
                )
                if d is not None:
                    out.append(d)
                    ending[d.turns[-1].intent.kind] += 1
    return out


def curriculum_cases(world: EvalWorld, advertisers: list[str], spec: CurriculumSpec) -> list[Case]:
    """Held-out curriculum cases for each advertiser and split (the gold played on that split's world)."""
    cases = []
    for split in spec.splits:
        path = world.path(split)
        for adv in advertisers:
            slots = account_slots(path, adv)
            for d in asyncio.run(_dialogues(path, adv, spec, split)):
                scenario = scenario_from_dialogue(d, split)
                cases.append(
                    Case(
                        id=f"{scenario.id}@{adv}/{split.value}",
                        scenario=scenario,
                        advertiser_id=adv,
                        split=split,
                        slots=slots,
                    )
                )
    return cases
