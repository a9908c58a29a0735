"""One evaluation run end to end: suite -> world (cached) -> cases -> rows run in parallel -> metrics -> result.

    result = evaluate("ci", Row(name="model", backend="rules"), teacher=True)
    write_run(result, new_run_dir(Path("runs")))          # evals.report
    check(result, load_baseline())                         # evals.gate

The CLI (`adguide eval`) is a thin layer over this; tests call it directly with a tiny suite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from evals.data_model import BackendKindName, Row
from evals.heldout import curriculum_cases
from evals.metrics import row_metrics
from evals.outcomes import OutcomeJudge
from evals.report import RunResult, machine_info
from evals.runner import expand_cases, run_cases
from evals.scenario import (
    SCENARIO_DIR,
    Scenario,
    Suite,
    load_scenarios,
    load_suites,
    scenario_files_digest,
    select,
)
from evals.world import prepare_world


def default_cache_dir() -> Path:
    # lazy: pulls in jsonschema, pydantic_settings at import
    from agent.configuration import adguide_home

    return adguide_home() / "eval-worlds"


def quiet_logs() -> None:
    """The agent and tool servers log every guardrail event and tool call; a run of hundreds of cases keeps
    warnings and errors only."""
    for name in (
        "mcp",
        "httpx",
        "adguide.agent",
        "adguide.guardrails",
        "adguide.evals.quiet",
        "presidio-analyzer",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


def evaluate(
    suite: str | Suite,
    model: Row,
    *,
    teacher: bool = True,
    trials: int | None = None,
    concurrency: int = 4,
    scenarios: list[Scenario] | None = None,
    only: list[str] | None = None,
    cache_dir: Path | None = None,
    fresh_world: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> RunResult:
    """Run a suite (a name from suites.yaml, or a Suite) for the model row and, unless `teacher` is False or
    the model is the teacher, the teacher row on the same cases. `only`: scenario ids to keep."""
    began = time.perf_counter()
    name = suite if isinstance(suite, str) else "custom"
    if isinstance(suite, str):
        suites = load_suites()
        if suite not in suites:
            raise ValueError(f"suite must be one of {sorted(suites)} (got {suite!r})")
        spec = suites[suite]
    else:
        spec = suite
    chosen = select(scenarios if scenarios is not None else load_scenarios(), spec)
    if only:
        unknown = sorted(set(only) - {s.id for s in chosen})
        if unknown and spec.curriculum is None:  # no generated cases: checked before the world is made
            raise ValueError(f"scenario(s) {unknown} are not in suite {name}")
        chosen = [s for s in chosen if s.id in only]
    report = progress or (lambda _stage, _done, _total: None)
    report("world", 0, 1)
    world = prepare_world(spec.world, cache_dir or default_cache_dir(), fresh=fresh_world)
    report("world", 1, 1)
    cases, skipped = expand_cases(chosen, spec, world)
    if spec.curriculum is not None:
        report("curriculum", 0, 1)
        cases += curriculum_cases(world, world.advertiser_ids()[: spec.advertisers], spec.curriculum)
        report("curriculum", 1, 1)
    if only:  # the curriculum's scenarios exist only once drawn ("cur-adv_0002-refuse_other_account-1")
        unknown = sorted(set(only) - {c.scenario.id for c in cases})
        if unknown:
            raise ValueError(f"scenario(s) {unknown} are not in suite {name}")
        cases = [c for c in cases if c.scenario.id in only]
    rows = [model]
    if teacher and model.backend != BackendKindName.TEACHER:
        rows.append(Row(name="teacher", backend=BackendKindName.TEACHER))
    n_trials = trials or spec.trials
    total = len(cases) * len(rows) * n_trials
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        report("cases", done, total)

    report("cases", 0, total)
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="adguide-eval-") as work:
        results = asyncio.run(
            run_cases(
                cases, rows, n_trials, world, Path(work), OutcomeJudge(), concurrency=concurrency, tick=tick
            )
        )
    metrics = {row.name: row_metrics([r for r in results if r.row == row.name], n_trials) for row in rows}
    return RunResult(
        run_id=f"eval-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}",
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        suite=name,
        suite_spec=spec,
        scenario_files=scenario_files_digest(SCENARIO_DIR),
        world_dir=str(world.root),
        rows=rows,
        trials=n_trials,
        concurrency=concurrency,
        machine=machine_info(),
        seconds=time.perf_counter() - began,
        metrics=metrics,
        skipped=skipped,
        results=results,
    )
