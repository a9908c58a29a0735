"""A Redis cache of expensive tool results (simulations, uplift fits), never needed for correctness.

Keys hold the tool name, the advertiser, the store's data_version, a hash of the validated arguments and
the code version (a digest of the tools' source), so a write (which bumps data_version) or a deploy that
changes how a tool computes makes every older entry unreachable; entries also expire.
Switch it off with ADGUIDE_MCP_CACHE=off (or `ToolCache(enabled=False)`). If Redis is unreachable the
cache turns itself off for a short while and tools compute their results directly.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from tools.settings import ToolSettings

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30.0


def source_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


@functools.cache
def code_version() -> str:
    """A digest of every source file under tools/: results computed by other code are never read back."""
    return source_digest(Path(__file__).resolve().parents[1])


def cache_enabled_by_env() -> bool:
    return ToolSettings.from_env().mcp_cache


class ToolCache:
    def __init__(
        self,
        url: str | None = None,
        *,
        enabled: bool | None = None,
        ttl_s: int = 3600,
        prefix: str = "adguide:mcp:v1",
    ) -> None:
        self.url = url or ToolSettings.from_env().redis_url
        self.enabled = cache_enabled_by_env() if enabled is None else enabled
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._client: Any = None
        self._down_until = 0.0
        self.hits = 0
        self.misses = 0

    def key(self, tool: str, advertiser_id: str, data_version: str, args: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()[:32]
        return f"{self.prefix}:{code_version()}:{tool}:{advertiser_id}:{data_version}:{digest}"

    def _redis(self) -> Any:
        if not self.enabled or time.monotonic() < self._down_until:
            return None
        if self._client is None:
            # lazy: redis is heavy and needed only here
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=0.25, socket_timeout=0.5, decode_responses=True
            )
        return self._client

    def _mark_down(self, err: Exception) -> None:
        log.warning("tool cache off for %.0f s: redis unreachable (%s)", RETRY_AFTER_S, err)
        self._down_until = time.monotonic() + RETRY_AFTER_S

    async def get(self, key: str) -> str | None:
        client = self._redis()
        if client is None:
            return None
        try:
            value = await client.get(key)
        except Exception as err:  # any Redis/network failure: compute instead
            self._mark_down(err)
            return None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def set(self, key: str, value: str) -> None:
        client = self._redis()
        if client is None:
            return
        try:
            await client.set(key, value, ex=self.ttl_s)
        except Exception as err:
            self._mark_down(err)

    async def aclose(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # closing a broken connection must not fail the caller
                await self._client.aclose()
            self._client = None
