"""Secrets never leave the server: API keys, bearer tokens a caller sends, the Redis and PostgreSQL passwords and
the model server's API key appear in no response (body or header) and no log line, also when Redis, PostgreSQL
and the model server are down and errors are being reported. Real Redis (our own, with a password), real
PostgreSQL (trust auth accepts the password in the URL), the openai backend pointed at a dead port."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from server.config import Settings
from server.logs import setup_logging
from tests.server_support import ADV1, KEYS, api_client, free_port, unique_settings

REDIS_PW = "R3dis-s3cret-pw-7a1c"
PG_PW = "Pg-s3cret-pw-19be"
LLM_KEY = "sk-llm-s3cret-key-44d0"
GUESSED = "sk-attacker-guess-0b7f"
SECRETS = [REDIS_PW, PG_PW, LLM_KEY, GUESSED, *KEYS]


@contextmanager
def own_redis(workdir: Path, *args: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A throwaway redis-server on a free loopback port; killed at the end whatever happens."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            *args,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                client = redis.Redis(port=port, password=REDIS_PW if "--requirepass" in args else None)
                client.ping()
                client.close()
                break
            except redis.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        yield port, proc
    finally:
        proc.kill()
        proc.wait(10)


@contextmanager
def captured_logs(level: str = "DEBUG") -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging(level, stream=stream)
    try:
        yield stream
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def seen(r: httpx.Response) -> str:
    return r.text + " " + " ".join(f"{k}: {v}" for k, v in r.headers.items())


@pytest.mark.slow  # ~30 s: the openai client retries the dead model port before the turn ends
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
async def test_no_secret_in_any_response_or_log_line_also_while_dependencies_fail(
    writable_world_path, tmp_path
):
    dead = free_port()
    with own_redis(tmp_path, "--requirepass", REDIS_PW) as (port, proc), captured_logs() as logs:
        s = unique_settings(
            writable_world_path,
            redis_url=f"redis://:{REDIS_PW}@127.0.0.1:{port}/0",
            postgres_url=f"postgresql://postgres:{PG_PW}@127.0.0.1:5432/test",
            backend="openai",
            llm_base_url=f"http://127.0.0.1:{dead}/v1",
            llm_model="m",
            llm_api_key=LLM_KEY,
        )
        responses: list[httpx.Response] = []
        try:
            async with api_client(s) as client:
                r = await client.post("/v1/threads", json={}, headers=ADV1)
                assert r.status_code == 201, r.text  # the passwords work: this is a real, authenticated setup
                tid = r.json()["thread_id"]
                responses.append(r)
                r = await client.post(
                    f"/v1/threads/{tid}/messages",
                    json={"message": "How is my account doing?"},
                    headers={**ADV1, "Accept": "application/json"},
                )
                assert r.status_code == 200 and r.json()["stop_reason"] == "model_error"  # the model is down
                responses.append(r)
                for headers in (
                    {"Authorization": f"Bearer {GUESSED}"},
                    {"X-API-Key": GUESSED},
                    {"Authorization": f"Basic {GUESSED}"},
                ):
                    r = await client.get("/v1/threads", headers=headers)
                    assert r.status_code == 401
                    responses.append(r)
                for path in ("/readyz", "/metrics", "/openapi.json", f"/v1/threads/{tid}", "/v1/inbox"):
                    responses.append(await client.get(path, headers=ADV1))
                assert responses[-5].status_code == 503  # readyz: the model endpoint is down
                proc.kill()  # now Redis goes away mid-session
                proc.wait(10)
                r = await client.post(f"/v1/threads/{tid}/messages", json={"message": "hi"}, headers=ADV1)
                assert r.status_code == 503
                responses += [r, await client.get("/readyz"), await client.get("/metrics")]
        finally:
            _drop_schema(s)  # its Redis is gone with the process
        # PostgreSQL unreachable, with a password in its URL
        s2 = unique_settings(
            writable_world_path, postgres_url=f"postgresql://postgres:{PG_PW}@127.0.0.1:{dead}/x"
        )
        try:
            async with api_client(s2) as client:
                r = await client.post("/v1/threads", json={}, headers=ADV1)
                assert r.status_code == 503
                responses += [r, await client.get("/readyz")]
        finally:
            shared = redis.Redis.from_url(s2.redis_url)
            for key in shared.scan_iter(f"{s2.redis_prefix}:*"):
                shared.delete(key)
            shared.close()
    for r in responses:
        assert not leaks(seen(r)), (r.request.url, leaks(seen(r)))
    text = logs.getvalue()
    assert "dependency down" in text and "GET /v1/threads 401" in text  # the failures were logged ...
    assert not leaks(text), leaks(text)  # ... without a secret


def _drop_schema(s: Settings) -> None:
    import psycopg

    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{s.pg_schema}" CASCADE')
