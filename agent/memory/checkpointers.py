"""Conversation memory: LangGraph checkpointers per thread. SQLite is the embedded default (one file under
$ADGUIDE_HOME), PostgreSQL the server's (many API processes share it); memory for throwaway runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from agent.configuration import AgentConfig, CheckpointerKind


@asynccontextmanager
async def open_checkpointer(config: AgentConfig) -> AsyncIterator[Any]:
    """An async checkpointer for `config.checkpointer`, set up (tables created) and closed on exit."""
    kind = config.checkpointer
    url = config.resolved_checkpoint_url()
    if kind == CheckpointerKind.MEMORY:
        # lazy: langgraph is heavy and needed only here
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
    elif kind == CheckpointerKind.SQLITE:
        # lazy: langgraph is heavy and needed only here
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        Path(url).expanduser().parent.mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteSaver.from_conn_string(str(Path(url).expanduser())) as saver:
            await saver.setup()
            yield saver
    elif kind == CheckpointerKind.POSTGRES:
        # lazy: langgraph is heavy and needed only here
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            yield saver
    else:  # pragma: no cover - pydantic validates the enum
        raise ValueError(f"checkpointer must be one of {[k.value for k in CheckpointerKind]} (got {kind!r})")
