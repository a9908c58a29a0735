"""Tenant isolation: a session bound to one advertiser cannot reach another's data through any tool."""

from __future__ import annotations

import json

import pytest

from tools.market.store import MarketStore
from tools.mcp_server import Scope, call, connect_in_memory, tool_specs
from tools.mcp_server.cache import ToolCache

ME, OTHER = "adv_0001", "adv_0002"


def foreign_calls(other) -> dict[str, list[dict]]:
    """For every tool: argument sets that name the other advertiser's entities."""
    kw = other.keywords()[0]
    group = other.ad_groups()[0]
    camp = other.campaigns()[0]
    exp = other.experiments()[0].id if other.experiments() else "exp_0002_1"
    return {
        "account_overview": [{"advertiser_id": OTHER}],
        "performance": [
            {"level": "keyword", "campaign_id": camp.id},
            {"level": "keyword", "ad_group_id": group.id},
            {"level": "campaign", "campaign_id": camp.id},
            {"level": "campaign", "advertiser_id": OTHER},
        ],
        "search_terms": [{"keyword_id": kw.id}, {"ad_group_id": group.id}, {"campaign_id": camp.id}],
        "keyword_ideas": [{"ad_group_id": group.id}, {"advertiser_id": OTHER}],
        "negative_ideas": [{"ad_group_id": group.id}],
        "propose_change": [
            {"action": "set_bid", "id": kw.id, "value": 1.0},
            {"action": "set_budget", "id": camp.id, "value": 50.0},
            {"action": "pause", "id": kw.id},
            {"action": "add_keywords", "id": group.id, "keywords": [{"text": "x y z"}]},
            {"action": "add_negatives", "id": group.id, "keywords": [{"text": "x y z"}]},
        ],
        "apply_change": [{"token": "cf_from_elsewhere"}],
        "what_if": [
            {"change": "bid", "id": kw.id, "value": 1.0},
            {"change": "budget", "id": camp.id, "value": 50.0},
        ],
        "bid_landscape": [{"keyword_id": kw.id}],
        "recommend_bid": [{"keyword_id": kw.id}],
        "allocate_budget": [{"campaign_ids": [camp.id]}],
        "experiment_uplift": [{"experiment_id": exp}],
        "ab_test": [{"experiment_id": exp}],
        "kpi_change": [{"campaign_id": camp.id}],
        "find": [{"advertiser_id": OTHER, "query": kw.text}],
    }


async def test_every_tool_refuses_another_advertisers_ids(tiny_world_path):
    store = MarketStore.open(tiny_world_path)
    calls = foreign_calls(store.scoped(OTHER))
    other_ids = {c.id for c in store.scoped(OTHER).campaigns()} | {
        k.id for k in store.scoped(OTHER).keywords()
    }
    store.close()
    served = {s.name for s in tool_specs()}
    assert served <= set(calls), f"add foreign-id calls for {served - set(calls)}"
    async with connect_in_memory(tiny_world_path, ME, cache=ToolCache(enabled=False)) as session:
        for name in sorted(served):
            for args in calls[name]:
                res = await session.call_tool(name, args)
                body = json.loads(res.content[0].text)
                assert res.isError, (name, args, body)
                err = body["error"]
                assert err["type"] in {"UnknownIdError", "ScopeError", "ConfirmationError"}, (name, args, err)
                assert not any(i in json.dumps(body) and i not in json.dumps(args) for i in other_ids)


async def test_unscoped_results_hold_only_own_ids(tiny_world_path):
    store = MarketStore.open(tiny_world_path)
    other = store.scoped(OTHER)
    other_ids = {c.id for c in other.campaigns()} | {k.id for k in other.keywords()} | {OTHER}
    other_words = [other.keywords()[0].text, other.campaigns()[0].name]
    store.close()
    async with connect_in_memory(tiny_world_path, ME, cache=ToolCache(enabled=False)) as session:
        for name, args in [
            ("account_overview", {}),
            ("performance", {"level": "keyword", "limit": 100}),
            ("search_terms", {"limit": 100}),
            ("negative_ideas", {"limit": 50}),
            *[("find", {"query": words, "limit": 20}) for words in other_words],  # their names find only mine
        ]:
            text = json.dumps(await call(session, name, args))
            assert not [i for i in other_ids if f'"{i}"' in text], name


@pytest.mark.parametrize("label", ["adv_0002", "admin"])
async def test_scope_is_fixed_at_connect_time(tiny_world_path, label):
    scope = Scope.admin_scope() if label == "admin" else Scope.advertiser(label)
    async with connect_in_memory(tiny_world_path, scope, cache=ToolCache(enabled=False)) as session:
        args = {"advertiser_id": OTHER} if scope.admin else {}
        out = await call(session, "account_overview", args)
    assert out["advertiser"]["id"] == OTHER
