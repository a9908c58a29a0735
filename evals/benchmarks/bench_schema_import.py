"""Import time of the tool schemas (tools/mcp_server/schemas.py), in fresh interpreters.

    .venv/bin/python -m evals.benchmarks.bench_schema_import [--runs 7]

Prints the median and range of `python -X importtime`'s cumulative figure for the schema module alone, and,
side by side, for the schema module plus the engine modules it imported until issue #18 (the uplift
estimators, the budget optimizer and the name resolver): what every reader of the tool specs paid before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = "tools.mcp_server.schemas"
# what schemas.py imported before the result types moved to numpy-free modules
OLD_ENGINE_IMPORTS = [
    "tools.uplift.ab",
    "tools.uplift.attribution",
    "tools.uplift.cate",
    "tools.uplift.effects",
    "tools.uplift.incrementality",
    "tools.optimize.budget",
    "tools.mcp_server.resolve",
]


def import_seconds(modules: list[str]) -> float:
    """Cumulative import time of `modules` (summed top-level entries of -X importtime), in seconds."""
    code = "; ".join(f"import {m}" for m in modules)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    total_us, started = 0, False
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or not line.split("|")[1].strip().isdigit():
            continue  # the header
        _, cumulative, name = line.split("|")
        if name.startswith("  "):
            continue  # nested imports are inside a top-level entry's cumulative figure
        if started:
            total_us += int(cumulative)
        started = started or name.strip() == "site"  # the interpreter's own start-up ends with site
    return total_us / 1e6


def main(runs: int) -> None:
    rows = {
        "schemas alone (now)": [SCHEMAS],
        "schemas + the engines it used to import": [SCHEMAS, *OLD_ENGINE_IMPORTS],
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"import time, s ({runs} fresh interpreters each; {os.cpu_count()} CPUs, load average {load:.1f})")
    for label, modules in rows.items():
        times = [import_seconds(modules) for _ in range(runs)]
        print(
            f"{label:<42} median {statistics.median(times):.3f}  min {min(times):.3f}  max {max(times):.3f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    main(parser.parse_args().runs)
