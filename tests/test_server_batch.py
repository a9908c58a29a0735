"""Batch guidance with real worker processes (`adguide serve worker`, arq) over real Redis and PostgreSQL:
a job's progress and paged results, the inbox, retries with backoff, and a worker killed with SIGKILL
mid-job losing and duplicating nothing."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
from arq.constants import retry_key_prefix

from server.batch import arq_job_id
from server.config import GuidanceMode, Settings
from tests.server_support import ADMIN, ADV1, ADV2, api_client, cleanup, start_worker, stop, unique_settings
from tools.market.data_model import WorldConfig
from tools.market.generate import generate_world_file

logging.getLogger("mcp").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def world8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("world8") / "world.sqlite"
    generate_world_file(WorldConfig(n_advertisers=8, days=30, seed=5), path)
    return path


async def wait_finished(
    client: Any, job_id: str, timeout: float, seen: list[dict[str, Any]] | None = None
) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}", headers=ADMIN)).json()
        if seen is not None:
            seen.append(job)
        if job["status"] == "finished":
            return dict(job)
        await asyncio.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def rows_of(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.checkpoint_url, row_factory=psycopg.rows.dict_row) as conn:
        return list(conn.execute("SELECT * FROM job_results WHERE job_id = %s", (job_id,)).fetchall())


@pytest.mark.slow
async def test_job_runs_on_a_worker_with_progress_paged_results_and_inboxes(tiny_world_path, tmp_path):
    s = unique_settings(tiny_world_path, guidance=GuidanceMode.PROACTIVE, job_timeout_s=120)
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        async with api_client(s) as client:
            r = await client.post("/v1/jobs", json={"advertisers": "all"}, headers=ADMIN)
            assert r.status_code == 202, r.text
            job = r.json()
            assert job["total"] == 3 and job["status"] in ("queued", "running") and job["remaining"] <= 3
            seen: list[dict[str, Any]] = []
            done = await wait_finished(client, job["job_id"], 240, seen)
            assert done["done"] == 3 and done["failed"] == 0 and done["progress"] == 1.0
            assert all(
                a["done"] <= b["done"] for a, b in zip(seen, seen[1:], strict=False)
            )  # progress only grows
            page1 = (
                await client.get(f"/v1/jobs/{job['job_id']}/results", params={"limit": 2}, headers=ADMIN)
            ).json()
            page2 = (
                await client.get(
                    f"/v1/jobs/{job['job_id']}/results",
                    params={"limit": 2, "after": page1["next_cursor"]},
                    headers=ADMIN,
                )
            ).json()
            got = [r["advertiser_id"] for r in page1["results"] + page2["results"]]
            assert got == ["adv_0001", "adv_0002", "adv_0003"] and page2["next_cursor"] is None
            first = page1["results"][0]
            assert first["status"] == "done" and first["worker"]
            assert any(r["items"] for r in page1["results"] + page2["results"])
            for item in first["items"]:  # the agent's proactive mode: ranked changes with simulated impact
                assert (
                    item["text"]
                    and item["impact"]["mean"] is not None
                    and item["confidence"] in ("high", "medium", "low")
                    and item["propose"]
                )
            assert [i["rank"] for i in first["items"]] == sorted(i["rank"] for i in first["items"])
            inbox1 = (await client.get("/v1/inbox", headers=ADV1)).json()
            inbox2 = (await client.get("/v1/inbox", headers=ADV2)).json()
            assert [i["job_id"] for i in inbox1] == [job["job_id"]] == [i["job_id"] for i in inbox2]
            assert inbox1[0]["items"] == first["items"] and inbox2[0]["items"] != inbox1[0]["items"]
            assert (
                await client.get("/v1/inbox", params={"advertiser_id": "adv_0002"}, headers=ADMIN)
            ).json() == inbox2
            metrics = (await client.get("/metrics")).text
            assert "adguide_batch_queue_depth 0.0" in metrics
            assert "adguide_batch_advertisers_submitted_total 3.0" in metrics
    finally:
        stop(worker)
        cleanup(s)
    assert worker.returncode == 0  # SIGTERM: a clean shutdown


@pytest.mark.slow
async def test_failures_are_retried_with_backoff_then_recorded(tiny_world_path, tmp_path):
    """The worker's data is missing at first: job 1 fails on every try and records why; job 2's data appears
    after its first failed try, and the retry succeeds."""
    worker_world = tmp_path / "late" / "world.sqlite"
    s = unique_settings(
        tiny_world_path, guidance=GuidanceMode.OVERVIEW, job_max_tries=2, job_retry_base_s=0.5
    )
    worker = start_worker(s.model_copy(update={"world_path": worker_world}), tmp_path / "worker.log")
    try:
        async with api_client(s) as client:
            job1 = (await client.post("/v1/jobs", json={"advertisers": ["adv_0001"]}, headers=ADMIN)).json()
            done = await wait_finished(client, job1["job_id"], 120)
            assert done["failed"] == 1 and done["done"] == 0
            result = (await client.get(f"/v1/jobs/{job1['job_id']}/results", headers=ADMIN)).json()[
                "results"
            ][0]
            assert result["attempts"] == 2 and "world" in result["error"].lower()
            assert (
                await client.get("/v1/inbox", headers=ADV1)
            ).json() == []  # failures don't reach the inbox

            job2 = (await client.post("/v1/jobs", json={"advertisers": ["adv_0002"]}, headers=ADMIN)).json()
            r = aioredis.Redis.from_url(s.redis_url)
            arq_id = arq_job_id(s.redis_prefix, job2["job_id"], "adv_0002")
            deadline = time.time() + 60
            while time.time() < deadline:  # wait for the first try to fail and be deferred (backoff)
                score = await r.zscore(s.queue_name, arq_id)
                if await r.get(f"arq:retry:{arq_id}") and score and score > time.time() * 1000:
                    break
                await asyncio.sleep(0.05)
            await r.aclose()
            worker_world.parent.mkdir()
            for f in tiny_world_path.parent.iterdir():
                shutil.copy2(f, worker_world.parent / f.name)
            done = await wait_finished(client, job2["job_id"], 120)
            assert done["done"] == 1
            result = (await client.get(f"/v1/jobs/{job2['job_id']}/results", headers=ADMIN)).json()[
                "results"
            ][0]
            assert result["attempts"] == 2 and result["error"] is None
    finally:
        stop(worker)
        cleanup(s)


@pytest.mark.slow
async def test_sigkill_of_a_worker_mid_job_loses_and_duplicates_nothing(world8, tmp_path):
    s = unique_settings(world8, guidance=GuidanceMode.OVERVIEW, job_timeout_s=8, worker_concurrency=2)
    first = start_worker(s, tmp_path / "worker1.log")
    second = None
    try:
        async with api_client(s) as client:
            job = (await client.post("/v1/jobs", json={"advertisers": "all"}, headers=ADMIN)).json()
            job_id = job["job_id"]
            r = aioredis.Redis.from_url(s.redis_url)
            deadline = time.time() + 120
            while time.time() < deadline:  # kill while it holds a job: some done, more than its share left
                progress = (await client.get(f"/v1/jobs/{job_id}", headers=ADMIN)).json()
                running = [k async for k in r.scan_iter(f"arq:in-progress:{s.redis_prefix}:{job_id}:*")]
                if progress["done"] >= 1 and running and progress["remaining"] > s.worker_concurrency:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(
                    f"the worker never got going: {progress}; see {tmp_path / 'worker1.log'}"
                )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            # in progress at the kill and without a result row: an in-progress key can outlive its job by a moment
            # (the row written, the key not yet deleted), and on a loaded machine that race is common
            finished = {row["advertiser_id"] for row in rows_of(s, job_id)}
            interrupted = {k.decode().rsplit(":", 1)[1] for k in running} - finished
            # arq marks a job in progress a moment before it counts the try: a kill in between leaves the count
            # at 0 and the redelivery is try 1, so each job's tries are read back as the kill left them
            tries = {
                adv: int(await r.get(retry_key_prefix + arq_job_id(s.redis_prefix, job_id, adv)) or 0)
                for adv in interrupted
            }
            second = start_worker(s, tmp_path / "worker2.log")
            await wait_finished(client, job_id, 180)
            await r.aclose()
            inboxes = {}
            for key, adv in [("key-adv1", "adv_0001"), ("key-adv2", "adv_0002")]:
                inboxes[adv] = (
                    await client.get("/v1/inbox", headers={"Authorization": f"Bearer {key}"})
                ).json()
    finally:
        stop(first)
        if second is not None:
            stop(second)
    try:
        rows = rows_of(s, job_id)
        advertisers = [f"adv_{i:04d}" for i in range(1, 9)]
        assert sorted(r["advertiser_id"] for r in rows) == advertisers  # nothing lost, nothing twice
        assert all(r["status"] == "done" and r["items"] for r in rows)
        # the job the killed worker held was delivered again (its next try) and finished by the new worker
        assert second is not None
        redelivered = [r for r in rows if r["advertiser_id"] in interrupted]
        assert all(
            r["attempts"] == tries[r["advertiser_id"]] + 1 and r["worker"].endswith(f":{second.pid}")
            for r in redelivered
        ), (tries, rows)
        assert interrupted and len(redelivered) == len(interrupted), (interrupted, rows)
        assert all(len([i for i in inbox if i["job_id"] == job_id]) == 1 for inbox in inboxes.values())
    finally:
        cleanup(s)


def test_a_proactive_worker_loads_its_guidance_tools_before_its_first_job():
    """The engines' imports and the keyword engine's embedding model load in the worker's startup (before arq's
    'worker ready'), not inside the first advertiser's job."""
    import sys

    from server.agents import warm_up_guidance
    from tools.keywords.embeddings import _load

    warm_up_guidance()
    loaded = {"tools.keywords.engine", "tools.auction.landscape", "tools.mcp_server.engines"}
    assert loaded <= set(sys.modules)
    assert _load.cache_info().currsize == 1
