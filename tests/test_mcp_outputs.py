"""tools/mcp_server/outputs.py: tool results read back into their output models, failures into ToolFailure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.mcp_server import connect_in_memory
from tools.mcp_server.cache import ToolCache
from tools.mcp_server.outputs import (
    ToolFailure,
    ToolResultError,
    failure,
    payload,
    read,
    read_tool,
    resolved,
    try_read,
)
from tools.mcp_server.schemas import FindOut, OverviewOut, PerformanceOut

ADV = "adv_0001"


def _text(res) -> str:
    return "".join(getattr(block, "text", "") for block in res.content)


async def test_results_and_failures_over_mcp(tiny_world_path: Path) -> None:
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        overview = _text(await session.call_tool("account_overview", {}))
        camp = read(OverviewOut, overview).campaigns[0]
        by_words = _text(
            await session.call_tool("performance", {"level": "keyword", "campaign_id": camp.name})
        )
        unknown = _text(
            await session.call_tool("performance", {"level": "keyword", "campaign_id": "cmp_zzz9"})
        )
        other = _text(await session.call_tool("account_overview", {"advertiser_id": "adv_0002"}))
    typed = read(PerformanceOut, by_words)  # the result's `resolved` list sits outside the model
    assert typed.rows and all(r.campaign_id == camp.id for r in typed.rows)
    assert [(r.query, r.id) for r in resolved(by_words)] == [(camp.name, camp.id)]
    assert read_tool("performance", by_words) == typed
    assert resolved(overview) == []
    err = failure(other)
    assert err is not None and err.type == "ScopeError" and err.field == "advertiser_id"
    assert failure(unknown) is not None and failure(overview) is None
    with pytest.raises(ToolResultError) as info:
        read(PerformanceOut, other)
    assert info.value.failure == err
    assert try_read(PerformanceOut, other) is None


def test_text_that_is_not_the_model() -> None:
    assert payload("not json") is None and payload("[1, 2]") is None and payload(None) is None
    with pytest.raises(ToolResultError, match="not a JSON object"):
        read(FindOut, "oops")
    with pytest.raises(ToolResultError, match="not a FindOut"):
        read(FindOut, json.dumps({"matches": "renamed"}))
    with pytest.raises(ToolResultError, match="no tool named"):
        read_tool("no_such_tool", "{}")
    # an error from outside the tool server (a guardrail, a client) in a plain string
    assert failure({"error": "timed out"}) == ToolFailure(message="timed out")


def test_a_number_written_as_null() -> None:
    """A NaN or infinity is written as null: a `float | None` field reads it as None, a plain float as NaN (the
    caller's dict is left as it was); a null anywhere else still does not fit."""
    import math

    from tools.uplift.models import Attribution

    written = {
        "kpi": "acos",
        "before": None,  # an ACoS without sales
        "after": 0.25,
        "change": None,
        "method": "shapley",
        "contributions": [{"name": "cpc", "value": 0.0, "share": None}],  # no share of a zero change
        "notes": [],
    }
    out = read(Attribution, written)
    assert math.isnan(out.before) and math.isnan(out.change) and out.after == 0.25
    assert out.contributions[0].share is None
    assert written["before"] is None  # not changed in place
    with pytest.raises(ToolResultError, match="not a Attribution"):
        read(Attribution, {**written, "kpi": None})
