"""The MCP server over an in-memory session: data tools against the store, errors, write actions."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tools.market.store import MarketStore
from tools.mcp_server import Scope, call, connect_in_memory, tool_specs
from tools.mcp_server.cache import ToolCache

ADV, OTHER = "adv_0001", "adv_0002"


def no_cache() -> ToolCache:
    return ToolCache(enabled=False)


@pytest.fixture
def store(tiny_world_path):
    s = MarketStore.open(tiny_world_path)
    yield s
    s.close()


async def test_lists_every_tool_with_hints(tiny_world_path):
    async with connect_in_memory(tiny_world_path, ADV, cache=no_cache()) as session:
        listed = {t.name: t for t in (await session.list_tools()).tools}
    assert set(listed) == {s.name for s in tool_specs()}
    assert listed["apply_change"].annotations.destructiveHint is True
    assert listed["apply_change"].annotations.readOnlyHint is False
    assert listed["performance"].annotations.readOnlyHint is True
    assert "advertiser_id" not in listed["performance"].inputSchema["properties"]


async def test_overview_matches_the_store(tiny_world_path, store):
    async with connect_in_memory(tiny_world_path, ADV, cache=no_cache()) as session:
        out = await call(session, "account_overview")
    adv = store.scoped(ADV)
    days = adv.campaign_days(out["period"]["start"], out["period"]["end"])
    assert out["advertiser"]["id"] == ADV
    assert out["totals"]["clicks"] == sum(d.clicks for d in days)
    assert out["totals"]["spend"] == pytest.approx(sum(d.spend for d in days), abs=0.01)
    assert {c["id"] for c in out["campaigns"]} == {c.id for c in adv.campaigns()}
    assert out["counts"]["keywords"] == len(adv.keywords())
    assert [e["id"] for e in out["experiments"]] == [e.id for e in adv.experiments()]


async def test_performance_levels_agree_and_pages_cover_all_rows(tiny_world_path, store):
    async with connect_in_memory(tiny_world_path, ADV, cache=no_cache()) as session:
        by_level = {
            lvl: await call(session, "performance", {"level": lvl}) for lvl in ("ad_group", "keyword")
        }
        rows, cursor = [], None
        while True:
            args = {"level": "keyword", "limit": 5, **({"cursor": cursor} if cursor else {})}
            out = await call(session, "performance", args)
            rows += out["rows"]
            cursor = out["next_cursor"]
            if cursor is None:
                break
    assert by_level["ad_group"]["totals"] == by_level["keyword"]["totals"]
    assert len(rows) == out["total_rows"] == len(store.scoped(ADV).keywords())
    assert len({r["id"] for r in rows}) == len(rows)
    assert sum(r["clicks"] for r in rows) == by_level["keyword"]["totals"]["clicks"]
    spends = [r["spend"] for r in rows]
    assert spends == sorted(spends, reverse=True)


async def test_performance_daily_campaign_rows(tiny_world_path, store):
    camp = store.scoped(ADV).campaigns()[0].id
    async with connect_in_memory(tiny_world_path, ADV, cache=no_cache()) as session:
        out = await call(
            session,
            "performance",
            {
                "level": "campaign",
                "campaign_id": camp,
                "daily": True,
                "start": "2026-06-10",
                "end": "2026-06-16",
            },
        )
    assert out["total_rows"] == 7
    assert {r["date"] for r in out["rows"]} == {str(dt.date(2026, 6, d)) for d in range(10, 17)}
    assert all(r["id"] == camp and r["daily_budget"] > 0 for r in out["rows"])


async def test_search_terms_never_expose_hidden_parameters(tiny_world_path, store):
    async with connect_in_memory(tiny_world_path, ADV, cache=no_cache()) as session:
        out = await call(session, "search_terms", {"limit": 100})
        some = await call(session, "search_terms", {"min_clicks": 5, "limit": 100})
    text = json.dumps(out)
    for hidden in ("relevance", "share", "cvr_", "rival", "quality", "organic_rate", "cannibal"):
        assert hidden not in text
    assert out["total_rows"] > 0
    assert all(r["clicks"] >= 5 for r in some["rows"])
    assert some["total_rows"] <= out["total_rows"]
    terms = set(store.scoped(ADV).query_texts().values())
    assert {(r["keyword_id"], r["term"]) for r in out["rows"]} <= terms


async def test_bad_input_gives_structured_errors_and_the_server_keeps_serving(tiny_world_path):
    async with connect_in_memory(tiny_world_path, ADV, cache=no_cache()) as session:
        res = await session.call_tool("performance", {"level": "keyword", "start": "2025-01-01"})
        assert res.isError
        err = json.loads(res.content[0].text)["error"]
        assert err["type"] == "InvalidInputError" and err["field"] == "start"
        assert "2026-06-01" in err["allowed"]

        err = (await call(session, "performance", {"level": "brand"}))["error"]
        assert err["field"] == "level" and "campaign" in err["allowed"]

        err = (await call(session, "performance", {"level": "keyword", "colour": "red"}))["error"]
        assert err["field"] == "colour"

        err = (await call(session, "performance", {"level": "keyword", "limit": 1000}))["error"]
        assert err["field"] == "limit" and "100" in err["allowed"]

        err = (await call(session, "performance", {"level": "keyword", "cursor": "zzz"}))["error"]
        assert err["field"] == "cursor"

        err = (await call(session, "no_such_tool"))["error"]
        assert err["type"] == "UnknownToolError" and "performance" in err["allowed"]

        ok = await call(session, "performance", {"level": "campaign"})
        assert "error" not in ok and ok["total_rows"] > 0


async def test_admin_session_names_the_advertiser_per_call(tiny_world_path):
    async with connect_in_memory(tiny_world_path, Scope.admin_scope(), cache=no_cache()) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "advertiser_id" in tools["performance"].inputSchema["required"]
        err = (await call(session, "account_overview"))["error"]
        assert err["type"] == "ScopeError" and err["field"] == "advertiser_id"
        a = await call(session, "account_overview", {"advertiser_id": ADV})
        b = await call(session, "account_overview", {"advertiser_id": OTHER})
        assert (a["advertiser"]["id"], b["advertiser"]["id"]) == (ADV, OTHER)
        err = (await call(session, "account_overview", {"advertiser_id": "adv_9999"}))["error"]
        assert err["type"] == "UnknownIdError"


# --- write actions -----------------------------------------------------------------------------------------


async def test_propose_changes_nothing_and_apply_is_audited_and_idempotent(writable_world_path):
    store = MarketStore.open(writable_world_path)
    kw = store.scoped(ADV).keywords()[0]
    version = store.data_version
    new_bid = round(kw.bid * 1.5, 2)
    async with connect_in_memory(writable_world_path, ADV, cache=no_cache(), actor="tester") as session:
        prop = await call(session, "propose_change", {"action": "set_bid", "id": kw.id, "value": new_bid})
        assert prop["changes"] == [
            {"id": kw.id, "field": "bid", "before": kw.bid, "after": new_bid, "name": kw.text}
        ]
        assert prop["token"].startswith("cf_") and prop["expires_in_s"] > 0
        assert store.data_version == version
        assert store.scoped(ADV).keywords_by_id([kw.id])[0].bid == kw.bid

        done = await call(session, "apply_change", {"token": prop["token"]})
        assert done["applied"] and not done["already_applied"]
        assert store.scoped(ADV).keywords_by_id([kw.id])[0].bid == new_bid
        assert store.data_version != version
        [rec] = done["audit"]
        assert rec["entity"] == kw.id and rec["action"] == "set_bid"
        assert rec["before"] == kw.bid and rec["after"] == new_bid
        assert "tester" in rec["actor"] and ADV in rec["actor"] and rec["at"]

        again = await call(session, "apply_change", {"token": prop["token"]})
        assert again["already_applied"] and again["changes"] == done["changes"]
        assert len(store.scoped(ADV).audit_log()) == 1
    store.close()


async def test_apply_refuses_without_a_valid_token(writable_world_path):
    store = MarketStore.open(writable_world_path)
    kw = store.scoped(ADV).keywords()[0]
    async with connect_in_memory(writable_world_path, ADV, cache=no_cache()) as session:
        err = (await call(session, "apply_change", {"token": "cf_0000000000"}))["error"]
        assert err["type"] == "ConfirmationError" and err["field"] == "token"
        err = (await call(session, "apply_change", {}))["error"]
        assert err["field"] == "token"
        prop = await call(session, "propose_change", {"action": "set_bid", "id": kw.id, "value": 0.77})
    # another advertiser's session cannot use it
    async with connect_in_memory(writable_world_path, OTHER, cache=no_cache()) as session:
        err = (await call(session, "apply_change", {"token": prop["token"]}))["error"]
        assert err["type"] == "ConfirmationError"
    # the bid moved after the proposal: apply refuses instead of overwriting
    store.scoped(ADV).set_bid(kw.id, 0.55, "someone")
    async with connect_in_memory(writable_world_path, ADV, cache=no_cache()) as session:
        err = (await call(session, "apply_change", {"token": prop["token"]}))["error"]
        assert err["type"] == "ConfirmationError" and "propose again" in err["message"]
    assert store.scoped(ADV).keywords_by_id([kw.id])[0].bid == 0.55
    store.close()


async def test_expired_token_is_refused(writable_world_path, monkeypatch):
    from tools.mcp_server import actions

    store = MarketStore.open(writable_world_path)
    kw = store.scoped(ADV).keywords()[0]
    monkeypatch.setattr(actions, "PROPOSAL_TTL_S", -1)  # already expired when made
    async with connect_in_memory(writable_world_path, ADV, cache=no_cache()) as session:
        prop = await call(session, "propose_change", {"action": "set_bid", "id": kw.id, "value": 0.66})
        err = (await call(session, "apply_change", {"token": prop["token"]}))["error"]
    assert err["type"] == "ConfirmationError" and "expired" in err["message"]
    assert store.scoped(ADV).keywords_by_id([kw.id])[0].bid == kw.bid
    store.close()


async def test_budget_pause_and_add_keywords_round_trip(writable_world_path):
    store = MarketStore.open(writable_world_path)
    adv = store.scoped(ADV)
    camp, group = adv.campaigns()[0], adv.ad_groups()[0]
    async with connect_in_memory(writable_world_path, ADV, cache=no_cache()) as session:
        for args in (
            {"action": "set_budget", "id": camp.id, "value": camp.daily_budget + 10},
            {"action": "pause", "id": camp.id},
            {
                "action": "add_keywords",
                "id": group.id,
                "keywords": [
                    {"text": "brand new widget", "bid": 0.9},
                    {"text": "other gadget", "match_type": "phrase"},
                ],
            },
            {"action": "add_negatives", "id": group.id, "keywords": [{"text": "free widget"}]},
        ):
            prop = await call(session, "propose_change", args)
            assert "error" not in prop, prop
            done = await call(session, "apply_change", {"token": prop["token"]})
            assert done["applied"], done
        err = (await call(session, "propose_change", {"action": "pause", "id": camp.id}))["error"]
        assert "already paused" in err["message"]
        err = (await call(session, "propose_change", {"action": "set_bid", "id": camp.id, "value": 1}))[
            "error"
        ]
        assert err["type"] == "UnknownIdError" and err["field"] == "id"
        err = (await call(session, "propose_change", {"action": "set_budget", "id": camp.id}))["error"]
        assert err["field"] == "value"
    adv = store.scoped(ADV)
    now = {c.id: c for c in adv.campaigns()}[camp.id]
    assert now.daily_budget == camp.daily_budget + 10 and now.status == "paused"
    texts = {(k.text, k.match_type.value, k.bid) for k in adv.keywords(ad_group_id=group.id)}
    assert ("brand new widget", "exact", 0.9) in texts
    assert ("other gadget", "phrase", group.default_bid) in texts
    assert "free widget" in {n.text for n in adv.negatives(ad_group_id=group.id)}
    assert len(adv.audit_log()) == 5  # one row per keyword added
    store.close()


# --- fuzzing: any arguments give a result or a structured error, never a crash ----------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

KNOWN_ERRORS = {"InvalidInputError", "UnknownIdError", "ScopeError", "ConfirmationError"}
json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["2026-06-05", "2026-13-45", "kw_0000001", "cmp_00001", "ag_000001", "keyword", "set_bid"]
    ),
    st.lists(st.text(max_size=5), max_size=3),
    st.lists(st.fixed_dictionaries({"text": st.text(max_size=6)}), max_size=2),
)
FUZZED = {
    "performance": [
        "level",
        "start",
        "end",
        "campaign_id",
        "ad_group_id",
        "daily",
        "sort",
        "limit",
        "cursor",
    ],
    "search_terms": ["keyword_id", "min_clicks", "sort", "limit", "start"],
    "propose_change": ["action", "id", "value", "keywords"],
    "what_if": ["change", "id", "value", "days"],
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tool=st.sampled_from(sorted(FUZZED)),
    data=st.data(),
)
def test_fuzzed_arguments_never_crash_the_server(tiny_world_path, tool, data):
    import asyncio

    names = data.draw(st.lists(st.sampled_from([*FUZZED[tool], "bogus"]), max_size=5, unique=True))
    args = {name: data.draw(json_values) for name in names}

    async def run():
        async with connect_in_memory(tiny_world_path, ADV, cache=no_cache()) as session:
            out = await call(session, tool, args)
            if "error" in out:
                assert out["error"]["type"] in KNOWN_ERRORS, out
                assert out["error"]["message"]
            ok = await call(session, "performance", {"level": "campaign"})
            assert "error" not in ok

    asyncio.run(run())
