"""Model backends: hermes parsing, the chat template round trip, the in-process transformers backend in a
real graph turn, and the backend/model-dir selection."""

import json
import re
import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agent.backends import BackendUnavailableError, make_model
from agent.backends.constrained import breaks_schema, call_regex, decode_call, ll_tokenizer
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
    msg = parse_tool_calls(
        'Let me look. <tool_call>{"name": "performance", "arguments": {"level": "keyword"}}</tool_call>'
        '<tool_call>{"name": "account_overview", "arguments": "{}"}</tool_call>'
    )
    assert msg.content == "Let me look."
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [
        ("performance", {"level": "keyword"}),
        ("account_overview", {}),
    ]
    cut = parse_tool_calls('<tool_call>{"name": "performance", "argu')
    assert not cut.tool_calls and len(cut.invalid_tool_calls) == 1
    bad = parse_tool_calls('<tool_call>["not", "an", "object"]</tool_call>')
    assert not bad.tool_calls and bad.invalid_tool_calls
    assert parse_tool_calls("Plain answer.").content == "Plain answer."


def test_chat_template_renders_calls_and_results(model_dir):
    model = LocalChatModel.from_dir(model_dir)
    call = {"name": "performance", "args": {"level": "campaign"}, "id": "c1", "type": "tool_call"}
    messages = [
        SystemMessage(content="sys"),
        HumanMessage(content="How are my campaigns?"),
        AIMessage(content="", tool_calls=[call]),
        ToolMessage(content='{"rows": []}', tool_call_id="c1"),
    ]
    spec = {
        "type": "function",
        "function": {
            "name": "performance",
            "description": "metrics",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    prompt = model.render(messages, [spec])
    assert "<tool_call>" in prompt and '"level": "campaign"' in prompt
    assert "<tool_response>" in prompt and "performance" in prompt
    assert to_openai_messages(messages)[2]["tool_calls"][0]["function"]["arguments"] == json.dumps(
        {"level": "campaign"}
    )


@pytest.mark.slow
async def test_local_backend_runs_a_turn(world, model_dir):  # noqa: F811
    config = AgentConfig(
        advertiser_id="adv_0001",
        backend="local",
        model_dir=model_dir,
        store_path=world,
        checkpointer="memory",
        limits=Limits(max_steps=2, max_new_tokens=24),
    )
    async with Agent(config) as agent:
        result = await agent.ask("t", "How is my account doing?")
        messages = await agent.messages("t")
    assert result.text and well_formed(messages)
    assert any(isinstance(m, AIMessage) and m.usage_metadata for m in messages)


@pytest.mark.slow
async def test_a_long_thread_stays_inside_the_models_window(world, model_dir):  # noqa: F811
    """Older turns leave the model's view when the thread outgrows its window: every prompt fits, no turn fails,
    and the thread itself (the checkpoint) keeps every message."""
    limits = Limits(max_steps=2, max_new_tokens=24, max_tool_result_chars=200)
    config = AgentConfig(
        advertiser_id="adv_0001",
        backend="local",
        model_dir=model_dir,
        store_path=world,
        checkpointer="memory",
        limits=limits,
    )
    async with Agent(config) as agent:
        await agent.ask("probe", "How is my account doing?")
        first = [
            m.usage_metadata["input_tokens"]
            for m in await agent.messages("probe")
            if isinstance(m, AIMessage) and m.usage_metadata
        ]
    window = max(first) + limits.max_new_tokens + 150  # room for two or three earlier turns, not eight
    small = config.model_copy(update={"limits": limits.model_copy(update={"max_context_tokens": window})})
    questions = [
        "How is my account doing?",
        "Which keywords spend the most?",
        "How are my campaigns doing?",
        "Which search terms should I add as negatives?",
        "How is my account doing this week?",
        "What is my ACoS?",
        "Which campaign spends the most?",
        "How are my sales?",
    ]
    async with Agent(small) as agent:
        for q in questions:
            result = await agent.ask("long", q)
            assert result.stop_reason != "model_error", result.text
        messages = await agent.messages("long")
    prompts = [
        m.usage_metadata["input_tokens"] for m in messages if isinstance(m, AIMessage) and m.usage_metadata
    ]
    assert prompts and max(prompts) <= window - limits.max_new_tokens, (prompts, window)
    assert [
        m.content for m in messages if isinstance(m, HumanMessage)
    ] == questions  # the thread keeps it all
    assert well_formed(messages)


def test_local_backend_gives_up_at_the_turns_deadline(model_dir):
    """A turn that has run out of time must not keep the shared model busy: waiting for it and generating both
    stop at the deadline (else, under load, every queued turn times out in turn)."""
    model = LocalChatModel.from_dir(model_dir, max_new_tokens=3000)
    messages = [HumanMessage(content="How is my account doing?")]
    model.render(messages, None)  # loads the weights
    model._model.generation_config.eos_token_id = None  # never stops by itself: 3,000 tokens take far longer
    started = time.time()
    with pytest.raises(TimeoutError, match="time budget"):
        model.invoke(messages, deadline=started + 1.0)
    assert time.time() - started < 10
    with model._lock:  # another conversation is generating
        started = time.time()
        with pytest.raises(TimeoutError, match="busy"):
            model.invoke(messages, deadline=started + 0.5)
        assert time.time() - started < 3


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


OWN_IDS = ["cmp_0001", "cmp_0007", "cmp_0042"]
SCHEMAS = {
    "pause_campaign": {
        "type": "object",
        "required": ["campaign_id"],
        "properties": {"campaign_id": {"type": "string", "enum": OWN_IDS}, "reason": {"type": "string"}},
    },
    "performance": {"type": "object", "required": ["days"], "properties": {"days": {"type": "integer"}}},
}
TOOLS = [
    {"type": "function", "function": {"name": n, "description": n, "parameters": s}}
    for n, s in SCHEMAS.items()
]


def test_breaks_schema_and_call_regex():
    assert not breaks_schema(
        {"name": "pause_campaign", "args": {"campaign_id": "cmp_0007", "reason": "x"}}, SCHEMAS
    )
    assert breaks_schema({"name": "pause_campaign", "args": {"campaign_id": "cmp_9999"}}, SCHEMAS)
    assert breaks_schema({"name": "delete_everything", "args": {}}, SCHEMAS)
    assert breaks_schema(None, SCHEMAS)
    assert '"cmp_0042"' in call_regex(SCHEMAS)
    assert re.fullmatch(call_regex(SCHEMAS), '{"name": "performance", "arguments": {"days": 7}}')
    assert not re.fullmatch(call_regex(SCHEMAS), '{"name": "performance", "arguments": {"days": 007}}')
    with pytest.raises(ValueError, match="at least one"):
        call_regex({})


def test_untrained_model_constrained_to_own_ids(model_dir):
    """Even random weights can only produce valid JSON naming a bound tool and one of the advertiser's ids."""
    model = LocalChatModel.from_dir(model_dir)
    model._load()
    lltok = ll_tokenizer(model._tokenizer)
    for ask in ("Pause my worst campaign.", "Pause cmp_9999 now", "How did I do last week?"):
        prefix = model.render([HumanMessage(content=ask)], TOOLS) + "<tool_call>\n"
        call, n_tokens = decode_call(model._model, model._tokenizer, lltok, prefix, SCHEMAS, 96)
        assert n_tokens > 0 and call["name"] in SCHEMAS
        assert not breaks_schema({"name": call["name"], "args": call["arguments"]}, SCHEMAS)
        if call["name"] == "pause_campaign":
            assert call["arguments"]["campaign_id"] in OWN_IDS


def test_local_backend_redecodes_only_broken_calls(model_dir):
    model = LocalChatModel.from_dir(model_dir, argument_schemas=SCHEMAS)
    prompt = model.render([HumanMessage(content="Pause my worst campaign.")], TOOLS)
    broken = 'Pausing it. <tool_call>\n{"name": "pause_campaign", "arguments": {"campaign_id": "cmp_9999"}}\n</tool_call>'
    text, n_new = model._redecode_broken_call(prompt, broken, TOOLS, 96)
    fixed = parse_tool_calls(text)
    assert n_new > 0 and fixed.content == "Pausing it." and len(fixed.tool_calls) == 1
    assert not breaks_schema(dict(fixed.tool_calls[0]), SCHEMAS)
    good = '<tool_call>\n{"name": "pause_campaign", "arguments": {"campaign_id": "cmp_0007", "reason": "cpa"}}\n</tool_call>'
    assert model._redecode_broken_call(prompt, good, TOOLS, 96) == (good, 0)  # optional arguments kept
    cut = '<tool_call>\n{"name": "pause_campaign", "argu'
    text, n_new = model._redecode_broken_call(prompt, cut, TOOLS, 96)
    assert n_new > 0 and parse_tool_calls(text).tool_calls and not parse_tool_calls(text).invalid_tool_calls


async def test_local_backend_streams_tokens(model_dir):
    model = LocalChatModel.from_dir(model_dir, max_new_tokens=16)
    model._load()
    # Random weights tend to repeat one newline (which the stream trims) or one piece of a word (which streams
    # only once a word ends): only tokens that start a visible word, so the text streams word by word.
    tok = model._tokenizer
    model._model.generation_config.suppress_tokens = [
        i for i in range(tok.vocab_size) if not (tok.decode([i]).startswith(" ") and tok.decode([i]).strip())
    ]
    chunks = [c async for c in model.astream([HumanMessage(content="hello")])]
    texts = [c.content for c in chunks if isinstance(c.content, str) and c.content]
    assert len(texts) >= 2  # token by token, not one final block
    with_usage = [i for i, c in enumerate(chunks) if c.usage_metadata]
    assert with_usage and all(i > chunks.index(next(c for c in chunks if c.content)) for i in with_usage)
    whole = model.invoke([HumanMessage(content="hello")])
    assert (
        "".join(texts) == whole.content
        and whole.usage_metadata is not None
        and whole.usage_metadata["output_tokens"] == 16
    )


def test_vllm_arguments_regex_allows_own_ids_and_words_only():
    """The regex sent to vLLM's structured outputs: an id is one of the advertiser's own or plain words; never
    an id-shaped string of someone else's, a control character or an unescaped quote (each seen from a random
    model under the looser regex)."""
    from agent.backends.openai import arguments_regex
    from agent.graph import NAME_PATTERN, constrain_schemas

    schema = {
        "type": "object",
        "required": ["action", "id"],
        "properties": {"action": {"type": "string", "enum": ["pause", "enable"]}, "id": {"type": "string"}},
    }
    [constrained] = constrain_schemas({"propose_change": schema}, {"keyword": ["kw_0000001"]}).values()
    regex = re.compile(arguments_regex(constrained))
    good = [
        '{"action": "pause", "id": "kw_0000001"}',
        '{"action": "enable", "id": "bamboo cutting board"}',
        '{"action": "pause", "id": "yoga mat, 6mm"}',
    ]
    bad = [
        '{"action": "pause", "id": "kw_9999999"}',
        '{"action": "pause", "id": "{\x11\x11"}',
        '{"action": "pause", "id": "a\\"b"}',
        '{"action": "stop", "id": "kw_0000001"}',
    ]
    assert all(regex.fullmatch(s) for s in good)
    assert not any(regex.fullmatch(s) for s in bad)
    for s in good:  # what the regex lets through, the schema accepts
        value = json.loads(s)["id"]
        assert value == "kw_0000001" or re.match(NAME_PATTERN, value)
    assert not re.match(NAME_PATTERN, "tab\there") and not re.match(NAME_PATTERN, "kw_12")
