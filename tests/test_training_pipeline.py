"""The whole pipeline on the tiny preset: every stage runs, a rerun skips what is done, export writes a model
dir the agent loads; a bad input fails up front with one line. Slow (a few CPU minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adguide_cli import app

pytestmark = pytest.mark.slow


def test_tiny_pipeline_runs_every_stage_resumes_and_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADGUIDE_HOME", str(tmp_path / "home"))
    run_dir = tmp_path / "run"
    runner = CliRunner()
    first = runner.invoke(app, ["train", "all", "--config", "tiny", "--run-dir", str(run_dir)])
    assert first.exit_code == 0, first.output
    for stage in ("data", "base", "sft", "preferences", "dpo", "card"):
        assert (run_dir / "stages" / f"{stage}.json").is_file(), stage
    record = json.loads((run_dir / "stages" / "card.json").read_text())
    assert record["summary"]["shipped"] in ("sft", "rft", "dpo")
    again = runner.invoke(app, ["train", "all", "--config", "tiny", "--run-dir", str(run_dir)])
    assert again.exit_code == 0 and again.output.count("skipped") == 6, again.output
    out = tmp_path / "exported"
    exported = runner.invoke(
        app, ["train", "export", "--config", "tiny", "--run-dir", str(run_dir), "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    assert (out / "README.md").is_file() and (out / "comparison.json").is_file()
    check = runner.invoke(app, ["train", "check-model", str(out)])
    assert check.exit_code == 0 and "embedded prefix LM" in check.output


def test_bad_inputs_fail_up_front_with_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["train", "sft", "--config", "tiny", "--run-dir", str(tmp_path / "fresh")])
    assert out.exit_code == 2 and "stage sft" in out.output and "adguide train" in out.output
    out = runner.invoke(app, ["train", "all", "--config", "huge", "--run-dir", str(tmp_path / "x")])
    assert out.exit_code == 2 and "--config" in out.output
    out = runner.invoke(app, ["train", "check-model", str(tmp_path)])
    assert out.exit_code == 2 and "not a model dir" in out.output


def test_the_gpu_recipe_fine_tunes_a_tiny_qwen2_with_lora(tmp_path: Path, tiny_world_path: Path) -> None:
    """The pretrained-base path on CPU: a tiny random Qwen2, LoRA SFT on hermes-rendered dialogues, merged into a
    plain model dir the local backend (and vLLM) can load."""
    import asyncio

    from tests.test_curriculum_dialogues import _dialogues
    from training.config import GpuConfig
    from training.gpu import build_base, dialogue_messages, train_sft_lora

    dialogues = asyncio.run(_dialogues(tiny_world_path, 8, heldout=False, seed=5))
    assert all(dialogue_messages(d)[-1]["role"] == "assistant" for d in dialogues)
    cfg = GpuConfig(max_steps=2, batch_size=2, max_length=8192, dialogues=8)
    build_base(cfg, tmp_path / "base")
    summary = train_sft_lora(
        cfg, tmp_path / "base", dialogues, tmp_path / "sft", threads=1, log=lambda *a, **k: None
    )
    assert summary["steps"] == 2
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "sft")
    assert not any("lora" in name for name, _ in model.named_parameters())
