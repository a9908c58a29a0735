"""`adguide train ...`: the model pipeline, one resumable command per stage.

    adguide train all --config small                      every stage not yet done, then the card
    adguide train data|base|sft|preferences|dpo|card      one stage (its inputs must be done)
    adguide train export --out training/models/adguide-small
    adguide train check-data FILE / check-model DIR       validate before spending compute

Bad input (a missing or corrupt checkpoint, a malformed dataset, a config that does not fit in memory)
ends with one line saying what is wrong and exit code 2. Heavy imports stay inside the commands.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

train_app = typer.Typer(help="Make the project's model: data, tokenizer, SFT, preferences, DPO, card.", no_args_is_help=True)
_err = Console(stderr=True)
_out = Console()

ConfigOpt = typer.Option("small", "--config", "-c", help="preset: tiny (tests, seconds) or small (the shipped model)")
RunDirOpt = typer.Option(None, "--run-dir", help="default: $ADGUIDE_HOME/training/<config>")
ForceOpt = typer.Option(False, "--force", help="redo the stage even if its outputs exist and are valid")
ThreadsOpt = typer.Option(None, "--threads", min=1, max=256, help="torch threads (default: the preset's, 1)")


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _open_run(config: str, run_dir: Path | None, threads: int | None):  # -> Run
    from training.config import preset
    from training.pipeline import Run, default_runs_root

    try:
        cfg = preset(config)
    except ValueError as err:
        _fail(f"--config: {err}")
    if threads is not None:
        cfg = cfg.model_copy(update={"threads": threads})
    root = run_dir or default_runs_root() / cfg.name
    try:
        return Run.open(root, cfg)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))


def _run_stages(config: str, run_dir: Path | None, threads: int | None, stages: list[str], force: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from training.data import DatasetError
    from training.model import CheckpointError
    from training.pipeline import Stage, StageNotReadyError
    from training.stages import run_one
    from training.tokenizer import CorpusTooSmallError

    run = _open_run(config, run_dir, threads)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done)

        for name in stages:
            stage = Stage(name)
            t0 = time.perf_counter()
            try:
                ran = run_one(run, stage, force=force, progress=progress)
            except (StageNotReadyError, DatasetError, CheckpointError, CorpusTooSmallError, MemoryError,
                    FileNotFoundError, ValueError) as err:
                _fail(f"stage {name}: {err}")
            record = run.record(stage)
            took = f"{time.perf_counter() - t0:.1f} s" if ran else "skipped (outputs exist; --force to redo)"
            _out.print(f"[bold]{name}[/]: {took}  {_brief(record.summary if record else {})}", highlight=False, soft_wrap=True)
    _out.print(f"run dir {run.root} · {time.perf_counter() - started:.1f} s · metrics in metrics.jsonl", soft_wrap=True)


def _brief(summary: dict) -> str:
    keep = ("dialogues", "vocab", "parameters", "steps", "train_loss", "val_loss", "tokens_per_second", "pairs",
            "shipped", "test_dpo_vs_sft")
    return ", ".join(f"{k}={summary[k]}" for k in keep if k in summary)


def _stage_command(name: str, doc: str) -> None:
    def command(config: str = ConfigOpt, run_dir: Path | None = RunDirOpt, force: bool = ForceOpt,
                threads: int | None = ThreadsOpt) -> None:
        _run_stages(config, run_dir, threads, [name], force)

    command.__doc__ = doc
    train_app.command(name=name)(command)


_stage_command("data", "Teacher dialogues over generated worlds (train/val/test by advertiser, shifted market).")
_stage_command("base", "Train the BPE tokenizer and build the untrained Qwen2 model.")
_stage_command("sft", "Supervised fine-tuning on the teacher dialogues (assistant tokens only).")
_stage_command("preferences", "Sample SFT candidates, score them with the simulator, build preference pairs.")
_stage_command("dpo", "DPO (or IPO) on the preference pairs.")
_stage_command("card", "Evaluate SFT vs DPO on held-out tasks and write the model card.")


@train_app.command("all")
def all_stages(config: str = ConfigOpt, run_dir: Path | None = RunDirOpt, force: bool = ForceOpt,
               threads: int | None = ThreadsOpt) -> None:
    """Every stage in order, skipping those already done."""
    from training.pipeline import Stage

    _run_stages(config, run_dir, threads, [s.value for s in Stage], force)


@train_app.command()
def export(
    out: Path = typer.Option(..., "--out", help="model dir to write, e.g. training/models/adguide-small"),
    config: str = ConfigOpt, run_dir: Path | None = RunDirOpt,
) -> None:
    """Copy the shipped model (chosen by the card stage) and its card into --out."""
    from training.model import model_dir_bytes
    from training.pipeline import StageNotReadyError
    from training.stages import export_model

    run = _open_run(config, run_dir, None)
    try:
        path = export_model(run, out)
    except StageNotReadyError as err:
        _fail(str(err))
    _out.print(f"wrote {path} ({model_dir_bytes(path) / 2**20:.1f} MiB)", soft_wrap=True)


@train_app.command("check-data")
def check_data(path: Path = typer.Argument(..., help="a dialogue dataset (JSONL, contract E)")) -> None:
    """Validate a dialogue dataset: every message, tool call and tool result id."""
    from training.data import DatasetError, read_dataset

    try:
        records = read_dataset(path)
    except DatasetError as err:
        _fail(str(err))
    _out.print(f"{path}: {len(records)} dialogues, all valid", soft_wrap=True)


@train_app.command("check-model")
def check_model(path: Path = typer.Argument(..., help="a model dir")) -> None:
    """Validate a model dir: files, config, weights and tokenizer."""
    from training.model import CheckpointError, validate_model_dir

    try:
        config = validate_model_dir(path)
    except CheckpointError as err:
        _fail(str(err))
    _out.print(f"{path}: {config.get('model_type')} model, vocab {config.get('vocab_size')}, valid", soft_wrap=True)
