"""PostgreSQL: who owns which thread, batch jobs and their per-advertiser results (the inbox reads these).

All tables live in the settings' schema and are created idempotently (under an advisory lock, so an API
and several workers starting together don't race). Results are keyed by (job_id, advertiser_id) and
written with an upsert: a job that runs twice (at-least-once delivery) leaves one row.
LangGraph's checkpoint tables share the pool and the schema (search_path on the connection).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from server.config import Settings
from server.errors import DependencyDown

DDL = """
CREATE TABLE IF NOT EXISTS threads (
    thread_id     text PRIMARY KEY,
    advertiser_id text NOT NULL,
    title         text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS threads_by_advertiser ON threads (advertiser_id, created_at DESC);
CREATE TABLE IF NOT EXISTS jobs (
    job_id      text PRIMARY KEY,
    created_by  text NOT NULL,
    advertisers jsonb NOT NULL,
    total       integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS job_results (
    job_id        text NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
    advertiser_id text NOT NULL,
    status        text NOT NULL CHECK (status IN ('done', 'failed')),
    items         jsonb NOT NULL DEFAULT '[]',
    error         text,
    attempts      integer NOT NULL DEFAULT 1,
    writes        integer NOT NULL DEFAULT 1,
    worker        text NOT NULL DEFAULT '',
    seconds       double precision NOT NULL DEFAULT 0,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, advertiser_id)
);
CREATE INDEX IF NOT EXISTS results_by_advertiser ON job_results (advertiser_id, finished_at DESC);
"""


def _lock_key(schema: str) -> int:
    return zlib.crc32(f"adguide:{schema}".encode())


class Database:
    """A connection pool and the queries the server and workers need."""

    def __init__(self, settings: Settings, *, max_size: int = 10) -> None:
        self.settings = settings
        self.pool = AsyncConnectionPool(
            settings.checkpoint_url,
            open=False,
            min_size=1,
            max_size=max_size,
            timeout=5.0,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        self._ready = False
        self._setup_lock = asyncio.Lock()

    async def open(self) -> None:
        await self.pool.open(wait=False)  # a database that is down now may be up later: /readyz tells

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.errors.ConnectionTimeout, TimeoutError) as exc:
            raise DependencyDown("PostgreSQL", exc) from exc
        except psycopg.errors.AdminShutdown as exc:
            raise DependencyDown("PostgreSQL", exc) from exc

    async def ensure_schema(self, checkpointer: Any = None) -> None:
        """Create the schema and tables once per process (and LangGraph's, given its saver)."""
        if self._ready:
            return
        async with self._setup_lock:
            if self._ready:
                return
            async with self.conn() as conn:
                await conn.execute("SELECT pg_advisory_lock(%s)", (_lock_key(self.settings.pg_schema),))
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.settings.pg_schema}"')
                    for statement in filter(str.strip, DDL.split(";")):  # one at a time: prepared statements
                        await conn.execute(statement)
                    if checkpointer is not None:
                        await checkpointer.setup()
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(self.settings.pg_schema),))
            self._ready = True

    async def ping(self) -> None:
        async with self.conn() as conn:
            await conn.execute("SELECT 1")

    # --- threads ------------------------------------------------------------------------------------

    async def create_thread(self, thread_id: str, advertiser_id: str, title: str) -> dict[str, Any]:
        async with self.conn() as conn:
            cur = await conn.execute(
                "INSERT INTO threads (thread_id, advertiser_id, title) VALUES (%s, %s, %s) RETURNING *",
                (thread_id, advertiser_id, title),
            )
            row = await cur.fetchone()
        assert row is not None
        return dict(row)

    async def thread(self, thread_id: str, advertiser_id: str) -> dict[str, Any] | None:
        """The thread if this advertiser owns it; another advertiser's thread is indistinguishable from none."""
        async with self.conn() as conn:
            cur = await conn.execute(
                "SELECT * FROM threads WHERE thread_id = %s AND advertiser_id = %s",
                (thread_id, advertiser_id),
            )
            row = await cur.fetchone()
        return dict(row) if row else None

    async def threads(self, advertiser_id: str, limit: int) -> list[dict[str, Any]]:
        async with self.conn() as conn:
            cur = await conn.execute(
                "SELECT * FROM threads WHERE advertiser_id = %s ORDER BY created_at DESC LIMIT %s",
                (advertiser_id, limit),
            )
            return [dict(r) for r in await cur.fetchall()]

    # --- jobs ---------------------------------------------------------------------------------------

    async def create_job(self, job_id: str, created_by: str, advertisers: list[str]) -> None:
        async with self.conn() as conn:
            await conn.execute(
                "INSERT INTO jobs (job_id, created_by, advertisers, total) VALUES (%s, %s, %s, %s)",
                (job_id, created_by, json.dumps(advertisers), len(advertisers)),
            )

    async def job(self, job_id: str) -> dict[str, Any] | None:
        async with self.conn() as conn:
            cur = await conn.execute(
                "SELECT j.job_id, j.created_by, j.total, j.created_at, "
                "count(r.*) FILTER (WHERE r.status = 'done') AS done, "
                "count(r.*) FILTER (WHERE r.status = 'failed') AS failed, max(r.finished_at) AS last_result_at "
                "FROM jobs j LEFT JOIN job_results r USING (job_id) WHERE j.job_id = %s GROUP BY j.job_id",
                (job_id,),
            )
            row = await cur.fetchone()
        return dict(row) if row else None

    async def job_advertisers(self, job_id: str) -> list[str]:
        async with self.conn() as conn:
            cur = await conn.execute("SELECT advertisers FROM jobs WHERE job_id = %s", (job_id,))
            row = await cur.fetchone()
        return list(row["advertisers"]) if row else []

    async def save_result(
        self,
        job_id: str,
        advertiser_id: str,
        *,
        status: str,
        items: list[Any],
        error: str | None,
        attempts: int,
        worker: str,
        seconds: float,
    ) -> None:
        """Idempotent per (job, advertiser): a re-run overwrites its own row; `writes` counts the runs."""
        async with self.conn() as conn:
            await conn.execute(
                "INSERT INTO job_results (job_id, advertiser_id, status, items, error, attempts, worker, seconds) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (job_id, advertiser_id) DO UPDATE SET status = EXCLUDED.status, "
                "items = EXCLUDED.items, error = EXCLUDED.error, attempts = EXCLUDED.attempts, "
                "worker = EXCLUDED.worker, seconds = EXCLUDED.seconds, finished_at = now(), "
                "writes = job_results.writes + 1",
                (
                    job_id,
                    advertiser_id,
                    status,
                    json.dumps(items, default=str),
                    error,
                    attempts,
                    worker,
                    seconds,
                ),
            )

    async def result_status(self, job_id: str, advertiser_id: str) -> str | None:
        async with self.conn() as conn:
            cur = await conn.execute(
                "SELECT status FROM job_results WHERE job_id = %s AND advertiser_id = %s",
                (job_id, advertiser_id),
            )
            row = await cur.fetchone()
        return str(row["status"]) if row else None

    async def results(self, job_id: str, *, after: str | None, limit: int) -> list[dict[str, Any]]:
        """A page of results ordered by advertiser id (keyset paging: stable while the job still runs)."""
        async with self.conn() as conn:
            cur = await conn.execute(
                "SELECT advertiser_id, status, items, error, attempts, writes, worker, seconds, finished_at "
                "FROM job_results WHERE job_id = %s AND advertiser_id > %s ORDER BY advertiser_id LIMIT %s",
                (job_id, after or "", limit),
            )
            return [dict(r) for r in await cur.fetchall()]

    async def inbox(self, advertiser_id: str, limit: int) -> list[dict[str, Any]]:
        async with self.conn() as conn:
            cur = await conn.execute(
                "SELECT job_id, items, finished_at FROM job_results WHERE advertiser_id = %s AND status = 'done' "
                "ORDER BY finished_at DESC LIMIT %s",
                (advertiser_id, limit),
            )
            return [dict(r) for r in await cur.fetchall()]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def purge(settings: Settings) -> None:
    """Drop everything a deployment stored (its schema, its Redis keys and arq's keys for its job ids): the
    tear-down of a test or benchmark run on its own prefix and schema. A Redis already gone is no error."""
    # lazy: pulls in redis at import
    import redis

    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
    r = redis.Redis.from_url(settings.redis_url)
    try:
        for pattern in (f"{settings.redis_prefix}:*", f"arq:*:{settings.redis_prefix}:*"):
            keys = list(r.scan_iter(pattern, count=1000))
            if keys:
                r.delete(*keys)
    except redis.ConnectionError:
        pass  # a throwaway Redis the caller already stopped
    finally:
        r.close()
