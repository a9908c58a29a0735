"""`adguide train ...`: the model pipeline, one resumable command per stage.

    adguide train all --config small                      every stage not yet done, then the card
    adguide train all --config small --background         the same, detached, logging to <run>/train.log
    adguide train data|base|sft|preferences|dpo|card      one stage (its inputs must be done)
    adguide train status                                  what is done, and the last progress line
    adguide train export --out training/models/adguide-small
    adguide train check-data FILE / check-model DIR       validate before spending compute

An interrupted run resumes where it stopped: finished stages are skipped, SFT continues from its last
checkpoint. Bad input ends with one line saying what is wrong and exit code 2. Heavy imports stay inside the
commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

train_app = typer.Typer(
    help="Make the project's model: curriculum, SFT, preferences, DPO, card.", no_args_is_help=True
)
_err = Console(stderr=True)
_out = Console()

ConfigOpt = typer.Option(
    "small",
    "--config",
    "-c",
    help="preset: small (the shipped model), tiny (tests), gpu (a pretrained instruct base with LoRA)",
)
RunDirOpt = typer.Option(None, "--run-dir", help="default: $ADGUIDE_HOME/training/<config>")
ForceOpt = typer.Option(False, "--force", help="redo the stage even if its outputs exist and are valid")
ThreadsOpt = typer.Option(None, "--threads", min=1, max=256, help="torch threads (default: the preset's)")
BaseModelOpt = typer.Option(None, "--base-model", help="gpu preset: a local Qwen2.5 instruct model dir")


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# -> Run
def _open_run(config: str, run_dir: Path | None, threads: int | None, base_model: Path | None = None):
    # lazy: pulls in torch at import
    from training.config import preset

    # lazy: pulls in torch at import
    from training.pipeline import Run, default_runs_root

    try:
        cfg = preset(config)
    except ValueError as err:
        _fail(f"--config: {err}")
    if threads is not None:
        cfg = cfg.model_copy(update={"threads": threads})
    if base_model is not None:
        if cfg.gpu is None:
            _fail("--base-model is for --config gpu")
        cfg = cfg.model_copy(update={"gpu": cfg.gpu.model_copy(update={"base_model": str(base_model)})})
    root = run_dir or default_runs_root() / cfg.name
    try:
        return Run.open(root, cfg)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))


def _run_stages(
    config: str,
    run_dir: Path | None,
    threads: int | None,
    stages: list[str],
    force: bool,
    base_model: Path | None = None,
) -> None:
    # lazy: keeps the CLI's start fast
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # lazy: pulls in torch at import
    from training.pipeline import Stage, StageNotReadyError

    # lazy: pulls in numpy, torch at import
    from training.stages import run_one

    run = _open_run(config, run_dir, threads, base_model)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=_err,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}
        logged: dict[str, int] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)
            # a background run: the log gets a line each time 2% more is done
            bucket = done * 50 // max(1, total)
            if not _err.is_terminal and bucket != logged.get(what):
                logged[what] = bucket
                print(
                    json.dumps(
                        {
                            "progress": what,
                            "done": done,
                            "total": total,
                            "elapsed_s": round(time.perf_counter() - started),
                        }
                    ),
                    flush=True,
                )

        for name in stages:
            stage = Stage(name)
            t0 = time.perf_counter()
            try:
                ran = run_one(run, stage, force=force, progress=progress)
            except (StageNotReadyError, MemoryError, FileNotFoundError, ValueError) as err:
                _fail(f"stage {name}: {err}")
            record = run.record(stage)
            took = f"{time.perf_counter() - t0:.1f} s" if ran else "skipped (outputs exist; --force to redo)"
            _out.print(
                f"[bold]{name}[/]: {took}  {_brief(record.summary if record else {})}",
                highlight=False,
                soft_wrap=True,
            )
    _out.print(
        f"run dir {run.root} · {time.perf_counter() - started:.1f} s · metrics in metrics.jsonl",
        soft_wrap=True,
    )


def _brief(summary: dict[str, Any]) -> str:
    keep = (
        "dialogues",
        "parameters",
        "steps",
        "val_loss",
        "tokens_per_s",
        "examples_per_s",
        "pairs",
        "correct_rate",
        "shipped",
        "vs_sft",
        "task_success",
    )
    return ", ".join(f"{k}={summary[k]}" for k in keep if k in summary)


def _stage_command(name: str, doc: str) -> None:
    def command(
        config: str = ConfigOpt,
        run_dir: Path | None = RunDirOpt,
        force: bool = ForceOpt,
        threads: int | None = ThreadsOpt,
        base_model: Path | None = BaseModelOpt,
    ) -> None:
        _run_stages(config, run_dir, threads, [name], force, base_model)

    command.__doc__ = doc
    train_app.command(name=name)(command)


_stage_command("data", "Curriculum dialogues over generated training worlds (train families only).")
_stage_command("base", "The starting model: MiniLM as a prefix LM (or the gpu recipe's pretrained base).")
_stage_command("sft", "Supervised fine-tuning on the curriculum's steps (resumes from its checkpoint).")
_stage_command(
    "preferences", "Sample the SFT model, judge by outcome: RFT on the correct samples, DPO pairs."
)
_stage_command("dpo", "DPO (TRL) on pairs of the model's own samples.")
_stage_command("card", "SFT vs RFT vs DPO on held-out conversations; pick the shipped model; write the card.")


@train_app.command("all")
def all_stages(
    config: str = ConfigOpt,
    run_dir: Path | None = RunDirOpt,
    force: bool = ForceOpt,
    threads: int | None = ThreadsOpt,
    base_model: Path | None = BaseModelOpt,
    background: bool = typer.Option(False, "--background", help="detach; progress goes to <run>/train.log"),
) -> None:
    """Every stage in order, skipping those already done (an interrupted run resumes)."""
    # lazy: pulls in torch at import
    from training.pipeline import Stage

    if background:
        run = _open_run(config, run_dir, threads, base_model)
        log = run.root / "train.log"
        argv = [
            sys.executable,
            "-m",
            "adguide_cli",
            "train",
            "all",
            "--config",
            config,
            "--run-dir",
            str(run.root),
        ]
        argv += ["--force"] if force else []
        argv += ["--threads", str(threads)] if threads else []
        argv += ["--base-model", str(base_model)] if base_model else []
        with log.open("a") as handle:
            proc = subprocess.Popen(
                argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=os.getcwd(),
                env=os.environ.copy(),
            )
        (run.root / "train.pid").write_text(str(proc.pid))
        _out.print(
            f"training in the background (pid {proc.pid}); follow it with `tail -f {log}` or "
            f"`adguide train status --run-dir {run.root}`",
            soft_wrap=True,
        )
        return
    _run_stages(config, run_dir, threads, [s.value for s in Stage], force, base_model)


@train_app.command()
def status(config: str = ConfigOpt, run_dir: Path | None = RunDirOpt) -> None:
    """Which stages are done, with their summaries, and the last line the run logged."""
    # lazy: pulls in torch at import
    from training.pipeline import Stage

    run = _open_run(config, run_dir, None)
    for stage in Stage:
        record = run.record(stage)
        state = "done" if run.is_done(stage) else "not done"
        _out.print(f"{stage.value:12} {state:9} {_brief(record.summary) if record else ''}", soft_wrap=True)
    metrics = run.metrics()
    if metrics:
        _out.print(f"last: {json.dumps(metrics[-1])[:300]}", soft_wrap=True, highlight=False)


@train_app.command()
def export(
    out: Path = typer.Option(..., "--out", help="model dir to write, e.g. training/models/adguide-small"),
    config: str = ConfigOpt,
    run_dir: Path | None = RunDirOpt,
    router: bool = typer.Option(
        True, "--router/--no-router", help="train the intent router (agent/router.py) into --out (~12 min)"
    ),
) -> None:
    """Copy the shipped model (chosen by the card stage) and its card into --out, with its intent router."""
    # lazy: pulls in torch at import
    from training.pipeline import StageNotReadyError

    # lazy: pulls in numpy, torch at import
    from training.stages import export_model

    run = _open_run(config, run_dir, None)
    try:
        path = export_model(run, out)
    except StageNotReadyError as err:
        _fail(str(err))
    if router:
        # lazy: pulls in numpy, torch at import
        from training.router import train_router

        summary = train_router(path, run.root / "router", run.config.router, say=_out.print)
        _out.print(f"router: held-out family accuracy {summary['heldout_family_accuracy']:.3f}")
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    _out.print(f"wrote {path} ({size / 2**20:.1f} MiB)", soft_wrap=True)


@train_app.command("check-data")
def check_data(
    path: Path = typer.Argument(..., help="curriculum dialogues (JSONL, one Dialogue a line)"),
) -> None:
    """Validate a dialogue file: every line a well-formed dialogue."""
    # lazy: keeps the CLI's start fast
    from pydantic import ValidationError

    # lazy: pulls in numpy at import
    from agent.curriculum.dialogues import Dialogue

    if not path.is_file():
        _fail(f"{path} does not exist")
    n = 0
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            Dialogue.model_validate_json(line)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            _fail(f"{path}:{i}: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}")
        n += 1
    _out.print(f"{path}: {n} dialogues, all valid", soft_wrap=True)


@train_app.command("check-model")
def check_model(path: Path = typer.Argument(..., help="a model dir")) -> None:
    """Validate a model dir: it loads, and (the embedded model) answers a prompt under the grammar."""
    # lazy: pulls in jsonschema, langchain_core, pydantic_settings at import
    from agent.backends.embedded import EmbeddedChatModel, is_embedded_dir

    if not (path / "config.json").is_file():
        _fail(f"{path} is not a model dir (no config.json)")
    if not is_embedded_dir(path):
        try:
            # lazy: transformers is heavy and needed only here
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as err:
            _fail(f"{path}: {err}")
        _out.print(f"{path}: {config.model_type} model, valid config", soft_wrap=True)
        return
    try:
        model = EmbeddedChatModel.from_dir(path)
        model.load()
    except (OSError, ValueError, RuntimeError) as err:
        _fail(f"{path}: {err}")
    _out.print(
        f"{path}: embedded prefix LM, {sum(p.numel() for p in model._model.parameters()) / 1e6:.1f}M "
        "parameters, loads",
        soft_wrap=True,
    )
