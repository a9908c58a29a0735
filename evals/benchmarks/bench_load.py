"""Load: concurrent simulated chat users ramped against the real API process, and a batch job over N advertisers.

Everything on loopback: a generated world, real Redis and PostgreSQL, `adguide serve api` (uvicorn, one
process) and `adguide serve worker` processes. Chat users are asyncio tasks with httpx: each makes a thread
and sends messages back to back (Accept: application/json, so a sample is one whole turn). Per level:
throughput (turns/s), p50/p95/p99 turn latency, errors; the saturation point is the first level whose
throughput gains less than 10% over the level before. The API's RSS (with children) is sampled all along.
The batch part submits one job over every advertiser and reports advertisers/min, lost (no result row)
and duplicated (more than one row, or an audit write) counts.

    .venv/bin/python -m evals.benchmarks.bench_load                                # short ramp, small batch
    .venv/bin/python -m evals.benchmarks.bench_load --users 1,2,4,8,16 --seconds 60 --batch-advertisers 1000
    # soak: one level for 30 minutes, watching RSS
    .venv/bin/python -m evals.benchmarks.bench_load --users 8 --seconds 1800 --batch-advertisers 0
    # against a vLLM server (scripts/serve_vllm.sh) instead of the rules backend
    .venv/bin/python -m evals.benchmarks.bench_load --backend openai --llm-base-url http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis.asyncio as aioredis

from server.config import GuidanceMode, Settings
from server.db import purge
from tools.market.data_model import WorldConfig
from tools.market.generate import generate_world_file
from tools.market.store import MarketStore

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [
    "How is my account doing?",
    "Which keywords waste spend?",
    "How are my campaigns doing?",
    "What should I do this week?",
]
KEYS = {"bench-admin": "admin"}


def _settings(world: Path, args: argparse.Namespace) -> Any:
    tag = uuid.uuid4().hex[:8]
    keys = dict(KEYS) | {
        f"bench-adv{i}": f"advertiser:adv_{i:04d}" for i in range(1, args.chat_advertisers + 1)
    }
    return Settings(
        world_path=world,
        backend=args.backend,
        llm_base_url=args.llm_base_url,
        llm_model=args.llm_model,
        redis_prefix=f"adguide-bench-{tag}",
        pg_schema=f"adguide_bench_{tag}",
        api_keys=keys,
        rate_limit_per_minute=1_000_000,
        guidance=GuidanceMode(args.guidance),
        worker_concurrency=args.worker_concurrency,
    )


def _env(s: Any) -> dict[str, str]:
    return {
        **os.environ,
        **s.to_env(),
        "ADGUIDE_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(s: Any, log: Path, wait_s: float = 180) -> tuple[subprocess.Popen[bytes], str]:
    """`adguide serve api` on a free loopback port with settings `s`, once /readyz says ready: (process, base URL).
    Its output goes to `log`; it is stopped (and the error says why) when it does not come up in `wait_s`."""
    port = _free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "adguide_cli", "serve", "api", "--port", str(port)],
        cwd=REPO,
        env=_env(s),
        stdout=open(log, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + wait_s
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return api, base
        except httpx.HTTPError:
            pass
        if api.poll() is not None or time.time() > deadline:
            _stop(api)
            raise RuntimeError(f"the API did not come up: {log.read_text()[-2000:]}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _rss_mb(pid: int) -> float:
    # lazy: psutil is heavy and needed only here
    import psutil

    try:
        proc = psutil.Process(pid)
        return (
            proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        ) / 2**20
    except psutil.Error:
        return 0.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _user(client: Any, key: str, stop_at: float, latencies: list[float], errors: list[str]) -> None:
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    r = await client.post("/v1/threads", json={}, headers=headers)
    if r.status_code != 201:
        errors.append(f"thread {r.status_code}")
        return
    tid = r.json()["thread_id"]
    n = 0
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        try:
            r = await client.post(
                f"/v1/threads/{tid}/messages", json={"message": MESSAGES[n % len(MESSAGES)]}, headers=headers
            )
        except Exception as exc:  # a timeout or a dropped connection is an error sample, not a crash
            errors.append(type(exc).__name__)
            continue
        n += 1
        took = time.perf_counter() - started
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        failed = [str(e.get("code")) for e in body.get("events", []) if e.get("type") == "error"]
        if r.status_code != 200 or failed:
            errors.append(f"{r.status_code} {' '.join(failed)}".strip())  # e.g. "200 turn_timeout", "429"
        else:
            latencies.append(took)


async def _chat_ramp(base: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    levels = []
    rss: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    sampling = True

    async def sample() -> None:
        while sampling:
            rss.append((time.perf_counter() - t0, _rss_mb(pid)))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=base, timeout=args.request_timeout, limits=limits) as client:
        warm: list[float] = []  # one unmeasured turn per advertiser: the API opens its agents (MCP sessions)
        await asyncio.gather(
            *(
                _user(client, f"bench-adv{i}", time.perf_counter() + 0.1, warm, [])
                for i in range(1, args.chat_advertisers + 1)
            )
        )
        for users in args.users:
            latencies: list[float] = []
            errors: list[str] = []
            started = time.perf_counter()
            stop_at = started + args.seconds
            keys = [f"bench-adv{1 + i % args.chat_advertisers}" for i in range(users)]
            await asyncio.gather(*(_user(client, k, stop_at, latencies, errors) for k in keys))
            elapsed = time.perf_counter() - started
            level = {
                "users": users,
                "seconds": round(elapsed, 1),
                "turns": len(latencies),
                "errors": len(errors),
                "error_kinds": sorted(set(errors))[:5],
                "throughput": len(latencies) / elapsed,
                "p50": _pct(latencies, 0.5),
                "p95": _pct(latencies, 0.95),
                "p99": _pct(latencies, 0.99),
                "mean": statistics.fmean(latencies) if latencies else float("nan"),
                "rss_mb_end": _rss_mb(pid),
            }
            levels.append(level)
            print(
                f"  {users:>4} users: {level['throughput']:6.2f} turns/s  p50 {level['p50']:.3f} s  "
                f"p95 {level['p95']:.3f} s  p99 {level['p99']:.3f} s  errors {level['errors']}  "
                f"RSS {level['rss_mb_end']:.0f} MB",
                flush=True,
            )
    sampling = False
    await sampler
    saturation = next(
        (
            b["users"]
            for a, b in zip(levels, levels[1:], strict=False)
            if b["throughput"] < 1.10 * a["throughput"]
        ),
        None,
    )
    return {"levels": levels, "saturates_at_users": saturation, "rss_mb": _rss_summary(rss)}


def _rss_summary(rss: list[tuple[float, float]]) -> dict[str, Any]:
    """Start/peak/end, a trace of about 60 points, and the drift over the second half (a least-squares slope,
    MB per hour): after warm-up, bounded memory shows as a drift near zero on a long soak."""
    points = [(t, m) for t, m in rss if m > 0]
    mbs = [m for _, m in points]
    step = max(1, len(points) // 60)
    half = points[len(points) // 2 :]
    drift = 0.0
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        ts, ms = [t for t, _ in half], [m for _, m in half]
        tm, mm = statistics.fmean(ts), statistics.fmean(ms)
        var = sum((t - tm) ** 2 for t in ts)
        drift = sum((t - tm) * (m - mm) for t, m in half) / var * 3600 if var else 0.0
    return {
        "start": mbs[0] if mbs else 0,
        "peak": max(mbs, default=0),
        "end": mbs[-1] if mbs else 0,
        "samples": len(mbs),
        "second_half_drift_mb_per_hour": round(drift, 1),
        "trace": [[round(t, 1), round(m, 1)] for t, m in points[::step]],
    }


async def _batch(s: Any, base: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "adguide_cli", "serve", "worker"],
            cwd=REPO,
            env=_env(s),
            stdout=open(log_dir / f"worker{i}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        for i in range(args.workers)
    ]
    r = aioredis.Redis.from_url(s.redis_url)
    admin = {"Authorization": "Bearer bench-admin"}
    try:
        deadline = time.time() + 180
        while not await r.exists(f"{s.queue_name}:health-check"):
            if time.time() > deadline:
                raise RuntimeError(f"workers did not start; see {log_dir}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0 * args.workers)  # every process past its warm-up
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            started = time.perf_counter()
            job = (await client.post("/v1/jobs", json={"advertisers": "all"}, headers=admin)).json()
            stop_at = started + args.batch_timeout
            while True:
                status = (await client.get(f"/v1/jobs/{job['job_id']}", headers=admin)).json()
                if status["status"] == "finished" or time.perf_counter() > stop_at:
                    break
                await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            _stop(p)
        await r.aclose()
    with psycopg.connect(s.checkpoint_url) as conn:
        rows = conn.execute(
            "SELECT advertiser_id, status, attempts FROM job_results WHERE job_id = %s", (job["job_id"],)
        ).fetchall()
    seen: dict[str, int] = {}
    for adv, _, _ in rows:
        seen[adv] = seen.get(adv, 0) + 1

    with MarketStore.open(s.world_path) as store:
        advertisers = list(store.advertiser_ids())
        writes = sum(len(store.scoped(a).audit_log()) for a in advertisers)
    return {
        "advertisers": len(advertisers),
        "workers": args.workers,
        "worker_concurrency": s.worker_concurrency,
        "guidance": s.guidance.value,
        "seconds": round(elapsed, 1),
        "finished": status["status"] == "finished",
        "per_minute": 60 * len(rows) / elapsed,
        "done": sum(1 for _, st, _ in rows if st == "done"),
        "failed": sum(1 for _, st, _ in rows if st != "done"),
        "lost": len(set(advertisers) - set(seen)),
        "duplicated": sum(n - 1 for n in seen.values()),
        "retries": sum(a - 1 for _, _, a in rows),
        "audit_writes": writes,
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "note": "shared development machine",
            "load_average_at_start": round(os.getloadavg()[0], 2),
        },
        "backend": args.backend,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
    }
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        tmpdir = Path(tmp)
        n_world = max(args.chat_advertisers, args.batch_advertisers)
        world = tmpdir / "world.sqlite"
        t = time.perf_counter()
        generate_world_file(WorldConfig(n_advertisers=n_world, days=args.days, seed=3), world)
        print(
            f"world: {n_world} advertisers x {args.days} days in {time.perf_counter() - t:.1f} s", flush=True
        )
        s = _settings(world, args)
        api, base = start_api(s, tmpdir / "api.log")
        try:
            if args.users:
                print(f"chat ramp ({args.backend} backend, {args.seconds:g} s per level):", flush=True)
                out["chat"] = await _chat_ramp(base, api.pid, args)
            if args.batch_advertisers:
                print(
                    f"batch: {args.batch_advertisers} advertisers, {args.workers} worker(s) ...", flush=True
                )
                out["batch"] = await _batch(s, base, args, tmpdir)
                b = out["batch"]
                print(
                    f"  {b['per_minute']:.1f} advertisers/min  done {b['done']}  failed {b['failed']}  "
                    f"lost {b['lost']}  duplicated {b['duplicated']}  audit writes {b['audit_writes']}",
                    flush=True,
                )
        finally:
            _stop(api)
            purge(s)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--users", default="1,2,4,8", help="concurrent users per level, comma separated ('' = no chat)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each level")
    parser.add_argument(
        "--chat-advertisers", type=int, default=3, help="advertisers the users are spread over"
    )
    parser.add_argument(
        "--batch-advertisers", type=int, default=20, help="advertisers in the batch job (0 = none)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the batch job")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--guidance", default="overview", choices=["overview", "proactive"])
    parser.add_argument("--days", type=int, default=30, help="days of history in the generated world")
    parser.add_argument(
        "--backend", default="rules", help="rules | openai (with --llm-base-url) | local | teacher"
    )
    parser.add_argument("--llm-base-url", default=None)
    parser.add_argument("--llm-model", default=None)
    parser.add_argument("--request-timeout", type=float, default=120.0)
    parser.add_argument("--batch-timeout", type=float, default=1800.0)
    parser.add_argument(
        "--out", type=Path, default=REPO / "evals" / "benchmarks" / "results" / "bench_load.json"
    )
    args = parser.parse_args()
    args.users = [int(x) for x in args.users.split(",") if x.strip()]
    if any(u < 1 or u > 1000 for u in args.users):
        parser.error("--users: each level must be between 1 and 1000")
    if args.chat_advertisers < 1 or args.batch_advertisers < 0 or args.workers < 1:
        parser.error("--chat-advertisers and --workers must be >= 1, --batch-advertisers >= 0")
    result = asyncio.run(_main(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
