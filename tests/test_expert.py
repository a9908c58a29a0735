"""The expert policy, given intents: the calls it makes, a question back on an error, and its advice judged by
the simulator (the change it proposes earns at least as much as the alternatives it compared)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest

from agent import expert
from agent.intents import Intent, IntentKind
from tools.market.enums import Status
from tools.mcp_server import call, connect_in_memory
from tools.mcp_server.cache import ToolCache
from tools.mcp_server.results import compact
from tools.mcp_server.schemas import AdvertiserInfo, CampaignBrief, DateRange, Metrics, OverviewOut
from tools.optimize.models import BudgetAllocation, CampaignAllocation, CampaignLimit, Objective
from tools.uplift.models import Attribution, Contribution

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


def _overview(*campaigns: CampaignBrief) -> dict[str, Any]:
    """A whole account_overview result (as the tool writes it) holding `campaigns`."""
    day = dt.date(2026, 3, 1)
    metrics = Metrics(
        impressions=1000,
        clicks=50,
        spend=40.0,
        orders=4,
        sales=120.0,
        ctr=0.05,
        cpc=0.8,
        cvr=0.08,
        acos=0.3333,
    )
    out = OverviewOut(
        advertiser=AdvertiserInfo(id=ADV, name="Acme", category="fitness", target_acos=0.3),
        history=DateRange(start=day, end=day + dt.timedelta(days=89)),
        period=DateRange(start=day + dt.timedelta(days=60), end=day + dt.timedelta(days=89)),
        totals=metrics,
        organic_sales=300.0,
        counts={"campaigns": len(campaigns)},
        campaigns=list(campaigns),
        experiments=[],
    )
    return out.model_dump(mode="json")


def test_budget_advice_held_for_uncertainty_says_so():
    """allocate_budget keeps a budget whose best move's range includes a loss (held_for_uncertainty): the answer
    says the estimate likes the move but it does not hold up over the markets the history leaves possible, with the figures of the result."""
    from agent.expert import Done, step
    from agent.intents import Intent, IntentKind

    brief = CampaignBrief(
        id="cmp_00005",
        name="SP - Auto - Dumbbells",
        status=Status.ENABLED,
        daily_budget=554.0,
        spend=3000.0,
        sales=9000.0,
        acos=0.3333,
        budget_capped_days=0,
    )
    held = CampaignAllocation(
        campaign_id="cmp_00005",
        budget=554.0,
        current_budget=554.0,
        spend=7000.0,
        incremental_sales=9000.0,
        incremental_profit=1500.0,
        saturation_budget=900.0,
        marginal_value=0.4,
        limit=CampaignLimit.TOTAL_BUDGET,
        best_budget=554.0,
        best_gain=0.0,
        point_best_budget=0.0,
        point_best_gain=397.2,
        held_for_uncertainty=True,
    )

    def alloc(campaign: CampaignAllocation) -> dict[str, Any]:
        return BudgetAllocation(
            objective=Objective.INCREMENTAL_PROFIT,
            total_budget=554.0,
            allocated=554.0,
            n_days=14,
            objective_value=1500.0,
            current_value=1500.0,
            total_budget_binds=True,
            binding=[],
            campaigns=[campaign],
        ).model_dump(mode="json")

    done = [Done("account_overview", {}, _overview(brief)), Done("allocate_budget", {}, alloc(held))]
    text = step(Intent(kind=IntentKind.FIX_BUDGET), done)["content"]
    assert "keep your budgets" in text and "$397.20" in text and "does not hold up" in text
    assert "SP - Auto - Dumbbells" in text and "$554.00" in text
    plain = held.model_copy(update={"held_for_uncertainty": False, "point_best_gain": None})
    done[1] = Done("allocate_budget", {}, alloc(plain))
    assert "the simulator finds no campaign" in step(Intent(kind=IntentKind.FIX_BUDGET), done)["content"]


def test_a_figure_the_tool_wrote_as_null_is_no_figure():
    """kpi_change of a KPI that did not move: every driver's share of the change is null (no share of nothing), and
    an ACoS without sales is NaN, which the result writes as null: the answer says n/a, not 'nan%' or 'None'."""
    from agent.expert import Done, step
    from agent.intents import Intent, IntentKind, Kpi

    result = compact(
        Attribution(
            kpi="acos",
            before=math.nan,
            after=0.25,
            change=math.nan,
            method="shapley",
            contributions=[
                Contribution(name="cpc", value=0.0, share=None),
                Contribution(name="cvr", value=0.0, share=None),
            ],
        ).model_dump(mode="json")
    )
    assert result["before"] is None and result["contributions"][0]["share"] is None
    text = step(Intent(kind=IntentKind.KPI_CHANGE, kpi=Kpi.ACOS), [Done("kpi_change", {}, result)])["content"]
    assert text.startswith("Your ACoS went from n/a to 25.0%") and "0% of the change" in text
    assert "nan" not in text.lower() and "None" not in text


def test_a_failure_without_a_type_says_what_the_tool_said():
    """An error from outside the tool server (a client's, a guardrail's) has no class: the answer gives its words,
    trimmed, and never 'None'."""
    from agent.expert import Done, recover

    timed_out = Done("performance", {"level": "keyword"}, {"error": "timed out after 30 s."})
    assert recover([timed_out])["content"] == (
        "I couldn't do that: the performance tool refused it (timed out after 30 s)."
    )
    long = Done("performance", {}, {"error": {"message": "word " * 100}})
    text = recover([long])["content"]
    assert "None" not in text and len(text) < 200 and text.endswith("...).")
    silent = Done("what_if", {}, {"error": {}})
    text = recover([silent])["content"]
    assert "None" not in text and "what if tool" in text and text.endswith("?")
    # the graph's own check of the arguments refused an id of another account: said as the tools' scope error is
    foreign = Done(
        "recommend_bid",
        {"keyword_id": "kw_0000043"},
        {
            "error": {
                "message": "keyword_id: 'kw_0000043' is not valid under any of the given schemas; "
                "keyword_id: kw_0000043 is not one of adv_0001's ids"
            }
        },
    )
    assert recover([foreign])["content"] == (
        "kw_0000043 is not in your account, so I can't use it. Could you check the name or id?"
    )


async def test_an_ad_holdouts_incremental_roas_is_said_in_figures(tiny_world_path: Path) -> None:
    """The experiment-effect answer gives each ROAS as its figure and interval, as the tool wrote them (it printed
    the whole estimate block, "{'estimate': 3.47, 'std_error': ...}")."""
    from tools.market.store import MarketStore

    with MarketStore.open(tiny_world_path) as store:
        experiments = [e.id for e in store.scoped(ADV).experiments()]
    for experiment in experiments:
        messages = await _run(
            tiny_world_path, Intent(kind=IntentKind.EXPERIMENT_EFFECT, experiment=experiment)
        )
        result = json.loads(messages[-2]["content"])
        inc = result.get("incrementality")
        if inc is None:
            continue
        answer = messages[-1]["content"]
        assert "{" not in answer and "estimate" not in answer, answer
        roas = inc["incremental_roas"]
        assert (
            f"Incremental ROAS is {roas['estimate']} (95% CI {roas['ci_low']} to {roas['ci_high']})" in answer
        )
        assert f"attributed ROAS of {inc['attributed_roas']['estimate']}" in answer
        break
    else:
        pytest.fail("the tiny world has no ad holdout to read")
