"""Turn latency and memory of the in-process model, through the real agent graph, side by side.

Each model dir runs in its own process (its own peak RSS) on the same world, advertiser and questions: one
agent (MCP tools in process, SQLite-free memory checkpointer), each question a new thread, the turn timed end
to end (guardrails, model calls, tool calls). A warm-up turn runs first (loading the model and the tools'
one-time costs). Prints p50/p95 turn seconds, model calls per turn and the process's peak RSS.

    python -m evals.benchmarks.bench_embedded --world W --model-dir training/models/adguide-small \\
        --model-dir /path/to/the/old/model [--advertiser adv_0001] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

QUESTIONS = [
    "how is my account doing?",
    "which campaign spends the most?",
    "what should i bid on {keyword}?",
    "what if i bid 1.50 on {keyword}?",
    "why is my acos up this week?",
    "any search terms wasting money?",
    "split 300 a day across my campaigns",
    "pause {keyword}",
    "how is {keyword} doing?",
    "write me a poem about summer",
]

ONE = r"""
import asyncio, json, resource, statistics, sys, time
from pathlib import Path
from agent.configuration import AgentConfig, BackendKind, CheckpointerKind
from agent.graph import Agent
from tools.market.store import MarketStore

world, model_dir, advertiser, repeats = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
questions = json.loads(sys.argv[5])
with MarketStore.open(world) as store:
    kw = next(k for k in store.scoped(advertiser).keywords() if ":" not in k.text)
questions = [q.format(keyword=kw.text) for q in questions]

async def main():
    config = AgentConfig(advertiser_id=advertiser, backend=BackendKind.LOCAL, model_dir=Path(model_dir),
                         store_path=world, checkpointer=CheckpointerKind.MEMORY)
    async with Agent(config) as agent:
        await agent.ask("warm-up", "how is my account doing?")
        times, steps = [], []
        for r in range(repeats):
            for i, q in enumerate(questions):
                t0 = time.perf_counter()
                result = await agent.ask(f"t{r}-{i}", q)
                times.append(time.perf_counter() - t0)
                values = (await agent.graph.aget_state(agent._run_config(f"t{r}-{i}"))).values
                steps.append((values.get("turn") or {}).get("steps", 0))
    times.sort()
    print(json.dumps({"p50_s": statistics.median(times), "p95_s": times[int(0.95 * (len(times) - 1))],
                      "mean_model_calls": sum(steps) / len(steps), "turns": len(times),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, action="append", required=True)
    parser.add_argument("--advertiser", default="adv_0001")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{len(QUESTIONS)} questions x {args.repeats}, one torch thread, load average {load}")
    for model_dir in args.model_dir:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                ONE,
                str(args.world),
                str(model_dir),
                args.advertiser,
                str(args.repeats),
                json.dumps(QUESTIONS),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(f"{model_dir}: failed\n{out.stderr[-2000:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{model_dir}: turn p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s, {r['mean_model_calls']:.1f} model "
            f"calls a turn, peak RSS {r['peak_rss_mb']:.0f} MB ({r['turns']} turns)"
        )


if __name__ == "__main__":
    main()
