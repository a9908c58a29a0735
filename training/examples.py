"""Curriculum dialogues -> the embedded model's examples: one (prompt, output) pair per assistant step.

A turn of k steps (calls, then the answer) gives k examples; a typed answer to a proposal gives one whose
output is `<confirm>` or `<reject>`. Prompts are built by agent.model.prompt.build_prompt from the thread as
the agent holds it (OpenAI-style messages), exactly as the serving backend builds them; calls are written in
the compact form with arguments in the tool schema's order (the decoding grammar's order); answers name the
values their prompt shows by reference ([v3]), as the backend resolves them.

    examples(dialogue, schemas) -> [Example]
    encode(example, tok) -> (input_ids, labels)     [CLS] prompt [SEP] output [SEP], labels on the output
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from agent.curriculum.dialogues import Dialogue
from agent.model.prompt import build_prompt, build_prompt_values, refer
from agent.model.text import CONFIRM, REJECT, compact_call
from tools.mcp_server.outputs import failure, payload

MAX_LENGTH = 512


class Example(BaseModel):
    dialogue_id: str
    turn: int
    step: int
    kind: str  # call | answer | decision
    intent: str
    prompt: str
    output: str


def _output(message: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> tuple[str, str]:
    calls = message.get("tool_calls") or []
    if calls:
        return "call", " ".join(
            compact_call(
                c["function"]["name"],
                json.loads(c["function"]["arguments"]),
                schemas.get(c["function"]["name"]),
            )
            for c in calls
        )
    return "answer", str(message.get("content") or "")


def _proposal(steps: list[Any]) -> dict[str, Any] | None:
    """The last successful proposal of a turn (what waits for confirmation after it)."""
    for step in reversed(steps):
        for call, result in zip(step.message.get("tool_calls") or [], step.results, strict=False):
            if call["function"]["name"] == "propose_change" and failure(result) is None:
                parsed = payload(result)
                if parsed is not None:
                    return parsed
    return None


def examples(d: Dialogue, schemas: dict[str, dict[str, Any]]) -> list[Example]:
    out: list[Example] = []
    thread: list[dict[str, Any]] = []
    pending: dict[str, Any] | None = None
    for t, turn in enumerate(d.turns):
        thread.append({"role": "user", "content": turn.user})
        if turn.decision is not None:
            out.append(
                Example(
                    dialogue_id=d.id,
                    turn=t,
                    step=0,
                    kind="decision",
                    intent=turn.intent.kind.value,
                    prompt=build_prompt(thread, d.advertiser_id, pending),
                    output=CONFIRM if turn.decision == "confirm" else REJECT,
                )
            )
            break  # the graph applies or drops the proposal; the conversation is not continued here
        for s, step in enumerate(turn.steps):
            kind, output = _output(step.message, schemas)
            if kind == "answer" and s > 0 and _proposal(turn.steps[:s]) is not None:
                break  # after a proposal the graph asks the user to confirm; the model writes nothing more
            prompt, refs = build_prompt_values(thread, d.advertiser_id, pending if s == 0 else None)
            out.append(
                Example(
                    dialogue_id=d.id,
                    turn=t,
                    step=s,
                    kind=kind,
                    intent=turn.intent.kind.value,
                    prompt=prompt,
                    output=refer(output, refs) if kind == "answer" else output,
                )
            )
            message = dict(step.message)
            thread.append(message)
            for call, result in zip(message.get("tool_calls") or [], step.results, strict=False):
                thread.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        pending = _proposal(turn.steps)
    return out


def encode(example: Example, tok: Any, max_length: int = MAX_LENGTH) -> tuple[list[int], list[int]] | None:
    """Token ids and labels (-100 on the prompt), or None when the example does not fit `max_length`."""
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    prompt = tok.encode(example.prompt, add_special_tokens=False).ids
    output = tok.encode(example.output, add_special_tokens=False).ids
    ids = [cls, *prompt, sep, *output, sep]
    if len(ids) > max_length:
        return None
    labels = [-100] * (len(prompt) + 2) + [*output, sep]
    return ids, labels
