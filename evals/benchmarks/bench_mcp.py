"""Per-call latency of the MCP tools: the plain handler vs each transport over a held session.

    .venv/bin/python evals/benchmarks/bench_mcp.py [--calls 40] [--store PATH]

Prints p50/p95 in ms per tool for: the plain function (handler + JSON encoding, no MCP), in-memory,
stdio and streamable HTTP sessions, and langchain-mcp-adapters tools over the in-memory session.
The cache is off so every row computes the same thing; a last block shows a what_if cache hit.
Without --store it generates a small world (3 advertisers x 30 days) in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp import ClientSession
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from tools.market.data_model import WorldConfig
from tools.market.generate import generate_world_file
from tools.market.store import MarketStore
from tools.mcp_server import Scope, call, connect_in_memory, http_app, stdio_params
from tools.mcp_server.cache import ToolCache
from tools.mcp_server.results import compact
from tools.mcp_server.schemas import TOOLS_BY_NAME
from tools.mcp_server.server import HANDLERS, build_server

os.environ.setdefault("OMP_NUM_THREADS", "1")
logging.getLogger("mcp.server.streamable_http").setLevel(
    logging.CRITICAL
)  # noise when the bench server stops

ADV = "adv_0001"


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    await fn()  # warm-up (imports, first embeddings, connection set-up)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def workload(store_path: Path) -> dict[str, dict[str, Any]]:
    store = MarketStore.open(store_path)
    adv = store.scoped(ADV)
    kw, camp = adv.keywords()[0], adv.campaigns()[0]
    store.close()
    return {
        "account_overview": {},
        "performance": {"level": "campaign"},
        "search_terms": {"limit": 10},
        "what_if": {"change": "bid", "id": kw.id, "value": round(kw.bid * 1.2, 2)},
        "negative_ideas": {"limit": 5},
        "propose_change": {"action": "set_budget", "id": camp.id, "value": camp.daily_budget + 5},
    }


def start_http(store_path: Path, token: str) -> tuple[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = http_app(store_path, {token: Scope.advertiser(ADV)}, cache=ToolCache(enabled=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/mcp", server


async def main(store_path: Path, n: int) -> None:
    calls = workload(store_path)
    results: dict[str, dict[str, list[float]]] = {name: {} for name in calls}

    # plain function: what the MCP layer wraps (validation, handler, rounding, JSON)
    server = build_server(store_path, Scope.advertiser(ADV), cache=ToolCache(enabled=False))
    ctx = server._context(ADV, Scope.advertiser(ADV))
    for name, args in calls.items():
        spec = TOOLS_BY_NAME[name]

        async def plain(spec: Any = spec, args: dict[str, Any] = args) -> None:
            out = HANDLERS[spec.name](ctx, spec.input.model_validate(args))
            json.dumps(compact(out.model_dump(mode="json")), separators=(",", ":"))

        results[name]["plain"] = await timed(plain, n)

    async def per_session(label: str, session: Any) -> None:
        for name, args in calls.items():
            results[name][label] = await timed(functools.partial(call, session, name, args), n)

    async with connect_in_memory(store_path, ADV, cache=ToolCache(enabled=False)) as session:
        await per_session("in-memory", session)
        tools = {t.name: t for t in await load_mcp_tools(session)}
        for name, args in calls.items():
            results[name]["langchain"] = await timed(functools.partial(tools[name].ainvoke, args), n)

    async with (
        stdio_client(stdio_params(store_path, ADV, cache=False)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await per_session("stdio", session)

    token = "bench-token"
    url, http_server = start_http(store_path, token)
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await per_session("http", session)
    http_server.should_exit = True

    cols = ["plain", "in-memory", "langchain", "stdio", "http"]
    print(
        f"\nper-call latency, ms (p50 / p95 over {n} calls; cache off; {os.cpu_count()} CPUs, shared machine)"
    )
    print(f"{'tool':<18}" + "".join(f"{c:>18}" for c in cols) + f"{'in-mem overhead':>18}")
    for name, by in results.items():
        row = "".join(f"{statistics.median(by[c]):>9.2f} /{pct(by[c], 0.95):>7.2f}" for c in cols)
        overhead = statistics.median(by["in-memory"]) - statistics.median(by["plain"])
        print(f"{name:<18}{row}{overhead:>17.2f}")

    async with connect_in_memory(
        store_path, ADV, cache=ToolCache(enabled=False), output_schemas=True
    ) as session:
        validated = await timed(functools.partial(call, session, "account_overview", {}), n)
    print(
        f"account_overview with output schemas advertised (client validates each result): "
        f"p50 {statistics.median(validated):.2f} ms vs {statistics.median(results['account_overview']['in-memory']):.2f}"
    )

    async with connect_in_memory(store_path, ADV, cache=ToolCache(enabled=True)) as session:
        args = calls["what_if"]
        cold = await timed(lambda: call(session, "what_if", {**args, "days": 13}), 0)
        hits = await timed(lambda: call(session, "what_if", args), n)
    del cold
    print(
        f"\nwhat_if with the Redis cache: hit p50 {statistics.median(hits):.2f} ms, p95 {pct(hits, 0.95):.2f} ms"
    )


def _world(path: Path | None) -> Path:
    if path is not None:
        return path

    out = Path(tempfile.mkdtemp(prefix="bench_mcp_")) / "world.sqlite"
    generate_world_file(WorldConfig(n_advertisers=3, days=30, seed=11), out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--store", type=Path, default=None)
    opts = parser.parse_args()
    asyncio.run(main(_world(opts.store), opts.calls))
