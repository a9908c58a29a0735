"""Model backends: hermes parsing, the chat template round trip, the in-process transformers backend in a
real graph turn, and the backend/model-dir selection."""

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agent.backends import BackendUnavailableError, make_model
from agent.backends.hermes import parse_tool_calls, to_openai_messages
from agent.backends.local import LocalChatModel
from agent.configuration import AgentConfig, BackendKind, Limits, default_model_dir
from agent.graph import Agent
from tests.agent_model import model_dir_for_tests
from tests.test_agent_errors import well_formed
from tests.test_agent_graph import world, world_template  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return model_dir_for_tests(tmp_path_factory.mktemp("model"))


def test_hermes_parsing():
    msg = parse_tool_calls('Let me look. <tool_call>{"name": "performance", "arguments": {"level": "keyword"}}</tool_call>'
                           '<tool_call>{"name": "account_overview", "arguments": "{}"}</tool_call>')
    assert msg.content == "Let me look."
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("performance", {"level": "keyword"}),
                                                                ("account_overview", {})]
    cut = parse_tool_calls('<tool_call>{"name": "performance", "argu')
    assert not cut.tool_calls and len(cut.invalid_tool_calls) == 1
    bad = parse_tool_calls('<tool_call>["not", "an", "object"]</tool_call>')
    assert not bad.tool_calls and bad.invalid_tool_calls
    assert parse_tool_calls("Plain answer.").content == "Plain answer."


def test_chat_template_renders_calls_and_results(model_dir):
    model = LocalChatModel.from_dir(model_dir)
    call = {"name": "performance", "args": {"level": "campaign"}, "id": "c1", "type": "tool_call"}
    messages = [SystemMessage(content="sys"), HumanMessage(content="How are my campaigns?"),
                AIMessage(content="", tool_calls=[call]),
                ToolMessage(content='{"rows": []}', tool_call_id="c1")]
    spec = {"type": "function", "function": {"name": "performance", "description": "metrics",
                                             "parameters": {"type": "object", "properties": {}}}}
    prompt = model.render(messages, [spec])
    assert "<tool_call>" in prompt and '"level": "campaign"' in prompt
    assert "<tool_response>" in prompt and "performance" in prompt
    assert to_openai_messages(messages)[2]["tool_calls"][0]["function"]["arguments"] == json.dumps({"level": "campaign"})


@pytest.mark.slow
async def test_local_backend_runs_a_turn(world, model_dir):  # noqa: F811
    config = AgentConfig(advertiser_id="adv_0001", backend="local", model_dir=model_dir, store_path=world,
                         checkpointer="memory", limits=Limits(max_steps=2, max_new_tokens=24))
    async with Agent(config) as agent:
        result = await agent.ask("t", "How is my account doing?")
        messages = await agent.messages("t")
    assert result.text and well_formed(messages)
    assert any(isinstance(m, AIMessage) and m.usage_metadata for m in messages)


def test_backend_selection(tmp_path, monkeypatch):
    monkeypatch.setenv("ADGUIDE_MODEL_DIR", str(tmp_path / "none"))
    assert AgentConfig(advertiser_id="adv_0001").resolved_backend() == BackendKind.LOCAL
    assert AgentConfig(advertiser_id="a", base_url="http://x/v1").resolved_backend() == BackendKind.OPENAI
    with pytest.raises(FileNotFoundError, match="incomplete"):
        make_model(AgentConfig(advertiser_id="a", backend="local", model_dir=tmp_path))
    with pytest.raises(BackendUnavailableError, match="base_url"):
        make_model(AgentConfig(advertiser_id="a", backend="openai"))
    monkeypatch.delenv("ADGUIDE_MODEL_DIR")
    monkeypatch.setattr("agent.configuration.MODELS_DIR", tmp_path / "models")
    for stage in ("sft", "dpo"):
        d = tmp_path / "models" / "small" / stage
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
        (d / "tokenizer.json").write_text("{}")
    assert default_model_dir() == tmp_path / "models" / "small" / "dpo"
