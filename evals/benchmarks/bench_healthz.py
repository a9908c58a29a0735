"""Liveness while a thread grows: `/healthz` latency during turns of one thread with long numeric messages, and
whether turn time and the API's memory stay flat as the thread grows (issue #17).

One API process (`adguide serve api`, real Redis and PostgreSQL, loopback only) on a generated world; one thread
gets `--turns` messages back to back, each a long run of figures pasted from a report with a question after it,
while a poller asks `/healthz` every `--poll-ms` milliseconds. Each message also goes to a new thread (the control:
the same message without the history), so the turn's own cost, which varies with what the message asks, is told
apart from what the history adds. Prints `/healthz` p50/p99/max over the polls made while a turn ran, each turn's
time and the API's CPU seconds, the first three against the last three (wall, CPU, and the CPU against the
control's), and the API's RSS (with children) after a warm-up (each message once in a new thread) and at its peak, and
along the thread (its first three turns' highest against its last three's); the same run
for each `--backend`, one after the other.

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

import httpx
import psutil

from evals.benchmarks.bench_load import REPO, _pct, _rss_mb, _settings, _stop, start_api
from server.db import purge
from tools.market.data_model import WorldConfig
from tools.market.generate import generate_world_file


def _message(turn: int, figures: int) -> str:
    """A seller pasting a column of daily figures, then asking about it (about 6 characters a figure)."""
    numbers = " ".join(f"{(turn * 131 + i * 37) % 997 / 7:.2f}" for i in range(figures))
    return f"here are my daily spend numbers from the report: {numbers}. how is my account doing?"


def _cpu_s(pid: int) -> float:
    """CPU seconds the API process (and its children) has used: a turn's cost that load on the machine hardly
    changes, where wall time does."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        return sum(t.user + t.system for t in (p.cpu_times() for p in procs))
    except psutil.Error:
        return 0.0


def _mean3(values: list[float], last: bool = False) -> float:
    return statistics.mean(values[-3:] if last else values[:3])


async def _run(base: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
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

        async def new_thread() -> str:
            return str((await client.post("/v1/threads", json={}, headers=headers)).json()["thread_id"])

        async def turn(thread_id: str, message: str) -> tuple[float, float, list[str]]:
            """(wall s, API CPU s, error codes) of one turn."""
            nonlocal in_turn
            in_turn = True
            t, c = time.perf_counter(), _cpu_s(pid)
            r = await client.post(
                f"/v1/threads/{thread_id}/messages", json={"message": message}, headers=headers
            )
            wall, cpu = time.perf_counter() - t, _cpu_s(pid) - c
            in_turn = False
            failed = (
                [str(e.get("code")) for e in r.json().get("events", []) if e.get("type") == "error"]
                if r.status_code == 200
                else [str(r.status_code)]
            )
            return wall, cpu, failed

        # Warm-up: the thread's own messages, each once in a new thread. A tool or code path a message reaches for
        # the first time loads then (a short warm-up message left the long-message paths cold, and RSS jumped at
        # whichever later turn first needed one); and the tool-result cache holds every message's results, so the
        # thread's turn and its control both read them, whichever goes first.
        for j in range(args.turns if args.warmup is None else args.warmup):
            await turn(await new_thread(), _message(j, args.figures))
        rss_start = _rss_mb(pid)
        tid = await new_thread()
        poller = asyncio.create_task(poll())
        # polls with no turn running: what the machine's own load costs /healthz
        await asyncio.sleep(args.idle_s)
        turns: list[float] = []
        cpus: list[float] = []
        fresh: list[float] = []  # the same message in a new thread: what the turn costs without the history
        rss_after: list[float] = []
        errors: list[str] = []
        for i in range(args.turns):
            message = _message(i, args.figures)
            control = await new_thread() if args.control else None
            order = [tid, control] if i % 2 == 0 else [control, tid]  # neither always runs first
            for thread_id in order:
                if thread_id is None:
                    continue
                wall, cpu, failed = await turn(thread_id, message)
                errors += failed
                if thread_id == tid:
                    turns.append(wall)
                    cpus.append(cpu)
                    rss_after.append(_rss_mb(pid))
                else:
                    fresh.append(cpu)
                await asyncio.sleep(0.1)
            print(
                f"  turn {i + 1:2d}: {turns[-1]:.2f} s, API CPU {cpus[-1]:.2f} s"
                + (f" (same message in a new thread {fresh[-1]:.2f} s)" if fresh else "")
                + f", RSS {rss_after[-1]:.0f} MB{'  ' + ' '.join(errors) if errors else ''}",
                flush=True,
            )
        polling = False
        await poller
    during = [s for s, busy in polls if busy]
    idle = [s for s, busy in polls if not busy]
    out: dict[str, Any] = {
        "healthz_polls_during_turns": len(during),
        "healthz_p50_ms": round(1000 * _pct(during, 0.5), 1),
        "healthz_p99_ms": round(1000 * _pct(during, 0.99), 1),
        "healthz_max_ms": round(1000 * max(during), 1),
        "healthz_idle_polls": len(idle),
        "healthz_idle_p99_ms": round(1000 * _pct(idle, 0.99), 1) if idle else None,
        "turn_s": [round(x, 2) for x in turns],
        "turn_cpu_s": [round(x, 3) for x in cpus],
        "first3_s": round(_mean3(turns), 2),
        "last3_s": round(_mean3(turns, last=True), 2),
        "turn_growth": round(_mean3(turns, last=True) / _mean3(turns) - 1, 3),
        "cpu_growth": round(_mean3(cpus, last=True) / _mean3(cpus) - 1, 3),
        "rss_start_mb": round(rss_start),
        "rss_after_turn_mb": [round(x) for x in rss_after],
        "rss_peak_mb": round(max(rss)),
        "rss_growth": round(max(rss) / rss_start - 1, 3),
        # along the thread: the first three turns' highest RSS against the last three's (a first use of a code path,
        # such as a tool's model loaded on its first call, counts in rss_growth but not here)
        "rss_thread_growth": round(max(rss_after[-3:]) / max(rss_after[:3]) - 1, 3),
        "errors": errors,
        "message_chars": len(_message(0, args.figures)),
    }
    if fresh:  # the history's own cost: the thread's turn over the same message's in a new thread
        ratio = [a / b for a, b in zip(cpus, fresh, strict=True) if b > 0]
        out |= {
            "fresh_cpu_s": [round(x, 3) for x in fresh],
            "history_ratio_first3": round(_mean3(ratio), 3),
            "history_ratio_last3": round(_mean3(ratio, last=True), 3),
            "history_growth": round(_mean3(ratio, last=True) / _mean3(ratio) - 1, 3),
        }
    return out


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
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
                    f"{r['healthz_max_ms']} ms ({r['healthz_polls_during_turns']} polls; with no turn running p99 "
                    f"{r['healthz_idle_p99_ms']} ms); turn time first 3 "
                    f"{r['first3_s']} s, last 3 {r['last3_s']} s ({100 * r['turn_growth']:+.0f}%), API CPU "
                    f"{100 * r['cpu_growth']:+.0f}%"
                    + (
                        f", against the same messages in new threads {r['history_ratio_first3']:.2f}x -> "
                        f"{r['history_ratio_last3']:.2f}x ({100 * r['history_growth']:+.0f}%)"
                        if "history_growth" in r
                        else ""
                    )
                    + f"; RSS {r['rss_start_mb']} -> peak {r['rss_peak_mb']} MB ({100 * r['rss_growth']:+.0f}%), "
                    f"along the thread {100 * r['rss_thread_growth']:+.0f}%",
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
    parser.add_argument(
        "--idle-s", type=float, default=4.0, help="poll this long before the first turn (the idle baseline)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="the first N of the thread's messages, each in a new thread, before the measured run (default: all)",
    )
    parser.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip sending each message to a new thread too (the control that separates the history's cost)",
    )
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
