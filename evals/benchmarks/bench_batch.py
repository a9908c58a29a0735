"""Batch guidance throughput: advertisers per minute with 1 and with 2 worker processes, side by side.

Real pieces end to end: a generated world, real Redis and PostgreSQL on loopback, the API in process (job
submit and progress over HTTP), and `adguide serve worker` processes running the agent's proactive mode
with the deterministic "rules" backend (no model server: the figure is the cost of the tools — simulator,
optimizers, keyword engine — and the orchestration). Workers are started and warmed up before the clock
starts; the clock runs from submit to the last result.

    .venv/bin/python -m evals.benchmarks.bench_batch --advertisers 12 --workers 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _env(settings: Any) -> dict[str, str]:
    return {
        **os.environ,
        **settings.to_env(),
        "ADGUIDE_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ADGUIDE_MCP_CACHE": _CACHE[0],
    }


_CACHE = ["off"]  # the MCP tool-result cache (Redis) of the worker processes: off = every run computes


async def _run(settings: Any, n_workers: int, log_dir: Path) -> dict[str, Any]:
    import httpx
    import redis.asyncio as aioredis

    from server.app import create_app

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "adguide_cli", "serve", "worker"],
            cwd=REPO,
            env=_env(settings),
            stdout=open(log_dir / f"worker{n_workers}_{i}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        for i in range(n_workers)
    ]
    r = aioredis.Redis.from_url(settings.redis_url)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:  # arq writes its health-check key once a worker is up (after warm-up)
            if await r.exists(f"{settings.queue_name}:health-check"):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0 * n_workers)  # let every process finish its warm-up too
        app = create_app(settings)
        admin = {"Authorization": "Bearer bench-admin"}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=60
            ) as client,
        ):
            started = time.perf_counter()
            job = (await client.post("/v1/jobs", json={"advertisers": "all"}, headers=admin)).json()
            while True:
                resp = await client.get(f"/v1/jobs/{job['job_id']}", headers=admin)
                status = resp.json()
                if resp.status_code != 200:
                    raise RuntimeError(f"progress: {resp.status_code} {status}")
                if status["status"] == "finished":
                    break
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - started
            results = []
            after = None
            while True:
                page = (
                    await client.get(
                        f"/v1/jobs/{job['job_id']}/results",
                        params={"limit": 500, "after": after},
                        headers=admin,
                    )
                ).json()
                results += page["results"]
                if not page["next_cursor"]:
                    break
                after = page["next_cursor"]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        await r.aclose()
    items = sum(len(x["items"]) for x in results)
    return {
        "workers": n_workers,
        "advertisers": status["total"],
        "done": status["done"],
        "failed": status["failed"],
        "seconds": elapsed,
        "per_minute": 60 * status["total"] / elapsed,
        "mean_advertiser_s": sum(x["seconds"] for x in results) / max(1, len(results)),
        "items": items,
        "retries": sum(x["attempts"] - 1 for x in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--advertisers", type=int, default=12)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to compare")
    parser.add_argument("--guidance", choices=["proactive", "overview"], default="proactive")
    parser.add_argument("--backend", default="rules", help="rules | teacher (no model server needed)")
    parser.add_argument(
        "--tool-cache",
        choices=["off", "on"],
        default="off",
        help="the MCP tool-result cache; on: runs after the first reuse its simulations",
    )
    args = parser.parse_args()
    _CACHE[0] = args.tool_cache

    from rich.console import Console
    from rich.table import Table

    from server.config import GuidanceMode, Settings
    from server.db import purge
    from tools.market.data_model import WorldConfig
    from tools.market.generate import generate_world_file

    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        world = Path(tmp) / "world.sqlite"
        generate_world_file(WorldConfig(n_advertisers=args.advertisers, days=args.days, seed=3), world)
        rows = []
        for n in [int(x) for x in args.workers.split(",")]:
            tag = uuid.uuid4().hex[:8]
            settings = Settings(
                world_path=world,
                backend=args.backend,
                guidance=GuidanceMode(args.guidance),
                redis_prefix=f"bench-{tag}",
                pg_schema=f"adguide_bench_{tag}",
                worker_concurrency=1,
                job_timeout_s=600,
                api_keys={"bench-admin": "admin"},
                rate_limit_per_minute=1_000_000,
            )  # the progress poll is not what we measure
            try:
                console.print(
                    f"[bold]{n} worker(s)[/]: {args.advertisers} advertisers, {args.guidance} guidance, "
                    f"{args.backend} backend …"
                )
                rows.append(asyncio.run(_run(settings, n, Path(tmp))))
            finally:
                purge(settings)
    table = Table(
        title=f"batch guidance throughput (CPU cores: {os.cpu_count()}; one advertiser at a time per "
        f"worker; tool cache {args.tool_cache})"
    )
    for col in [
        "workers",
        "advertisers",
        "done",
        "failed",
        "seconds",
        "adv/min",
        "s/adv",
        "items",
        "retries",
        "speed-up",
    ]:
        table.add_column(col, justify="right", no_wrap=True)
    base = rows[0]["per_minute"] if rows else 1.0
    for r in rows:
        table.add_row(
            str(r["workers"]),
            str(r["advertisers"]),
            str(r["done"]),
            str(r["failed"]),
            f"{r['seconds']:.1f}",
            f"{r['per_minute']:.1f}",
            f"{r['mean_advertiser_s']:.2f}",
            str(r["items"]),
            str(r["retries"]),
            f"{r['per_minute'] / base:.2f}x",
        )
    console.print(table)


if __name__ == "__main__":
    main()
