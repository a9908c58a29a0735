"""adguide's MCP tool servers: advertiser data, simulator, optimizers, uplift and keyword tools.

Public entry points (the agent imports only these, never the engines):

    connect_in_memory(store_path, scope)  -> async context manager yielding an MCP ClientSession
    call(session, name, args)             -> the tool's JSON result, or {"error": {...}}
    build_server(store_path, scope)       -> FastMCP server (or tokens={...} for HTTP)
    stdio_params(store_path, scope), langchain_connection(...), http_app(store_path, tokens)
    Scope.advertiser("adv_0001") / Scope.admin_scope()
    openai_tools(admin=False)             -> the tools as OpenAI function specs (prompts, training, evals)
"""

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
