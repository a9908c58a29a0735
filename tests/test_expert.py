"""The expert policy, given intents: the calls it makes, a question back on an error, and its advice judged by
the simulator (the change it proposes earns at least as much as the alternatives it compared)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent import expert
from agent.intents import Intent, IntentKind
from tools.mcp_server import call, connect_in_memory
from tools.mcp_server.cache import ToolCache

ADV = "adv_0001"


async def _run(world: Path, intent: Intent) -> list[dict[str, Any]]:
    async with connect_in_memory(world, ADV, cache=ToolCache(enabled=False)) as session:

        async def call_tool(name: str, args: dict[str, Any]) -> str:
            result = await session.call_tool(name, args)
            return "".join(getattr(b, "text", "") for b in result.content)

        return await expert.run(intent, call_tool, scope=ADV)


def _calls(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for m in messages
        for c in m.get("tool_calls") or []
    ]


async def test_the_words_of_the_intent_go_to_the_tool(tiny_world_path: Path) -> None:
    from tools.market.store import MarketStore

    with MarketStore.open(tiny_world_path) as store:
        kw = next(k for k in store.scoped(ADV).keywords() if ":" not in k.text)
    messages = await _run(tiny_world_path, Intent(kind=IntentKind.WHAT_IF_BID, keyword=kw.id, value=1.5))
    assert _calls(messages) == [("what_if", {"change": "bid", "id": kw.id, "value": 1.5})]
    assert "$1.50" in messages[-1]["content"]


@pytest.mark.parametrize(
    "kind", [IntentKind.REFUSE_OFF_TOPIC, IntentKind.REFUSE_HARMFUL, IntentKind.GREETING]
)
async def test_refusals_and_greetings_call_nothing(tiny_world_path: Path, kind: IntentKind) -> None:
    messages = await _run(tiny_world_path, Intent(kind=kind))
    assert not _calls(messages) and messages[-1]["content"]


async def test_a_name_that_matches_nothing_ends_in_a_question(tiny_world_path: Path) -> None:
    messages = await _run(tiny_world_path, Intent(kind=IntentKind.BEST_BID, keyword="quantum flux capacitor"))
    assert "quantum flux capacitor" in messages[-1]["content"] and "?" in messages[-1]["content"]


async def test_fix_acos_proposes_the_cut_that_earns_most(tiny_world_path: Path) -> None:
    messages = await _run(tiny_world_path, Intent(kind=IntentKind.FIX_ACOS))
    calls = _calls(messages)
    recs = [args["keyword_id"] for name, args in calls if name == "recommend_bid"]
    proposed = [args for name, args in calls if name == "propose_change"]
    assert calls[0][0] == "performance" and recs
    if proposed:  # the chosen keyword is one of those compared, and its gain is the largest of the cuts
        async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
            results = {k: await call(session, "recommend_bid", {"keyword_id": k}) for k in recs}
        cuts = {
            k: r["gain"]["mean"]
            for k, r in results.items()
            if r.get("gain") and r["bid"] < r["current_bid"] - 0.005
        }
        assert proposed[0]["id"] == max(cuts, key=lambda k: cuts[k])


async def test_apply_best_bid_proposes_the_recommended_bid_and_waits(tiny_world_path: Path) -> None:
    from tools.market.store import MarketStore

    with MarketStore.open(tiny_world_path) as store:
        keywords = [k for k in store.scoped(ADV).keywords() if ":" not in k.text]
    for kw in keywords:
        messages = await _run(tiny_world_path, Intent(kind=IntentKind.APPLY_BEST_BID, keyword=kw.id))
        calls = _calls(messages)
        assert calls[0] == ("recommend_bid", {"keyword_id": kw.id})
        rec = json.loads(messages[1]["content"])
        if len(calls) == 1:  # already at its best bid (or none meets the goal): said so, nothing proposed
            assert (
                "best bid" in messages[-1]["content"].lower() or "no bid" in messages[-1]["content"].lower()
            )
            continue
        assert calls[1] == (
            "propose_change",
            {"action": "set_bid", "id": kw.id, "value": round(rec["bid"], 2)},
        )
        assert "Proposed:" in messages[-1]["content"] and "confirm" in messages[-1]["content"]
        break
    else:
        pytest.fail("no keyword of the tiny world has a best bid away from its current one")


def test_a_name_in_an_account_with_nothing_of_its_kind_is_answered_so():
    """ "was the spring coupon worth it?" in an account without experiments: said plainly, not "give me its exact
    name"; an unknown name in an account that has things of its kind still gets the question back."""
    from agent.expert import Done, recover

    none = Done(
        "experiment_uplift",
        {"experiment_id": "the spring coupon"},
        {
            "error": {
                "type": "NoMatchError",
                "message": "no experiment of adv_0002 matches 'the spring coupon'; the account has no experiments",
                "field": "experiment_id",
            }
        },
    )
    assert recover([none])["content"] == (
        "Your account has no experiments yet, so there is nothing to match 'the spring coupon' to."
    )
    unknown = Done(
        "recommend_bid",
        {"keyword_id": "quantum"},
        {
            "error": {
                "type": "NoMatchError",
                "message": "no keyword of adv_0002 matches 'quantum'; the closest names are 'yoga mat' (kw_0000001)",
                "field": "keyword_id",
            }
        },
    )
    assert "Could you give me its exact name" in recover([unknown])["content"]


def test_budget_advice_held_for_uncertainty_says_so():
    """allocate_budget keeps a budget whose best move's range includes a loss (held_for_uncertainty): the answer
    says the estimate likes the move but the history cannot tell it from a loss, with the figures of the result."""
    from agent.expert import Done, step
    from agent.intents import Intent, IntentKind

    overview = {"campaigns": [{"id": "cmp_00005", "name": "SP - Auto - Dumbbells", "budget_capped_days": 0}]}
    alloc = {
        "campaigns": [
            {
                "campaign_id": "cmp_00005",
                "current_budget": 554.0,
                "best_budget": 554.0,
                "best_gain": 0.0,
                "point_best_budget": 0.0,
                "point_best_gain": 397.2,
                "held_for_uncertainty": True,
            }
        ]
    }
    done = [Done("account_overview", {}, overview), Done("allocate_budget", {}, alloc)]
    text = step(Intent(kind=IntentKind.FIX_BUDGET), done)["content"]
    assert "keep your budgets" in text and "$397.20" in text and "cannot tell it from a loss" in text
    assert "SP - Auto - Dumbbells" in text and "$554.00" in text
    alloc["campaigns"][0]["held_for_uncertainty"] = False
    alloc["campaigns"][0]["point_best_gain"] = None
    assert "the simulator finds no campaign" in step(Intent(kind=IntentKind.FIX_BUDGET), done)["content"]
