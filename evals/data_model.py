"""The evaluation's records: which backend a row runs, a case (scenario x advertiser x split), and the
transcript a case leaves behind (turns, tool calls as resolved, proposals, writes). The runner fills them;
metrics, reports and the gate read them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agent.events import Guardrail, Proposal
from evals.scenario import Scenario, Split


class BackendKindName(StrEnum):
    RULES = "rules"
    TEACHER = "teacher"
    INPROCESS = "inprocess"
    OPENAI = "openai"


class Row(BaseModel):
    """One backend evaluated on the suite."""

    name: str  # "model" or "teacher"
    backend: BackendKindName
    model_url: str | None = None
    model_dir: Path | None = None
    model_name: str | None = None

    def label(self) -> str:
        where = self.model_url or (str(self.model_dir) if self.model_dir else "")
        return f"{self.name} ({self.backend.value}{': ' + where if where else ''})"


class Case(BaseModel):
    id: str
    scenario: Scenario
    advertiser_id: str
    split: Split
    slots: dict[str, str]


class TurnRecord(BaseModel):
    user: str
    answers: list[str] = Field(
        default_factory=list, description="texts shown this turn (answer, then after a confirmation)"
    )
    confirmations: list[Proposal] = Field(
        default_factory=list, description="the proposals the turn stopped at"
    )
    decisions: list[str] = Field(default_factory=list)
    guardrail_events: list[Guardrail] = Field(default_factory=list)
    stop_reasons: list[str] = Field(default_factory=list)
    latency_s: float = 0.0
    tool_calls: int = 0
    refused: bool = False


class ToolCallRecord(BaseModel):
    name: str
    args: dict[str, Any] = Field(
        description="as the tool resolved them: names replaced by the ids they named"
    )
    raw_args: dict[str, Any] = Field(default_factory=dict, description="as the model wrote them")
    ok: bool
    turn: int


class Transcript(BaseModel):
    case_id: str
    row: str
    trial: int
    turns: list[TurnRecord] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    proposals: list[dict[str, Any]] = Field(
        default_factory=list, description="successful propose_change: args, changes"
    )
    audit: list[list[Any]] = Field(
        default_factory=list, description="writes the case made: adv, action, entity, before, after"
    )
    messages: list[dict[str, Any]] = Field(default_factory=list, description="the thread, OpenAI format")
    tokens_out: int = 0
    tokens_in: int = 0
    tokens_estimated: bool = False
    error: str | None = None
    seconds: float = 0.0
