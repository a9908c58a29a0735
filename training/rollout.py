"""Run a model as a ReAct agent over real MCP tools: generate, parse hermes `<tool_call>`s, call, repeat.

Used by the preference stage (sampling candidates from the SFT model) and the card's evaluation (SFT vs
DPO on held-out tasks). It is deliberately the plain loop, not the agent's graph: training must not import
the agent's guardrails' decisions into its own data. Write actions are contained by running every rollout
on its own copy of the world (see `isolated_world`).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_OPEN_CALL = re.compile(r"<tool_call>\s*(.*)$", re.DOTALL)

CallTool = Callable[[str, dict[str, Any]], Awaitable[str]]


class PromptTooLongError(ValueError):
    """The conversation leaves no room to generate within the model's context."""


def parse_assistant(text: str) -> dict[str, Any]:
    """A generated assistant turn as a contract-E message. A call whose JSON does not parse is kept with
    `"invalid": true` (and no arguments) so the scorer can count it as a malformed call."""
    text = text.strip()
    blocks = _CALL.findall(text)
    tail = _CALL.sub("", text)
    unfinished = _OPEN_CALL.search(tail)
    if unfinished:  # ran out of tokens inside a call
        blocks.append(unfinished.group(1))
        tail = tail[: unfinished.start()]
    calls = []
    for block in blocks:
        call_id = f"call_{uuid.uuid4().hex[:8]}"
        try:
            parsed = json.loads(block)
            name, arguments = parsed["name"], parsed.get("arguments", {})
            if not isinstance(name, str) or not isinstance(arguments, dict):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError):
            calls.append(
                {"id": call_id, "type": "function", "invalid": True, "function": {"name": "", "arguments": "{}"}}
            )
            continue
        calls.append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
        )
    message: dict[str, Any] = {"role": "assistant", "content": tail.strip() or None}
    if calls:
        message["tool_calls"] = calls
    if any(c.get("invalid") for c in calls):
        message["raw"] = text  # what the model wrote, for a preference pair's rejected side
    return message


def generate(
    model: Any,
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> str:
    """One assistant turn's raw text (special tokens dropped, hermes markers kept)."""
    import torch

    inputs = tokenizer.apply_chat_template(
        [_clean(m) for m in messages], tools=tools, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    limit = model.config.max_position_embeddings - max_new_tokens
    if inputs["input_ids"].shape[1] > limit:
        raise PromptTooLongError(f"prompt of {inputs['input_ids'].shape[1]} tokens leaves no room to generate (limit {limit})")
    torch.manual_seed(seed)
    # top_p 0.95 keeps samples on the model's own distribution without its long tail of junk tokens
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 0.95} if temperature > 0 else {}
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling)
    new = output[0, inputs["input_ids"].shape[1] :]
    return str(tokenizer.decode(new, skip_special_tokens=True))


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("raw"):  # a malformed call is shown back to the model as the text it wrote
        return {"role": "assistant", "content": message["raw"]}
    out = {k: v for k, v in message.items() if k in ("role", "content", "tool_calls", "tool_call_id")}
    if "tool_calls" in out:
        out["tool_calls"] = [{k: v for k, v in c.items() if k != "invalid"} for c in out["tool_calls"]]
    return out


async def rollout(
    model: Any,
    tokenizer: Any,
    prompt: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    call_tool: CallTool,
    *,
    max_steps: int,
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The messages the model adds after `prompt`: assistant turns and tool results, until it answers
    without calling a tool or `max_steps` assistant turns have been written."""
    added: list[dict[str, Any]] = []
    for step in range(max_steps):
        try:
            text = generate(
                model, tokenizer, prompt + added, tools,
                max_new_tokens=max_new_tokens, temperature=temperature, seed=seed * 1000 + step,
            )
        except PromptTooLongError:
            break  # the trajectory ends unfinished; the scorer counts it as a failure

        message = parse_assistant(text)
        added.append(message)
        if not message.get("tool_calls"):
            break
        for call in message["tool_calls"]:
            if call.get("invalid"):
                result = json.dumps({"error": {"type": "InvalidInputError", "message": "tool call is not valid JSON"}})
            else:
                result = await call_tool(call["function"]["name"], json.loads(call["function"]["arguments"]))
            added.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    return added


def mcp_caller(session: Any) -> CallTool:
    """Call a tool on an MCP ClientSession and return the text the model reads (errors included)."""

    async def call(name: str, arguments: dict[str, Any]) -> str:
        result = await session.call_tool(name, arguments)
        return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")

    return call


@contextmanager
def isolated_world(world_path: Path) -> Iterator[Path]:
    """A throwaway copy of a world (with its truth file, if any) so applied changes touch nothing shared."""
    with tempfile.TemporaryDirectory(prefix="adguide-rollout-") as tmp:
        copy = Path(tmp) / Path(world_path).name
        shutil.copy2(world_path, copy)
        truth = Path(world_path).with_name("truth.sqlite")
        if truth.is_file():
            shutil.copy2(truth, Path(tmp) / truth.name)
        yield copy
