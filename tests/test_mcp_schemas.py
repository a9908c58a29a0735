"""Tool specs as the model sees them: compact, complete, one source; result helpers; scope rules."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tools.errors import InvalidInputError
from tools.mcp_server.results import compact, page, resolve_period, round_value
from tools.mcp_server.schemas import TOOLS, input_schema, openai_tools, output_schema, rough_tokens
from tools.mcp_server.scope import Scope, ScopeError, load_token_map

SPEC_TOKEN_BUDGET = 2600  # all tool specs together, rough count; they are sent on every model turn


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_tool_names_unique_and_descriptions_short():
    names = [t.name for t in TOOLS]
    assert len(names) == len(set(names))
    for t in TOOLS:
        assert len(t.description) <= 200, t.name
        assert t.name.isidentifier()


@pytest.mark.parametrize("spec", TOOLS, ids=lambda s: s.name)
def test_input_schema_is_compact_and_self_contained(spec):
    schema = input_schema(spec)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    for node in _walk(schema):
        assert "title" not in node  # no pydantic titles
        assert node.get("anyOf") is None  # optional fields are plain types
    assert schema["type"] == "object"
    assert "advertiser_id" not in schema["properties"]


@pytest.mark.parametrize("spec", TOOLS, ids=lambda s: s.name)
def test_admin_schema_requires_the_advertiser(spec):
    schema = input_schema(spec, admin=True)
    assert list(schema["properties"])[0] == "advertiser_id"
    assert "advertiser_id" in schema["required"]


def test_output_schemas_keep_nulls_for_validation():
    for spec in TOOLS:
        schema = output_schema(spec)
        assert "$ref" not in json.dumps(schema)


def test_total_spec_tokens_stay_small():
    total = sum(rough_tokens(json.dumps(t, separators=(",", ":"))) for t in openai_tools())
    assert 0 < total <= SPEC_TOKEN_BUDGET, total


def test_openai_specs_follow_the_function_format():
    for t in openai_tools(admin=True):
        assert t["type"] == "function"
        assert set(t["function"]) == {"name", "description", "parameters"}


def test_rounding_is_consistent():
    assert round_value(1234.5678) == 1234.57
    assert round_value(0.123456) == 0.1235
    assert round_value(float("nan")) is None
    assert compact({"a": [1.23456, {"b": 0.000012345}], "n": 3, "s": "x"}) == {
        "a": [1.23, {"b": 0.0}],
        "n": 3,
        "s": "x",
    }


def test_page_and_cursor():
    rows = list(range(45))
    first, cur = page(rows, 20, None)
    assert first == list(range(20)) and cur == "20"
    last, cur2 = page(rows, 20, "40")
    assert last == [40, 41, 42, 43, 44] and cur2 is None
    with pytest.raises(InvalidInputError) as err:
        page(rows, 20, "abc")
    assert err.value.field == "cursor"


def test_period_defaults_and_bounds():
    first, last = dt.date(2026, 6, 1), dt.date(2026, 6, 30)
    p = resolve_period(None, None, first, last)
    assert (p.start, p.end) == (first, last)
    with pytest.raises(InvalidInputError) as err:
        resolve_period(dt.date(2026, 5, 1), None, first, last)
    assert err.value.field == "start" and "2026-06-01 to 2026-06-30" in (err.value.allowed or "")
    with pytest.raises(InvalidInputError):
        resolve_period(dt.date(2026, 6, 20), dt.date(2026, 6, 10), first, last)


def test_scope_resolution():
    mine = Scope.advertiser("adv_0001")
    assert mine.resolve(None) == "adv_0001"
    assert mine.resolve("adv_0001") == "adv_0001"
    with pytest.raises(ScopeError):
        mine.resolve("adv_0002")
    admin = Scope.admin_scope()
    assert admin.resolve("adv_0002") == "adv_0002"
    with pytest.raises(ScopeError) as err:
        admin.resolve(None)
    assert err.value.field == "advertiser_id"
    assert Scope.parse(mine.label) == mine and Scope.parse("admin") == admin
    with pytest.raises(ValueError):
        Scope(advertiser_id="adv_0001", admin=True)


def test_token_map_from_env(monkeypatch):
    monkeypatch.delenv("ADGUIDE_MCP_TOKENS_FILE", raising=False)
    monkeypatch.setenv("ADGUIDE_MCP_TOKENS", json.dumps({"t1": "advertiser:adv_0001", "t2": "admin"}))
    tokens = load_token_map()
    assert tokens == {"t1": Scope.advertiser("adv_0001"), "t2": Scope.admin_scope()}
