"""Regenerate RELIABILITY.md: load figures from bench_load's JSON, and the faults survived and hostile inputs tried
from a pytest run of the reliability and security tests (plus the server tests that inject faults).

    .venv/bin/python -m evals.benchmarks.bench_load            # writes evals/benchmarks/results/bench_load.json
    .venv/bin/python scripts/reliability_report.py              # runs the tests, writes RELIABILITY.md
    .venv/bin/python scripts/reliability_report.py --no-tests   # figures only; test rows say "not run"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "evals" / "benchmarks" / "results" / "bench_load.json"

# test -> (what is done to the system, the documented behaviour the test checks)
FAULTS = {
    "test_reliability_faults.py::test_redis_restarted_mid_chat_loses_and_doubles_no_message":
        ("Redis killed with turns in flight on 3 threads, restarted on the same port",
         "a request meeting Redis down gets 503 + Retry-After and leaves no trace; turns past the lock finish; "
         "the same threads go on after the restart; no message lost or doubled"),
    "test_reliability_jobs.py::test_redis_restarted_mid_job_loses_and_duplicates_nothing":
        ("Redis SIGKILLed mid-job and restarted (append-only file on, as compose runs it)",
         "queued jobs survive; a progress read on a stale connection gets 503 + Retry-After, then works; every "
         "advertiser has exactly one result row"),
    "test_reliability_faults.py::test_model_server_down_then_back_the_thread_continues":
        ("model endpoint down (openai backend at a dead port), then a working backend on the same schema",
         "/readyz 503 naming the model; the turn ends with stop_reason model_error and words; the thread "
         "continues afterwards, well formed"),
    "test_reliability_faults.py::test_a_hanging_then_crashing_tool_ends_the_turn_cleanly":
        ("a tool that hangs (store locked by another writer) and one that crashes (store header broken)",
         "the agent's tool timeout ends the hang; both turns answer in words, no traceback; the next turn works; "
         "nothing written"),
    "test_server_api.py::test_redis_down_gives_503_and_service_comes_back":
        ("Redis killed during a chat", "503 with Retry-After; /healthz up, /readyz 503; service returns"),
    "test_server_api.py::test_postgres_and_model_down_are_reported":
        ("PostgreSQL unreachable; model endpoint unreachable", "503 naming PostgreSQL; /readyz says which"),
    "test_server_api.py::test_turn_time_budget_ends_the_turn_gracefully":
        ("a turn over its time budget", "the turn ends with stop_reason max_seconds and an answer"),
    "test_server_batch.py::test_sigkill_of_a_worker_mid_job_loses_and_duplicates_nothing":
        ("a batch worker killed with SIGKILL mid-job", "its job is redelivered; one result per advertiser"),
    "test_server_batch.py::test_failures_are_retried_with_backoff_then_recorded":
        ("advertiser guidance failing", "retried with backoff, then recorded as failed"),
}

INPUTS = {
    "test_security_fuzz.py::test_api_fuzzed_from_its_openapi_schema_never_5xx_nor_hangs":
        "schemathesis: every operation of /openapi.json, 25 generated cases each (bodies, path and query "
        "parameters), with valid keys: no 5xx, no request over 30 s, one error shape",
    "test_security_fuzz.py::test_every_mcp_tool_answers_arbitrary_arguments_with_structured_errors":
        "hypothesis: 50 argument sets per MCP tool (the tool's field names and stray keys, incl. advertiser_id, "
        "with values of any JSON type, huge ints, NaN/inf, nesting): only structured errors, never InternalError",
    "test_security_fuzz.py::test_tool_arguments_that_name_another_advertiser_or_break_types_get_clear_errors":
        "hand-picked tool arguments: another advertiser's id, negative/huge limits, operator objects, unknown tool",
    "test_security_redteam.py::test_confirmation_tokens_cannot_be_reused_across_threads_sessions_or_tenants":
        "confirmation tokens replayed, moved to another thread, used by another tenant (API and MCP), forged",
    "test_security_redteam.py::test_expired_proposal_token_applies_nothing_through_the_tools":
        "an expired proposal token sent straight to apply_change",
    "test_security_redteam.py::test_injection_planted_in_keyword_text_reaches_the_agent_as_data_only":
        "prompt injection and a fake <tool_call> planted in a keyword's text (arrives as a tool result)",
    "test_security_redteam.py::test_unicode_tricks_never_cross_the_advertiser_scope":
        "zero-width, RTL override, fullwidth and Cyrillic homoglyphs in messages, ids, thread ids and headers",
    "test_security_redteam.py::test_oversized_nested_and_malformed_payloads_get_4xx_and_the_server_keeps_serving":
        "JSON nested ~32k deep, 5k keys, 20k-digit numbers, lone surrogates, invalid UTF-8, NUL, duplicate keys, "
        "non-objects, astral characters over the limit",
    "test_security_secrets.py::test_no_secret_in_any_response_or_log_line_also_while_dependencies_fail":
        "API keys, guessed bearer tokens, Redis/PostgreSQL passwords and the model API key searched for in every "
        "response and every DEBUG log line, with Redis, PostgreSQL and the model down",
    "test_server_api.py::test_one_advertiser_never_sees_another_on_any_endpoint":
        "cross-tenant access through every /v1 route (checked against the OpenAPI route list) and the tools",
}


def run_tests(junit: Path) -> None:
    files = sorted({k.split("::")[0] for k in (*FAULTS, *INPUTS)})
    names = " or ".join(k.split("::")[1] for k in (*FAULTS, *INPUTS))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "", "-k", names,
           f"--junitxml={junit}", *[f"tests/{f}" for f in files]]
    print("running:", " ".join(cmd[:8]), "...", flush=True)
    subprocess.run(cmd, cwd=REPO, check=False)


def outcomes(junit: Path | None) -> dict[str, tuple[str, float]]:
    if junit is None or not junit.exists():
        return {}
    found: dict[str, tuple[str, float]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1] + ".py"
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                status = "FAILED"
            elif child.tag == "skipped":
                status = "skipped"
        found[f"{module}::{case.get('name')}"] = (status, float(case.get("time", 0)))
    return found


def _fmt(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, int | float) else str(x)


def render(bench: dict[str, Any] | None, results: dict[str, tuple[str, float]]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Reliability and security", "",
             f"Regenerated {now} by `.venv/bin/python scripts/reliability_report.py` from "
             "`evals/benchmarks/results/bench_load.json` (`python -m evals.benchmarks.bench_load`) and a pytest run "
             "of tests/test_reliability_*.py, tests/test_security_*.py and the fault tests in tests/test_server_*.py. "
             "Everything runs on loopback against real Redis, PostgreSQL, worker processes and MCP tools.", ""]
    lines += ["## Load", ""]
    if not bench:
        lines += ["No benchmark JSON found: run `python -m evals.benchmarks.bench_load` first.", ""]
    else:
        machine = bench.get("machine", {})
        lines += [f"Machine: {machine.get('cpus')} CPU cores, {machine.get('note', '')} (other engineers' jobs ran "
                  f"at the same time, so figures are indicative). Backend: `{bench.get('backend')}`; one API process "
                  "(uvicorn); simulated users send turns back to back (no think time).", ""]
        chat = bench.get("chat")
        if chat:
            lines += ["| users | turns/s | p50 s | p95 s | p99 s | turns | errors | API RSS MB |",
                      "|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for lv in chat["levels"]:
                lines.append(f"| {lv['users']} | {lv['throughput']:.2f} | {_fmt(lv['p50'])} | {_fmt(lv['p95'])} | "
                             f"{_fmt(lv['p99'])} | {lv['turns']} | {lv['errors']} | {lv['rss_mb_end']:.0f} |")
            rss = chat["rss_mb"]
            sat = chat.get("saturates_at_users")
            lines += ["", f"Saturation: throughput stops growing (<10% over the previous level) at "
                      f"{sat if sat else 'no level tried'} users; past it latency grows with the queue. API RSS "
                      f"(with children) {rss['start']:.0f} MB at start, peak {rss['peak']:.0f} MB, end "
                      f"{rss['end']:.0f} MB over {rss['samples']} samples. A p99 far above the p95 at a low level "
                      "is a cold turn: the first use of a tool path in the API process (the ramp warms one turn per "
                      "advertiser, not every message kind).", ""]
        batch = bench.get("batch")
        if batch:
            lines += [f"Batch: {batch['advertisers']} advertisers ({batch['guidance']} guidance), {batch['workers']} "
                      f"worker process(es) x {batch['worker_concurrency']}: **{batch['per_minute']:.1f} advertisers/min** "
                      f"({batch['seconds']} s); done {batch['done']}, failed {batch['failed']}, lost {batch['lost']}, "
                      f"duplicated {batch['duplicated']}, retries {batch['retries']}, audit writes "
                      f"{batch['audit_writes']}.", ""]
        lines += ["Not run here (commands to run them):", "",
                  "- a vLLM-backed ramp: `scripts/serve_vllm.sh`, then `python -m evals.benchmarks.bench_load "
                  "--backend openai --llm-base-url http://127.0.0.1:8000/v1 --llm-model <name>`",
                  "- a 30-minute soak watching RSS: `python -m evals.benchmarks.bench_load --users 8 --seconds 1800 "
                  "--batch-advertisers 0`",
                  "- a 1,000-advertiser batch: `python -m evals.benchmarks.bench_load --users '' "
                  "--batch-advertisers 1000 --workers 2`", ""]

    def table(title: str, rows: dict[str, Any], header: str) -> list[str]:
        out = [f"## {title}", "", header, "|---|---|---|"]
        for key, what in rows.items():
            status, secs = results.get(key, ("not run", 0.0))
            desc = " — ".join(what) if isinstance(what, tuple) else what
            out.append(f"| `{key.split('::')[1]}` | {desc} | {status}{f' ({secs:.0f} s)' if secs else ''} |")
        return [*out, ""]

    lines += table("Faults survived", FAULTS, "| test | fault — documented behaviour checked | result |")
    lines += table("Hostile inputs tried", INPUTS, "| test | inputs | result |")
    lines += ["## Known gaps", "",
              "- The input guardrail's injection and cross-account screens match plain text only: zero-width "
              "characters, fullwidth letters and Cyrillic homoglyphs get past them (e.g. `Ig\\u200bnore all previous "
              "instructions ...`, `campaigns of аdv_0002`). The scope (from the API key, enforced by the tools) and "
              "the confirmation step still hold, as the unicode test shows; the screen itself should normalise "
              "(NFKC, drop format characters, map confusables) before matching.",
              "- Redis restarted mid-job *without* persistence loses the queued arq entries (by design Redis holds "
              "the queue); PostgreSQL keeps the results and `POST /v1/jobs/{id}/requeue` queues the missing "
              "advertisers again. Not covered by a test here.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", type=Path, default=BENCH)
    parser.add_argument("--no-tests", action="store_true", help="don't run pytest (test rows say 'not run')")
    parser.add_argument("--junit", type=Path, default=None, help="use this junit XML instead of running pytest")
    parser.add_argument("--out", type=Path, default=REPO / "RELIABILITY.md")
    args = parser.parse_args()
    bench = json.loads(args.bench.read_text()) if args.bench.exists() else None
    junit = args.junit
    if junit is None and not args.no_tests:
        junit = Path(tempfile.mkdtemp(prefix="reliability_")) / "junit.xml"
        run_tests(junit)
    args.out.write_text(render(bench, outcomes(junit)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
