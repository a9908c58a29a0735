"""What routes share: the app's live objects (`Services`) and the caller (`caller` dependency: API key ->
principal, then the per-key rate limit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Path, Request, Response

from server.agents import AgentPool
from server.auth import KeyRing, Principal, authenticate
from server.config import Settings
from server.db import Database
from server.errors import ApiError
from server.limits import check_rate
from server.metrics import Metrics


@dataclass
class Services:
    settings: Settings
    keys: KeyRing
    redis: aioredis.Redis
    db: Database
    metrics: Metrics
    checkpointer: Any = None
    pool: AgentPool | None = None
    reader: Any = None  # the compiled graph over the checkpointer: reads thread state without an MCP session
    arq: Any = None  # arq's ArqRedis, for enqueueing batch work
    background: set[Any] = field(default_factory=set)  # turn tasks that outlive their request

    async def ready(self) -> None:
        """Tables (ours and LangGraph's) exist; raises DependencyDown if PostgreSQL can't be reached."""
        await self.db.ensure_schema(self.checkpointer)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def caller(request: Request, response: Response) -> Principal:
    svc = services(request)
    principal = authenticate(request, svc.keys)
    request.state.key_id = principal.key_id
    try:
        headers = await check_rate(
            svc.redis, svc.settings.redis_prefix, principal.key_id, svc.settings.rate_limit_per_minute
        )
    except ApiError as err:
        if err.status == 429:
            svc.metrics.rate_limited.inc()
        raise
    response.headers.update(headers)
    return principal


# Ids in a path are checked at the edge: a NUL byte, a path fragment or a 5,000-character id is a 422 that says
# what an id looks like, before it reaches PostgreSQL, Redis or a log line.
_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
ThreadId = Annotated[
    str,
    Path(
        pattern=_ID_PATTERN,
        max_length=64,
        description="a thread id from POST /v1/threads (letters, digits, _ . : -)",
    ),
]
JobId = Annotated[
    str,
    Path(
        pattern=_ID_PATTERN,
        max_length=64,
        description="a job id from POST /v1/jobs (letters, digits, _ . : -)",
    ),
]
