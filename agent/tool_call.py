"""One MCP tool call through a run's context: the held session's tool, with the turn's timeout. The graph's
tools node, the confirmation step and the proactive job all call tools this way."""

from __future__ import annotations

import asyncio
from typing import Any

from agent import tracing
from agent.state import AgentContext


async def run_tool(ctx: AgentContext, name: str, args: dict[str, Any], *, call_id: str = "") -> str:
    """One MCP tool call with a timeout; the result's text (JSON). One `execute_tool` span when tracing is on."""
    with tracing.tool_call(name, call_id) as span:
        text = await _call(ctx, name, args)
        tracing.tool_result(span, text)
    return text


async def _call(ctx: AgentContext, name: str, args: dict[str, Any]) -> str:
    timeout = ctx.config.limits.tool_timeout_s
    if ctx.tools:
        result = await asyncio.wait_for(ctx.tools[name].ainvoke(args), timeout=timeout)
    else:  # LangGraph's own server: no held session in the context; open one for this call
        # lazy: pulls in mcp, starlette at import
        from tools.mcp_server import connect_in_memory

        async with connect_in_memory(ctx.config.store_path, ctx.config.advertiser_id) as session:
            result = await asyncio.wait_for(session.call_tool(name, args), timeout=timeout)
            return "".join(getattr(b, "text", "") for b in result.content)
    if isinstance(result, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in result)
    return str(result)
