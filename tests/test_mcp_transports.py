"""Each transport driven by a real MCP client session, and the tools through langchain-mcp-adapters."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import asynccontextmanager

import httpx
import pytest
from mcp import ClientSession
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from tools.mcp_server import Scope, call, connect_in_memory, http_app, langchain_connection, stdio_params
from tools.mcp_server.cache import ToolCache

ME, OTHER = "adv_0001", "adv_0002"
TOKENS = {"tok-me": Scope.advertiser(ME), "tok-admin": Scope.admin_scope()}


async def test_stdio_session(tiny_world_path):
    params = stdio_params(tiny_world_path, ME, cache=False)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"performance", "propose_change", "apply_change"} <= names
        out = await call(session, "performance", {"level": "campaign"})
        assert out["total_rows"] > 0
        err = (await call(session, "performance", {"level": "campaign", "campaign_id": "cmp_99999"}))["error"]
        assert err["type"] == "UnknownIdError"
        assert (await call(session, "account_overview"))["advertiser"]["id"] == ME


@asynccontextmanager
async def http_session(url: str, token: str):
    async with (
        _client(token) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@pytest.fixture(scope="module")
def http_url(tiny_world_path):
    """A real uvicorn server in a thread, serving streamable HTTP with bearer tokens."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = http_app(tiny_world_path, TOKENS, cache=ToolCache(enabled=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(timeout=10)


def _client(token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(headers=headers, timeout=30)


async def test_http_requires_a_known_bearer_token(http_url):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    for token in (None, "not-a-token"):
        async with _client(token) as client:
            r = await client.post(http_url, json=body, headers=headers)
        assert r.status_code == 401


async def test_http_session_is_bound_to_its_token(http_url):
    async with http_session(http_url, "tok-me") as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "advertiser_id" not in tools["performance"].inputSchema["properties"]
        assert (await call(session, "account_overview"))["advertiser"]["id"] == ME
        err = (await call(session, "account_overview", {"advertiser_id": OTHER}))["error"]
        assert err["type"] == "ScopeError"
    async with http_session(http_url, "tok-admin") as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "advertiser_id" in tools["performance"].inputSchema["required"]
        assert (await call(session, "account_overview", {"advertiser_id": OTHER}))["advertiser"][
            "id"
        ] == OTHER


async def test_langchain_adapters_over_a_held_in_memory_session(tiny_world_path):
    from langchain_core.messages import ToolMessage
    from langchain_mcp_adapters.tools import load_mcp_tools

    async with connect_in_memory(tiny_world_path, ME, cache=ToolCache(enabled=False)) as session:
        tools = {t.name: t for t in await load_mcp_tools(session)}
        assert "performance" in tools and "apply_change" in tools
        assert "level" in tools["performance"].args
        content = await tools["performance"].ainvoke({"level": "campaign"})
        text = content if isinstance(content, str) else "".join(b["text"] for b in content)
        assert json.loads(text)["total_rows"] > 0
        # a failing call comes back to the model as an error message it can read, not an exception
        msg = await tools["performance"].ainvoke(
            {
                "type": "tool_call",
                "id": "c1",
                "name": "performance",
                "args": {"level": "keyword", "start": "1999-01-01"},
            }
        )
        assert isinstance(msg, ToolMessage) and msg.status == "error"
        assert "InvalidInputError" in str(msg.content) and "start" in str(msg.content)


async def test_langchain_multiserver_client_over_stdio(tiny_world_path):
    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langchain_mcp_adapters.tools import load_mcp_tools

    client = MultiServerMCPClient(
        {"adguide": langchain_connection("stdio", store_path=tiny_world_path, scope=ME)}
    )
    async with client.session("adguide") as session:
        tools = {t.name: t for t in await load_mcp_tools(session)}
        content = await tools["account_overview"].ainvoke({})
        text = content if isinstance(content, str) else "".join(b["text"] for b in content)
        assert json.loads(text)["advertiser"]["id"] == ME
