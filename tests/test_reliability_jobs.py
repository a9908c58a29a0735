"""Redis restarted mid-job (append-only file on, as docker/compose runs it): queued jobs survive the restart and
every advertiser gets exactly one result; a worker that exits on the outage is restarted, as its supervisor does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg
import pytest

from server.config import GuidanceMode
from tests.server_support import ADMIN, api_client, start_worker, stop, unique_settings
from tests.test_reliability_faults import drop_schema, needs_redis_server, own_redis


@pytest.fixture(scope="module")
def world6(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.market.data_model import WorldConfig
    from tools.market.generate import generate_world_file

    path = tmp_path_factory.mktemp("world6") / "world.sqlite"
    generate_world_file(WorldConfig(n_advertisers=6, days=30, seed=7), path)
    return path


def assert_one_done_result_each(s, job_id: str) -> None:
    """Every advertiser of the six has exactly one result row, done (none lost, none twice); drops the schema."""
    try:
        with psycopg.connect(s.checkpoint_url) as conn:
            rows = conn.execute(
                "SELECT advertiser_id, status FROM job_results WHERE job_id = %s", (job_id,)
            ).fetchall()
        assert sorted(a for a, _ in rows) == [f"adv_{i:04d}" for i in range(1, 7)]
        assert all(status == "done" for _, status in rows), rows
    finally:
        drop_schema(s)


@pytest.mark.slow
@needs_redis_server
async def test_redis_restarted_mid_job_loses_and_duplicates_nothing(world6, tmp_path):
    with own_redis(tmp_path, "--appendonly", "yes", "--appendfsync", "always") as red:
        s = unique_settings(
            world6,
            redis_url=f"redis://127.0.0.1:{red['port']}/0",
            guidance=GuidanceMode.OVERVIEW,
            job_timeout_s=20,
            worker_concurrency=1,
            job_retry_base_s=0.5,
        )
        workers = [start_worker(s, tmp_path / "worker1.log")]
        restarts = refused = 0
        try:
            async with api_client(s) as client:
                r = await asyncio.wait_for(
                    client.post("/v1/jobs", json={"advertisers": "all"}, headers=ADMIN), 60
                )
                job_id = r.json()["job_id"]
                deadline = time.time() + 120
                while (await client.get(f"/v1/jobs/{job_id}", headers=ADMIN)).json()["done"] < 1:
                    assert time.time() < deadline, f"no progress; see {tmp_path / 'worker1.log'}"
                    await asyncio.sleep(0.1)
                red["restart"]()  # SIGKILL, then the same port and data dir: the append-only file is replayed
                deadline = time.time() + 180
                while True:
                    resp = await client.get(f"/v1/jobs/{job_id}", headers=ADMIN)
                    job = resp.json()
                    if resp.status_code == 503:  # a stale pooled connection meets the restart: 503, retry
                        assert "Redis" in job["error"]["message"] and resp.headers["retry-after"]
                        refused += 1
                    elif job["status"] == "finished":
                        break
                    assert time.time() < deadline, f"job stuck after the Redis restart: {job}"
                    if workers[-1].poll() is not None:  # the documented recovery: the supervisor restarts it
                        restarts += 1
                        workers.append(start_worker(s, tmp_path / f"worker{len(workers) + 1}.log"))
                    await asyncio.sleep(0.3)
        finally:
            for w in workers:
                stop(w)
        assert refused <= 5  # the pool reconnects; not a lasting outage
        assert_one_done_result_each(s, job_id)


async def _wait_finished(client, job_id: str, log: Path, seconds: float = 180) -> dict:
    deadline = time.time() + seconds
    while True:
        resp = await client.get(f"/v1/jobs/{job_id}", headers=ADMIN)
        if resp.status_code == 200 and resp.json()["status"] == "finished":
            return resp.json()
        assert time.time() < deadline, f"job not finished: {resp.json()}; see {log}"
        await asyncio.sleep(0.3)


@pytest.mark.slow
@needs_redis_server
async def test_redis_restarted_without_persistence_then_requeue_loses_and_duplicates_nothing(
    world6, tmp_path
):
    """Redis as these machines run it (nothing on disk): a restart drops the queued arq entries. PostgreSQL still
    holds the job, so progress shows it stuck, and POST /v1/jobs/{id}/requeue queues exactly the advertisers
    without a result; the job then finishes with one result per advertiser."""
    with own_redis(tmp_path, "--appendonly", "no") as red:
        s = unique_settings(
            world6,
            redis_url=f"redis://127.0.0.1:{red['port']}/0",
            guidance=GuidanceMode.OVERVIEW,
            job_timeout_s=20,
            worker_concurrency=1,
            job_retry_base_s=0.5,
        )
        log = tmp_path / "worker.log"
        worker = None
        try:
            async with api_client(s) as client:
                # submitted while no worker runs: all six entries wait in Redis
                job_id = (await client.post("/v1/jobs", json={"advertisers": "all"}, headers=ADMIN)).json()[
                    "job_id"
                ]
                red["restart"]()  # SIGKILL and a fresh, empty Redis on the same port
                worker = start_worker(s, log)
                stuck = None
                for _ in range(40):  # the API's pool reconnects (a 503 or two on stale connections)
                    resp = await client.get(f"/v1/jobs/{job_id}", headers=ADMIN)
                    if resp.status_code == 200:
                        stuck = resp.json()
                        break
                    await asyncio.sleep(0.3)
                assert stuck is not None and stuck["total"] == 6
                await asyncio.sleep(5)  # a running worker finds nothing to do: the queue really was lost
                stuck = (await client.get(f"/v1/jobs/{job_id}", headers=ADMIN)).json()
                assert (stuck["status"], stuck["done"], stuck["remaining"]) == ("queued", 0, 6), stuck

                resp = await client.post(f"/v1/jobs/{job_id}/requeue", headers=ADMIN)
                assert resp.status_code == 200, resp.text
                assert resp.json() == {"job_id": job_id, "missing": 6, "queued": 6}
                job = await _wait_finished(client, job_id, log)
                assert (job["done"], job["failed"], job["remaining"]) == (6, 0, 0)

                again = (await client.post(f"/v1/jobs/{job_id}/requeue", headers=ADMIN)).json()
                assert (again["missing"], again["queued"]) == (0, 0)  # a finished job queues nothing more
        finally:
            if worker is not None:
                stop(worker)
        assert_one_done_result_each(s, job_id)
