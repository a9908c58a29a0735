"""Ways to reach the tools: in-memory (same process, the embedded default), stdio, streamable HTTP.

The agent holds one session per conversation (a call over a held session costs a few ms; opening
one costs far more, a new subprocess for stdio):

    async with connect_in_memory(store_path, Scope.advertiser("adv_0001")) as session:
        tools = await load_mcp_tools(session)          # langchain-mcp-adapters

Across processes, `stdio_params(...)` starts `python -m tools.mcp_server` as a child, and `http_app(...)`
is the Starlette app for uvicorn (bearer tokens select the scope; see scope.load_token_map).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.shared.memory import create_connected_server_and_client_session

from tools.mcp_server.cache import ToolCache
from tools.mcp_server.schemas import TOOLS, ToolSpec
from tools.mcp_server.scope import Scope
from tools.mcp_server.server import build_server
from tools.settings import settings_file

DEFAULT_HTTP_PORT = 8765


def _store_path(store_path: str | Path | None) -> Path:
    """The store to open: the one given, else $ADGUIDE_STORE_URL (PostgreSQL), else the default world file.
    A URL rides as a Path ("postgresql:/user@host/db"); MarketStore.open reads it back as the URL."""
    if store_path is not None:
        return Path(store_path)
    # lazy: pulls in numpy at import
    from tools.market.store import default_store

    return Path(default_store())


def _scope(scope: Scope | str) -> Scope:
    """A Scope, or a plain advertiser id / "admin" / "advertiser:<id>" label."""
    if isinstance(scope, Scope):
        return scope
    if scope == "admin" or scope.startswith("advertiser:"):
        return Scope.parse(scope)
    return Scope.advertiser(scope)


@asynccontextmanager
async def connect_in_memory(
    store_path: str | Path | None,
    scope: Scope | str,
    *,
    cache: ToolCache | None = None,
    actor: str = "agent",
    output_schemas: bool = False,
    tools: Sequence[ToolSpec] = TOOLS,
) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session to a server running in this process, bound to `scope`.

    `actor` names the caller in audit records; `output_schemas=True` advertises result schemas (the
    client then validates every result: slower, see server.py); `tools` is the registry to serve."""
    server = build_server(
        _store_path(store_path),
        _scope(scope),
        cache=cache,
        actor=actor,
        output_schemas=output_schemas,
        tools=tools,
    )
    try:
        async with create_connected_server_and_client_session(server.server) as session:
            yield session
    finally:
        await server.cache.aclose()


def stdio_params(
    store_path: str | Path | None, scope: Scope | str, *, cache: bool = True
) -> StdioServerParameters:
    """How an MCP client starts this server as a stdio subprocess bound to `scope`."""
    sc = _scope(scope)
    args = ["-m", "tools.mcp_server", "--transport", "stdio", "--store", str(_store_path(store_path))]
    args += ["--admin"] if sc.admin else ["--advertiser", str(sc.advertiser_id)]
    env = {**os.environ, "ADGUIDE_MCP_CACHE": "on" if cache else "off"}
    if (file := settings_file()) is not None:  # the server runs in the repo root: name the caller's file
        env["ADGUIDE_ENV_FILE"] = str(file.resolve())
    return StdioServerParameters(
        command=sys.executable, args=args, env=env, cwd=str(Path(__file__).parents[2])
    )


def langchain_connection(transport: str, **kwargs: Any) -> dict[str, Any]:
    """A `MultiServerMCPClient` connection entry: ("stdio", store_path=, scope=) or ("http", url=, token=)."""
    if transport == "stdio":
        p = stdio_params(kwargs.get("store_path"), kwargs["scope"])
        return {"transport": "stdio", "command": p.command, "args": p.args, "env": p.env, "cwd": p.cwd}
    if transport == "http":
        return {
            "transport": "streamable_http",
            "url": kwargs["url"],
            "headers": {"Authorization": f"Bearer {kwargs['token']}"},
        }
    raise ValueError(f"transport must be 'stdio' or 'http' (got {transport!r})")


def http_app(
    store_path: str | Path | None,
    tokens: dict[str, Scope],
    *,
    path: str = "/mcp",
    stateless: bool = False,
    cache: ToolCache | None = None,
) -> Any:
    """The streamable-HTTP Starlette app; each request's bearer token must map to a scope."""
    if not tokens:
        raise ValueError("HTTP needs at least one bearer token (ADGUIDE_MCP_TOKENS or --tokens FILE)")
    server = build_server(_store_path(store_path), tokens=tokens, cache=cache)
    return server.streamable_http_app(path=path, stateless=stateless, json_response=True)


def serve_stdio(store_path: str | Path | None, scope: Scope | str) -> None:
    server = build_server(_store_path(store_path), _scope(scope))
    anyio.run(server.run_stdio_async)


def serve_http(
    store_path: str | Path | None,
    tokens: dict[str, Scope],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_HTTP_PORT,
) -> None:
    # lazy: uvicorn is heavy and needed only here
    import uvicorn

    uvicorn.run(http_app(store_path, tokens), host=host, port=port, log_level="warning")


async def call(session: ClientSession, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call a tool and return its JSON result; a failed call returns `{"error": {...}}` (isError set)."""
    result = await session.call_tool(name, arguments or {})
    if result.structuredContent is not None and not result.isError:
        return dict(result.structuredContent)
    text = "".join(getattr(block, "text", "") for block in result.content)
    return dict(json.loads(text))
