"""Limits kept in Redis so every API process shares them: per-key rate limits and one turn at a time per thread.

Rate limit: a fixed one-minute window per API key (INCR + EXPIRE in one round trip). Over the limit:
429 with Retry-After = seconds to the next window. A thread lock (SET NX EX) keeps two turns of one
conversation from interleaving, across API processes; it expires on its own if a process dies mid-turn.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.errors import ApiError, DependencyDown

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2, health_check_interval=30)


async def check_rate(redis: aioredis.Redis, prefix: str, key_id: str, per_minute: int) -> dict[str, str]:
    """Count this request; raise 429 past the limit. Returns the RateLimit headers for the response."""
    now = time.time()
    window = int(now // 60)
    key = f"{prefix}:rl:{key_id}:{window}"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 61)
            count, _ = await pipe.execute()
    except REDIS_DOWN as exc:
        raise DependencyDown("Redis", exc) from exc
    reset = max(1, math.ceil((window + 1) * 60 - now))
    headers = {
        "RateLimit-Limit": str(per_minute),
        "RateLimit-Remaining": str(max(0, per_minute - int(count))),
        "RateLimit-Reset": str(reset),
    }
    if int(count) > per_minute:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {per_minute} requests this minute for this API key; retry after {reset} s",
            headers={**headers, "Retry-After": str(reset)},
        )
    return headers


async def acquire_thread(redis: aioredis.Redis, prefix: str, thread_id: str, ttl_s: float) -> str:
    """Take the thread's turn lock (409 if another turn runs); returns the token that releases it."""
    token = uuid.uuid4().hex
    try:
        got = await redis.set(f"{prefix}:turn:{thread_id}", token, nx=True, ex=max(1, math.ceil(ttl_s)))
    except REDIS_DOWN as exc:
        raise DependencyDown("Redis", exc) from exc
    if not got:
        raise ApiError(
            409,
            "turn_in_progress",
            "this conversation is still answering the previous message; "
            "wait for it to finish, then send again",
        )
    return token


async def release_thread(redis: aioredis.Redis, prefix: str, thread_id: str, token: str) -> None:
    """Release the lock only if it is still ours (it may have expired and been taken by a later turn)."""
    try:
        release: Any = redis.eval(_RELEASE, 1, f"{prefix}:turn:{thread_id}", token)
        await release
    except REDIS_DOWN:
        pass  # it expires on its own
