"""Typed accessors for tool results: a result (its JSON text, or the parsed dict) read back into the tool's
output model (schemas.py), instead of `json.loads` and string keys at every call site.

    out = read(WhatIfOut, text)            # the model, or ToolResultError (a failed call, unreadable text)
    out = read_tool("what_if", text)       # the same, the model picked from the registry by the tool's name
    err = failure(text)                    # the failed call's {"error": {...}} as a ToolFailure, else None
    words = resolved(text)                 # what names given in words resolved to

A result carries the names it resolved under `resolved`, after the output itself (server.py); `read` leaves
them out, so the output model stays exact (extra fields are errors) and a renamed field fails loudly.

A number the tool computed as NaN or infinity is written as null (results.compact; the output schema says every
number may be null). A field where that is an expected outcome is `float | None` in its model (a driver's share of
a change that is zero) and reads as None; in a plain `float` field `read` reads the null back as NaN.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tools.mcp_server.schemas import TOOLS_BY_NAME, Candidate, Resolved

M = TypeVar("M", bound=BaseModel)

Raw = str | Mapping[str, Any] | None


class ToolFailure(BaseModel):
    """A failed call's `{"error": {...}}`: what went wrong, and what the tool would accept."""

    type: str | None = None  # the error's class (ScopeError, NoMatchError, ...); None for a plain-text error
    message: str = ""
    field: str | None = None
    allowed: str | None = None
    candidates: list[Candidate] | None = None  # an ambiguous name: what it may mean


class ToolResultError(ValueError):
    """A result that is not the tool's output: a failed call (`failure` set), or text that does not fit."""

    def __init__(self, message: str, failure: ToolFailure | None = None) -> None:
        super().__init__(message)
        self.failure = failure


def payload(result: Raw) -> dict[str, Any] | None:
    """The result as a dict (parsed from its text); None where it is not a JSON object."""
    if result is None:
        return None
    if isinstance(result, Mapping):
        return dict(result)
    try:
        parsed = json.loads(result)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def failure(result: Raw) -> ToolFailure | None:
    """The failed call's error, or None for a result that is not one."""
    data = payload(result)
    if data is None or "error" not in data:
        return None
    err = data["error"]
    if not isinstance(err, dict):  # an error from elsewhere (a client, a guardrail) in a plain string
        return ToolFailure(message=str(err))
    try:
        return ToolFailure.model_validate(err)
    except ValidationError:
        kind = err.get("type")
        return ToolFailure(type=str(kind) if kind else None, message=str(err.get("message", "")))


def read(model: type[M], result: Raw) -> M:
    """The result as `model`; ToolResultError for a failed call or a result that does not fit."""
    data = payload(result)
    if data is None:
        raise ToolResultError(f"not a {model.__name__}: the result is not a JSON object")
    if (err := failure(data)) is not None:
        raise ToolResultError(f"{err.type}: {err.message}", err)
    data.pop("resolved", None)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        nan_data = _nulls_as_nan(data, exc)
        if nan_data is None:
            raise ToolResultError(f"not a {model.__name__}: {exc}") from exc
    try:
        return model.model_validate(nan_data)
    except ValidationError as exc:
        raise ToolResultError(f"not a {model.__name__}: {exc}") from exc


def _nulls_as_nan(data: dict[str, Any], exc: ValidationError) -> dict[str, Any] | None:
    """A copy of `data` with NaN where a plain float field holds null (NaN or infinity, as the tool wrote it);
    None where the errors hold no such null (the result does not fit for another reason)."""
    nulls = [e["loc"] for e in exc.errors() if e["type"] == "float_type" and e["input"] is None]
    if not nulls:
        return None
    fixed = copy.deepcopy(data)
    for loc in nulls:
        parent: Any = None
        key: Any = None
        node: Any = fixed
        for step in loc:  # a step that is not in the data names a union's member: skipped
            inside = (
                step in node
                if isinstance(node, dict)
                else isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
            )
            if inside:
                parent, key, node = node, step, node[step]
        if parent is not None and node is None:
            parent[key] = math.nan
    return fixed


def read_tool(name: str, result: Raw) -> BaseModel:
    """The result as the output model the registry names for tool `name`."""
    spec = TOOLS_BY_NAME.get(name)
    if spec is None:
        raise ToolResultError(f"no tool named {name!r} in the registry")
    return read(spec.output, result)


def try_read(model: type[M], result: Raw) -> M | None:
    """`read`, with None for a failed call or a result that does not fit."""
    try:
        return read(model, result)
    except ToolResultError:
        return None


def resolved(result: Raw) -> list[Resolved]:
    """What the names given in words resolved to (empty where none were)."""
    data = payload(result) or {}
    return [Resolved.model_validate(r) for r in data.get("resolved") or []]
