"""Training pieces: examples from dialogues, the lean trainer (learns, checkpoints, resumes), presets, the CLI's
checks. The whole pipeline on the tiny preset is in test_training_pipeline.py (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adguide_cli import app
from agent.model.text import CALL_OPEN, CONFIRM, load_tokenizer
from training.config import Preset, preset
from training.examples import encode, examples
from training.trainer import TrainConfig, batches, train


@pytest.fixture(scope="module")
def dialogues(tiny_world_path: Path) -> list:  # type: ignore[type-arg]
    import asyncio

    from tests.test_curriculum_dialogues import _dialogues

    return asyncio.run(_dialogues(tiny_world_path, 40, heldout=False, seed=3))


def test_examples_are_one_per_step_with_the_prompt_the_backend_builds(dialogues: list) -> None:  # type: ignore[type-arg]
    from training.stages import model_schemas

    tok = load_tokenizer()
    exs = [e for d in dialogues for e in examples(d, model_schemas())]
    kinds = {e.kind for e in exs}
    assert {"call", "answer"} <= kinds
    for e in exs:
        assert e.prompt.startswith("[account] adv_0001") and "[user]" in e.prompt
        if e.kind == "call":
            assert e.output.startswith(CALL_OPEN)
        if e.kind == "decision":
            assert e.output in (CONFIRM, "<reject>") and "[pending]" in e.prompt
        pair = encode(e, tok)
        if pair is not None:
            ids, labels = pair
            assert len(ids) == len(labels) and ids[0] == tok.token_to_id("[CLS]")
            scored = [t for t in labels if t != -100]
            assert scored[-1] == tok.token_to_id("[SEP]") and len(scored) < len(ids)


def test_batches_group_lengths_and_keep_every_example_once() -> None:
    lengths = [10, 300, 40, 45, 290, 12, 500, 60]
    plan = batches(lengths, batch_tokens=640, seed=1)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    assert plan == batches(lengths, batch_tokens=640, seed=1)  # the same order for a resumed run


def test_the_trainer_learns_checkpoints_and_resumes(dialogues: list, tmp_path: Path) -> None:  # type: ignore[type-arg]
    from agent.model.network import AdguideForPrefixLM
    from training.stages import encoded

    tok = load_tokenizer()
    data, _ = encoded(dialogues, tok, {}, seed=0, max_length=512)
    data = data[:24]
    model = AdguideForPrefixLM.from_minilm(tok.get_vocab_size())
    cfg = TrainConfig(
        max_steps=6,
        minutes=10,
        warmup_steps=1,
        batch_tokens=600,  # six or more batches of the 24 examples, whatever the curriculum draws
        checkpoint_every=3,
        log_every=1,
        learning_rate=5e-4,
        threads=1,
    )
    events: list[dict] = []  # type: ignore[type-arg]
    first = train(
        model,
        data,
        tmp_path / "a",
        cfg.model_copy(update={"max_steps": 3}),
        pad=0,
        log=events.append,
        checkpoint_dir=tmp_path / "ckpt",
    )
    losses = [e["loss"] for e in events if e.get("event") == "train"]
    assert first["steps"] == 3 and losses[-1] < losses[0]
    assert not (
        tmp_path / "ckpt" / "state.pt"
    ).exists()  # checkpoint_every=3 is the last step: none is written
    resumed_events: list[dict] = []  # type: ignore[type-arg]
    train(
        AdguideForPrefixLM.from_minilm(tok.get_vocab_size()),
        data,
        tmp_path / "b",
        cfg.model_copy(update={"checkpoint_every": 2}),
        pad=0,
        log=resumed_events.append,
        checkpoint_dir=tmp_path / "c",
    )
    again: list[dict] = []  # type: ignore[type-arg]
    summary = train(
        AdguideForPrefixLM.from_minilm(tok.get_vocab_size()),
        data,
        tmp_path / "b",
        cfg,
        pad=0,
        log=again.append,
        checkpoint_dir=tmp_path / "c",
    )
    assert again[0] == {"event": "resumed", "step": 4} and summary["steps"] == 6
    assert (tmp_path / "b" / "train_summary.json").is_file()


def test_presets_and_bad_config_names() -> None:
    assert preset("small").sft.minutes <= 60 and preset("small").curriculum.dialogues >= 20_000
    assert preset(Preset.GPU).gpu is not None and preset("tiny").gpu is None
    with pytest.raises(ValueError, match="tiny, small, gpu"):
        preset("huge")


def test_check_data_names_the_bad_line(tmp_path: Path, dialogues: list) -> None:  # type: ignore[type-arg]
    good = tmp_path / "good.jsonl"
    good.write_text("".join(d.model_dump_json() + "\n" for d in dialogues[:3]))
    out = CliRunner().invoke(app, ["train", "check-data", str(good)])
    assert out.exit_code == 0 and "3 dialogues" in out.output
    bad = tmp_path / "bad.jsonl"
    row = json.loads(dialogues[0].model_dump_json())
    row["turns"][0]["intent"]["kind"] = "no_such_intent"
    bad.write_text(dialogues[1].model_dump_json() + "\n" + json.dumps(row) + "\n")
    out = CliRunner().invoke(app, ["train", "check-data", str(bad)])
    assert out.exit_code == 2 and "bad.jsonl:2" in out.output and "kind" in out.output


def test_the_routers_noisy_copies_keep_their_intent():
    from training.router import ACTIONS, OPENERS, augment

    rows = [
        ("how is my account doing?", "overview"),
        ("hi", "greeting"),
        ("what should I bid on red mugs?", "best_bid"),
        ("yes go ahead", "confirm"),
        ("my acos is too high, fix it", "fix_acos"),
    ] * 20
    noisy = augment(rows, 1.0, seed=0)
    assert noisy and all(
        label in {"overview", "greeting", "best_bid", "confirm", "apply_best_bid", "fix_acos"}
        for _, label in noisy
    )
    assert any(
        text.endswith(tuple(ACTIONS)) for text, label in noisy if label == "fix_acos"
    )  # keeps its intent
    assert not any(
        text.startswith(tuple(OPENERS)) for text, label in noisy if label in ("greeting", "confirm")
    )
    assert any(text.startswith(tuple(OPENERS)) for text, label in noisy if label == "overview")
    acted = [text for text, label in noisy if label == "apply_best_bid"]
    assert acted and all(
        text.startswith("what should I bid on red mugs") and text.endswith(tuple(ACTIONS)) for text in acted
    )  # a best bid asked for with an action
    assert augment(rows, 0.0, seed=0) == []
