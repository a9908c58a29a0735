"""Dialogue datasets in contract E's format: one JSON record a line, validated before any training.

A record is one task: an OpenAI-style message list (system, user, assistant with `tool_calls`, tool) that
ends with an assistant message, the OpenAI function specs of the tools it may call, and labels used by
the evals and the preference stage. Tool-call arguments are JSON strings (as in contract E); `tools` is
kept as a JSON string when handed to `datasets` (Arrow fills missing keys with nulls otherwise).

`validate_records` reports every problem with its line and field, so a malformed dataset is refused up
front with a message that says where, not hours later inside a trainer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"
    SHIFTED = "shifted"  # held-out advertisers in a shifted market (competitor surge, seasonal peak)


class TaskKind(StrEnum):
    DIAGNOSE = "diagnose"  # one or two read tools, explain
    SIMULATE = "simulate"  # what-if of a change the user names
    RECOMMEND = "recommend"  # diagnose -> simulate -> recommend (multi-step)
    PROPOSE = "propose"  # a write request: proposal awaiting confirmation
    FOLLOW_UP = "follow_up"  # multi-turn: a second question on the same thread
    REFUSE = "refuse"  # out of scope / unsafe / another advertiser's data
    RECOVER = "recover"  # a tool error, then a corrected call


class DialogueRecord(BaseModel):
    """One teacher dialogue. The prompt is everything up to the last user message; what follows is the
    teacher's completion (its calls are the reference for exact-match scoring)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    advertiser_id: str
    split: Split
    kind: TaskKind
    messages: list[dict[str, Any]] = Field(min_length=2)
    tools: list[dict[str, Any]]
    action: dict[str, Any] | None = Field(
        None, description="the advised change: {arguments: propose_change args, value: simulated incremental profit}"
    )
    facts: list[str] = Field(default_factory=list, description="numbers/ids the answer must state")


class DatasetError(ValueError):
    """A dataset file that is missing, unreadable or has malformed dialogues; lists the first problems."""


ROLES = {"system", "user", "assistant", "tool"}


def message_problems(messages: Sequence[dict[str, Any]], tool_names: set[str]) -> list[str]:
    """Everything wrong with one contract-E message list (empty list: valid)."""
    problems: list[str] = []
    open_calls: set[str] = set()
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        role = msg.get("role")
        if role not in ROLES:
            problems.append(f"{where}.role must be one of {sorted(ROLES)} (got {role!r})")
            continue
        content = msg.get("content")
        if content is not None and not isinstance(content, str):
            problems.append(f"{where}.content must be a string or null")
        if role == "system" and i != 0:
            problems.append(f"{where}: a system message may only come first")
        if role in ("user", "system") and not content:
            problems.append(f"{where}.content is empty")
        if role == "assistant":
            calls = msg.get("tool_calls") or []
            if not calls and not content:
                problems.append(f"{where}: an assistant message needs content or tool_calls")
            for j, call in enumerate(calls):
                problems += _call_problems(call, f"{where}.tool_calls[{j}]", tool_names)
                if isinstance(call, dict) and call.get("id"):
                    open_calls.add(call["id"])
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if call_id not in open_calls:
                problems.append(f"{where}.tool_call_id {call_id!r} answers no earlier tool call")
            open_calls.discard(call_id)
    if messages and messages[-1].get("role") != "assistant":
        problems.append("the last message must be the assistant's")
    if not any(m.get("role") == "assistant" for m in messages):
        problems.append("there is no assistant message to learn from")
    return problems


def _call_problems(call: Any, where: str, tool_names: set[str]) -> list[str]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return [f"{where} must be {{id, type: 'function', function: {{name, arguments}}}}"]
    problems = []
    if not call.get("id"):
        problems.append(f"{where}.id is missing")
    if call.get("type", "function") != "function":
        problems.append(f"{where}.type must be 'function'")
    name = call["function"].get("name")
    if tool_names and name not in tool_names:
        problems.append(f"{where}.function.name {name!r} is not one of the dialogue's tools")
    arguments = call["function"].get("arguments")
    if not isinstance(arguments, str):
        problems.append(f"{where}.function.arguments must be a JSON string")
    else:
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError as err:
            problems.append(f"{where}.function.arguments is not valid JSON ({err.msg} at char {err.pos})")
        else:
            if not isinstance(parsed, dict):
                problems.append(f"{where}.function.arguments must encode a JSON object")
    return problems


def tool_names_of(tools: Iterable[dict[str, Any]]) -> set[str]:
    return {(t.get("function") or t).get("name", "") for t in tools}


def validate_records(lines: Iterable[str], source: str = "<data>", max_report: int = 10) -> list[DialogueRecord]:
    """Parse and validate JSONL text; raise DatasetError listing up to `max_report` problems with line numbers."""
    records: list[DialogueRecord] = []
    problems: list[str] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = DialogueRecord.model_validate_json(line)
        except ValueError as err:
            first = str(err).splitlines()
            problems.append(f"{source}:{lineno}: {' '.join(first[:3])}")
            continue
        for problem in message_problems(record.messages, tool_names_of(record.tools)):
            problems.append(f"{source}:{lineno} ({record.id}): {problem}")
        records.append(record)
    if problems:
        shown = "\n  ".join(problems[:max_report])
        more = f"\n  ... and {len(problems) - max_report} more" if len(problems) > max_report else ""
        raise DatasetError(f"{len(problems)} problem(s) in {source}:\n  {shown}{more}")
    if not records:
        raise DatasetError(f"{source} has no dialogues")
    return records


def read_dataset(path: Path) -> list[DialogueRecord]:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset {path} does not exist: write it with `adguide train data`")
    with path.open() as handle:
        return validate_records(handle, source=str(path))


def write_dataset(records: Iterable[DialogueRecord], path: Path) -> int:
    """Write atomically (tmp file + rename) so a crash never leaves half a dataset that looks valid."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with tmp.open("w") as handle:
        for record in records:
            handle.write(record.model_dump_json() + "\n")
            n += 1
    tmp.replace(path)
    return n


def assign_splits(advertiser_ids: Sequence[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, Split]:
    """Split by advertiser (never by dialogue), so no advertiser's data leaks from train into evaluation."""
    import numpy as np

    ids = sorted(advertiser_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = max(1, round(len(ids) * val_fraction)) if val_fraction > 0 else 0
    n_test = max(1, round(len(ids) * test_fraction)) if test_fraction > 0 else 0
    if n_val + n_test >= len(ids):
        raise ValueError(f"{len(ids)} advertisers cannot fill val ({n_val}) and test ({n_test}) and leave any to train")
    splits = {}
    for rank, index in enumerate(order):
        splits[ids[index]] = Split.VAL if rank < n_val else Split.TEST if rank < n_val + n_test else Split.TRAIN
    return splits


def to_sft_rows(records: Iterable[DialogueRecord]) -> Iterator[dict[str, Any]]:
    """Rows for TRL's SFTTrainer: conversational `messages` and `tools` as a JSON string."""
    for record in records:
        yield {"messages": [_arrow_safe(m) for m in record.messages], "tools": json.dumps(record.tools)}


def _arrow_safe(message: dict[str, Any]) -> dict[str, Any]:
    """The same keys on every message, so Arrow's struct schema is uniform."""
    return {
        "role": message["role"],
        "content": message.get("content") or "",
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
            for c in message.get("tool_calls") or []
        ],
        "tool_call_id": message.get("tool_call_id") or "",
    }
