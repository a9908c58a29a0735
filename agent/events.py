"""The events of one turn, typed: one discriminated union that `Agent.stream` yields, the server streams as
server-sent events, the CLI prints, the evals record and the tracer (agent/tracing.py) hangs on its spans.

The server's SSE wire format is these models as they are: `event:` is the `type`, `data:` the model's JSON
(the `type` included). It is a public contract that the web chat page and clients read: fields are added,
never renamed or removed.

    token              {text}                                   the model's raw output as it is generated
    tool_call          {name, args, call_id}                    a tool the agent calls
    tool_result        {name, ok, text, call_id}                its (shortened) result
    guardrail          {stage, action, detail}                  a guardrail tripped; always before `final`
    confirmation       {token, action, changes, impact, note, expires_at, extra_confirmation}
                                                                a proposal awaiting the user (an interrupt)
    extra_confirmation {token, reasons, question}               a second confirmation a policy bound asks for
    final              {text}                                   the answer, after the output guardrails
    error              {code, message}                          the turn failed (server); says what to do
    done               {thread_id, stop_reason, seconds}        always last (server)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Event(BaseModel):
    # extra="forbid": a misspelt field is an error where the event is made, not a silent gap on the wire
    model_config = ConfigDict(extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The JSON object the server sends as the SSE `data:` (and in a JSON turn's `events`)."""
        return self.model_dump(mode="json")


class Token(_Event):
    type: Literal["token"] = "token"
    text: str


class ToolCall(_Event):
    type: Literal["tool_call"] = "tool_call"
    name: str
    args: dict[str, Any]
    call_id: str = Field(
        default="", description="pairs the call with its tool_result (two calls may share a name)"
    )


class ToolResult(_Event):
    type: Literal["tool_result"] = "tool_result"
    name: str
    ok: bool
    text: str = Field(description="the result's text, cut to 500 characters, or why the call was refused")
    call_id: str = ""


class Guardrail(_Event):
    type: Literal["guardrail"] = "guardrail"
    stage: str = Field(description="input | tool_args | output | confirmation")
    action: str = Field(
        description="refused | redacted | rejected | repaired | replaced | confirm_extra | "
        "applied | expired | failed | superseded"
    )
    detail: str


class Confirmation(_Event):
    """A proposal awaiting confirm/reject: the graph's interrupt payload (checkpointed with the thread)."""

    type: Literal["confirmation"] = "confirmation"
    token: str
    action: str | None = None
    changes: list[dict[str, Any]] | None = Field(
        default=None, description="the diff: id, field, before, after"
    )
    impact: dict[str, Any] | None = Field(default=None, description="the simulated impact of the change")
    note: str | None = None
    expires_at: float
    extra_confirmation: list[str] = Field(
        default_factory=list, description="policy bounds crossed: a second confirmation will be asked"
    )


class ExtraConfirmation(_Event):
    type: Literal["extra_confirmation"] = "extra_confirmation"
    token: str
    reasons: list[str]
    question: str


class Final(_Event):
    type: Literal["final"] = "final"
    text: str


class Error(_Event):
    type: Literal["error"] = "error"
    code: str = Field(description="conflict | turn_failed | turn_timeout")
    message: str


class Done(_Event):
    type: Literal["done"] = "done"
    thread_id: str
    stop_reason: str = ""
    seconds: float


Event = Annotated[
    Token | ToolCall | ToolResult | Guardrail | Confirmation | ExtraConfirmation | Final | Error | Done,
    Field(discriminator="type"),
]
Proposal = Confirmation | ExtraConfirmation  # what a turn may stop at, waiting for the user

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
_PROPOSAL: TypeAdapter[Proposal] = TypeAdapter(Annotated[Proposal, Field(discriminator="type")])


def parse(data: Any) -> Event:
    """An event from its wire form (a dict, or JSON text); a ValueError that names the bad field otherwise."""
    if isinstance(data, str | bytes):
        return _EVENT.validate_json(data)
    return _EVENT.validate_python(data)


def parse_proposal(data: Any) -> Proposal:
    """A confirmation interrupt's payload (as checkpointed) as its event."""
    return _PROPOSAL.validate_python(data)


class TurnSummary(BaseModel):
    """What a whole turn came to, read from its events: the one reading the agent, the server and the evals share."""

    text: str = Field(default="", description="the final answer; empty while a confirmation is pending")
    confirmation: Proposal | None = Field(
        default=None, description="the proposal the turn stopped at, if any"
    )
    guardrail_events: list[Guardrail] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    errors: list[Error] = Field(default_factory=list)
    done: Done | None = None

    @classmethod
    def of(cls, events: Iterable[Event]) -> TurnSummary:
        out = cls()
        for event in events:
            out.add(event)
        return out

    def add(self, event: Event) -> None:
        match event:
            case Final():
                self.text = event.text
            case Confirmation() | ExtraConfirmation():
                self.confirmation = event
            case Guardrail():
                self.guardrail_events.append(event)
            case ToolCall():
                self.tool_calls.append(event)
            case Error():
                self.errors.append(event)
            case Done():
                self.done = event
            case _:
                pass


def check_order(events: list[Event]) -> None:
    """The stream's ordering promise: every guardrail event before `final`, `done` last. ValueError otherwise."""
    kinds = [e.type for e in events]
    if "final" in kinds:
        final = kinds.index("final")
        late = [e for e in events[final:] if e.type == "guardrail"]
        if late:
            raise ValueError(f"guardrail event after the final answer: {late[0].wire()}")
    if "done" in kinds and kinds.index("done") != len(kinds) - 1:
        raise ValueError(f"`done` is not the last event: {kinds}")
