"""Batch guidance workers: arq worker processes that turn one (job, advertiser) into a result row.

Delivery is at least once: arq keeps a job in its Redis queue until a worker finishes it; a worker that
dies (even SIGKILL) leaves an in-progress marker that expires after job_timeout + 10 s, and another worker
then runs the job again. Results are idempotent: one row per (job, advertiser), written by an upsert,
and a run that finds its row already `done` skips the work. Failures are retried with exponential
backoff; the last try records a `failed` row with the reason, so a job always finishes.

Scale-out: start more `adguide serve worker` processes, here or on other machines pointed at the same
Redis, PostgreSQL, world data and model endpoint (vLLM replicas behind one URL).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Any

from arq import Retry
from arq.connections import RedisSettings
from arq.worker import Worker

from agent.graph import Agent
from server.agents import agent_config, warm_up, warm_up_guidance
from server.batch import GUIDE_FUNCTION
from server.config import GuidanceMode, Settings
from server.db import Database
from server.logs import job_id_var, setup_logging

log = logging.getLogger("adguide.server.worker")

OVERVIEW_QUESTION = "How is my account doing?"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


async def guidance(settings: Settings, advertiser_id: str) -> list[Any]:
    """One advertiser's guidance as JSON-ready items: the agent's proactive mode (`Agent.guide`: ranked
    changes with simulated impact, each with its text), or, in overview mode, one grounded overview turn."""
    config = agent_config(settings, advertiser_id, checkpointer="memory", checkpoint_url=None)
    async with Agent(config) as agent:
        if settings.guidance == GuidanceMode.OVERVIEW:
            turn = await agent.ask(f"digest-{uuid.uuid4().hex[:8]}", OVERVIEW_QUESTION)
            return [{"rank": 1, "title": "Account overview", "text": turn.text}]
        report = await agent.guide()
    items = getattr(report, "items", report)
    return [
        {**_jsonable(item), "text": item.text()} if hasattr(item, "text") else _jsonable(item)
        for item in (items if isinstance(items, list) else [items])
    ]


def backoff_s(job_try: int, base: float) -> float:
    return min(300.0, base * 2 ** max(0, job_try - 1))


async def guide_advertiser(ctx: dict[str, Any], job_id: str, advertiser_id: str) -> str:
    settings: Settings = ctx["settings"]
    db: Database = ctx["db"]
    job_try = int(ctx.get("job_try", 1))
    job_id_var.set(job_id)
    started = time.perf_counter()
    try:
        if await db.result_status(job_id, advertiser_id) == "done":
            return "skipped"  # an earlier run finished and wrote it; the re-delivery is a no-op
        items = await asyncio.wait_for(
            ctx["guidance"](settings, advertiser_id), timeout=settings.job_timeout_s
        )
        seconds = time.perf_counter() - started
        await db.save_result(
            job_id,
            advertiser_id,
            status="done",
            items=items,
            error=None,
            attempts=job_try,
            worker=ctx["worker_name"],
            seconds=seconds,
        )
    except Exception as exc:  # the model, the tools or PostgreSQL failed: retry with backoff, then record it
        reason = f"{type(exc).__name__}: {exc}"[:500]
        if job_try < settings.job_max_tries:
            defer = backoff_s(job_try, settings.job_retry_base_s)
            log.warning(
                "guidance failed, retrying",
                extra={"advertiser_id": advertiser_id, "try": job_try, "defer_s": defer, "reason": reason},
            )
            raise Retry(defer=defer) from exc
        log.error(
            "guidance failed for good",
            extra={"advertiser_id": advertiser_id, "try": job_try, "reason": reason},
        )
        await db.save_result(
            job_id,
            advertiser_id,
            status="failed",
            items=[],
            error=reason,
            attempts=job_try,
            worker=ctx["worker_name"],
            seconds=time.perf_counter() - started,
        )
        return "failed"
    log.info(
        "guidance done",
        extra={
            "advertiser_id": advertiser_id,
            "try": job_try,
            "seconds": round(seconds, 3),
            "items": len(items),
        },
    )
    return "done"


def make_worker(settings: Settings, *, burst: bool = False) -> Worker:
    """An arq Worker for these settings (the queue, Redis and PostgreSQL they name)."""

    async def startup(ctx: dict[str, Any]) -> None:
        db = Database(settings, max_size=settings.worker_concurrency + 1)
        await db.open()
        await db.ensure_schema()
        await asyncio.to_thread(warm_up)  # imports before the first job's clock starts
        if settings.guidance == GuidanceMode.PROACTIVE:
            await asyncio.to_thread(warm_up_guidance)
        ctx.update(
            settings=settings, db=db, guidance=guidance, worker_name=f"{socket.gethostname()}:{os.getpid()}"
        )
        log.info(
            "worker ready", extra={"queue": settings.queue_name, "concurrency": settings.worker_concurrency}
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "db" in ctx:
            await ctx["db"].close()

    return Worker(
        functions=[guide_advertiser],
        queue_name=settings.queue_name,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=settings.worker_concurrency,
        job_timeout=settings.job_timeout_s + 5,  # our own timeout fires first and retries cleanly
        max_tries=settings.job_max_tries
        + 1,  # the last try of ours records the failure; arq's cap is a backstop
        keep_result=3600,
        poll_delay=0.2,
        burst=burst,
        health_check_interval=30,
    )


def run(settings: Settings | None = None, *, burst: bool = False) -> None:
    """Run one worker process until SIGTERM/SIGINT (it finishes nothing half-way: unfinished jobs go back)."""
    settings = settings or Settings.from_env()
    setup_logging(settings.log_level)
    make_worker(settings, burst=burst).run()


assert guide_advertiser.__name__ == GUIDE_FUNCTION
