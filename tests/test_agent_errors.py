"""Bad input and failing parts end a turn cleanly with a clear message, and the thread stays consistent."""

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.runtime import Runtime

from agent.backends.hermes import parse_tool_calls
from agent.configuration import AgentConfig, Limits
from agent.graph import Agent, AgentError, _normalize, tools
from tests.test_agent_graph import world, world_template  # noqa: F401  (fixtures)


def cfg(world_path, **kw):
    base = {
        "advertiser_id": "adv_0001",
        "backend": "rules",
        "store_path": world_path,
        "checkpointer": "memory",
    }
    return AgentConfig(**{**base, **kw})


def well_formed(messages):
    """Every tool call answered by a tool message; the thread ends with an answer."""
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    calls = {c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    return calls <= answered and isinstance(messages[-1], AIMessage) and not messages[-1].tool_calls


async def test_empty_and_giant_messages(world):  # noqa: F811
    async with Agent(cfg(world)) as agent:
        empty = await agent.ask("t", "   ")
        giant = await agent.ask("t", "why " * 5000)
        assert "Please type a question" in empty.text
        assert "too long" in giant.text and "4000" in giant.text
        ok = await agent.ask("t", "How is my account doing?")
        assert ok.text.startswith("From ") and well_formed(await agent.messages("t"))


async def test_unknown_thread(world):  # noqa: F811
    async with Agent(cfg(world)) as agent:
        assert await agent.messages("nope") == [] and await agent.pending("nope") is None
        with pytest.raises(AgentError, match="'nope' has no change waiting"):
            await agent.confirm("nope", "confirm")


async def test_model_server_down_then_the_thread_continues(world):  # noqa: F811
    saver = InMemorySaver()
    down = cfg(world, backend="openai", base_url="http://127.0.0.1:9/v1", model_name="m")
    async with Agent(down, checkpointer=saver) as agent:
        result = await agent.ask("t", "How is my account doing?")
    assert result.stop_reason == "model_error" and "not answering" in result.text
    async with Agent(cfg(world), checkpointer=saver) as agent:  # same thread, a working backend
        result = await agent.ask("t", "How is my account doing?")
        assert result.text.startswith("From ") and well_formed(await agent.messages("t"))


async def test_slow_model_server_hits_the_time_bound(world):  # noqa: F811
    async def never_answer(reader, writer):
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        slow = cfg(
            world,
            backend="openai",
            base_url=f"http://127.0.0.1:{port}/v1",
            model_name="m",
            limits=Limits(max_seconds=1.5),
        )
        async with Agent(slow) as agent:
            result = await agent.ask("t", "How is my account doing?")
            assert result.stop_reason in ("max_seconds", "model_error") and result.text
            assert well_formed(await agent.messages("t"))
    finally:
        server.close()


async def test_tool_error_and_timeout_become_clear_answers(world):  # noqa: F811
    async with Agent(cfg(world, constrain_arguments=False)) as agent:
        result = await agent.ask("t", "Which keywords in cmp_99999 have the best sales?")
    assert "couldn't get that" in result.text and "cmp_99999" in result.text
    async with Agent(cfg(world, limits=Limits(tool_timeout_s=1e-6))) as agent:
        result = await agent.ask("t", "How is my account doing?")
        assert "did not answer within" in result.text and well_formed(await agent.messages("t"))


async def test_malformed_tool_call_is_answered_with_an_error(world):  # noqa: F811
    raw = parse_tool_calls('<tool_call>{"name": "performance", "arguments": {"level": </tool_call>')
    assert raw.invalid_tool_calls and not raw.tool_calls
    message = _normalize(raw)
    async with Agent(cfg(world)) as agent:
        update = await tools(
            {"messages": [HumanMessage(content="q"), message]}, Runtime(context=agent.context)
        )
    [reply] = update["messages"]
    assert reply.tool_call_id == message.tool_calls[0]["id"] and reply.status == "error"
    assert "not valid JSON" in reply.content
