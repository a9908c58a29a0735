"""The graph's state, checkpointed per thread, and the run-scoped context that is not.

State is what must survive a restart: the conversation (OpenAI-style messages, contract E), the pending
proposal awaiting the user's confirmation, this turn's counters, and the guardrail events. Live objects
(the MCP session's tools, the chat model, the scope) travel in `AgentContext`, given per run by the
caller: they are never checkpointed and the model can't change them.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langchain_core.tools import BaseTool
from langgraph.graph.message import add_messages

from agent.configuration import AgentConfig


class TurnStats(TypedDict, total=False):
    started_at: float  # time.time() when the user's message arrived
    steps: int  # model calls this turn
    tokens: int  # generated tokens this turn
    stop_reason: str  # "" | "max_steps" | "max_seconds" | "max_tokens" | "model_error"


class GuardrailEvent(TypedDict):
    stage: str  # "input" | "tool_args" | "output" | "confirmation"
    action: str  # "refused" | "redacted" | "rejected" | "repaired" | "replaced" | "confirm_extra" | ...
    detail: str


class PendingProposal(TypedDict):
    token: str
    tool_call_id: str
    proposal: dict[str, Any]  # the propose tool's result: action, changes (diff), impact, expires_in_s
    args: dict[str, Any]  # the propose call's arguments (to re-propose after a restart)
    expires_at: float
    extra_confirmation: list[str]  # policy-bound reasons that need a second, explicit confirmation


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turn: TurnStats
    pending: PendingProposal | None
    guardrail_events: Annotated[list[GuardrailEvent], operator.add]
    refused: bool  # the input guardrail refused this turn's message


@dataclass
class AgentContext:
    """Per-run context: the scope, the model and the tools. Supplied by `Agent` (agent/graph.py)."""

    config: AgentConfig
    model: Any = None  # a LangChain chat model (BaseChatModel), tools bound by the planner
    tools: dict[str, BaseTool] = field(default_factory=dict)  # MCP tools over a held session
    tool_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # JSON schema per tool
    model_tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI specs the model sees
    known_ids: frozenset[str] | None = None  # the advertiser's own ids, for the scope check
