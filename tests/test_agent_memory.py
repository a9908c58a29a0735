"""Threads survive a restart: a proposal made in one process is confirmed from a fresh process over the same
checkpoint store (SQLite, the embedded default; PostgreSQL, the server's)."""

import subprocess
import sys
import textwrap
import uuid

import psycopg
import pytest

from agent.configuration import AgentConfig
from agent.graph import Agent
from tests.test_agent_graph import a_keyword, bid_of, world, world_template  # noqa: F401  (fixtures)

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def confirm_in_fresh_process(world_path, checkpointer, url, thread):
    script = textwrap.dedent(f"""
        import asyncio, logging
        logging.disable(logging.INFO)
        from agent.configuration import AgentConfig
        from agent.graph import Agent
        async def main():
            cfg = AgentConfig(advertiser_id="adv_0001", backend="rules", store_path={str(world_path)!r},
                              checkpointer={checkpointer!r}, checkpoint_url={url!r})
            async with Agent(cfg) as agent:
                assert (await agent.pending({thread!r})).type == "confirmation"
                print((await agent.confirm({thread!r}, "confirm")).text)
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


async def propose_and_close(world_path, checkpointer, url, thread):
    kw = a_keyword(world_path)
    cfg = AgentConfig(
        advertiser_id="adv_0001",
        backend="rules",
        store_path=world_path,
        checkpointer=checkpointer,
        checkpoint_url=url,
    )
    async with Agent(cfg) as agent:
        await agent.ask(thread, "How is my account doing?")
        result = await agent.ask(thread, f"Set the bid of {kw.id} to ${kw.bid * 1.2:.2f}")
        assert result.confirmation is not None
    return kw


@pytest.mark.slow
async def test_sqlite_thread_resumes_in_a_fresh_process(world, tmp_path):  # noqa: F811
    url = str(tmp_path / "threads.sqlite")
    kw = await propose_and_close(world, "sqlite", url, "t-restart")
    assert "Applied" in confirm_in_fresh_process(world, "sqlite", url, "t-restart")
    assert bid_of(world, kw.id) == round(kw.bid * 1.2, 2)
    cfg = AgentConfig(
        advertiser_id="adv_0001", backend="rules", store_path=world, checkpointer="sqlite", checkpoint_url=url
    )
    async with Agent(cfg) as agent:  # the whole conversation is there, in order
        kinds = [m.type for m in await agent.messages("t-restart")]
    assert kinds[:4] == ["human", "ai", "tool", "ai"] and kinds[-1] == "ai"


def _postgres_up() -> bool:
    try:
        psycopg.connect(PG_URL, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not _postgres_up(), reason="PostgreSQL is not running on 127.0.0.1:5432")
async def test_postgres_thread_resumes_in_a_fresh_process(world):  # noqa: F811
    thread = f"t-{uuid.uuid4().hex[:8]}"
    kw = await propose_and_close(world, "postgres", PG_URL, thread)
    assert "Applied" in confirm_in_fresh_process(world, "postgres", PG_URL, thread)
    assert bid_of(world, kw.id) == round(kw.bid * 1.2, 2)
