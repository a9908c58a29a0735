"""A run dir and its stages: resumable, logged, never half-written.

Layout of a run dir (`$ADGUIDE_HOME/training/<name>` by default):

    pipeline.json      the PipelineConfig of the run (the recipe; fixed at the first stage)
    metrics.jsonl      one JSON object per event: stage start/end, trainer logs, throughput
    stages/<stage>.json  a completion record: inputs fingerprint, output files with sizes, summary
    data/ base/ sft/ preferences/ dpo/ eval/ card/   each stage's outputs

A stage is skipped when its completion record exists, its inputs fingerprint matches (the config and the
upstream stages' records) and its output files are still there with the recorded sizes; `force` redoes it.
Outputs are written into `<dir>.tmp` and renamed into place only when the stage succeeds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from training.config import PipelineConfig


class Stage(StrEnum):
    DATA = "data"  # curriculum dialogues over generated training worlds
    BASE = "base"  # the starting model: MiniLM as a prefix LM (or the gpu recipe's pretrained base)
    SFT = "sft"
    PREFERENCES = "preferences"  # SFT samples judged by outcome -> RFT model + DPO pairs
    DPO = "dpo"
    CARD = "card"  # SFT vs RFT vs DPO on held-out conversations + the model card


UPSTREAM: dict[Stage, list[Stage]] = {
    Stage.DATA: [],
    Stage.BASE: [],
    Stage.SFT: [Stage.BASE, Stage.DATA],
    Stage.PREFERENCES: [Stage.SFT, Stage.DATA],
    Stage.DPO: [Stage.PREFERENCES, Stage.SFT],
    Stage.CARD: [Stage.SFT],
}


# The parts of the PipelineConfig each stage's outputs depend on (besides its upstream stages).
STAGE_CONFIG: dict[Stage, tuple[str, ...]] = {
    Stage.DATA: ("curriculum",),
    Stage.BASE: ("gpu",),
    Stage.SFT: ("sft", "gpu"),
    Stage.PREFERENCES: ("preferences",),
    Stage.DPO: ("dpo",),
    Stage.CARD: ("card",),
}


class StageRecord(BaseModel):
    stage: Stage
    fingerprint: str
    files: dict[str, int]  # path relative to the run dir -> size in bytes
    finished_at: dt.datetime
    seconds: float
    summary: dict[str, Any]


class StageNotReadyError(RuntimeError):
    """A stage whose upstream stage has not completed."""


def default_runs_root() -> Path:
    return Path(os.environ.get("ADGUIDE_HOME", Path.home() / ".adguide")) / "training"


class Run:
    def __init__(self, root: Path, config: PipelineConfig):
        self.root = Path(root)
        self.config = config

    @classmethod
    def open(cls, root: Path, config: PipelineConfig | None = None) -> Run:
        """Open a run dir. A new one records `config`; an existing one keeps its own unless `config` is given,
        which replaces it: only the stages whose part of the config changed (and those after them) rerun."""
        root = Path(root)
        saved = root / "pipeline.json"
        if saved.is_file():
            existing = PipelineConfig.load(saved)
            if config is None or config.fingerprint() == existing.fingerprint():
                return cls(root, existing)
            if config.name != existing.name:
                raise ValueError(
                    f"{root} holds a {existing.name!r} run; use another --run-dir for config {config.name!r}"
                )
            config.save(saved)
            run = cls(root, config)
            run.log("run", "config_changed", old=existing.fingerprint(), new=config.fingerprint())
            return run
        if config is None:
            raise FileNotFoundError(
                f"{root} is not a training run: start one with `adguide train all --config small`"
            )
        root.mkdir(parents=True, exist_ok=True)
        config.save(saved)
        return cls(root, config)

    def path(self, stage: Stage) -> Path:
        return self.root / stage.value

    # --- completion records -----------------------------------------------------------------------

    def _record_path(self, stage: Stage) -> Path:
        return self.root / "stages" / f"{stage.value}.json"

    def record(self, stage: Stage) -> StageRecord | None:
        path = self._record_path(stage)
        if not path.is_file():
            return None
        try:
            return StageRecord.model_validate_json(path.read_text())
        except ValueError:
            return None

    def fingerprint(self, stage: Stage) -> str:
        """The stage's own config sections plus its upstream stages' fingerprints."""
        sections = self.config.model_dump(mode="json")
        own = {key: sections[key] for key in STAGE_CONFIG[stage]}
        parts = [json.dumps(own, sort_keys=True), stage.value]
        for upstream in UPSTREAM[stage]:
            record = self.record(upstream)
            parts.append(record.fingerprint if record else "missing")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def is_done(self, stage: Stage) -> bool:
        record = self.record(stage)
        if record is None or record.fingerprint != self.fingerprint(stage):
            return False
        for rel, size in record.files.items():
            path = self.root / rel
            if not path.is_file() or path.stat().st_size != size:
                return False
        return True

    def require(self, *stages: Stage) -> None:
        for stage in stages:
            if not self.is_done(stage):
                raise StageNotReadyError(
                    f"stage {stage.value!r} has not completed in {self.root}: run `adguide train {stage.value}` first"
                )

    # --- running a stage --------------------------------------------------------------------------

    @contextmanager
    def stage(self, stage: Stage) -> Iterator[StageWork]:
        """Work in `<stage>.tmp`; on success move it into place and write the completion record."""
        final = self.path(stage)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        work = StageWork(tmp, stage, self)
        self.log(stage, "start")
        started = time.perf_counter()
        try:
            yield work
        except BaseException as err:
            self.log(stage, "failed", error=f"{type(err).__name__}: {err}"[:500])
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = time.perf_counter() - started
        shutil.rmtree(final, ignore_errors=True)
        tmp.replace(final)
        files = {
            str(p.relative_to(self.root)): p.stat().st_size for p in sorted(final.rglob("*")) if p.is_file()
        }
        record = StageRecord(
            stage=stage,
            fingerprint=self.fingerprint(stage),
            files=files,
            finished_at=dt.datetime.now(dt.UTC),
            seconds=round(seconds, 2),
            summary=work.summary,
        )
        self._record_path(stage).parent.mkdir(exist_ok=True)
        self._record_path(stage).write_text(record.model_dump_json(indent=2))
        self.log(stage, "done", **{**work.summary, "stage_seconds": round(seconds, 2)})

    def log(self, stage: Stage | str, event: str, **fields: Any) -> None:
        entry = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "stage": str(stage),
            "event": event,
        }
        entry.update(fields)
        with (self.root / "metrics.jsonl").open("a") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        path = self.root / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class StageWork:
    """Handed to a stage body: its output dir (`out`), a summary to fill, and the run's logger."""

    def __init__(self, out: Path, stage: Stage, run: Run):
        self.out = out
        self.stage = stage
        self.run = run
        self.summary: dict[str, Any] = {}

    def log(self, event: str, **fields: Any) -> None:
        self.run.log(self.stage, event, **fields)


def run_stage(run: Run, stage: Stage, body: Callable[[StageWork], None], force: bool = False) -> bool:
    """Run `body` unless the stage is already done (returns False when skipped)."""
    for upstream in UPSTREAM[stage]:
        run.require(upstream)
    if not force and run.is_done(stage):
        run.log(stage, "skipped", reason="outputs exist and are valid")
        return False
    with run.stage(stage) as work:
        body(work)
    return True
