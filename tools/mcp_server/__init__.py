"""adguide's MCP tool servers: advertiser data, simulator, optimizers, uplift and keyword tools.

Public entry points (the agent imports only these, never the engines):

    connect_in_memory(store_path, scope)  -> async context manager yielding an MCP ClientSession
    call(session, name, args)             -> the tool's JSON result, or {"error": {...}}
    build_server(store_path, scope)       -> MCP server (or tokens={...} for HTTP)
    stdio_params(store_path, scope), langchain_connection(...), http_app(store_path, tokens)
    Scope.advertiser("adv_0001") / Scope.admin_scope()
    openai_tools(admin=False)             -> the tools as OpenAI function specs (prompts, training, evals)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.mcp_server.schemas import TOOLS, openai_tools
    from tools.mcp_server.scope import Scope, ScopeError, load_token_map
    from tools.mcp_server.server import build_server, tool_specs
    from tools.mcp_server.transports import (
        call,
        connect_in_memory,
        http_app,
        langchain_connection,
        serve_http,
        serve_stdio,
        stdio_params,
    )

# Exports load on first use, so importing a sub-module (e.g. the CLI) stays fast.
_EXPORTS = {
    "TOOLS": "tools.mcp_server.schemas",
    "openai_tools": "tools.mcp_server.schemas",
    "Scope": "tools.mcp_server.scope",
    "ScopeError": "tools.mcp_server.scope",
    "load_token_map": "tools.mcp_server.scope",
    "build_server": "tools.mcp_server.server",
    "tool_specs": "tools.mcp_server.server",
    "call": "tools.mcp_server.transports",
    "connect_in_memory": "tools.mcp_server.transports",
    "http_app": "tools.mcp_server.transports",
    "langchain_connection": "tools.mcp_server.transports",
    "serve_http": "tools.mcp_server.transports",
    "serve_stdio": "tools.mcp_server.transports",
    "stdio_params": "tools.mcp_server.transports",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "call",
    "TOOLS",
    "Scope",
    "ScopeError",
    "build_server",
    "connect_in_memory",
    "http_app",
    "langchain_connection",
    "load_token_map",
    "openai_tools",
    "serve_http",
    "serve_stdio",
    "stdio_params",
    "tool_specs",
]
