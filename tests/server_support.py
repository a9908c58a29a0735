"""Helpers for the server tests: private Redis prefix and PostgreSQL schema per test, API keys, an app
running in process (httpx ASGI) or as real processes (uvicorn, arq workers). Not a test module."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from server.config import Settings
from server.db import purge

REPO = Path(__file__).resolve().parents[1]
KEYS = {"key-adv1": "advertiser:adv_0001", "key-adv2": "advertiser:adv_0002", "key-admin": "admin"}
ADV1 = {"Authorization": "Bearer key-adv1"}
ADV2 = {"Authorization": "Bearer key-adv2"}
ADMIN = {"Authorization": "Bearer key-admin"}


def unique_settings(world: Path, **overrides: Any) -> Settings:
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "world_path": world,
        "backend": "rules",
        "redis_prefix": f"adguide-test-{tag}",
        "pg_schema": f"adguide_test_{tag}",
        "api_keys": dict(KEYS),
        "rate_limit_per_minute": 1000,
    }
    values.update(overrides)
    return Settings(**values)


def cleanup(settings: Settings) -> None:
    """Drop the test's schema and every Redis key it made (its own prefix and arq's keys for its job ids)."""
    purge(settings)


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process (lifespan run), reached through httpx's ASGI transport."""
    from server.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://adguide.test", timeout=120
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def env_of(settings: Settings) -> dict[str, str]:
    """The ADGUIDE_* environment that makes a child process use these settings."""
    return {
        **os.environ,
        **settings.to_env(),
        "ADGUIDE_BACKEND": settings.backend or "rules",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }


def start_worker(settings: Settings, log_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """A real worker process (`adguide serve worker`), its JSON logs to log_path."""
    out = open(log_path, "ab")  # noqa: SIM115 - closed with the process by the caller's stop()
    return subprocess.Popen(
        [sys.executable, "-m", "adguide_cli", "serve", "worker", *extra],
        cwd=REPO,
        env=env_of(settings),
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(settings: Settings, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """A real API process (`adguide serve api`), returned once /healthz answers."""
    out = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "adguide_cli", "serve", "api", "--port", str(port)],
        cwd=REPO,
        env=env_of(settings),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"the API did not come up in 120 s; see {log_path}")
