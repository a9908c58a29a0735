"""The agent: a LangGraph StateGraph over MCP tools, with guardrails, confirmations and bounded turns.

    input_guardrails ─▶ planner ⇄ tools ─▶ approval (interrupt) ─┐
            │              │                                    ▼
            └─(refused)────┴──────────────▶ output_guardrails ─▶ answer

- input_guardrails: size, injection/jailbreak, cross-account, off-topic screens; PII redacted in place.
- planner: the chat model with the MCP tools bound; bounded in model calls, wall time and generated tokens
  per turn, with a graceful answer when a bound is hit or the model server fails.
- tools: every call checked (schema, scope, hard bounds) and run over the MCP session held open for the
  conversation, with a timeout; errors become tool results the model can read.
- approval: a `propose_change` result interrupts the graph with the proposal (diff + simulated impact);
  only `Command(resume="confirm")` applies it (a second confirmation when a policy bound is crossed);
  a rejected, expired or superseded proposal is never applied.
- output_guardrails: grounding, promises and ad policy; failing answers are repaired or replaced.

`Agent` (below) is the public API: it holds the MCP session, the model and the checkpointer, and drives
turns (`ask`, `stream`, `confirm`, `guide`). `graph` at the bottom is the compiled graph for LangGraph's
own server (langgraph.json); it opens an in-memory MCP session per tool round when no context is given.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
    trim_messages,
)
from langchain_core.messages.utils import count_tokens_approximately
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, Field

from agent import events as ev
from agent import tracing
from agent.amounts import QUOTED_NAME
from agent.backends import make_model
from agent.backends.openai import constrained_arguments
from agent.configuration import AgentConfig, BackendKind
from agent.guardrails.input import check_input
from agent.guardrails.output import check_output
from agent.guardrails.tool_args import ProposedChange, Scope, Verdict, check_changes, check_tool_args
from agent.memory.checkpointers import open_checkpointer
from agent.proactive import GuidanceReport, guide
from agent.prompts import CONFIRMATION, EMPTY_ANSWER, STOPPED, system_prompt
from agent.replies import phrase_decision, vetoed
from agent.router import BACK_REFERENCE, ONE_THING_ARGS, plain_request
from agent.state import AgentContext, AgentState, GuardrailEvent, PendingProposal
from agent.tool_call import run_tool
from tools.mcp_server import openai_tools
from tools.mcp_server.outputs import Raw, failure, payload, resolved, try_read
from tools.mcp_server.resolve import ANY_ID, ID_SHAPE
from tools.mcp_server.schemas import (
    TOOLS,
    TOOLS_BY_NAME,
    ApplyOut,
    Approval,
    EntityKind,
    FindOut,
    PerformanceOut,
    ProposeOut,
    entity_arguments,
)

log = logging.getLogger("adguide.agent")

PROPOSE_TOOL = "propose_change"
APPLY_TOOL = "apply_change"
# tools the model is never offered: those that change the account run only on a confirmed proposal (the registry's
# approval hint)
APPLY_TOOLS = frozenset(spec.name for spec in TOOLS if spec.approval == Approval.APPLY)
INVALID_CALL = "__invalid_tool_call__"


class AgentError(Exception):
    """A user-facing problem with a request (unknown thread, nothing to confirm). str() is the message."""


# --- helpers -----------------------------------------------------------------------------------------


def _writer() -> Any:
    try:
        return get_stream_writer()
    except Exception:  # outside a streaming run
        return lambda _event: None


def content_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def _last_user_index(messages: list[AnyMessage]) -> int:
    return max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)


def _event(stage: str, action: str, detail: str) -> GuardrailEvent:
    log.info("guardrail %s %s: %s", stage, action, detail)
    return {"stage": stage, "action": action, "detail": detail}


_default_context: AgentContext | None = None


def _ctx(runtime: Runtime[AgentContext]) -> AgentContext:
    """The run's context; under LangGraph's own server (langgraph.json) none is passed, so one is built from
    the environment (ADGUIDE_ADVERTISER, ADGUIDE_BACKEND, ...) with an in-memory MCP session per tool round."""
    global _default_context
    if runtime.context is not None:
        return runtime.context
    if _default_context is None:
        config = AgentConfig.from_env(os.environ.get("ADGUIDE_ADVERTISER", "adv_0001"))
        specs = [t for t in openai_tools() if t["function"]["name"] not in APPLY_TOOLS]
        _default_context = AgentContext(
            config=config,
            model=make_model(config, specs),
            model_tools=specs,
            tool_schemas={t["function"]["name"]: t["function"]["parameters"] for t in specs},
        )
    return _default_context


def _scope(ctx: AgentContext) -> Scope:
    return Scope(
        advertiser_id=ctx.config.advertiser_id, known_ids=ctx.known_ids, allow_writes=ctx.config.allow_writes
    )


def _tool_error(call_id: str, name: str, message: str) -> ToolMessage:
    return ToolMessage(
        content=json.dumps({"error": {"message": message}}), tool_call_id=call_id, name=name, status="error"
    )


# --- nodes -------------------------------------------------------------------------------------------


async def input_guardrails(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = _ctx(runtime)
    messages = state["messages"]
    user = messages[-1]
    update: dict[str, Any] = {
        "turn": {"started_at": time.time(), "steps": 0, "tokens": 0, "stop_reason": ""},
        "refused": False,
        "guardrail_events": [],
    }
    if dropped := state.get("pending"):  # a new message instead of a confirmation: dropped, never applied
        update["pending"] = None
        update["guardrail_events"].append(_event("confirmation", "superseded", dropped["token"]))
    # (off the event loop: PII recognizers take a third of a second on a long pasted report, and the server's
    # /healthz must not wait for them)
    with tracing.guardrail("input") as span:
        check = await asyncio.to_thread(
            check_input,
            content_text(user),
            scope=ctx.config.advertiser_id,
            max_chars=ctx.config.limits.max_input_chars,
            # the embedded model's own router, else the shipped one
            plain_request=getattr(ctx.model, "plain_request", None) or plain_request,
        )
        tracing.verdict(
            span,
            "refused" if not check.allowed else "redacted" if check.redactions else "pass",
            "" if check.allowed else check.category.value,
        )
    if not check.allowed:
        # The refused text is not kept: the model must never read it on a later turn.
        update["messages"] = [
            HumanMessage(content=f"[message withheld: {check.category.value}]", id=user.id),
            AIMessage(content=check.message),
        ]
        update["refused"] = True
        update["guardrail_events"].append(
            _event("input", "refused", f"{check.category.value}: {check.matched}")
        )
        return update
    if check.redactions:
        update["messages"] = [HumanMessage(content=check.text, id=user.id)]
        update["guardrail_events"].append(
            _event("input", "redacted", ", ".join(sorted({r.entity for r in check.redactions})))
        )
    return update


OPENAI_CONTEXT_TOKENS = 4096  # scripts/serve_vllm.sh's --max-model-len; Limits.max_context_tokens overrides


def _fit_context(view: list[BaseMessage], ctx: AgentContext) -> list[BaseMessage]:
    """The system prompt and the most recent whole turns that fit the model's window with room for its answer.
    Without this a long thread outgrows the window and every later turn fails. The current turn is always kept
    (a turn that alone is too long fails in the backend with a clear reason)."""
    limits = ctx.config.limits
    window = limits.max_context_tokens or getattr(ctx.model, "context_window", None)
    if window is None and ctx.config.resolved_backend() == BackendKind.OPENAI:
        window = OPENAI_CONTEXT_TOKENS
    if window is None:  # rules / teacher: no window to respect
        return view
    tools = ctx.model_tools or None
    exact = getattr(ctx.model, "count_tokens", None)
    if exact is not None:

        def counter(msgs: list[BaseMessage]) -> int:
            return int(exact(msgs, tools))
    else:  # digits are single tokens in our tokenizer: count 3 characters a token, not 4
        spec_tokens = len(json.dumps(tools or [])) // 3

        def counter(msgs: list[BaseMessage]) -> int:
            return count_tokens_approximately(msgs, chars_per_token=3.0) + spec_tokens

    budget = window - limits.max_new_tokens
    if counter(view) <= budget:
        return view
    # the current turn starts at the last user message (a proactive run has none: all of it is current)
    current = next((i for i in range(len(view) - 1, -1, -1) if isinstance(view[i], HumanMessage)), 1)
    kept = trim_messages(
        view[:current],
        max_tokens=budget,
        strategy="last",
        start_on="human",
        include_system=True,
        token_counter=lambda msgs: counter([*msgs, *view[current:]]),
    )  # the whole prompt
    log.info("context: %d of %d earlier messages fit the %d-token window", len(kept) - 1, current - 1, window)
    return [*(kept or view[:1]), *view[current:]]


def _model_view(messages: list[AnyMessage], ctx: AgentContext) -> list[BaseMessage]:
    """What the model reads: the system prompt, then the thread with long tool results cut, as much of it as fits
    the model's window."""
    limit = ctx.config.limits.max_tool_result_chars
    out: list[BaseMessage] = [SystemMessage(content=system_prompt(ctx.config.advertiser_id))]
    for m in messages:
        if isinstance(m, ToolMessage):
            text = content_text(m)
            if len(text) > limit:
                text = text[:limit] + " …(truncated)"
            out.append(ToolMessage(content=text, tool_call_id=m.tool_call_id, name=m.name))
        else:
            out.append(m)
    return _fit_context(out, ctx)


def _stopped(why: str, **fmt: Any) -> dict[str, Any]:
    return {"messages": [AIMessage(content=STOPPED[why].format(**fmt))], "stop_reason": why}


async def planner(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = _ctx(runtime)
    limits = ctx.config.limits
    turn: dict[str, Any] = dict(state.get("turn") or {})
    started = float(turn.get("started_at", time.time()))
    elapsed = time.time() - started
    stop: dict[str, Any] | None = None
    if turn.get("steps", 0) >= limits.max_steps:
        stop = _stopped("max_steps", steps=turn.get("steps", 0))
    elif elapsed >= limits.max_seconds:
        stop = _stopped("max_seconds", seconds=elapsed)
    elif turn.get("tokens", 0) >= limits.max_tokens:
        stop = _stopped("max_tokens")
    if stop is None:
        model = ctx.model.bind_tools(ctx.model_tools) if ctx.model_tools else ctx.model
        # a backend that runs in our process stops its work at the deadline too (the timeout only stops waiting)
        deadline = (
            {"deadline": started + limits.max_seconds}
            if getattr(ctx.model, "accepts_deadline", False)
            else {}
        )
        with tracing.model_call(ctx.model, str(ctx.config.resolved_backend())) as span:
            try:
                response = await asyncio.wait_for(
                    model.ainvoke(_model_view(state["messages"], ctx), **deadline),
                    timeout=limits.max_seconds - elapsed,
                )
                tracing.model_response(span, response)
            except TimeoutError as exc:
                tracing.failed(span, exc)
                stop = _stopped("max_seconds", seconds=time.time() - started)
            except Exception as exc:  # server down, refused connection, bad response: a clean end of turn
                tracing.failed(span, exc)
                log.warning("model call failed: %r", exc)
                stop = _stopped("model_error", reason=type(exc).__name__)
    if stop is not None:
        turn["stop_reason"] = stop["stop_reason"]
        return {"messages": stop["messages"], "turn": turn}
    message = _normalize(response)
    if ctx.config.constrain_arguments and ctx.config.resolved_backend() == BackendKind.OPENAI:
        message = await _constrain_calls(ctx, state["messages"], message)
    usage = getattr(response, "usage_metadata", None) or {}
    turn["steps"] = turn.get("steps", 0) + 1
    turn["tokens"] = turn.get("tokens", 0) + int(
        usage.get("output_tokens") or max(1, len(content_text(message)) // 4)
    )
    return {"messages": [message], "turn": turn}


def _normalize(response: BaseMessage) -> AIMessage:
    """Ids on every call; malformed calls (arguments that are not JSON) kept as calls the tools node answers
    with an error, so the history stays well-formed and the model gets to retry."""
    if not isinstance(response, AIMessage):
        return AIMessage(content=content_text(response))
    calls = [dict(c, id=c.get("id") or f"call_{uuid.uuid4().hex[:10]}") for c in response.tool_calls]
    for bad in response.invalid_tool_calls:
        calls.append(
            {
                "name": bad.get("name") or "unknown",
                "id": bad.get("id") or f"call_{uuid.uuid4().hex[:10]}",
                "args": {INVALID_CALL: str(bad.get("args") or bad.get("error") or "")},
                "type": "tool_call",
            }
        )
    return AIMessage(
        content=response.content,
        tool_calls=calls,
        id=response.id,
        usage_metadata=response.usage_metadata,
        response_metadata=response.response_metadata,
    )


async def _constrain_calls(ctx: AgentContext, history: list[AnyMessage], message: AIMessage) -> AIMessage:
    """Where the server supports structured outputs (vLLM), a call whose arguments break its schema (an id the
    advertiser does not own, a wrong type, JSON that did not parse) is decoded again under the schema, with
    the advertiser's own ids as enums, instead of being rejected."""
    calls = []
    for call in message.tool_calls:
        schema = ctx.tool_schemas.get(call["name"])
        if schema is not None:
            check = check_tool_args(
                call["name"], call["args"], schema=schema, scope=_scope(ctx), policy=ctx.config.policy
            )
            if check.verdict != Verdict.OK:
                try:
                    args = await constrained_arguments(ctx.model, _model_view(history, ctx), schema)
                    log.info(
                        "constrained decoding replaced the arguments of %s: %s", call["name"], check.message
                    )
                    call = ToolCall(name=call["name"], args=args, id=call["id"], type="tool_call")  # noqa: PLW2901
                except Exception as exc:  # keep the original call; the tools node rejects it with a reason
                    log.warning("constrained decoding failed for %s: %r", call["name"], exc)
        calls.append(call)
    return AIMessage(
        content=message.content,
        tool_calls=calls,
        id=message.id,
        usage_metadata=message.usage_metadata,
        response_metadata=message.response_metadata,
    )


def route_after_planner(state: AgentState) -> Literal["tools", "output_guardrails"]:
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls and not (state.get("turn") or {}).get("stop_reason"):
        return "tools"
    return "output_guardrails"


_VERDICT_ACTION = {Verdict.OK: "pass", Verdict.REJECT: "rejected", Verdict.CONFIRM_EXTRA: "confirm_extra"}
_NAME_ERRORS = ("AmbiguousReferenceError", "NoMatchError")
_WORD = re.compile(r"\w+(?:['&+-]\w+)*|[^\w\s]")  # words (men's, 2-pack) and single punctuation marks
MAX_NAME_GROWTH = 5  # words of the user's message a name argument may grow by
_NAME_JOINERS = frozenset({"+", "&", "/"})  # a lone mark inside a name (ad groups are named "A + B")


def longer_names(value: str, user_text: str) -> list[str]:
    """The user's own longer phrasings of a name that was cut short: the words of `value` where they stand in the
    user's message, grown to the right one word at a time (up to MAX_NAME_GROWTH, never across punctuation),
    shortest first. "boho" in "what should I bid on boho storage bins?" -> ["boho storage", "boho storage bins"].
    A match type the user wrote right after the name comes first: "'duvet cover' (exact)" -> "duvet cover exact"."""
    words = _WORD.findall(user_text)
    lowered = [w.lower() for w in words]
    want = [w.lower() for w in _WORD.findall(value)]
    if not want:
        return []
    out: list[str] = []
    for i in range(len(words) - len(want) + 1):
        if lowered[i : i + len(want)] != want:
            continue
        end = i + len(want)
        for extra in range(1, MAX_NAME_GROWTH + 1):
            if end + extra > len(words):
                break
            word = words[end + extra - 1]
            if word in _NAME_JOINERS:  # "Dumbbells + Pull Up Bar": crossed, never the last word
                continue
            if not re.match(r"[\w]", word):
                break
            out.append(" ".join(words[i : end + extra]))
        break
    # "'duvet cover' (exact)": the match type the user named after the name narrows keywords (tools/mcp_server/resolve.py)
    typed = [
        f"{name} {m.group(1).lower()}"
        for name in (value, *out)
        if (m := re.search(re.escape(name) + r"""['"’]?\s*\(?\s*(exact|phrase|broad)\b""", user_text, re.I))
    ]
    return typed + out


# the name the seller quoted (group 1) and the match type after it (group 2)
_QUOTED = re.compile(QUOTED_NAME.pattern + r"\s*(?:\(?\s*(exact|phrase|broad)\b)?", re.I)
_NAME_ARGS = tuple(sorted(entity_arguments(lists=False)))  # arguments that name one of the caller's things


def _quoted_holding(words: str, user_text: str) -> set[tuple[str, str]]:
    """The names the user put in quotes that hold `words` as whole words, each with the match type written after
    it ("" where none)."""
    core = words.strip().lower()
    return {
        (m.group(1).strip(), (m.group(2) or "").lower())
        for m in _QUOTED.finditer(user_text)
        if re.search(rf"(?<!\w){re.escape(core)}(?!\w)", m.group(1).lower())
    }


def quoted_name(value: str, user_text: str) -> str | None:
    """The whole name the user put in quotes where the model copied only part of it: "zenware" for "is 'zenware
    lawn mower' (exact) selling?" -> "zenware lawn mower exact" (with the match type written after it); None where
    no single quoted name holds the value, or the value is that name already."""
    core = re.sub(r"\s+(exact|phrase|broad)$", "", value.strip(), flags=re.I)
    hits = _quoted_holding(core, user_text) if core else set()
    if len(hits) != 1:
        return None
    name, match = hits.pop()
    full = f"{name} {match}" if match else name
    return full if full.lower() != value.strip().lower() else None


_AD_GROUP_NAMED = re.compile(
    r"\b(?:for|in|to|on|into|from)\s+(?:the\s+|my\s+|our\s+)?([\w][\w\s&+/'-]{1,60}?)\s+ad ?group\b", re.I
)


def with_quoted_names(args: dict[str, Any], user_text: str) -> dict[str, Any]:
    """`args` with each name the model cut short replaced by the user's whole quoted name (quoted_name); a new
    keyword's or negative's ad group that the model wrote as the term itself, as the "... ad group" the user named."""
    grown = {f: quoted_name(v, user_text) for f in _NAME_ARGS if isinstance(v := args.get(f), str)}
    out = {**args, **{f: v for f, v in grown.items() if v}}
    terms = [k.get("text", "") for k in args.get("keywords") or [] if isinstance(k, dict)]
    named = _AD_GROUP_NAMED.search(user_text)
    if (
        named
        and isinstance(args.get("id"), str)
        and any(args["id"].strip().lower() in str(t).lower() for t in terms)
    ):
        out["id"] = named.group(1).strip()
    # new keywords and negatives: the search term as the user quoted it
    if isinstance(args.get("keywords"), list):
        out["keywords"] = [
            {**k, "text": _quoted_term(k["text"], user_text)}
            if isinstance(k, dict) and isinstance(k.get("text"), str)
            else k
            for k in args["keywords"]
        ]
    return out


def the_one_quoted_name(value: str, user_text: str) -> str | None:
    """The one name the user put in quotes (with the match type written after it), where the model named something
    outside it: "'pull up bar for women' (phrase) bid, target roas five" looked up 'roas'. None where the user
    quoted no name or several, or the value is inside the quote (quoted_name grows that one)."""
    quoted = {(m.group(1).strip(), (m.group(2) or "").lower()) for m in _QUOTED.finditer(user_text)}
    if len(quoted) != 1:
        return None
    name, match = quoted.pop()
    if value.strip().lower() in name.lower():
        return None
    return f"{name} {match}" if match else name


def _quoted_term(text: str, user_text: str) -> str:
    whole = {name for name, _ in _quoted_holding(text, user_text)}
    return whole.pop() if len(whole) == 1 else text


_GENERIC_NAME = re.compile(
    r"^(?:(?:my|the|all|our|each|every|per|by)\s+)*(?:ad ?groups?|campaigns?|keywords?|accounts?|"
    r"experiments?|tests?|search ?terms?|products?|targets?)(?:\s+(?:breakdown|level|list))?$"
    # a rank is no name either: "fix the worst one for me" -> ad_group_id="worst"
    r"|^(?:the\s+)?(?:worst|best|top|bottom|most|least|biggest|highest|lowest|cheapest|priciest)"
    r"(?:\s+(?:one|ones|performers?))?$",
    re.I,
)


def generic_name_dropped(
    ctx: AgentContext, name: str, args: dict[str, Any], parsed: Raw
) -> dict[str, Any] | None:
    """A filter the tools could not resolve because it names a kind of thing or a rank, not a thing ("ad group
    breakdown" -> ad_group_id="ad group", "the worst one" -> "worst"): the call without it, where the filter is
    optional; None otherwise."""
    error = failure(parsed)
    field = error.field if error is not None and error.type == "NoMatchError" else None
    value = args.get(field) if isinstance(field, str) else None
    required = (ctx.tool_schemas.get(name) or {}).get("required") or []
    if not isinstance(value, str) or field in required or not _GENERIC_NAME.match(value.strip()):
        return None
    return {k: v for k, v in args.items() if k != field}


# an id's kind is its prefix: the filter and the table level it belongs to
_ID_FIELD = {
    "kw": ("keyword_id", "keyword"),
    "cmp": ("campaign_id", "campaign"),
    "ag": ("ad_group_id", "ad_group"),
}
_ID_FILTERS = tuple(f for f, _ in _ID_FIELD.values())
# the kind of thing an id names, by its prefix
_KIND_OF_PREFIX = {
    "kw": EntityKind.KEYWORD,
    "cmp": EntityKind.CAMPAIGN,
    "ag": EntityKind.AD_GROUP,
    "exp": EntityKind.EXPERIMENT,
}


# An id copied with what surrounds it in a question back or a table, which lists things as "Name (id)":
# "ag_000010)", "'kw_0000020'" (id-shaped, so the argument check refuses them as ids the advertiser does not own),
# or the whole "Dumbbells (ag_000010)" (resolved as words, it matches all the Dumbbells ad groups again).
_WRAPPED_ID = re.compile(rf"^(?:[^()]*\()?[\s(\[{{'\"`]*({ID_SHAPE})[\s)\]}}'\"`.,;:!?]*$")


def unwrapped_ids(args: dict[str, Any]) -> dict[str, Any] | None:
    """The call with its entity arguments' ids out of the brackets, quotes or punctuation the model copied around
    them; None where none was wrapped."""
    fixed = {
        field: m.group(1)
        for field in entity_arguments()
        if isinstance(value := args.get(field), str)
        and (m := _WRAPPED_ID.match(value)) is not None
        and m.group(1) != value
    }
    return args | fixed if fixed else None


def id_in_its_own_field(ctx: AgentContext, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
    """An id the model put in another kind's filter (performance(level=keyword, keyword_id="ag_000014") after the
    seller picked that ad group): the call with the id in its own kind's filter, and a table at its level, where
    the tool has that filter; None otherwise."""
    props = (ctx.tool_schemas.get(name) or {}).get("properties") or {}
    for field in _ID_FILTERS:
        value = args.get(field)
        prefix = value.split("_", 1)[0] if isinstance(value, str) and ANY_ID.match(value) else None
        if prefix not in _ID_FIELD or _ID_FIELD[prefix][0] == field:
            continue
        own, level = _ID_FIELD[prefix]
        if own not in props:
            return None
        fixed = {k: v for k, v in args.items() if k != field} | {own: value}
        return fixed | {"level": level} if "level" in args and "level" in props else fixed
    return None


def quoted_for_foreign_id(name: str, args: dict[str, Any], user_text: str) -> dict[str, Any] | None:
    """An entity argument holding an id of a kind it cannot name, where the user quoted one name: the call with that
    name instead ("just put 'cordless pruning shears' (phrase) on whatever bid makes the most money" ran
    recommend_bid on the campaign of the turn before, and the schema refused it). None otherwise."""
    spec = TOOLS_BY_NAME.get(name)
    for field, ref in spec.references.items() if spec is not None else ():
        value = args.get(field)
        if not isinstance(value, str) or not ANY_ID.match(value):
            continue
        kinds = ref.kinds if ref.by is None else ref.kinds_by.get(str(args.get(ref.by)), ())
        kind = _KIND_OF_PREFIX.get(value.split("_", 1)[0])
        if kinds and kind not in kinds and (quoted := the_one_quoted_name(value, user_text)) is not None:
            return {**args, field: quoted}
    return None


# where the user puts a new keyword or negative: "... as an exact keyword in Duvet Cover + Area Rug, bid it at 1.20"
_PLACE_WORD = re.compile(r"\b(?:in|into|to|under)\s+", re.I)
_PLACE_END = re.compile(r"[,.;!?]|\b(?:and|bid|at|with|please|pls|in|into|to|under)\b", re.I)
_PLACE_TRIM = re.compile(r"^(?:the|my)\s+|\s+(?:ad\s?group|campaign)$", re.I)
_MATCH_TYPE = re.compile(r"^(?:an?\s+)?(?:exact|phrase|broad)(?:\s+match)?$", re.I)  # "in exact match"


def _places(text: str) -> list[str]:
    """The names after "in", "into", "to" or "under", each up to the next punctuation or joining word."""
    out = []
    for segment in _PLACE_WORD.split(_QUOTED.sub(" ", text))[1:]:
        name = _PLACE_TRIM.sub("", _PLACE_END.split(segment, maxsplit=1)[0].strip()).strip()
        if name and not _MATCH_TYPE.match(name):
            out.append(name)
    return out


def term_as_ad_group(name: str, args: dict[str, Any], user_text: str) -> dict[str, Any] | None:
    """A keyword or negative proposed into an "ad group" named by the new term itself (the model copied "'duvet
    cover gift idea' as an exact keyword in Duvet Cover + Area Rug" term for term): the call with the place the
    user's words put it ("in ...", "to ..."), quoted text aside; None otherwise."""
    if name != PROPOSE_TOOL or args.get("action") not in ("add_keywords", "add_negatives"):
        return None
    terms = {
        str(k.get("text", "")).strip().lower() for k in args.get("keywords") or [] if isinstance(k, dict)
    }
    if str(args.get("id", "")).strip().lower() not in terms:
        return None
    place = next((p for p in _places(user_text) if p.lower() not in terms), None)
    return None if place is None else {**args, "id": place}


# a change the words would make to the thing they name when it is of the other kind: a proposed budget for a keyword
# is its bid ("set 'adjustable kettlebell' to 1.70" was proposed as the Kettlebell campaign's budget)
_OTHER_KIND_TWIN = {
    (PROPOSE_TOOL, "set_budget", "keyword"): "set_bid",
    (PROPOSE_TOOL, "set_bid", "campaign"): "set_budget",
    ("what_if", "budget", "keyword"): "bid",
    ("what_if", "bid", "campaign"): "budget",
}


def other_kind_twin(name: str, args: dict[str, Any], parsed: Raw) -> dict[str, Any] | None:
    """A bid or budget change whose words or id name a thing of the other kind (the tools' OtherKindError, or an id
    of the other kind: "bump it 30 percent" proposed as cmp_00001's bid): the same change for that thing (its id
    where the words name one thing, else the words); None otherwise."""
    error = failure(parsed)
    field = error.field if error is not None else None
    if error is None or not isinstance(field, str):
        return None
    value = str(args.get(field, ""))
    kind: str | None
    if error.type == "OtherKindError":
        cands = error.candidates or []
        kinds = {c.kind.value for c in cands}
        kind = kinds.pop() if len(kinds) == 1 else None
        named = cands[0].id if len(cands) == 1 else value
    elif error.type == "UnknownIdError" and (m := re.match(r"^(kw|cmp)_\d+$", value)):
        kind, named = _KIND_OF_PREFIX[m.group(1)], value
    else:
        return None
    change = "action" if name == PROPOSE_TOOL else "change"
    twin = _OTHER_KIND_TWIN.get((name, str(args.get(change)), str(kind)))
    return None if twin is None else {**args, change: twin, field: named}


# words that point back at the thing the previous turn was about ("what if I gave it 302 a day?", "and if the bid
# were lowered by one half?"): the router's back references and "the bid" / "the budget" of a what-if follow-up
_POINTS_BACK = re.compile(rf"{BACK_REFERENCE.pattern}|\bthe (?:bid|budget)\b", re.I)


def previous_thing(messages: list[AnyMessage], last_user: int) -> str | None:
    """The one thing the previous turn's calls named, by its id (as called, or as the tools resolved the words);
    None where they named none or several."""
    prev_user = max((i for i in range(last_user) if isinstance(messages[i], HumanMessage)), default=-1)
    if prev_user < 0:
        return None
    ids: set[str] = set()
    for m in messages[prev_user + 1 : last_user]:
        if isinstance(m, AIMessage):
            for c in m.tool_calls:
                ids |= {
                    v for k in ONE_THING_ARGS if isinstance(v := c["args"].get(k), str) and ANY_ID.match(v)
                }
        elif isinstance(m, ToolMessage) and m.status != "error":
            ids |= {r.id for r in resolved(content_text(m))}
    return ids.pop() if len(ids) == 1 else None


def back_reference_to_previous(
    name: str, args: dict[str, Any], parsed: Raw, user_text: str, earlier: str | None
) -> dict[str, Any] | None:
    """A call that named nothing the account holds ("what if I gave it 302 a day?" ran as what_if(id="302")) where
    the message points back at a thing (_POINTS_BACK) and the previous turn was about one thing: the call for that
    thing; None otherwise."""
    error = failure(parsed)
    field = error.field if error is not None and error.type == "NoMatchError" else None
    if earlier is None or not isinstance(field, str) or not _POINTS_BACK.search(user_text):
        return None
    return {**args, field: earlier}


async def _retried(ctx: AgentContext, name: str, args: dict[str, Any]) -> tuple[str, Any] | None:
    """The call run again with other arguments: (result text, parsed) where it succeeds, else None (the first
    error stands)."""
    try:
        text = await run_tool(ctx, name, args)
    except Exception:  # noqa: BLE001
        return None
    return None if failure(text) is not None else (text, payload(text))


WHOLE_NAME_ACCEPT = 80.0  # find's score (0-100) a phrase needs to name a thing (the resolver's FUZZY_ACCEPT)
WHOLE_NAME_LEAD = 15.0  # ... and its lead over the next thing


async def _with_the_users_whole_name(
    ctx: AgentContext, name: str, args: dict[str, Any], parsed: Raw, user_text: str
) -> tuple[dict[str, Any], tuple[str, Any]] | None:
    """A name the model cut short that resolved to another thing: "bath towels" copied from "... bath towels and
    storage bins keeps matching ..." is the Bath Towels ad group, the user's whole phrase the Bath Towels + Storage
    Bins one. The user's longest phrase that `find` reads as one thing of the kind (WHOLE_NAME_ACCEPT), clearly
    (WHOLE_NAME_LEAD), is used instead where that is another thing: (args, (result text, parsed)); None otherwise."""
    if "find" not in ctx.tool_schemas:
        return None
    for r in resolved(parsed):
        field, short = r.field, r.query
        if args.get(field) != short:
            continue
        for phrase in reversed([p for p in longer_names(short, user_text) if len(p) > len(short)]):
            found = try_read(
                FindOut, await run_tool(ctx, "find", {"query": phrase, "kind": r.kind.value, "limit": 2})
            )
            matches = found.matches if found is not None else None
            if not matches or matches[0].score < WHOLE_NAME_ACCEPT:
                continue
            best, runner_up = matches[0], (matches[1].score if len(matches) > 1 else 0.0)
            if best.id == r.id or best.score - runner_up < WHOLE_NAME_LEAD:
                break  # the longest phrase that names anything names this thing, or nothing clearly
            grown = {**args, field: phrase}
            again = await _retried(ctx, name, grown)
            if again is not None:
                log.info("%s: %s=%r grown to the user's %r", name, field, short, phrase)
                return grown, again
            break
    return None


async def _with_the_users_longer_name(
    ctx: AgentContext, name: str, args: dict[str, Any], parsed: Raw, user_text: str
) -> tuple[dict[str, Any], str] | None:
    """A name argument the tools found ambiguous or unknown, tried again as the user's own longer phrase
    ("boho" -> "boho storage bins"), and an unknown one last as the one name the user quoted (the_one_quoted_name):
    the first that resolves is kept (args, result text); None if none does."""
    error = failure(parsed)
    field = error.field if error is not None and error.type in _NAME_ERRORS else None
    value = args.get(field) if isinstance(field, str) else None
    if not isinstance(field, str) or not isinstance(value, str):
        return None
    quoted = (
        the_one_quoted_name(value, user_text) if error is not None and error.type == "NoMatchError" else None
    )
    for longer in [*longer_names(value, user_text), *filter(None, [quoted])]:
        retry = {**args, field: longer}
        try:
            text = await run_tool(ctx, name, retry)
        except Exception:  # noqa: BLE001  (the original error stands)
            return None
        error = failure(text)
        if error is None:
            log.info("%s: %s=%r resolved as the user's %r", name, field, value, longer)
            return retry, text
        # "boho storage bins" names a keyword: its bid, not a budget
        twin = other_kind_twin(name, retry, text)
        if twin is not None and (again := await _retried(ctx, name, twin)) is not None:
            log.info("%s: %s=%r resolved as the user's %r, read as %s", name, field, value, longer, twin)
            return twin, again[0]
        if error.type not in _NAME_ERRORS:
            return None
    return None


async def tools(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = _ctx(runtime)
    write = _writer()
    call_msg = state["messages"][-1]
    assert isinstance(call_msg, AIMessage)
    out: list[BaseMessage] = []
    events: list[GuardrailEvent] = []
    pending: PendingProposal | None = None
    scope = _scope(ctx)
    last_user = _last_user_index(state["messages"])
    user_text = content_text(state["messages"][last_user]) if last_user >= 0 else ""
    regrown: dict[
        str, dict[str, Any]
    ] = {}  # call id -> the arguments that ran (a name grown from the user's words)
    for call in call_msg.tool_calls:
        name, args, call_id = call["name"], call["args"], call["id"] or ""
        write(ev.ToolCall(name=name, args=args, call_id=call_id).wire())
        if INVALID_CALL in args:
            out.append(
                _tool_error(
                    call_id, name, f"the call's arguments were not valid JSON: {args[INVALID_CALL][:200]}"
                )
            )
            events.append(_event("tool_args", "rejected", f"{name}: malformed call"))
            continue
        if name not in ctx.tool_schemas:
            out.append(
                _tool_error(call_id, name, f"unknown tool {name!r}; use one of {sorted(ctx.tool_schemas)}")
            )
            events.append(_event("tool_args", "rejected", f"unknown tool {name}"))
            continue
        if (bare := unwrapped_ids(args)) is not None:  # as it was, the argument check refuses it
            log.info("%s: %s ran as %s", name, args, bare)
            args = regrown[call_id] = bare
        if (moved := id_in_its_own_field(ctx, name, args)) is not None:  # as it was, the call can only fail
            log.info("%s: %s ran as %s", name, args, moved)
            args = regrown[call_id] = moved
        if (named := quoted_for_foreign_id(name, args, user_text)) is not None:  # as it was, it can only fail
            log.info("%s: %s ran as %s", name, args, named)
            args = regrown[call_id] = named
        with tracing.guardrail("tool_args", tool=name) as span:
            check = check_tool_args(
                name, args, schema=ctx.tool_schemas[name], scope=scope, policy=ctx.config.policy
            )
            tracing.verdict(span, "pass" if check.verdict == Verdict.OK else "rejected", check.message)
        if check.verdict != Verdict.OK:
            out.append(_tool_error(call_id, name, check.message))
            events.append(_event("tool_args", "rejected", f"{name}: {check.message}"))
            write(ev.ToolResult(name=name, ok=False, text=check.message, call_id=call_id).wire())
            continue
        if user_text and (quoted := with_quoted_names(args, user_text)) != args:
            args = regrown[call_id] = quoted
        try:
            text = await run_tool(ctx, name, args, call_id=call_id)
        except TimeoutError:
            text = json.dumps(
                {"error": {"message": f"{name} did not answer within {ctx.config.limits.tool_timeout_s:g} s"}}
            )
        except Exception as exc:  # a tool server failure must not end the conversation
            log.warning("tool %s failed: %r", name, exc)
            text = json.dumps({"error": {"message": f"{name} failed: {type(exc).__name__}: {exc}"[:300]}})
        parsed = payload(text)
        failed = failure(parsed) is not None
        if failed and user_text:
            grown = await _with_the_users_longer_name(ctx, name, args, parsed, user_text)
            if grown is not None:
                args, text = grown
                parsed, failed = payload(text), False
                regrown[call_id] = args
            else:
                again_args = (
                    other_kind_twin(name, args, parsed)
                    or generic_name_dropped(ctx, name, args, parsed)
                    or term_as_ad_group(name, args, user_text)
                    or back_reference_to_previous(
                        name, args, parsed, user_text, previous_thing(state["messages"], last_user)
                    )
                )
                again = await _retried(ctx, name, again_args) if again_args is not None else None
                if again is not None and again_args is not None:
                    log.info("%s: %s ran as %s", name, args, again_args)
                    args, (text, parsed), failed = again_args, again, False
                    regrown[call_id] = args
        elif user_text and (whole := await _with_the_users_whole_name(ctx, name, args, parsed, user_text)):
            args, (text, parsed) = whole
            regrown[call_id] = args
        proposal = try_read(ProposeOut, parsed) if name == PROPOSE_TOOL and not failed else None
        if proposal is not None and parsed is not None and proposal.token:
            changes = [
                ProposedChange(
                    entity_id=c.id,
                    field=c.field,
                    before=c.before if isinstance(c.before, int | float | str) else None,
                    after=c.after if isinstance(c.after, int | float | str) else None,
                )
                for c in proposal.changes
            ]
            with tracing.guardrail("policy", tool=name) as span:
                policy = check_changes(changes, ctx.config.policy)
                tracing.verdict(span, _VERDICT_ACTION[policy.verdict], policy.message)
            if policy.verdict == Verdict.REJECT:
                text = json.dumps({"error": {"message": f"policy: {policy.message}"}})
                events.append(_event("tool_args", "rejected", policy.message))
                failed = True
            else:
                pending = {
                    "token": proposal.token,
                    "tool_call_id": call_id,
                    "proposal": parsed,  # as the tool wrote it: the checkpointed thread holds plain JSON
                    "args": args,
                    "expires_at": time.time() + float(proposal.expires_in_s),
                    "extra_confirmation": policy.issues if policy.verdict == Verdict.CONFIRM_EXTRA else [],
                }
                if pending["extra_confirmation"]:
                    events.append(_event("tool_args", "confirm_extra", policy.message))
        write(ev.ToolResult(name=name, ok=not failed, text=text[:500], call_id=call_id).wire())
        out.append(
            ToolMessage(
                content=text, tool_call_id=call_id, name=name, status="error" if failed else "success"
            )
        )
    if regrown:  # the history shows the calls as they ran (same message id: the reducer replaces it)
        calls = [dict(c, args=regrown.get(c["id"] or "", c["args"])) for c in call_msg.tool_calls]
        out.insert(
            0,
            AIMessage(
                content=call_msg.content,
                tool_calls=calls,
                id=call_msg.id,
                usage_metadata=call_msg.usage_metadata,
                response_metadata=call_msg.response_metadata,
            ),
        )
    update: dict[str, Any] = {"messages": out, "guardrail_events": events}
    if pending:
        update["pending"] = pending
    return update


def route_after_tools(state: AgentState) -> Literal["approval", "planner"]:
    return "approval" if state.get("pending") else "planner"


class Decision(BaseModel):
    """What the user answers to a confirmation interrupt."""

    decision: Literal["confirm", "reject"]
    acknowledge_risk: bool = Field(
        default=False, description="the second confirmation a policy bound asks for"
    )


def _decision(value: Any) -> Decision:
    if isinstance(value, Decision):
        return value
    if isinstance(value, str):
        return Decision(
            decision="confirm" if value.strip().lower() in ("confirm", "yes", "y", "apply") else "reject"
        )
    if isinstance(value, dict):
        try:
            return Decision.model_validate(value)
        except ValueError:
            return Decision(decision="reject")
    return Decision(decision="reject")


def confirmation_payload(pending: PendingProposal) -> dict[str, Any]:
    """The interrupt's payload: the confirmation event as a plain dict (it is checkpointed with the thread)."""
    p = pending["proposal"]
    return ev.Confirmation(
        token=pending["token"],
        action=p.get("action"),
        changes=p.get("changes"),
        impact=p.get("impact"),
        note=p.get("note"),
        expires_at=pending["expires_at"],
        extra_confirmation=pending["extra_confirmation"],
    ).model_dump()


def _applied_text(result: ApplyOut) -> str:
    rows = [
        f"{c.id} {c.field}: {c.before} → {c.after}"
        if c.before is not None
        else f"{c.id}: added {c.field} {c.after}"
        for c in result.changes
    ]
    head = "Already applied earlier; nothing changed now." if result.already_applied else "Done. Applied:"
    return head + ("\n- " + "\n- ".join(rows) if rows else "")


async def _apply(ctx: AgentContext, pending: PendingProposal) -> str:
    """Apply a confirmed proposal: the apply tool's result text. The tool server keeps tokens in its process;
    after a restart (the thread resumed from its checkpoint in a new process) the token is unknown there, so the
    same change is proposed again and applied only if its diff is exactly the one the user confirmed."""
    result = await run_tool(ctx, APPLY_TOOL, {"token": pending["token"]})
    error = failure(result)
    if not (error is not None and error.type == "ConfirmationError" and pending.get("args")):
        return result
    again_text = await run_tool(ctx, PROPOSE_TOOL, pending["args"])
    again = try_read(ProposeOut, again_text)
    if again is None:
        return again_text
    if (payload(again_text) or {}).get("changes") != pending["proposal"].get("changes"):
        return json.dumps(
            {"error": {"message": "the account changed since you confirmed; ask again for a fresh proposal"}}
        )
    return await run_tool(ctx, APPLY_TOOL, {"token": again.token})


async def approval(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = _ctx(runtime)
    pending = state["pending"]
    assert pending is not None
    decision = _decision(interrupt(confirmation_payload(pending)))
    if decision.decision == "confirm" and pending["extra_confirmation"] and not decision.acknowledge_risk:
        again = interrupt(
            ev.ExtraConfirmation(
                token=pending["token"],
                reasons=pending["extra_confirmation"],
                question="This change is beyond the usual bounds. Confirm again to apply it.",
            ).model_dump()
        )
        decision = _decision(again)
        if decision.decision == "confirm":
            decision.acknowledge_risk = True
    events: list[GuardrailEvent] = []
    if decision.decision != "confirm":
        text = CONFIRMATION["rejected"]
        events.append(_event("confirmation", "rejected", pending["token"]))
    elif time.time() > pending["expires_at"]:
        text = CONFIRMATION["expired"]
        events.append(_event("confirmation", "expired", pending["token"]))
    else:
        try:
            result = await _apply(ctx, pending)
        except Exception as exc:
            result = json.dumps({"error": {"message": f"{type(exc).__name__}: {exc}"}})
        applied = try_read(ApplyOut, result)
        if applied is not None:
            text = _applied_text(applied)
            events.append(_event("confirmation", "applied", pending["token"]))
        else:
            err = failure(result)
            reason = err.message if err is not None and err.message else "the tool gave no reason"
            text = CONFIRMATION["failed"].format(reason=reason)
            events.append(_event("confirmation", "failed", text))
    return {"messages": [AIMessage(content=text)], "pending": None, "guardrail_events": events}


GROUNDING_USER_TURNS = 2  # the user's figures an answer may repeat: this turn's message and the one before


def grounding_sources(messages: list[AnyMessage]) -> tuple[list[str], list[str]]:
    """Tool results and tool-call arguments of the thread; the user's last GROUNDING_USER_TURNS messages (the
    figures of a report pasted ten turns ago are no source for today's answer, and reading every one would make
    each turn's check grow with the thread)."""
    tool_texts: list[str] = []
    user_texts: list[str] = []
    for m in messages:
        if isinstance(m, ToolMessage):
            tool_texts.append(content_text(m))
        elif isinstance(m, AIMessage):
            tool_texts += [json.dumps(c["args"]) for c in m.tool_calls]
        elif isinstance(m, HumanMessage):
            user_texts.append(content_text(m))
    return tool_texts, user_texts[-GROUNDING_USER_TURNS:]


async def output_guardrails(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    last = state["messages"][-1]
    if not isinstance(last, AIMessage) or (state.get("turn") or {}).get("stop_reason"):
        return {}
    text = content_text(last)
    if last.tool_calls:  # a bound hit mid-plan: the calls are dropped from the answer
        text = text or STOPPED["max_steps"].format(steps=(state.get("turn") or {}).get("steps", 0))
    if not text.strip():  # a model that said nothing: the turn still ends with an answer
        events = [_event("output", "replaced", "empty answer")]
        return {
            "messages": [AIMessage(content=EMPTY_ANSWER, id=last.id, usage_metadata=last.usage_metadata)],
            "guardrail_events": events,
        }
    tool_texts, user_texts = grounding_sources(state["messages"][:-1])
    with tracing.guardrail("output") as span:
        check = await asyncio.to_thread(
            check_output, text, tool_texts, user_texts
        )  # off the event loop, as the input's
        tracing.verdict(
            span, check.action.value, "; ".join(f"{i.kind.value}: {i.detail}" for i in check.issues)
        )
    if check.ok and not last.tool_calls:
        return {}
    events = (
        [_event("output", check.action.value, "; ".join(f"{i.kind.value}: {i.detail}" for i in check.issues))]
        if not check.ok
        else []
    )
    return {
        "messages": [AIMessage(content=check.text, id=last.id, usage_metadata=last.usage_metadata)],
        "guardrail_events": events,
    }


async def answer(state: AgentState) -> dict[str, Any]:
    last = state["messages"][-1]
    _writer()(ev.Final(text=content_text(last)).wire())  # plain JSON: LangGraph's own server streams it as is
    return {}


def build_graph() -> StateGraph[AgentState, AgentContext, AgentState, AgentState]:
    g = StateGraph(AgentState, context_schema=AgentContext)
    g.add_node("input_guardrails", input_guardrails)
    g.add_node("planner", planner)
    g.add_node("tools", tools)
    g.add_node("approval", approval)
    g.add_node("output_guardrails", output_guardrails)
    g.add_node("answer", answer)
    g.add_edge(START, "input_guardrails")
    g.add_conditional_edges(
        "input_guardrails", lambda s: "answer" if s.get("refused") else "planner", ["answer", "planner"]
    )
    g.add_conditional_edges("planner", route_after_planner, ["tools", "output_guardrails"])
    g.add_conditional_edges("tools", route_after_tools, ["approval", "planner"])
    g.add_edge("approval", "output_guardrails")
    g.add_edge("output_guardrails", "answer")
    g.add_edge("answer", END)
    return g


# --- the public API ----------------------------------------------------------------------------------


class TurnResult(BaseModel):
    thread_id: str
    text: str = Field(description="the answer to show; empty while a confirmation is pending")
    confirmation: ev.Proposal | None = Field(
        default=None, description="the interrupt payload awaiting confirm/reject"
    )
    guardrail_events: list[ev.Guardrail] = Field(default_factory=list)
    stop_reason: str = ""


def _openai_tool(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


# Words, not something shaped like an id; no quote, backslash or control character.
NAME_PATTERN = r"^(?!(kw|cmp|ag|exp|adv|prd)_\d)[^\"\\\x00-\x1f]{1,120}$"


def constrain_schemas(
    schemas: dict[str, dict[str, Any]], ids: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Id arguments take one of the advertiser's own ids (an enum) or words the tools resolve inside the scope
    (never an id-shaped string of someone else's): what validation and constrained decoding enforce."""
    by_field = {
        "campaign_id": ids.get("campaign", []),
        "ad_group_id": ids.get("ad_group", []),
        "keyword_id": ids.get("keyword", []),
    }
    every = sorted({i for v in ids.values() for i in v})
    out = {}
    for name, schema in schemas.items():
        schema = json.loads(json.dumps(schema))
        props = schema.get("properties", {})
        for field, allowed in [*by_field.items(), ("id", every)]:
            if field in props and allowed and props[field].get("type") == "string":
                description = props[field].get("description")
                props[field] = {
                    "anyOf": [
                        {"type": "string", "enum": sorted(allowed)},
                        {"type": "string", "pattern": NAME_PATTERN},
                    ]
                }
                if description:
                    props[field]["description"] = description
        out[name] = schema
    return out


class Agent:
    """One advertiser's agent: an MCP session held open, a chat model, a checkpointer, the compiled graph.

    async with Agent(AgentConfig(advertiser_id="adv_0001")) as agent:
        result = await agent.ask("t1", "Which keywords waste spend?")
        if result.confirmation: result = await agent.confirm("t1", "confirm")
        async for event in agent.stream("t2", "How are my campaigns doing?"): ...
    """

    def __init__(self, config: AgentConfig, *, model: Any = None, checkpointer: Any = None) -> None:
        self.config = config
        self._model = model
        self._checkpointer = checkpointer
        self._stack: AsyncExitStack | None = None
        self.context: AgentContext | None = None
        self.graph: Any = None

    async def __aenter__(self) -> Agent:
        # lazy: pulls in mcp, starlette and uvicorn at import
        from langchain_mcp_adapters.tools import load_mcp_tools

        # lazy: pulls in the MCP server and its engines (numpy, scipy) at import
        from tools.mcp_server import connect_in_memory

        tracing.configure_from_env()  # once per process: on where an OTLP endpoint is configured
        self._stack = AsyncExitStack()
        await self._stack.__aenter__()
        try:
            session = await self._stack.enter_async_context(
                connect_in_memory(self.config.store_path, self.config.advertiser_id)
            )
            loaded = await load_mcp_tools(session)
            tools_by_name = {t.name: t for t in loaded}
            schemas = {t.name: dict(t.args_schema) if isinstance(t.args_schema, dict) else {} for t in loaded}
            ctx = AgentContext(config=self.config, tools=tools_by_name)
            # The model reads the plain specs (as in its training data, and short: every spec is in every
            # prompt); the enums of the advertiser's own ids go into the schemas the arguments are checked
            # against, and to constrained decoding where the backend supports it.
            ctx.model_tools = [
                _openai_tool(n, tools_by_name[n].description or n, s)
                for n, s in schemas.items()
                if n not in APPLY_TOOLS
            ]
            if self.config.constrain_arguments:
                ids = await self._account_ids(ctx)
                ctx.known_ids = frozenset(i for v in ids.values() for i in v) or None
                schemas = constrain_schemas(schemas, ids)
            ctx.tool_schemas = {n: s for n, s in schemas.items() if n not in APPLY_TOOLS}
            ctx.model = self._model or make_model(self.config, ctx.model_tools)
            # the in-process backend decodes under the id enums too
            if hasattr(ctx.model, "argument_schemas"):
                ctx.model.argument_schemas = ctx.tool_schemas
            if self._checkpointer is None:
                self._checkpointer = await self._stack.enter_async_context(open_checkpointer(self.config))
            self.context = ctx
            self.graph = build_graph().compile(checkpointer=self._checkpointer)
        except BaseException:
            await self._stack.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            await self._stack.__aexit__(None, None, None)

    async def _account_ids(self, ctx: AgentContext) -> dict[str, list[str]]:
        """The advertiser's own ids, read through the tools (paged, bounded)."""
        ids: dict[str, list[str]] = {"campaign": [], "ad_group": [], "keyword": []}
        if "performance" not in ctx.tools:
            return ids
        for level in ids:
            cursor = None
            for _ in range(10):
                args: dict[str, Any] = {"level": level, "limit": 100}
                if cursor:
                    args["cursor"] = cursor
                try:
                    page = try_read(PerformanceOut, await run_tool(ctx, "performance", args))
                except Exception as exc:  # no enums then; the tool server still enforces the scope
                    log.warning("could not list the account's ids: %r", exc)
                    return {k: [] for k in ids}
                if page is None:
                    break
                ids[level] += [r.id for r in page.rows]
                cursor = page.next_cursor
                if not cursor:
                    break
        return ids

    def _run_config(self, thread_id: str) -> dict[str, Any]:
        return {
            "configurable": {"thread_id": thread_id},
            "recursion_limit": 4 * self.config.limits.max_steps + 20,
        }

    async def pending(self, thread_id: str) -> ev.Proposal | None:
        """The confirmation this thread waits for, if any."""
        snapshot = await self.graph.aget_state(self._run_config(thread_id))
        for task in snapshot.tasks:
            for intr in task.interrupts:
                return ev.parse_proposal(intr.value)
        return None

    async def messages(self, thread_id: str) -> list[AnyMessage]:
        snapshot = await self.graph.aget_state(self._run_config(thread_id))
        return list((snapshot.values or {}).get("messages", []))

    async def stream(
        self, thread_id: str, message: str | None = None, *, resume: Any = None
    ) -> AsyncIterator[ev.Event]:
        """Events of one turn (agent/events.py): tokens, tool calls and results, guardrail events, a confirmation,
        then "final" with the answer after the output guardrails (every guardrail event comes before it). Traced
        as one span with the events on it when tracing is on (agent/tracing.py)."""
        kind = "confirmation" if resume is not None else "message"
        with tracing.turn(thread_id, self.config.advertiser_id, kind=kind) as span:
            tokens = 0
            async for event in self._stream(thread_id, message, resume=resume):
                tokens += isinstance(event, ev.Token)
                tracing.on_event(span, event)
                yield event
            if span is not None:
                values = (await self.graph.aget_state(self._run_config(thread_id))).values
                tracing.turn_end(span, str((values.get("turn") or {}).get("stop_reason") or ""), tokens)

    async def _stream(self, thread_id: str, message: str | None, *, resume: Any) -> AsyncIterator[ev.Event]:
        assert self.graph is not None and self.context is not None, "use `async with Agent(...)`"
        config = self._run_config(thread_id)
        if resume is None and message and await self.pending(thread_id) is not None:
            resume = await self.typed_decision(thread_id, message)  # "yep, go ahead" answers the proposal
        if resume is not None:
            if await self.pending(thread_id) is None:
                raise AgentError(f"conversation {thread_id!r} has no change waiting for confirmation")
            graph_input: Any = Command(resume=resume)
        else:
            if await self.pending(thread_id) is not None:
                # A new message while a proposal waits: the proposal is dropped (never applied), then the turn runs.
                await self.graph.aupdate_state(
                    config,
                    {"pending": None, "messages": [AIMessage(content=CONFIRMATION["superseded"])]},
                    as_node="answer",
                )
            graph_input = {"messages": [HumanMessage(content=message or "")]}
        seen_events = len((await self.graph.aget_state(config)).values.get("guardrail_events", []) or [])
        final: ev.Final | None = None  # held back: the turn's guardrail events come before it
        async for mode, chunk in self.graph.astream(
            graph_input, config, context=self.context, stream_mode=["messages", "updates", "custom"]
        ):
            if mode == "messages":
                token, meta = chunk
                if (
                    meta.get("langgraph_node") == "planner"
                    and isinstance(token, AIMessage)
                    and content_text(token)
                ):
                    yield ev.Token(text=content_text(token))
            elif mode == "custom":
                event = ev.parse(chunk)
                if isinstance(event, ev.Final):
                    final = event
                else:
                    yield event
            elif mode == "updates" and "__interrupt__" in chunk:
                for intr in chunk["__interrupt__"]:
                    yield ev.parse_proposal(intr.value)
        values = (await self.graph.aget_state(config)).values
        for event in (values.get("guardrail_events") or [])[seen_events:]:
            yield ev.Guardrail(**event)
        if final is not None:
            yield final

    async def typed_decision(self, thread_id: str, message: str) -> str | None:
        """A message sent while a proposal waits, read as "confirm", "reject" or None (the user moved on): by a
        short, precise phrase list first ("yes, go ahead", "no, leave it"), then by the model where it can tell
        (the embedded model learned it)."""
        plain = phrase_decision(message)
        if plain is not None:
            return plain
        snapshot = await self.graph.aget_state(self._run_config(thread_id))
        pending = (snapshot.values or {}).get("pending")
        decide = getattr(self.context.model if self.context else None, "decide", None)
        if pending and decide is not None:
            history = list((snapshot.values or {}).get("messages", []))
            view = [SystemMessage(content=system_prompt(self.config.advertiser_id)), *history]
            try:
                decision = await asyncio.to_thread(decide, view, pending["proposal"], message)
            except Exception as exc:  # a model failure must not apply anything: fall back to the phrases
                log.warning("the model could not read the reply to a proposal: %r", exc)
                return None
            if decision == "confirm" and vetoed(message):  # never apply on a reply that may say no
                return None
            return decision  # type: ignore[no-any-return]
        return None

    async def ask(self, thread_id: str, message: str) -> TurnResult:
        """Run one turn to its end (or to a confirmation interrupt)."""
        return await self._collect(thread_id, self.stream(thread_id, message))

    async def confirm(self, thread_id: str, decision: str | dict[str, Any]) -> TurnResult:
        """Answer a pending confirmation: "confirm" / "reject", or {"decision": ..., "acknowledge_risk": bool}."""
        return await self._collect(thread_id, self.stream(thread_id, resume=decision))

    async def _collect(self, thread_id: str, events: AsyncIterator[ev.Event]) -> TurnResult:
        summary = ev.TurnSummary.of([e async for e in events])
        values = (await self.graph.aget_state(self._run_config(thread_id))).values
        return TurnResult(
            thread_id=thread_id,
            text=summary.text,
            confirmation=summary.confirmation,
            guardrail_events=summary.guardrail_events,
            stop_reason=(values.get("turn") or {}).get("stop_reason", ""),
        )

    async def guide(self, thread_id: str | None = None) -> GuidanceReport:
        """Proactive mode: a ranked list of guidance items for this advertiser (agent/proactive.py)."""
        return await guide(self, thread_id or f"guide-{uuid.uuid4().hex[:8]}")


graph = build_graph().compile()
