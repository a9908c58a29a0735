"""Liveness while a thread grows: `/healthz` latency during turns of one thread with long numeric messages, and
whether turn time and the API's memory stay flat as the thread grows (issue #17).

One API process (`adguide serve api`, real Redis and PostgreSQL, loopback only) on a generated world; one thread
gets `--turns` messages back to back, each a long run of figures pasted from a report with a question after it,
while a poller asks `/healthz` every `--poll-ms` milliseconds. Prints `/healthz` p50/p99/max over the polls made
while a turn ran, each turn's time, the first three against the last three, and the API's RSS (with children) at
the start and at its peak; the same run for each `--backend`, one after the other.

    .venv/bin/python -m evals.benchmarks.bench_healthz                          # local (embedded) and rules
    .venv/bin/python -m evals.benchmarks.bench_healthz --backend local --turns 12 --figures 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from evals.benchmarks.bench_load import REPO, _pct, _rss_mb, _settings, _stop, start_api


def _message(turn: int, figures: int) -> str:
    """A seller pasting a column of daily figures, then asking about it (about 6 characters a figure)."""
    numbers = " ".join(f"{(turn * 131 + i * 37) % 997 / 7:.2f}" for i in range(figures))
    return f"here are my daily spend numbers from the report: {numbers}. how is my account doing?"


async def _run(base: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": "Bearer bench-adv1", "Accept": "application/json"}
    polls: list[tuple[float, bool]] = []  # (seconds, a turn was in flight)
    rss: list[float] = []
    in_turn = False
    polling = True

    async with httpx.AsyncClient(base_url=base, timeout=args.request_timeout) as client:

        async def poll() -> None:
            while polling:
                t = time.perf_counter()
                r = await client.get("/healthz")
                if r.status_code == 200:
                    polls.append((time.perf_counter() - t, in_turn))
                rss.append(_rss_mb(pid))
                await asyncio.sleep(args.poll_ms / 1000)

        warm = (await client.post("/v1/threads", json={}, headers=headers)).json()["thread_id"]
        await client.post(
            f"/v1/threads/{warm}/messages", json={"message": "how is my account doing?"}, headers=headers
        )
        rss_start = _rss_mb(pid)
        tid = (await client.post("/v1/threads", json={}, headers=headers)).json()["thread_id"]
        poller = asyncio.create_task(poll())
        turns: list[float] = []
        errors: list[str] = []
        for i in range(args.turns):
            in_turn = True
            t = time.perf_counter()
            r = await client.post(
                f"/v1/threads/{tid}/messages", json={"message": _message(i, args.figures)}, headers=headers
            )
            turns.append(time.perf_counter() - t)
            in_turn = False
            failed = (
                [str(e.get("code")) for e in r.json().get("events", []) if e.get("type") == "error"]
                if r.status_code == 200
                else [str(r.status_code)]
            )
            errors += failed
            print(
                f"  turn {i + 1:2d}: {turns[-1]:.2f} s{'  ' + ' '.join(failed) if failed else ''}", flush=True
            )
            await asyncio.sleep(0.2)
        polling = False
        await poller
    during = [s for s, busy in polls if busy]
    first, last = statistics.mean(turns[:3]), statistics.mean(turns[-3:])
    return {
        "healthz_polls_during_turns": len(during),
        "healthz_p50_ms": round(1000 * _pct(during, 0.5), 1),
        "healthz_p99_ms": round(1000 * _pct(during, 0.99), 1),
        "healthz_max_ms": round(1000 * max(during), 1),
        "turn_s": [round(x, 2) for x in turns],
        "first3_s": round(first, 2),
        "last3_s": round(last, 2),
        "turn_growth": round(last / first - 1, 3),
        "rss_start_mb": round(rss_start),
        "rss_peak_mb": round(max(rss)),
        "rss_growth": round(max(rss) / rss_start - 1, 3),
        "errors": errors,
        "message_chars": len(_message(0, args.figures)),
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from server.db import purge
    from tools.market.data_model import WorldConfig
    from tools.market.generate import generate_world_file

    out: dict[str, Any] = {
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "args": vars(args) | {"out": None},
    }
    with tempfile.TemporaryDirectory(prefix="bench_healthz_") as tmp:
        world = Path(tmp) / "world.sqlite"
        generate_world_file(WorldConfig(n_advertisers=3, days=30, seed=3), world)
        for backend in args.backend:
            ns = argparse.Namespace(
                chat_advertisers=3,
                backend=backend,
                llm_base_url=None,
                llm_model=None,
                guidance="overview",
                worker_concurrency=1,
            )
            s = _settings(world, ns)
            api, base = start_api(s, Path(tmp) / f"api-{backend}.log")
            try:
                print(
                    f"{backend} backend: {args.turns} turns of {len(_message(0, args.figures))} characters, "
                    f"/healthz every {args.poll_ms} ms",
                    flush=True,
                )
                r = out[backend] = await _run(base, api.pid, args)
                print(
                    f"  /healthz during turns: p50 {r['healthz_p50_ms']} ms, p99 {r['healthz_p99_ms']} ms, max "
                    f"{r['healthz_max_ms']} ms ({r['healthz_polls_during_turns']} polls); turn time first 3 "
                    f"{r['first3_s']} s, last 3 {r['last3_s']} s ({100 * r['turn_growth']:+.0f}%); RSS "
                    f"{r['rss_start_mb']} -> peak {r['rss_peak_mb']} MB ({100 * r['rss_growth']:+.0f}%)",
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
        "--backend", action="append", help="local (the embedded model) | rules; repeat for both"
    )
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument(
        "--figures", type=int, default=300, help="figures in each message (about 6 characters each)"
    )
    parser.add_argument("--poll-ms", type=int, default=25)
    parser.add_argument("--request-timeout", type=float, default=120.0)
    parser.add_argument(
        "--out", type=Path, default=REPO / "evals" / "benchmarks" / "results" / "bench_healthz.json"
    )
    args = parser.parse_args()
    args.backend = args.backend or ["local", "rules"]
    if args.turns < 6 or args.figures < 1 or args.poll_ms < 1:
        parser.error("--turns must be >= 6 (first three against last three), --figures and --poll-ms >= 1")
    out = asyncio.run(_main(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
