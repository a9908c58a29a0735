"""Serving the embedded model in process: eager vs sdpa attention, side by side, at the prompt lengths the agent
produces (the system prompt with 14 tool specs is ~2k tokens; a long thread fills the window).

A sample is one generation as agent/backends/local.py runs it: prefill of an N-token prompt, then 16 greedy
tokens, one torch thread, fp32 on CPU. Each (attention, length) runs in its own process so the peak RSS is
its own. The best of `--repeats` is reported; the machine may be shared, so both sides run in the same call.

    .venv/bin/python -m evals.benchmarks.bench_local_attention [--lengths 1024,2048,4096,5600] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

ONE = """
import json, resource, sys, time, torch
from transformers import AutoModelForCausalLM
from agent.configuration import default_model_dir
torch.set_num_threads(1)
impl, n, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(default_model_dir(), dtype=torch.float32,
                                             attn_implementation=impl).eval()
ids = torch.randint(10, model.config.vocab_size - 10, (1, n), generator=torch.Generator().manual_seed(0))
best = float("inf")
with torch.inference_mode():
    model(ids[:, :32])  # warm-up
    for _ in range(repeats):
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=16, min_new_tokens=16, do_sample=False)
        best = min(best, time.perf_counter() - t)
print(json.dumps({"seconds": best, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="1024,2048,4096,5600")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{'prompt tokens':>13} | {'eager s':>8} {'sdpa s':>8} {'speed-up':>8} | {'eager MB':>8} {'sdpa MB':>8}"
    )
    for n in [int(x) for x in args.lengths.split(",")]:
        row = {}
        for impl in ("eager", "sdpa"):
            out = subprocess.run(
                [sys.executable, "-c", ONE, impl, str(n), str(args.repeats)],
                capture_output=True,
                text=True,
                check=True,
            )
            row[impl] = json.loads(out.stdout.strip().splitlines()[-1])
        e, s = row["eager"], row["sdpa"]
        print(
            f"{n:>13} | {e['seconds']:>8.2f} {s['seconds']:>8.2f} {e['seconds'] / s['seconds']:>7.1f}x | "
            f"{e['peak_rss_mb']:>8.0f} {s['peak_rss_mb']:>8.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
