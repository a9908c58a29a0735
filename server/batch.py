"""Proactive guidance in batch: submit a job (advertisers or all), watch progress, page results; the inbox.

A job is one row in PostgreSQL and one arq job per advertiser in Redis (arq job id
`<prefix>:<job_id>:<advertiser>`, so enqueueing twice is a no-op). Workers (server/worker.py) write one
result row per (job, advertiser) with an upsert; progress and results are read from PostgreSQL, the
truth that survives Redis restarts. `POST /v1/jobs/{id}/requeue` puts back whatever has no result yet
(after a Redis outage during submit, or arq entries that expired).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from server.auth import Principal, Role, require_admin, require_advertiser
from server.db import iso
from server.deps import JobId, Services, caller, services
from server.errors import ApiError, DependencyDown
from server.limits import REDIS_DOWN
from tools.errors import AdguideError
from tools.market.db import redact
from tools.market.store import MarketStore, default_store

log = logging.getLogger("adguide.server.batch")
router = APIRouter(prefix="/v1", tags=["batch"])

GUIDE_FUNCTION = "guide_advertiser"
MAX_ADVERTISERS = 100_000


class JobIn(BaseModel):
    advertisers: list[str] | Literal["all"] = Field(
        description='advertiser ids, or "all" for every advertiser in the world',
        examples=[["adv_0001"], "all"],
    )


class JobOut(BaseModel):
    job_id: str
    status: Literal["queued", "running", "finished"]
    total: int
    done: int
    failed: int
    remaining: int
    progress: float = Field(description="(done + failed) / total")
    created_at: str | None
    last_result_at: str | None


class ResultOut(BaseModel):
    advertiser_id: str
    status: Literal["done", "failed"]
    items: list[Any]
    error: str | None
    attempts: int
    worker: str
    seconds: float
    finished_at: str | None


class ResultsPage(BaseModel):
    job_id: str
    results: list[ResultOut]
    next_cursor: str | None = Field(description="pass as ?after= for the next page; null at the end so far")


class InboxItem(BaseModel):
    job_id: str
    received_at: str | None
    items: list[Any]


def arq_job_id(prefix: str, job_id: str, advertiser_id: str) -> str:
    return f"{prefix}:{job_id}:{advertiser_id}"


def world_advertisers(svc: Services) -> list[str]:
    # a file, or one PostgreSQL store that workers on every machine read (ADGUIDE_STORE_URL / ADGUIDE_WORLD)
    path = svc.settings.world_path or default_store()
    try:
        with MarketStore.open(path) as store:
            return list(store.advertiser_ids())
    except FileNotFoundError as exc:
        raise ApiError(
            503,
            "world_missing",
            f"no advertiser data at {redact(str(path))}; generate it with `adguide market generate` or set "
            "ADGUIDE_WORLD / ADGUIDE_STORE_URL",
        ) from exc
    except AdguideError as exc:  # an unreachable or unmigrated database store
        raise ApiError(503, "store_unavailable", str(exc), headers={"Retry-After": "5"}) from exc


async def _enqueue(svc: Services, job_id: str, advertisers: list[str]) -> int:
    """Queue each advertiser (idempotent by arq job id); returns how many were newly queued."""
    queued = 0
    try:
        for adv in advertisers:
            job = await svc.arq.enqueue_job(
                GUIDE_FUNCTION, job_id, adv, _job_id=arq_job_id(svc.settings.redis_prefix, job_id, adv)
            )
            queued += job is not None
    except REDIS_DOWN as exc:
        raise ApiError(
            503,
            "dependency_unavailable",
            f"Redis went away after {queued} of {len(advertisers)} "
            f"advertisers were queued; the job is kept: POST /v1/jobs/{job_id}/requeue when Redis is "
            "back",
            headers={"Retry-After": "5"},
            extra={"job_id": job_id},
        ) from exc
    return queued


@router.post("/jobs", status_code=202, response_model=JobOut, summary="Submit a batch guidance job (admin)")
async def submit(
    body: JobIn, principal: Principal = Depends(caller), svc: Services = Depends(services)
) -> JobOut:
    require_admin(principal)
    known = world_advertisers(svc)
    if body.advertisers == "all":
        advertisers = known
    else:
        advertisers = list(dict.fromkeys(body.advertisers))  # duplicates in the request count once
        unknown = sorted(set(advertisers) - set(known))
        if unknown:
            raise ApiError(
                422,
                "unknown_advertisers",
                f"advertisers: {len(unknown)} unknown id(s): "
                f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}; use ids of this world "
                f'(e.g. {known[0] if known else "none exist"}) or "all"',
            )
    if not advertisers:
        raise ApiError(
            422, "no_advertisers", 'advertisers: the list is empty; name at least one or use "all"'
        )
    if len(advertisers) > MAX_ADVERTISERS:
        raise ApiError(
            422,
            "too_many_advertisers",
            f"advertisers: at most {MAX_ADVERTISERS} per job (got {len(advertisers)}); split the job",
        )
    try:
        await svc.redis.ping()  # fail before writing anything if the queue is down
    except REDIS_DOWN as exc:
        raise DependencyDown("Redis", exc) from exc
    await svc.ready()
    job_id = f"job_{uuid.uuid4().hex[:16]}"
    await svc.db.create_job(job_id, principal.key_id, advertisers)
    await _enqueue(svc, job_id, advertisers)
    svc.metrics.jobs_submitted.inc()
    svc.metrics.advertisers_submitted.inc(len(advertisers))
    log.info("job submitted", extra={"job": job_id, "advertisers": len(advertisers)})
    return await _job_out(svc, job_id)


async def _job_out(svc: Services, job_id: str) -> JobOut:
    await svc.ready()
    row = await svc.db.job(job_id)
    if row is None:
        raise ApiError(404, "job_not_found", f"no job {job_id!r}; submit one with POST /v1/jobs")
    total, done, failed = int(row["total"]), int(row["done"]), int(row["failed"])
    finished = done + failed
    status: Literal["queued", "running", "finished"] = (
        "finished" if finished >= total else "running" if finished else "queued"
    )
    return JobOut(
        job_id=job_id,
        status=status,
        total=total,
        done=done,
        failed=failed,
        remaining=total - finished,
        progress=round(finished / total, 4) if total else 1.0,
        created_at=iso(row["created_at"]),
        last_result_at=iso(row["last_result_at"]),
    )


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A job's progress (admin)")
async def job_status(
    job_id: JobId, principal: Principal = Depends(caller), svc: Services = Depends(services)
) -> JobOut:
    require_admin(principal)
    return await _job_out(svc, job_id)


@router.post("/jobs/{job_id}/requeue", summary="Queue again the advertisers that have no result yet (admin)")
async def requeue(
    job_id: JobId, principal: Principal = Depends(caller), svc: Services = Depends(services)
) -> dict[str, Any]:
    require_admin(principal)
    await _job_out(svc, job_id)  # 404 for an unknown job
    advertisers = await svc.db.job_advertisers(job_id)
    missing = [a for a in advertisers if await svc.db.result_status(job_id, a) is None]
    return {"job_id": job_id, "missing": len(missing), "queued": await _enqueue(svc, job_id, missing)}


@router.get("/jobs/{job_id}/results", response_model=ResultsPage, summary="A page of a job's results (admin)")
async def results(
    job_id: JobId,
    after: str | None = Query(None, max_length=200, description="cursor from the last page"),
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(caller),
    svc: Services = Depends(services),
) -> ResultsPage:
    require_admin(principal)
    await _job_out(svc, job_id)
    rows = await svc.db.results(job_id, after=after, limit=limit)
    page = [ResultOut(**{**r, "finished_at": iso(r["finished_at"])}) for r in rows]
    return ResultsPage(
        job_id=job_id, results=page, next_cursor=page[-1].advertiser_id if len(page) == limit else None
    )


@router.get(
    "/inbox", response_model=list[InboxItem], summary="Your guidance inbox: batch results, newest first"
)
async def inbox(
    limit: int = Query(20, ge=1, le=200),
    advertiser_id: str | None = Query(None, max_length=64, description="admin keys only"),
    principal: Principal = Depends(caller),
    svc: Services = Depends(services),
) -> list[InboxItem]:
    if principal.role == Role.ADMIN:
        if not advertiser_id:
            raise ApiError(422, "advertiser_required", "advertiser_id: an admin key must name the advertiser")
        target = advertiser_id
    else:
        target = require_advertiser(principal)
        if advertiser_id not in (None, target):  # an advertiser can't read another's inbox, whatever it asks
            raise ApiError(
                403, "forbidden", "an advertiser key reads its own inbox only; leave out advertiser_id"
            )
    await svc.ready()
    rows = await svc.db.inbox(target, limit)
    return [
        InboxItem(job_id=r["job_id"], received_at=iso(r["finished_at"]), items=list(r["items"])) for r in rows
    ]
