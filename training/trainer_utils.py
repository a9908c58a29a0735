"""What SFT and DPO share: CPU-safe trainer arguments, a progress bar that also logs metrics, hardware facts."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from transformers import TrainerCallback

from training.pipeline import StageWork


def quiet_libraries(threads: int) -> None:
    """One rich bar per stage instead of a bar per dataset.map and per weight shard; few threads (shared machine)."""
    import datasets
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def cpu_safe_args(threads: int) -> dict[str, Any]:
    """TrainingArguments that work on a CPU-only machine (STACK.md) and on a GPU when one is there."""
    import torch

    quiet_libraries(threads)
    on_gpu = torch.cuda.is_available()
    return {
        "bf16": on_gpu and torch.cuda.is_bf16_supported(),
        "use_cpu": not on_gpu,
        "activation_checkpointing": False,  # 10x slower for small models on CPU
        "report_to": "none",
        "save_strategy": "no",
        "disable_tqdm": True,  # our rich bar below logs to metrics.jsonl as well
        "dataloader_num_workers": 0,
        "logging_steps": 1,
        "lr_scheduler_type": "cosine",
    }


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class ProgressCallback(TrainerCallback):
    """A rich progress bar over optimizer steps; every trainer log line goes to the run's metrics.jsonl."""

    def __init__(self, work: StageWork, description: str):
        self.work = work
        self.description = description
        self.progress: Any = None
        self.task: Any = None
        self.started = 0.0

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.started = time.perf_counter()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"), transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=state.max_steps, loss="")

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        logs = dict(logs or {})
        self.work.log("train_log", step=state.global_step, **{k: _plain(v) for k, v in logs.items()})
        if self.progress is not None and "loss" in logs:
            self.progress.update(self.task, loss=f"loss {float(logs['loss']):.3f}")

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _plain(value: Any) -> Any:
    try:
        return round(float(value), 6)
    except (TypeError, ValueError):
        return str(value)
