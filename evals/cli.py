"""`adguide eval`: run an evaluation suite, write the JSON result and HTML report, optionally gate on the baseline.

adguide eval --suite ci --backend rules --gate              # what CI runs
adguide eval --suite full --model-url http://127.0.0.1:8000/v1 --trials 3
adguide eval --suite ci --backend rules --update-baseline   # record a new baseline, deliberately
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

eval_app = typer.Typer(
    help="Evaluate the agent: scenarios, safety, shifted markets, the regression gate.",
    invoke_without_command=True,
)


@eval_app.callback()
def run(
    ctx: typer.Context,
    suite: str = typer.Option("ci", "--suite", "-s", help="ci | full (evals/scenarios/suites.yaml)"),
    backend: str | None = typer.Option(
        None,
        "--backend",
        "-b",
        help="rules | teacher | inprocess | openai (default: openai with --model-url, else rules)",
    ),
    model_url: str | None = typer.Option(
        None, "--model-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    ),
    model_name: str | None = typer.Option(
        None, "--model-name", help="model id on the server (default: the first listed)"
    ),
    model_dir: Path | None = typer.Option(None, "--model-dir", help="model dir for --backend inprocess"),
    gate: bool = typer.Option(
        False, "--gate", help="exit 1 with a table of regressions against evals/baseline.json"
    ),
    update_baseline: bool = typer.Option(
        False, "--update-baseline", help="record this run as the suite's baseline"
    ),
    trials: int | None = typer.Option(
        None, "--trials", "-k", min=1, max=20, help="trials per case (pass^k); default: the suite's"
    ),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="runs are written to OUT/eval-<timestamp>/"),
    concurrency: int = typer.Option(4, "--concurrency", "-j", min=1, max=64, help="cases in flight at once"),
    teacher: bool = typer.Option(
        True, "--teacher/--no-teacher", help="also run the teacher row (the oracle)"
    ),
    only: str | None = typer.Option(None, "--only", help="comma-separated scenario ids of the suite to run"),
    fresh_world: bool = typer.Option(False, "--fresh-world", help="regenerate the cached evaluation world"),
    world_cache: Path | None = typer.Option(None, "--world-cache", help="default: $ADGUIDE_HOME/eval-worlds"),
    baseline: Path | None = typer.Option(None, "--baseline", help="default: evals/baseline.json"),
) -> None:
    """Run a suite for the model (and the teacher), write runs/eval-<timestamp>/{result.json,report.html}."""
    if ctx.invoked_subcommand is not None:
        return
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # lazy: pulls in jsonschema, pydantic_settings at import
    from agent.backends import BackendUnavailableError

    # lazy: keeps the CLI's start fast
    from evals.data_model import BackendKindName, Row

    # lazy: pulls in numpy, scipy at import
    from evals.evaluate import evaluate

    # lazy: pulls in numpy, scipy at import
    from evals.gate import BASELINE_PATH, check, load_baseline
    from evals.gate import update_baseline as record_baseline
    from evals.report import new_run_dir, write_run

    # lazy: keeps the CLI's start fast
    from evals.scenario import ScenarioError

    console = Console(stderr=True)
    kinds = [k.value for k in BackendKindName]
    chosen = backend or ("openai" if model_url else "rules")
    if chosen not in kinds:
        raise typer.BadParameter(
            f"must be one of {', '.join(kinds)} (got {chosen!r})", param_hint="--backend"
        )
    if chosen == "openai" and not model_url:
        raise typer.BadParameter("the openai backend needs --model-url", param_hint="--model-url")
    if model_url and chosen != "openai":
        raise typer.BadParameter(
            f"--model-url is for --backend openai (got --backend {chosen})", param_hint="--model-url"
        )
    if model_dir is not None and not model_dir.is_dir():
        raise typer.BadParameter(f"{model_dir} is not a directory", param_hint="--model-dir")
    row = Row(
        name="model",
        backend=BackendKindName(chosen),
        model_url=model_url,
        model_dir=model_dir,
        model_name=model_name,
    )
    ids = [s.strip() for s in only.split(",") if s.strip()] if only else None

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "evaluation world" if stage == "world" else f"cases ({row.label()} + teacher)"
                tasks[stage] = bar.add_task(label, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        try:
            result = evaluate(
                suite,
                row,
                teacher=teacher,
                trials=trials,
                concurrency=concurrency,
                only=ids,
                cache_dir=world_cache,
                fresh_world=fresh_world,
                progress=progress,
            )
        except (ValueError, ScenarioError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        except (BackendUnavailableError, FileNotFoundError, OSError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None

    report = None
    if gate:
        try:
            report = check(result, load_baseline(baseline or BASELINE_PATH))
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        result.gate = report.model_dump()
    run_dir = new_run_dir(out)
    json_path, html_path = write_run(result, run_dir)
    _summary(console, result)
    console.print(f"result: {json_path}\nreport: {html_path}")
    if update_baseline:
        key = record_baseline(result, baseline or BASELINE_PATH)
        console.print(f"baseline for {key} recorded in {baseline or BASELINE_PATH}")
    if report is not None:
        _gate_table(console, report)
        if not report.passed:
            raise typer.Exit(1)


def _summary(console: object, result: object) -> None:
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from rich.table import Table

    # lazy: pulls in numpy, scipy at import
    from evals.report import METRIC_LABELS, RunResult, fmt

    assert isinstance(console, Console) and isinstance(result, RunResult)
    table = Table(
        title=f"suite {result.suite}: {sum(m.n_cases for m in result.metrics.values()) // max(1, len(result.metrics))} "
        f"cases x {result.trials} trial(s), {result.seconds:.0f} s"
    )
    table.add_column("metric")
    for name in result.metrics:
        table.add_column(result.row_label(name))
    for key, label, kind in METRIC_LABELS:
        label = label.replace("pass^k", f"pass^{result.trials}") if key == "pass_k" else label
        table.add_row(label, *[fmt(m.metrics.get(key), kind) for m in result.metrics.values()])
    for split in ("id", "competitor_surge", "seasonal_peak", "new_category"):
        if any(split in m.by_split for m in result.metrics.values()):
            table.add_row(
                f"success · {split}", *[fmt(m.by_split.get(split), "pct") for m in result.metrics.values()]
            )
    table.add_row("errors", *[str(m.errors) for m in result.metrics.values()])
    console.print(table)


def _gate_table(console: object, report: object) -> None:
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from rich.table import Table

    # lazy: pulls in numpy, scipy at import
    from evals.gate import GateReport

    assert isinstance(console, Console) and isinstance(report, GateReport)
    for note in report.notes:
        console.print(f"[yellow]{note}[/yellow]")
    if report.passed:
        console.print(
            f"[green]gate passed[/green] ({report.key}: {len(report.comparisons)} metrics within tolerance)"
        )
        return
    if not report.regressions():
        console.print(f"[red]gate FAILED[/red] ({report.key})")
        return
    table = Table(title=f"gate FAILED ({report.key}): regressions beyond tolerance")
    for col in ("row", "metric", "baseline", "now", "tolerance"):
        table.add_column(col)
    for c in report.regressions():
        table.add_row(
            c.row,
            c.metric,
            f"{c.baseline:.4f}" if c.baseline is not None else "–",
            f"{c.value:.4f}" if c.value is not None else "missing",
            f"{c.tolerance:g}",
        )
    console.print(table)


@eval_app.command("scenarios")
def list_scenarios(
    suite: str | None = typer.Option(None, "--suite", "-s", help="only this suite's scenarios"),
) -> None:
    """List the scenarios (id, category, splits, tags)."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from rich.table import Table

    # lazy: keeps the CLI's start fast
    from evals.scenario import load_scenarios, load_suites, select

    chosen = load_scenarios()
    if suite is not None:
        suites = load_suites()
        if suite not in suites:
            raise typer.BadParameter(f"must be one of {sorted(suites)} (got {suite!r})", param_hint="--suite")
        chosen = select(chosen, suites[suite])
    table = Table(title=f"{len(chosen)} scenarios")
    for col in ("id", "category", "splits", "tags", "turns"):
        table.add_column(col)
    for s in chosen:
        table.add_row(
            s.id, s.category.value, ",".join(x.value for x in s.splits), ",".join(s.tags), str(len(s.turns))
        )
    Console().print(table)
