"""The whole training pipeline at the tiny config through the `adguide train` CLI: every stage runs,
resumes, and the model dir it exports is a standard one. The full training is a command, not a test."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from adguide_cli import app

pytestmark = pytest.mark.slow


def test_tiny_pipeline_runs_every_stage_resumes_and_exports(tmp_path, monkeypatch):
    monkeypatch.setenv("ADGUIDE_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "all", "--config", "tiny", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    for stage in ("data", "base", "sft", "preferences", "dpo", "card"):
        assert f"{stage}:" in result.output
        assert json.loads((run_dir / "stages" / f"{stage}.json").read_text())["stage"] == stage

    data = json.loads((run_dir / "stages" / "data.json").read_text())["summary"]
    assert data["dialogues"]["train"] > 0 and data["dialogues"]["test"] > 0 and data["dialogues"]["shifted"] > 0
    sft = json.loads((run_dir / "stages" / "sft.json").read_text())["summary"]
    assert sft["steps"] == 2 and sft["tokens_per_second"] > 0 and 0 < sft["assistant_tokens_per_epoch"] < sft["tokens_per_epoch"]
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(e["event"] == "train_log" and e["stage"] == "sft" and "loss" in e for e in events)
    evaluation = json.loads((run_dir / "card" / "eval.json").read_text())
    assert set(evaluation) == {"test", "shifted"} and "dpo_vs_sft" in evaluation["test"]
    card = (run_dir / "card" / "README.md").read_text()
    assert "DPO vs SFT by simulated outcome" in card and "GPU throughput: not measured" in card

    again = runner.invoke(app, ["train", "all", "--config", "tiny", "--run-dir", str(run_dir)])
    assert again.exit_code == 0 and again.output.count("skipped (outputs exist") == 6

    out = tmp_path / "shipped"
    exported = runner.invoke(app, ["train", "export", "--config", "tiny", "--run-dir", str(run_dir), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    checked = runner.invoke(app, ["train", "check-model", str(out)])
    assert checked.exit_code == 0 and "qwen2 model" in checked.output
    assert (out / "README.md").is_file() and (out / "eval.json").is_file()


def test_bad_inputs_fail_up_front_with_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "sft", "--config", "tiny", "--run-dir", str(tmp_path / "fresh")])
    assert result.exit_code == 2 and "stage 'data' has not completed" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "d1", "advertiser_id": "adv_0001", "split": "train", "kind": "propose", "tools": [], '
                   '"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null, '
                   '"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "x", "arguments": "{oops"}}]}]}\n')
    result = runner.invoke(app, ["train", "check-data", str(bad)])
    assert result.exit_code == 2 and "arguments is not valid JSON" in result.output
    result = runner.invoke(app, ["train", "check-model", str(tmp_path)])
    assert result.exit_code == 2 and "incomplete: missing config.json" in result.output
    result = runner.invoke(app, ["train", "all", "--config", "gigantic", "--run-dir", str(tmp_path / "x")])
    assert result.exit_code == 2 and "config must be one of tiny, small" in result.output


def test_dpo_with_lora_and_ipo_saves_a_merged_plain_model_dir(tmp_path):
    from tests.test_training import dialogue
    from training.config import preset
    from training.dpo import train_dpo
    from training.model import build_model, save_model_dir, validate_model_dir
    from training.pipeline import Run, Stage, run_stage
    from training.preferences import Candidate, pairs_for
    from training.scoring import score, teacher_completion
    from training.tokenizer import project_corpus, train_tokenizer

    tiny = preset("tiny")
    config = tiny.model_copy(update={"dpo": tiny.dpo.model_copy(update={"use_lora": True, "lora_r": 4, "loss_type": "ipo"})})
    tokenizer = train_tokenizer(list(project_corpus()), 512)
    sft_dir = tmp_path / "sft"
    save_model_dir(build_model(config.model, tokenizer), tokenizer, sft_dir)
    pairs = []
    for i in range(4):
        record = dialogue(i)
        good = teacher_completion(record)
        bad = good[:2] + [{"role": "assistant", "content": "Profit will be $987.65, guaranteed."}]
        pairs += pairs_for(record, [Candidate(source="sft", added=a, score=score(record, a)) for a in (good, bad)], 0.05)
    assert len(pairs) == 4
    run = Run.open(tmp_path / "run", config)
    for stage in (Stage.DATA, Stage.BASE, Stage.SFT, Stage.PREFERENCES):  # upstream records for the DPO stage
        run_stage(run, stage, lambda w: (w.out / "x").write_text("x"))
    run_stage(run, Stage.DPO, lambda w: train_dpo(w, config, sft_dir, pairs))
    summary = run.record(Stage.DPO).summary
    assert summary["lora"] is True and summary["loss_type"] == "ipo" and summary["steps"] == 2
    out = run.path(Stage.DPO) / "model"
    validate_model_dir(out)
    assert not (out / "adapter_config.json").exists()  # merged: loads without peft
