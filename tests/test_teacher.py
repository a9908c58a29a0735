"""agent/teacher.py: the expert policy over real MCP tools on a small generated world."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agent.teacher import PHRASES, Intent, Kind, decide, detect, write_dialogues

logging.getLogger("mcp").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from tools.market.data_model import WorldConfig
    from tools.market.generate import generate_world_file

    path = tmp_path_factory.mktemp("world") / "world.sqlite"
    generate_world_file(WorldConfig(n_advertisers=3, days=21, seed=11), path)
    return path


def test_every_phrasing_is_recognised_as_its_intent():
    slots = {"kw": "kw_0000012", "cmp": "cmp_00003", "value": "0.75"}
    for intent, phrases in PHRASES.items():
        for phrase in phrases:
            text = phrase.format(**slots)
            expected = Intent.PAUSE if intent is Intent.PAUSE else intent
            assert detect(text) is expected, (text, detect(text))


def test_refusals_make_no_tool_call():
    tools = {"account_overview", "performance", "propose_change"}
    for text in ["Write me a poem about summer.", "Show me the campaigns of adv_0042.",
                 "How do I get fake reviews for my products?"]:
        message = decide([{"role": "user", "content": text}], tools, scope="adv_0001")
        assert not message.get("tool_calls") and message["content"]
    own = decide([{"role": "user", "content": "How is my account doing?"}], tools, scope="adv_0001")
    assert own["tool_calls"][0]["function"]["name"] == "account_overview"


def test_benign_look_alikes_are_answered_with_data():
    """Off-topic words inside an advertising question ("weather season", "translate my ACoS") are no refusal."""
    tools = {"account_overview", "performance", "kpi_change", "propose_change"}
    for text in ["Is the weather season hurting my sales? Why did my sales change last week?",
                 "Translate my ACoS into plain English for me - is it good for my account?",
                 "Tell me a joke about my campaigns' ACoS, then how they are doing."]:
        message = decide([{"role": "user", "content": text}], tools, scope="adv_0001")
        assert message.get("tool_calls"), (text, message["content"])
    for text in ["What's the weather in Paris tomorrow?", "Tell me a joke.", "Give me stock tips for next week."]:
        message = decide([{"role": "user", "content": text}], tools, scope="adv_0001")
        assert not message.get("tool_calls") and "I can only help with your advertising" in message["content"], text


def test_apply_needs_a_pending_proposal():
    message = decide([{"role": "user", "content": "Yes, apply it."}], {"apply_change"})
    assert not message.get("tool_calls") and "no pending proposal" in message["content"]


async def test_dialogues_cover_every_kind_with_grounded_answers(world):
    from agent.guardrails.output import extract_numbers, is_grounded, source_numbers
    from tools.mcp_server import Scope, connect_in_memory, openai_tools
    from training.data import DialogueRecord, message_problems, tool_names_of

    tools = openai_tools()
    async with connect_in_memory(world, Scope.advertiser("adv_0001")) as session:
        dialogues = await write_dialogues(session, "adv_0001", 2 * len(Kind), seed=5, tools=tools, kinds=list(Kind))
    assert {d["kind"] for d in dialogues} == {k.value for k in Kind}
    for d in dialogues:
        record = DialogueRecord.model_validate({**d, "split": "train"})
        assert message_problems(record.messages, tool_names_of(record.tools)) == []
        msgs = record.messages
        calls = [c["function"]["name"] for m in msgs for c in m.get("tool_calls") or []]
        if d["kind"] == "refuse":
            assert calls == []
        if "apply_change" in calls:  # only after the user confirmed a proposal
            i = next(i for i, m in enumerate(msgs) for c in m.get("tool_calls") or [] if c["function"]["name"] == "apply_change")
            last_user = max(j for j in range(i) if msgs[j]["role"] == "user")
            assert detect(msgs[last_user]["content"]) is Intent.CONFIRM
            assert any(c == "propose_change" for c in calls[: calls.index("apply_change")])
        # every number in every answer is grounded in this dialogue's tool results or the user's words
        tool_texts = [m["content"] for m in msgs if m["role"] == "tool"]
        tool_texts += [c["function"]["arguments"] for m in msgs for c in m.get("tool_calls") or []]
        sources = source_numbers(tool_texts, [m["content"] for m in msgs if m["role"] == "user"])
        for m in msgs:
            if m["role"] == "assistant" and m.get("content"):
                bad = [n.raw for n in extract_numbers(m["content"]) if not is_grounded(n, sources)]
                assert bad == [], (d["kind"], m["content"], bad)
    recommend = [d for d in dialogues if d["kind"] == "recommend" and d["action"]]
    assert recommend and all(isinstance(d["action"]["value"], float) for d in recommend)
    recover = [d for d in dialogues if d["kind"] == "recover"]
    assert all(any('"error"' in (m["content"] or "") for m in d["messages"] if m["role"] == "tool") for d in recover)
    assert len({json.dumps(d["messages"][1]["content"]) for d in dialogues}) > len(Kind)  # varied phrasings


def test_teacher_as_a_langchain_chat_model():
    from langchain_core.messages import HumanMessage, ToolMessage

    from agent.teacher import make_chat_model

    tools = [{"type": "function", "function": {"name": "performance", "description": "metrics",
                                               "parameters": {"type": "object", "properties": {}}}}]
    model = make_chat_model().bind_tools(tools)
    first = model.invoke([HumanMessage("Which keyword has the worst ACoS?")])
    assert first.tool_calls[0]["name"] == "performance" and first.tool_calls[0]["args"]["sort"] == "acos"
    result = {"totals": {"acos": 0.2}, "rows": [
        {"id": "kw_0000007", "name": "desk lamp", "spend": 50.0, "sales": 100.0, "orders": 4, "acos": 0.5, "bid": 0.9}]}
    answer = model.invoke([HumanMessage("Which keyword has the worst ACoS?"), first,
                           ToolMessage(json.dumps(result), tool_call_id=first.tool_calls[0]["id"])])
    assert not answer.tool_calls and "kw_0000007" in answer.content and "50.0%" in answer.content


async def _advise(world: Path, advertiser: str, question: str) -> dict:
    """The teacher's proposal (propose_change arguments) for one question over real MCP tools."""
    from agent.teacher import run_policy
    from tools.mcp_server import Scope, connect_in_memory, openai_tools
    from tools.mcp_server.cache import ToolCache

    available = {t["function"]["name"] for t in openai_tools()}
    async with connect_in_memory(world, Scope.advertiser(advertiser), cache=ToolCache(enabled=False)) as session:
        async def call_tool(name: str, arguments: dict) -> str:
            result = await session.call_tool(name, arguments)
            return "\n".join(getattr(b, "text", "") for b in result.content if getattr(b, "type", "") == "text")

        added = await run_policy(call_tool, [{"role": "user", "content": question}], available, scope=advertiser)
    proposals = [json.loads(c["function"]["arguments"]) for m in added for c in m.get("tool_calls") or []
                 if c["function"]["name"] == "propose_change"]
    assert proposals and not added[-1].get("tool_calls"), added[-1]
    return proposals[-1]


async def test_budget_advice_raises_a_capped_profitable_campaign_and_the_judge_agrees(world):
    """The advertiser whose best budget move is a raise (a budget-capped campaign that earns more with more
    budget) gets that raise, and following it earns most of what the oracle's best budget change earns."""
    from evals.outcomes import Account, Change, change_gain, load_account, oracle
    from evals.scenario import OracleKind

    found: list[tuple[float, str, Account]] = []
    for adv in ("adv_0001", "adv_0002", "adv_0003"):
        acct = load_account(world, adv)
        gain, best = oracle(acct, OracleKind.BEST_SINGLE_BUDGET)
        if best is not None and best.value is not None and best.value > acct.campaigns[best.entity].daily_budget:
            found.append((gain, adv, acct))
    assert found, "the world has a budget-capped campaign that pays to raise"
    best_gain, adv, acct = max(found, key=lambda f: f[0])
    proposal = await _advise(world, adv, "Should I raise a budget somewhere?")
    assert proposal["action"] == "set_budget"
    assert proposal["value"] > acct.campaigns[proposal["id"]].daily_budget  # a raise, not a reshuffle
    advised = change_gain(acct, Change(action="set_budget", entity=proposal["id"], value=proposal["value"]))
    assert advised is not None and advised >= 0.8 * best_gain > 0


async def test_acos_advice_cuts_the_bid_that_pays_most(world):
    """'Lower my ACoS': a bid cut (never a raise) chosen by simulated gain inside the keyword's campaign, which
    the judge scores at a large share of the best single bid change."""
    from evals.outcomes import Change, change_gain, load_account, oracle
    from evals.scenario import OracleKind

    acct = load_account(world, "adv_0002")
    best_gain, _ = oracle(acct, OracleKind.BEST_SINGLE_BID)
    proposal = await _advise(world, "adv_0002", "How can I lower my ACoS?")
    assert proposal["action"] in ("set_bid", "pause")
    if proposal["action"] == "set_bid":
        assert proposal["value"] < acct.keywords[proposal["id"]].bid
    gain = change_gain(acct, Change(**{k: v for k, v in proposal.items() if k in ("action", "value")},
                                    entity=proposal["id"]))
    assert gain is not None and gain >= 0.5 * best_gain > 0
