"""OpenAI-compatible chat backend (vLLM's server in production and in CI's CPU build).

Native tool calling: the server parses the model's hermes `<tool_call>` blocks into `tool_calls`
(`--enable-auto-tool-choice --tool-call-parser hermes`). The tool schemas the agent sends carry the
advertiser's own ids as enums (agent.graph.constrain_schemas) in the schemas the tool-argument guardrail
checks every call against; `constrained_arguments` decodes a call's arguments under such a schema with
vLLM's structured outputs (a regex), so a small model cannot name an id the advertiser does not own.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from agent.configuration import AgentConfig


def served_model(base_url: str, api_key: str = "EMPTY", timeout: float = 5.0) -> str:
    """The first model id the server lists (vLLM serves one; its id is the path or --served-model-name)."""
    req = urllib.request.Request(
        base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - a configured local URL
        data = json.load(resp)
    return str(data["data"][0]["id"])


def make_openai_model(config: AgentConfig, **overrides: Any) -> Any:
    # lazy: httpx is heavy and needed only here
    import httpx

    # lazy: langchain_openai is heavy and needed only here
    from langchain_openai import ChatOpenAI

    assert config.base_url
    model = config.model_name or served_model(config.base_url, config.api_key)
    kwargs: dict[str, Any] = {
        "base_url": config.base_url,
        "api_key": config.api_key,
        "model": model,
        "temperature": 0.0,
        "max_tokens": config.limits.max_new_tokens,
        "timeout": config.limits.max_seconds,
        "max_retries": 0,  # the graph decides what a failure means for the turn
        "stream_usage": True,  # token counts also when the graph streams (per-turn token bound)
    }
    # A client of our own: langchain-openai's shared default client is bound to the first event loop that
    # used it, and a later loop (another asyncio.run, a test) then fails with "Event loop is closed".
    kwargs.setdefault("http_async_client", httpx.AsyncClient(timeout=config.limits.max_seconds))
    kwargs.update(overrides)
    return ChatOpenAI(**kwargs)


CONSTRAINED_MAX_TOKENS = 400  # tokens for one constrained tool call's arguments

# A string value: no quote, backslash or control character (JSON would need them escaped, and a small model
# fills an unescaped control character in). Words stand for a name the tools resolve; with no underscore they
# can never spell an id-shaped string like kw_0000001 (the schema's NAME_PATTERN, which uses a look-ahead that
# a decoding grammar has no need of here).
_STRING = r'"[^"\\\x00-\x1f]{0,80}"'
_WORDS = r'"[A-Za-z0-9][A-Za-z0-9 \'&,.+/-]{0,79}"'


def _value_regex(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:  # e.g. an id: one of the advertiser's own (an enum) or words naming one
        return "(" + "|".join(_value_regex(p) for p in prop["anyOf"]) + ")"
    if "pattern" in prop:
        return _WORDS
    if "enum" in prop:
        return "(" + "|".join(re.escape(json.dumps(v)) for v in prop["enum"]) + ")"
    kind = prop.get("type")
    # JSON numbers have no leading zeros ("000" is not JSON, and an untrained model finds it).
    if kind == "integer":
        return r"-?(0|[1-9][0-9]{0,8})"
    if kind == "number":
        return r"-?(0|[1-9][0-9]{0,8})(\.[0-9]{1,4})?"
    if kind == "boolean":
        return "(true|false)"
    return _STRING


def arguments_regex(schema: dict[str, Any]) -> str:
    """A regex for a flat JSON object with the schema's required properties, in order (enums spelled out).
    Regex rather than a JSON schema: a JSON grammar allows unbounded whitespace, which a small model fills."""
    props = schema.get("properties", {})
    required = [name for name in schema.get("required", []) if name in props]
    parts = [f'"{re.escape(name)}": {_value_regex(props[name])}' for name in required]
    return r"\{" + ", ".join(parts) + r"\}"


async def constrained_arguments(model: Any, messages: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """Decode one tool call's arguments under `schema` with vLLM's structured outputs (e.g. the advertiser's
    own ids as an enum): the second step when the planner already knows which tool it calls."""
    # Greedy, with room for the longest object the regex admits (a turn's own max_tokens can cut it off, and a
    # cut-off object is no JSON): the regex already bounds the length.
    out = await model.bind(
        max_tokens=CONSTRAINED_MAX_TOKENS,
        temperature=0,
        extra_body={"structured_outputs": {"regex": arguments_regex(schema)}},
    ).ainvoke(messages)
    args = json.loads(out.content if isinstance(out.content, str) else json.dumps(out.content))
    if not isinstance(args, dict):
        raise ValueError("constrained decoding returned no JSON object")
    return args
