"""Hermes/Qwen2-style tool calls in generated text (contract E): `<tool_call>{"name", "arguments"}</tool_call>`.

The same format vLLM's `--tool-call-parser hermes` reads. A block whose JSON does not parse, or that was cut
off by the token limit, comes back as an invalid call (LangChain's `invalid_tool_calls`), never dropped:
the graph answers it with an error the model can read.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_OPEN = re.compile(r"<tool_call>\s*(.*)$", re.DOTALL)


def parse_tool_calls(text: str) -> AIMessage:
    blocks = _CALL.findall(text)
    rest = _CALL.sub("", text)
    if unfinished := _OPEN.search(rest):
        blocks.append(unfinished.group(1))
        rest = rest[: unfinished.start()]
    calls: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for block in blocks:
        call_id = f"call_{uuid.uuid4().hex[:10]}"
        try:
            parsed = json.loads(block)
            name, args = parsed["name"], parsed.get("arguments", {})
            if isinstance(args, str):
                args = json.loads(args)
            if not isinstance(name, str) or not isinstance(args, dict):
                raise TypeError("name must be a string and arguments an object")
            calls.append({"name": name, "args": args, "id": call_id, "type": "tool_call"})
        except (ValueError, KeyError, TypeError) as exc:
            invalid.append(
                {
                    "name": None,
                    "args": block[:500],
                    "id": call_id,
                    "error": str(exc),
                    "type": "invalid_tool_call",
                }
            )
    return AIMessage(content=rest.strip(), tool_calls=calls, invalid_tool_calls=invalid)


def to_openai_messages(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as contract-E dicts (what the chat template renders)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        text = (
            m.content
            if isinstance(m.content, str)
            else "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in m.content)
        )
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": text})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": text})
        elif isinstance(m, ToolMessage):
            out.append({"role": "tool", "content": text, "tool_call_id": m.tool_call_id})
        elif isinstance(m, AIMessage):
            msg: dict[str, Any] = {"role": "assistant", "content": text}
            if m.tool_calls:
                msg["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
                    }
                    for c in m.tool_calls
                ]
            out.append(msg)
    return out
