"""Batch guidance throughput: advertisers per minute with 1 and with 2 worker processes, side by side.

Real pieces end to end: a generated world, real Redis and PostgreSQL on loopback, the API in process (job
submit and progress over HTTP), and `adguide serve worker` processes running the agent's proactive mode
with the deterministic "rules" backend (no model server: the figure is the cost of the tools — simulator,
optimizers, keyword engine — and the orchestration). Workers are started and the clock waits until every one
has logged "worker ready" (its warm-up done); it runs from submit to the last result. Besides advertisers per
minute it records the workers' CPU seconds per advertiser and the cores they used (CPU seconds over wall seconds):
on a machine shared with other work, two workers can only be as much faster as the cores they get, and CPU per
advertiser says whether a second process costs anything of its own. `--rounds` interleaves the worker counts
(1, 2, 1, 2) so a drifting load hits both; each run's load average is recorded.

Linux's autogroup scheduler (`/proc/sys/kernel/sched_autogroup_enabled`) divides a busy machine's CPU between
sessions first: workers started from one shell share one session's share, however many they are, while workers
run as separate services (compose replicas, systemd units) each get their own. `2own` starts each worker in its
own session; `2` starts them in the benchmark's.

    .venv/bin/python -m evals.benchmarks.bench_batch --advertisers 12 --workers 1,2,2own --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table

from server.app import create_app
from server.config import GuidanceMode, Settings
from server.db import purge
from tools.market.data_model import WorldConfig
from tools.market.generate import generate_world_file

REPO = Path(__file__).resolve().parents[2]


def _cpu_s(procs: list[psutil.Process]) -> float:
    """CPU seconds the worker processes have used so far (user + system)."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _first_jobs(results: list[dict[str, Any]]) -> float:
    """The mean time of each worker's first advertiser (its cold start: first tool calls, lazy loads)."""
    first: dict[str, dict[str, Any]] = {}
    for x in sorted(results, key=lambda x: str(x["finished_at"])):
        first.setdefault(x["worker"], x)
    return sum(x["seconds"] for x in first.values()) / max(1, len(first))


def _env(settings: Any) -> dict[str, str]:
    return {
        **os.environ,
        **settings.to_env(),
        "ADGUIDE_LOG_LEVEL": "INFO",  # each worker logs "worker ready" once warmed up: the clock waits for all
        "OMP_NUM_THREADS": "1",  # one BLAS/torch thread per process: two workers on two cores, not four threads
        "TOKENIZERS_PARALLELISM": "false",
        "ADGUIDE_MCP_CACHE": _CACHE[0],
    }


_CACHE = ["off"]  # the MCP tool-result cache (Redis) of the worker processes: off = every run computes


async def _run(settings: Any, n_workers: int, log_dir: Path, own_sessions: bool = False) -> dict[str, Any]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "adguide_cli", "serve", "worker"],
            cwd=REPO,
            env=_env(settings),
            stdout=open(log_dir / f"worker{n_workers}_{i}.log", "wb"),  # noqa: SIM115
            # Linux's autogroup scheduler shares the CPU between sessions, not processes: workers started from one
            # session split one session's share of a busy machine; as separate services they are not grouped
            start_new_session=own_sessions,
            stderr=subprocess.STDOUT,
        )
        for i in range(n_workers)
    ]
    r = aioredis.Redis.from_url(settings.redis_url)
    try:
        logs = [log_dir / f"worker{n_workers}_{i}.log" for i in range(n_workers)]
        deadline = time.time() + 300
        while time.time() < deadline:  # every worker warmed up (a late one would start its first job late)
            if all(b"worker ready" in f.read_bytes() for f in logs):
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited: see {log_dir}")
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError(f"the workers did not get ready in 300 s: see {log_dir}")
        await asyncio.sleep(1.0)
        workers = [psutil.Process(p.pid) for p in procs]
        app = create_app(settings)
        admin = {"Authorization": "Bearer bench-admin"}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=60
            ) as client,
        ):
            load_start = os.getloadavg()[0]
            cpu_start = _cpu_s(workers)
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
            cpu = _cpu_s(workers) - cpu_start
            load_end = os.getloadavg()[0]
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
        "config": f"{n_workers}{' own sessions' if own_sessions else ''}",
        "own_sessions": own_sessions,
        "advertisers": status["total"],
        "done": status["done"],
        "failed": status["failed"],
        "seconds": elapsed,
        "per_minute": 60 * status["total"] / elapsed,
        "mean_advertiser_s": sum(x["seconds"] for x in results) / max(1, len(results)),
        "items": items,
        "retries": sum(x["attempts"] - 1 for x in results),
        "first_job_s": _first_jobs(results),
        "worker_cpu_s": cpu,
        "cpu_per_advertiser_s": cpu / max(1, status["total"]),
        "cores_used": cpu / elapsed,
        "load_start": load_start,
        "load_end": load_end,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--advertisers", type=int, default=12)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--workers",
        default="1,2,2own",
        help="comma-separated worker counts to compare; 'Nown': N workers each in its own session (as separate "
        "services run), which Linux's autogroup scheduler does not lump together on a busy machine",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the worker counts this many times, interleaved (1,2,1,2): a shared machine's load drifts",
    )
    parser.add_argument("--guidance", choices=["proactive", "overview"], default="proactive")
    parser.add_argument("--backend", default="rules", help="rules | teacher (no model server needed)")
    parser.add_argument(
        "--tool-cache",
        choices=["off", "on"],
        default="off",
        help="the MCP tool-result cache; on: runs after the first reuse its simulations",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "evals" / "benchmarks" / "results" / "bench_batch.json"
    )
    args = parser.parse_args()
    _CACHE[0] = args.tool_cache

    console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        world = Path(tmp) / "world.sqlite"
        generate_world_file(WorldConfig(n_advertisers=args.advertisers, days=args.days, seed=3), world)
        rows = []
        for spec in [x.strip() for x in args.workers.split(",")] * args.rounds:
            n, own = int(spec.removesuffix("own")), spec.endswith("own")
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
                rows.append(asyncio.run(_run(settings, n, Path(tmp), own_sessions=own)))
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
        "first s",
        "items",
        "retries",
        "worker CPU s/adv",
        "cores used",
        "load",
        "speed-up",
    ]:
        table.add_column(col, justify="right", no_wrap=True)
    base = (
        rows[0]["per_minute"] if rows else 1.0
    )  # the first run's rate; the summary below averages the rounds
    for r in rows:
        table.add_row(
            r["config"],
            str(r["advertisers"]),
            str(r["done"]),
            str(r["failed"]),
            f"{r['seconds']:.1f}",
            f"{r['per_minute']:.1f}",
            f"{r['mean_advertiser_s']:.2f}",
            f"{r['first_job_s']:.2f}",
            str(r["items"]),
            str(r["retries"]),
            f"{r['cpu_per_advertiser_s']:.2f}",
            f"{r['cores_used']:.2f}",
            f"{r['load_start']:.1f}-{r['load_end']:.1f}",
            f"{r['per_minute'] / base:.2f}x",
        )
    console.print(table)
    summary = {}
    first = rows[0]["config"] if rows else "1"
    base_rate = sum(r["per_minute"] for r in rows if r["config"] == first) / max(
        1, len([r for r in rows if r["config"] == first])
    )
    for config in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == config]
        rate = sum(r["per_minute"] for r in mine) / len(mine)
        summary[config] = {
            "runs": len(mine),
            "per_minute": rate,
            "speed_up": rate / base_rate,
            "cpu_per_advertiser_s": sum(r["cpu_per_advertiser_s"] for r in mine) / len(mine),
            "cores_used": sum(r["cores_used"] for r in mine) / len(mine),
        }
        console.print(
            f"{config} worker(s): {rate:.1f} advertisers/min over {len(mine)} run(s) ({rate / base_rate:.2f}x), "
            f"{summary[config]['cpu_per_advertiser_s']:.2f} worker CPU s per advertiser, "
            f"{summary[config]['cores_used']:.2f} cores used"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "cpu_cores": os.cpu_count(),
                "args": vars(args) | {"out": None},
                "runs": rows,
                "summary": summary,
            },
            indent=2,
            default=str,
        )
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
