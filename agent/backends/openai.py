"""OpenAI-compatible chat backend (vLLM's server in production and in CI's CPU build).

Native tool calling: the server parses the model's hermes `<tool_call>` blocks into `tool_calls`
(`--enable-auto-tool-choice --tool-call-parser hermes`). The tool schemas the agent sends carry the
advertiser's own ids as enums (agent.graph.constrain_schemas); vLLM enforces a tool's schema with structured
outputs when `tool_choice` is "required" or names the function, and the tool-argument guardrail enforces
the same enums on every call either way.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from agent.configuration import AgentConfig


def served_model(base_url: str, api_key: str = "EMPTY", timeout: float = 5.0) -> str:
    """The first model id the server lists (vLLM serves one; its id is the path or --served-model-name)."""
    req = urllib.request.Request(base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - a configured local URL
        data = json.load(resp)
    return str(data["data"][0]["id"])


def make_openai_model(config: AgentConfig, **overrides: Any) -> Any:
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
    }
    kwargs.update(overrides)
    return ChatOpenAI(**kwargs)
