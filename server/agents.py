"""A pool of open agents, one per advertiser, shared by that advertiser's requests in this API process.

Opening an agent opens its MCP session and lists the account's ids (tens of ms to a second); a chat turn
reuses it. Each agent lives inside its own asyncio task, because the MCP session's task group must be
entered and left by the same task; the pool asks that task to close it. An agent is rebuilt after
`agent_ttl_s` (fresh ids after account changes) and the least recently used one closes when the pool is
full, never while a request uses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from agent.configuration import AgentConfig, Limits
from agent.graph import Agent
from agent.guardrails.input import check_input
from server.config import Settings
from tools.keywords.embeddings import EmbeddingModelMissingError, load_model

log = logging.getLogger("adguide.server.agents")


def agent_config(settings: Settings, advertiser_id: str, **overrides: Any) -> AgentConfig:
    """The agent's config for one advertiser: the scope comes from the caller's API key (never the message)."""
    limits = Limits(max_seconds=settings.turn_seconds, max_input_chars=settings.max_message_chars)
    values: dict[str, Any] = {
        "advertiser_id": advertiser_id,
        "backend": settings.backend,
        "base_url": settings.llm_base_url,
        "model_name": settings.llm_model,
        "api_key": settings.llm_api_key,
        "store_path": settings.world_path,
        "checkpointer": "postgres",
        "checkpoint_url": settings.checkpoint_url,
        "limits": limits,
    }
    values.update(overrides)
    return AgentConfig.model_validate({k: v for k, v in values.items() if v is not None})


def warm_up() -> None:
    """Load the guardrails' recognizers (seconds of imports) before the first user or job waits for them."""
    check_input("How are my campaigns doing?", scope="adv_0001")


def warm_up_guidance() -> None:
    """What a batch worker's proactive guidance reaches on its first advertiser, loaded before the worker takes
    a job: the simulator, optimizer and keyword engines (sentence-transformers, scikit-learn, pandas imports) and
    the keyword engine's embedding model: 4-5 s of a worker's first advertiser in a profile on the loaded 2-core
    machine (the model's load 3.1 s, the keyword engine's imports 1.4 s), paid inside that advertiser's job before."""
    # lazy: these imports are the warm-up itself (a worker in overview mode, or the API, never needs them)
    import tools.auction.landscape
    import tools.keywords.engine
    import tools.mcp_server.engines  # noqa: F401

    try:
        load_model()
    except EmbeddingModelMissingError as exc:  # the keyword tools say so on their first call
        log.warning("keyword embedding model not loaded at warm-up: %s", exc)


@dataclass
class _Held:
    agent: Agent
    closing: asyncio.Event
    task: asyncio.Task[None]
    opened_at: float
    last_used: float
    users: int = 0
    retired: bool = False


@dataclass
class AgentPool:
    settings: Settings
    checkpointer: Any
    _held: dict[str, _Held] = field(default_factory=dict)
    _opening: dict[str, asyncio.Lock] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _open(self, advertiser_id: str) -> _Held:
        ready: asyncio.Future[Agent] = asyncio.get_running_loop().create_future()
        closing = asyncio.Event()
        config = agent_config(self.settings, advertiser_id)

        async def hold() -> None:
            try:
                async with Agent(config, checkpointer=self.checkpointer) as agent:
                    ready.set_result(agent)
                    await closing.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                else:
                    log.warning("closing the agent of %s failed: %r", advertiser_id, exc)

        task = asyncio.create_task(hold(), name=f"agent:{advertiser_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        agent = await ready
        now = time.monotonic()
        return _Held(agent=agent, closing=closing, task=task, opened_at=now, last_used=now)

    @asynccontextmanager
    async def agent(self, advertiser_id: str) -> AsyncIterator[Agent]:
        lock = self._opening.setdefault(advertiser_id, asyncio.Lock())
        async with lock:
            held = self._held.get(advertiser_id)
            if held is not None and time.monotonic() - held.opened_at > self.settings.agent_ttl_s:
                self._retire(advertiser_id)
                held = None
            if held is None:
                held = await self._open(advertiser_id)
                self._held[advertiser_id] = held
                self._evict()
            held.users += 1
            held.last_used = time.monotonic()
        try:
            yield held.agent
        finally:
            held.users -= 1
            if held.retired and held.users == 0:
                held.closing.set()

    def _retire(self, advertiser_id: str) -> None:
        held = self._held.pop(advertiser_id, None)
        if held is None:
            return
        held.retired = True
        if held.users == 0:
            held.closing.set()

    def _evict(self) -> None:
        while len(self._held) > self.settings.agent_pool_size:
            idle = [(h.last_used, adv) for adv, h in self._held.items() if h.users == 0]
            if not idle:
                return
            self._retire(min(idle)[1])

    async def close(self) -> None:
        for adv in list(self._held):
            self._retire(adv)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
