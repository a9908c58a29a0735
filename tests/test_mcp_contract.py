"""The typed tool contract: every tool, called through a real MCP session, returns exactly its output model;
and the schema module that defines those models loads without any engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tools.market.store import MarketStore
from tools.mcp_server import connect_in_memory
from tools.mcp_server.cache import ToolCache
from tools.mcp_server.outputs import read_tool
from tools.mcp_server.results import compact
from tools.mcp_server.schemas import TOOLS, TOOLS_BY_NAME, Resolved, input_schema, output_schema

ADV = "adv_0001"
ROOT = Path(__file__).resolve().parents[1]
# Every tool name, argument, result field and enum value as released: MCP clients and saved conversations
# depend on them, so they may be added to, never renamed or removed. After adding some, refresh it with
# `.venv/bin/python -m tests.test_mcp_contract`.
CONTRACT = Path(__file__).with_name("tool_contract.json")

# What importing the schemas may load from this project: the MCP package and its schema module, and the
# engines' plain result-type modules (pydantic only). Anything else (the estimators, the simulator, the
# optimizer, the keyword engine, the store, the resolver) means an engine came back into the import.
ALLOWED_OWN_MODULES = {
    "tools",
    "tools.mcp_server",
    "tools.mcp_server.schemas",
    "tools.market",
    "tools.market.enums",
    "tools.keywords",
    "tools.keywords.models",
    "tools.uplift",
    "tools.uplift.models",
    "tools.optimize",
    "tools.optimize.models",
}
# Heavy third-party modules the engines use; none is needed to describe a tool.
HEAVY = ("numpy", "scipy", "sklearn", "pandas", "torch", "transformers", "rapidfuzz", "mcp", "sqlite3")


def test_schema_module_loads_no_engine() -> None:
    code = (
        "import json, sys; import tools.mcp_server.schemas; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tools', 'agent', 'training', 'evals', 'server') or m.split('.')[0] in "
        f"{HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "tools.mcp_server.schemas" in loaded  # the probe sees what it imported
    assert loaded - ALLOWED_OWN_MODULES == set()


# --- every tool through a real session, validated against its output model ---------------------------------


def _cases(store_path: Path) -> dict[str, dict[str, Any]]:
    """One call per tool, on the tiny world. A new tool without a case here fails the test below."""
    store = MarketStore.open(store_path)
    adv = store.scoped(ADV)
    kw = next(k for k in adv.keywords() if k.status == "enabled")
    camp = next(
        c
        for c in adv.campaigns()
        if c.id in {g.campaign_id for g in adv.ad_groups() if g.id == kw.ad_group_id}
    )
    group = next(g for g in adv.ad_groups() if g.id == kw.ad_group_id)
    exp = adv.experiments()[0]
    store.close()
    return {
        "account_overview": {},
        "performance": {"level": "keyword", "limit": 5},
        "search_terms": {"limit": 5},
        "find": {"query": kw.text},
        "what_if": {"change": "budget", "id": camp.id, "value": camp.daily_budget + 1, "days": 3},
        "bid_landscape": {"keyword_id": kw.id, "bids": [0.5, 1.0], "days": 3},
        "recommend_bid": {"keyword_id": kw.id, "days": 3},
        "allocate_budget": {"days": 3},
        "experiment_uplift": {"experiment_id": exp.id},
        "ab_test": {"experiment_id": exp.id},
        "kpi_change": {"kpi": "sales"},
        "keyword_ideas": {"ad_group_id": group.id, "limit": 3},
        "negative_ideas": {"limit": 3},
        "propose_change": {"action": "set_bid", "id": kw.id, "value": 0.9},
        "apply_change": {"token": "<from propose_change>"},
    }


def _conforms(model: type[BaseModel], payload: dict[str, Any]) -> None:
    """The payload is exactly an instance of the model: validating and dumping it back gives the same JSON,
    so a missing, renamed or extra field (even one the model would ignore or default) fails."""
    parsed = model.model_validate(payload)
    assert compact(parsed.model_dump(mode="json")) == payload


async def test_every_tool_returns_its_output_model(writable_world_path: Path) -> None:
    cases = _cases(writable_world_path)
    async with connect_in_memory(writable_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        listed = {t.name for t in (await session.list_tools()).tools}
        assert listed == set(cases), "each listed tool needs a case in _cases (and each case a tool)"
        results: dict[str, dict[str, Any]] = {}
        texts: dict[str, str] = {}
        for name, args in cases.items():
            if name == "apply_change":
                args = {"token": results["propose_change"]["token"]}
            res = await session.call_tool(name, args)
            assert not res.isError, (name, res.content)
            assert res.structuredContent is not None, name
            text = "".join(getattr(block, "text", "") for block in res.content)
            assert json.loads(text) == res.structuredContent, name  # the text block says the same
            results[name] = dict(res.structuredContent)
            texts[name] = text
    for name, payload in results.items():
        resolved = payload.pop("resolved", [])  # names given in words: listed after the result itself
        for item in resolved:
            _conforms(Resolved, item)
        _conforms(TOOLS_BY_NAME[name].output, payload)
        # and the typed accessor reads the text a client gets into the same model
        assert read_tool(name, texts[name]) == TOOLS_BY_NAME[name].output.model_validate(payload), name
    assert results["apply_change"]["applied"] is True


@pytest.mark.parametrize("field", ["campaigns", "total_budget"])
def test_a_missing_or_renamed_field_fails_the_check(field: str) -> None:
    """The check above catches what it is for: a result with one field renamed does not conform."""
    model = TOOLS_BY_NAME["allocate_budget"].output
    good = {
        "objective": "incremental_profit",
        "total_budget": 10.0,
        "allocated": 10.0,
        "n_days": 3,
        "objective_value": 1.5,
        "current_value": None,
        "total_budget_binds": True,
        "binding": [],
        "campaigns": [],
        "market": None,
    }
    _conforms(model, good)
    renamed = {(f"{k}_renamed" if k == field else k): v for k, v in good.items()}
    with pytest.raises((AssertionError, ValueError)):
        _conforms(model, renamed)
    missing_default = {k: v for k, v in good.items() if k != "market"}  # a defaulted field left out
    with pytest.raises(AssertionError):
        _conforms(model, missing_default)


# --- names are added, never renamed or removed ----------------------------------------------------------


def _names(schema: Any, path: str = "") -> set[str]:
    """Dotted paths of every property in a (refs-inlined) JSON schema, `[]` for list items, and `path=value`
    for every enum value."""
    out: set[str] = set()
    if isinstance(schema, list):
        for item in schema:
            out |= _names(item, path)
        return out
    if not isinstance(schema, dict):
        return out
    for value in schema.get("enum", []):
        out.add(f"{path}={value}")
    for name, prop in schema.get("properties", {}).items():
        out.add(f"{path}.{name}" if path else name)
        out |= _names(prop, f"{path}.{name}" if path else name)
    for key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
        if key in schema:
            out |= _names(schema[key], f"{path}[]" if key in ("items", "additionalProperties") else path)
    return out


def current_contract() -> dict[str, dict[str, list[str]]]:
    return {
        spec.name: {
            "input": sorted(_names(input_schema(spec, admin=True))),
            "output": sorted(_names(output_schema(spec))),
        }
        for spec in TOOLS
    }


def test_released_names_are_all_still_there() -> None:
    released = json.loads(CONTRACT.read_text())
    now = current_contract()
    assert set(released) - set(now) == set(), "a tool was renamed or removed"
    for name, parts in released.items():
        for part in ("input", "output"):
            gone = set(parts[part]) - set(now[name][part])
            assert gone == set(), f"{name} {part}: renamed or removed {sorted(gone)}"


def test_the_contract_walk_sees_nested_fields_and_enums() -> None:
    names = current_contract()
    assert "difference.estimate" in names["ab_test"]["output"]  # nested engine model
    assert "campaigns[].limit=saturated" in names["allocate_budget"]["output"]  # enum value in a list
    assert "keywords[].match_type=exact" in names["propose_change"]["input"]
    assert "advertiser_id" in names["performance"]["input"]  # the admin argument


if __name__ == "__main__":  # refresh the released names after adding some (never to hide a removal)
    CONTRACT.write_text(json.dumps(current_contract(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {CONTRACT}")
