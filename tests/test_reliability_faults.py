"""Faults the server tests don't already cover, each with its documented behaviour, over real Redis (our own
redis-server on a free loopback port where we kill it), real PostgreSQL, real worker processes and MCP tools:

- Redis restarted mid-chat: a request that meets it down gets 503 and leaves no trace; one already past the
  turn lock finishes; after the restart the same threads go on; no message lost or doubled.
- The model server down, then back: the turn ends cleanly (`model_error`), /readyz says so, and the same
  thread continues on a working backend (another API process on the same PostgreSQL schema).
- A tool that hangs (its SQLite store locked by another writer) or crashes (the store's header broken): the agent's tool timeout ends the
  call, the turn answers in words, the thread stays well formed, and the next turn works.
(Worker SIGKILL, Redis killed during chat and PostgreSQL down at start are in test_server_api/_batch.)"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from server.config import Settings
from tests.server_support import (
    ADMIN,
    ADV1,
    ADV2,
    api_client,
    cleanup,
    free_port,
    unique_settings,
)
from tools.market.store import MarketStore

JSON = {"Accept": "application/json"}
needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs the redis-server binary"
)


def start_redis(port: int, workdir: Path, *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(workdir),
            *args,
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while True:
        try:
            client = redis.Redis(port=port)
            if client.ping():
                client.close()
                return proc
        except redis.exceptions.BusyLoadingError:
            pass  # replaying its append-only file
        except redis.ConnectionError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"redis-server on port {port} did not start") from None
        time.sleep(0.05)


@contextmanager
def own_redis(workdir: Path, *args: str) -> Iterator[dict[str, Any]]:
    """A redis-server we may kill and restart (same port, same dir); killed at the end whatever happens."""
    port = free_port()
    state: dict[str, Any] = {"port": port, "proc": start_redis(port, workdir, *args)}

    def restart() -> None:
        state["proc"].kill()
        state["proc"].wait(10)
        state["proc"] = start_redis(port, workdir, *args)

    state["restart"] = restart
    try:
        yield state
    finally:
        state["proc"].kill()
        state["proc"].wait(10)


def drop_schema(s: Settings) -> None:
    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{s.pg_schema}" CASCADE')


def roles(history: dict[str, Any]) -> list[str]:
    return [m["role"] for m in history["messages"]]


def well_formed(history: dict[str, Any]) -> bool:
    """Every user message is followed, before the next one, by an assistant answer; nothing doubled."""
    r = [x for x in roles(history) if x in ("user", "assistant")]
    users = [i for i, x in enumerate(r) if x == "user"]
    return all(
        "assistant" in r[i + 1 : (users[n + 1] if n + 1 < len(users) else len(r))]
        for n, i in enumerate(users)
    )


@needs_redis_server
async def test_redis_restarted_mid_chat_loses_and_doubles_no_message(writable_world_path, tmp_path):
    with own_redis(tmp_path, "--appendonly", "no") as red:
        s = unique_settings(writable_world_path, redis_url=f"redis://127.0.0.1:{red['port']}/0")
        try:
            async with api_client(s) as client:
                threads = [
                    (await client.post("/v1/threads", json={}, headers=h)).json()["thread_id"]
                    for h in (ADV1, ADV2, ADV1)
                ]
                heads = [ADV1, ADV2, ADV1]
                for tid, h in zip(threads, heads, strict=True):
                    r = await client.post(
                        f"/v1/threads/{tid}/messages",
                        json={"message": "How is my account doing?"},
                        headers={**h, **JSON},
                    )
                    assert r.status_code == 200 and r.json()["text"]
                # turns in flight on every thread while Redis is killed and comes back
                sent = [
                    client.post(
                        f"/v1/threads/{tid}/messages",
                        json={"message": "Which keywords waste spend?"},
                        headers={**h, **JSON},
                    )
                    for tid, h in zip(threads, heads, strict=True)
                ]
                tasks = [asyncio.create_task(c) for c in sent]
                await asyncio.sleep(0.02)
                red["proc"].kill()
                red["proc"].wait(10)
                outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 120)
                during = [r.status_code for r in outcomes]
                assert set(during) <= {200, 503}, [r.text for r in outcomes]
                for r in outcomes:
                    if r.status_code == 503:  # refused before the turn: says so, and what to do
                        assert "Redis" in r.json()["error"]["message"] and r.headers["retry-after"]
                r = await client.post(
                    f"/v1/threads/{threads[0]}/messages", json={"message": "hi"}, headers=ADV1
                )
                assert r.status_code == 503  # Redis still down
                red["proc"] = start_redis(red["port"], tmp_path, "--appendonly", "no")
                for tid, h in zip(threads, heads, strict=True):  # the same threads go on
                    r = await client.post(
                        f"/v1/threads/{tid}/messages",
                        json={"message": "How are my campaigns?"},
                        headers={**h, **JSON},
                    )
                    assert r.status_code == 200 and r.json()["text"], r.text
                for tid, h, first in zip(threads, heads, outcomes, strict=True):
                    history = (await client.get(f"/v1/threads/{tid}", headers=h)).json()
                    users = [m["content"] for m in history["messages"] if m["role"] == "user"]
                    expected = [
                        "How is my account doing?",
                        "Which keywords waste spend?",
                        "How are my campaigns?",
                    ]
                    if first.status_code == 503:
                        expected.remove("Which keywords waste spend?")  # refused: never accepted
                    assert users == expected and well_formed(history), (tid, users, roles(history))
                assert (await client.get("/readyz")).status_code == 200
        finally:
            drop_schema(s)


async def test_model_server_down_then_back_the_thread_continues(writable_world_path):
    dead = free_port()
    down = unique_settings(
        writable_world_path, backend="openai", llm_base_url=f"http://127.0.0.1:{dead}/v1", llm_model="adguide"
    )
    # the same deployment (Redis prefix, PostgreSQL schema) once the model answers again
    back = down.model_copy(update={"backend": "rules", "llm_base_url": None, "llm_model": None})
    try:
        async with api_client(down) as client:
            ready = (await client.get("/readyz", headers=ADMIN)).json()
            assert ready["checks"]["model"]["ok"] is False and "model" in ready["message"]
            anonymous = (await client.get("/readyz")).json()  # status and what is down, no endpoints or paths
            assert anonymous == {"status": "not_ready", "message": ready["message"]}
            tid = (await client.post("/v1/threads", json={}, headers=ADV1)).json()["thread_id"]
            r = await client.post(
                f"/v1/threads/{tid}/messages",
                json={"message": "How is my account doing?"},
                headers={**ADV1, **JSON},
            )
            assert r.status_code == 200 and r.json()["stop_reason"] == "model_error" and r.json()["text"]
        async with api_client(back) as client:
            assert (await client.get("/readyz")).status_code == 200
            r = await client.post(
                f"/v1/threads/{tid}/messages",
                json={"message": "How is my account doing?"},
                headers={**ADV1, **JSON},
            )
            assert r.status_code == 200 and r.json()["stop_reason"] != "model_error" and r.json()["text"]
            history = (await client.get(f"/v1/threads/{tid}", headers=ADV1)).json()
        users = [m for m in history["messages"] if m["role"] == "user"]
        assert len(users) == 2 and well_formed(history) and history["pending"] is None
    finally:
        cleanup(down)


async def test_a_hanging_then_crashing_tool_ends_the_turn_cleanly(writable_world_path, monkeypatch):
    from agent.configuration import AgentConfig, Limits
    from agent.graph import Agent

    monkeypatch.setenv("ADGUIDE_MCP_CACHE", "off")  # every call must reach the store
    with MarketStore.open(writable_world_path) as store:
        kw = next(k for k in store.scoped("adv_0001").keywords() if k.bid > 0.5)
    config = AgentConfig(
        advertiser_id="adv_0001",
        backend="rules",
        store_path=writable_world_path,
        checkpointer="memory",
        limits=Limits(tool_timeout_s=2.0, max_seconds=60),
    )
    async with Agent(config) as agent:
        locker = sqlite3.connect(writable_world_path, timeout=1, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another writer holds the store: the tool's read waits
        try:
            started = time.perf_counter()
            hung = await agent.ask("t", "How is my account doing?")
            took = time.perf_counter() - started
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert took < 30 and hung.text, (took, hung)
        assert "did not answer within 2 s" in hung.text or "couldn't" in hung.text.lower(), hung.text
        header = writable_world_path.read_bytes()[:100]
        with open(writable_world_path, "r+b") as f:  # a broken store: the tool raises inside the server
            f.write(b"\0" * 100)
        try:
            crashed = await agent.ask("t", "How is my account doing?")
        finally:
            with open(writable_world_path, "r+b") as f:
                f.write(header)
        assert crashed.text and "Traceback" not in crashed.text and not crashed.text.startswith("From "), (
            crashed
        )
        ok = await agent.ask("t", "How is my account doing?")
        assert ok.text.startswith("From "), ok.text
        messages = await agent.messages("t")
        assert [m.type for m in messages].count("human") == 3
        proposal = await agent.ask("t", f"Set the bid of {kw.id} to ${kw.bid * 1.1:.2f}")
        assert proposal.confirmation is not None
    with MarketStore.open(writable_world_path) as store:
        assert list(store.scoped("adv_0001").audit_log()) == []  # a proposal, not a write
