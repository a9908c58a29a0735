"""Run scenarios against the agent: cases in parallel (bounded), transcripts collected, every case scored.

A case is one scenario for one advertiser in one split (market variant); each runs `trials` times per row.
A row is a backend: the model under test, and the teacher (keyword rules + the expert policy, agent/backends/teacher.py)
on the same cases, so every report shows the best achievable next to the model. Cases run through the
agent's real graph (`agent.graph.Agent`: guardrails, MCP tools over an in-memory session, confirmation
interrupts) with an in-memory checkpointer; a case that confirms a change gets a private copy of its
world, so no case sees another's writes. The chat model is built once per row and shared by its cases.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.guardrails.input import check_input
from evals.data_model import BackendKindName, Case, Row, ToolCallRecord, Transcript, TurnRecord
from evals.metrics import score_case
from evals.outcomes import OutcomeJudge
from evals.scenario import Decision, Scenario, Split, Suite, fill
from evals.world import EvalWorld, account_slots, audit_entries, private_copy
from tools.mcp_server.outputs import failure, try_read
from tools.mcp_server.resolve import canonical_args
from tools.mcp_server.schemas import ProposeOut

log = logging.getLogger("adguide.evals")

MAX_TOOL_TEXT = 2000  # characters of a tool result kept in a stored transcript

# A turn counts as refused when the input guardrail refused it, or when the agent answered without any tool
# call in words of a refusal (the teacher and models refuse in their own words).
_REFUSAL = re.compile(
    r"\b(I can(?:'|no)t (?:help|do|follow|access|show|share|assist|switch|provide|recommend)|I can only "
    r"(?:help|access|work)|I won't|I'm not able to help|I am not able to help|not something I can help)\b",
    re.IGNORECASE,
)


def expand_cases(
    scenarios: list[Scenario], suite: Suite, world: EvalWorld
) -> tuple[list[Case], list[dict[str, str]]]:
    """Scenario x advertiser x split, for the splits both the scenario and the suite name. Cases whose slots
    the account cannot fill are skipped, with the reason."""
    cases: list[Case] = []
    skipped: list[dict[str, str]] = []
    advertisers = world.advertiser_ids()[: suite.advertisers]
    slot_cache: dict[tuple[str, str, str], dict[str, str]] = {}
    for scenario in scenarios:
        for adv in advertisers:
            for split in [s for s in scenario.splits if s in suite.splits]:
                path = world.path(split, scenario.fixture)
                key = (str(path), adv, scenario.fixture.value)
                if key not in slot_cache:
                    slot_cache[key] = account_slots(path, adv, world.hostile_terms.get(adv))
                slots = slot_cache[key]
                case_id = f"{scenario.id}@{adv}/{split.value}"
                missing = sorted(scenario.slots() - set(slots))
                if missing:
                    skipped.append({"case": case_id, "reason": f"the account has no {', '.join(missing)}"})
                    continue
                cases.append(Case(id=case_id, scenario=scenario, advertiser_id=adv, split=split, slots=slots))
    return cases, skipped


def make_agent_config(row: Row, advertiser_id: str, store_path: Path) -> Any:
    # lazy: pulls in jsonschema, pydantic_settings at import
    from agent.configuration import AgentConfig, BackendKind, CheckpointerKind

    backend = {
        BackendKindName.RULES: BackendKind.RULES,
        BackendKindName.TEACHER: BackendKind.TEACHER,
        BackendKindName.INPROCESS: BackendKind.LOCAL,
        BackendKindName.OPENAI: BackendKind.OPENAI,
    }[row.backend]
    return AgentConfig(
        advertiser_id=advertiser_id,
        backend=backend,
        base_url=row.model_url,
        model_dir=row.model_dir,
        model_name=row.model_name,
        store_path=store_path,
        checkpointer=CheckpointerKind.MEMORY,
    )


def make_row_model(row: Row, advertiser_id: str, store_path: Path) -> Any:
    """The row's chat model, built once (an in-process model loads its weights once; an OpenAI client is
    reused). Raises agent.backends.BackendUnavailableError with what to do when it can't be built."""
    # lazy: pulls in jsonschema, pydantic_settings at import
    from agent.backends import BackendUnavailableError, make_model

    try:
        return make_model(make_agent_config(row, advertiser_id, store_path))
    except OSError as exc:  # the OpenAI backend asks the server which model it serves
        raise BackendUnavailableError(
            f"no OpenAI-compatible server answers at {row.model_url}: {exc}"
        ) from None


def _content(message: Any) -> str:
    # lazy: pulls in jsonschema, langchain_core, langgraph, ... at import
    from agent.graph import content_text

    return content_text(message)


def _turn_slices(messages: list[Any]) -> list[tuple[int, int]]:
    # lazy: langchain_core is heavy and needed only here
    from langchain_core.messages import HumanMessage

    starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    return [(s, starts[j + 1] if j + 1 < len(starts) else len(messages)) for j, s in enumerate(starts)]


def digest_messages(transcript: Transcript, messages: list[Any]) -> None:
    """Tool calls (with whether they succeeded), proposals, token counts and the OpenAI-format thread."""
    # lazy: langchain_core is heavy and needed only here
    from langchain_core.messages import AIMessage, ToolMessage, convert_to_openai_messages

    results: dict[str, ToolMessage] = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    for turn_index, (start, end) in enumerate(_turn_slices(messages)):
        calls = 0
        for m in messages[start:end]:
            if not isinstance(m, AIMessage):
                continue
            usage: dict[str, Any] = dict(m.usage_metadata or {})
            if usage.get("output_tokens"):
                transcript.tokens_out += int(usage["output_tokens"])
                transcript.tokens_in += int(usage.get("input_tokens") or 0)
            else:  # backends without usage (rules, teacher): about 4 characters a token
                transcript.tokens_estimated = True
                transcript.tokens_out += max(
                    1, (len(_content(m)) + len(json.dumps([c["args"] for c in m.tool_calls]))) // 4
                )
            for call in m.tool_calls:
                calls += 1
                result = results.get(call["id"] or "")
                text = _content(result) if result is not None else ""
                ok = result is not None and result.status != "error" and failure(text) is None
                transcript.tool_calls.append(
                    ToolCallRecord(
                        name=call["name"],
                        args=canonical_args(dict(call["args"]), text),
                        raw_args=dict(call["args"]),
                        ok=ok,
                        turn=turn_index,
                    )
                )
                proposal = try_read(ProposeOut, text) if call["name"] == "propose_change" and ok else None
                if proposal is not None:
                    changes = [c.model_dump(mode="json") for c in proposal.changes]
                    transcript.proposals.append(
                        {"args": dict(call["args"]), "changes": changes, "turn": turn_index}
                    )
        if turn_index < len(transcript.turns):
            transcript.turns[turn_index].tool_calls = calls
    thread = convert_to_openai_messages(messages)
    for m in thread:
        if (
            m.get("role") == "tool"
            and isinstance(m.get("content"), str)
            and len(m["content"]) > MAX_TOOL_TEXT
        ):
            m["content"] = m["content"][:MAX_TOOL_TEXT] + " …(cut)"
    transcript.messages = thread


def _is_refused(turn: TurnRecord) -> bool:
    if any(e.stage == "input" and e.action == "refused" for e in turn.guardrail_events):
        return True
    return turn.tool_calls == 0 and not turn.confirmations and any(_REFUSAL.search(a) for a in turn.answers)


async def run_case(
    case: Case, row: Row, trial: int, model: Any, world: EvalWorld, workdir: Path
) -> Transcript:
    """One trial of one case: the conversation, then what it left in the store."""
    # lazy: pulls in jsonschema, langchain_core, langgraph, ... at import
    from agent.graph import Agent

    transcript = Transcript(case_id=case.id, row=row.name, trial=trial)
    began = time.perf_counter()
    scenario = case.scenario
    path = world.path(case.split, scenario.fixture)
    private_dir: Path | None = None
    if scenario.writes:
        private_dir = workdir / f"{uuid.uuid4().hex[:10]}"
        path = private_copy(path, private_dir)
    try:
        before = audit_entries(path)
        thread = f"eval-{uuid.uuid4().hex[:8]}"
        async with Agent(make_agent_config(row, case.advertiser_id, path), model=model) as agent:
            for spec in scenario.turns:
                record = TurnRecord(user=fill(spec.user, case.slots))
                t0 = time.perf_counter()
                result = await agent.ask(thread, record.user)
                while True:
                    record.answers += [result.text] if result.text else []
                    record.guardrail_events += result.guardrail_events
                    record.stop_reasons += [result.stop_reason] if result.stop_reason else []
                    payload = result.confirmation
                    if payload is None:
                        break
                    record.confirmations.append(payload)
                    if payload.type == "extra_confirmation":
                        answer = "confirm" if spec.acknowledge_risk else "reject"
                    elif spec.decision == Decision.NONE:
                        break  # the user does not answer: the proposal stays pending
                    else:
                        answer = spec.decision.value
                    record.decisions.append(answer)
                    result = await agent.confirm(thread, answer)
                record.latency_s = time.perf_counter() - t0
                transcript.turns.append(record)
            digest_messages(transcript, await agent.messages(thread))
        after = audit_entries(path)
        remaining = list(before)
        for entry in after:  # the log only grows; what was not there before is this case's
            if entry in remaining:
                remaining.remove(entry)
            else:
                transcript.audit.append(list(entry))
    except Exception as exc:  # one broken case must not end the run: it is recorded and scored as failed
        log.warning("case %s (%s, trial %d) failed: %r", case.id, row.name, trial, exc)
        transcript.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        if private_dir is not None:
            shutil.rmtree(private_dir, ignore_errors=True)
    for turn in transcript.turns:
        turn.refused = _is_refused(turn)
    transcript.seconds = time.perf_counter() - began
    return transcript


Tick = Callable[[], None]


async def warm_up(world: EvalWorld, advertiser_id: str) -> None:
    """Load what the first cases would otherwise pay for inside their timed turns (the PII recognizers, the
    keyword embedding model, the simulator), so latency percentiles measure turns, not one-time loads."""
    # lazy: pulls in mcp, pydantic_settings, starlette at import
    from tools.mcp_server import call, connect_in_memory

    check_input("warm up: my email is a@example.com", scope=advertiser_id)
    async with connect_in_memory(world.path(Split.ID), advertiser_id) as session:
        for name, args in (("negative_ideas", {"limit": 1}), ("account_overview", {})):
            await call(session, name, args)


async def run_cases(
    cases: list[Case],
    rows: list[Row],
    trials: int,
    world: EvalWorld,
    workdir: Path,
    judge: OutcomeJudge,
    *,
    concurrency: int = 4,
    tick: Tick | None = None,
) -> list[Any]:
    """Every case x row x trial, at most `concurrency` at once; returns the scored results (metrics.CaseResult)."""
    workdir.mkdir(parents=True, exist_ok=True)
    first = cases[0] if cases else None
    models: dict[str, Any] = {}
    if first is not None:
        for row in rows:
            models[row.name] = make_row_model(row, first.advertiser_id, world.path(Split.ID))
        await warm_up(world, first.advertiser_id)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(case: Case, row: Row, trial: int) -> Any:
        async with gate:
            transcript = await run_case(case, row, trial, models[row.name], world, workdir)
            # scoring simulates advice on the case's (shared, unchanged) world variant
            scored = await asyncio.to_thread(score_case, case, transcript, judge, world)
        if tick is not None:
            tick()
        return scored

    jobs = [one(case, row, trial) for row in rows for case in cases for trial in range(trials)]
    return list(await asyncio.gather(*jobs))
