"""training/: tokenizer and chat template, model dirs, dataset validation, configs, scoring, pairs, run dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.config import ModelConfig, check_fits_in_memory, preset
from training.data import (
    DatasetError,
    DialogueRecord,
    Split,
    TaskKind,
    assign_splits,
    read_dataset,
    write_dataset,
)
from training.pipeline import Run, Stage, StageNotReadyError, run_stage

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "propose_change",
            "description": "Dry-run a change.",
            "parameters": {"type": "object", "properties": {"action": {"type": "string"}, "id": {"type": "string"}}},
        },
    }
]


def dialogue(i: int = 0, *, arguments: str | None = None, answer: str | None = None) -> DialogueRecord:
    args = arguments if arguments is not None else json.dumps({"action": "set_bid", "id": f"kw_000000{i}", "value": 0.5})
    result = {"token": "cf_1", "changes": [{"id": f"kw_000000{i}", "field": "bid", "before": 0.75, "after": 0.5}],
              "impact": {"days": 7, "before": {"profit": 120.5}, "after": {"profit": 131.25}}}
    return DialogueRecord(
        id=f"d{i}", advertiser_id=f"adv_000{i % 3 + 1}", split=Split.TRAIN, kind=TaskKind.PROPOSE,
        messages=[
            {"role": "system", "content": "You are adguide."},
            {"role": "user", "content": f"Set the bid of kw_000000{i} to 0.5."},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "propose_change", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": json.dumps(result)},
            {"role": "assistant", "content": answer or "Proposed: bid $0.75 -> $0.50; profit $120.50 -> $131.25. Reply 'confirm'."},
        ],
        tools=TOOLS,
        action={"arguments": json.loads(args) if arguments is None else None, "value": 10.75},
    )


@pytest.fixture(scope="module")
def tokenizer():
    from training.tokenizer import project_corpus, train_tokenizer

    texts = list(project_corpus()) + [json.dumps(dialogue(i).model_dump()) for i in range(5)]
    return train_tokenizer(texts, 600)


# --- tokenizer and chat template -------------------------------------------------------------------------


def test_digits_split_and_hermes_markers_survive_decoding(tokenizer):
    pieces = tokenizer.tokenize(" 12345.67")
    assert [p for p in pieces if p.strip("Ġ")] == ["1", "2", "3", "4", "5", ".", "6", "7"]
    ids = tokenizer("<tool_call>{}</tool_call><tool_response>x</tool_response><|im_end|>")["input_ids"]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert text == "<tool_call>{}</tool_call><tool_response>x</tool_response>"  # im_end dropped, markers kept


def test_template_renders_tools_calls_and_masks_only_assistant_tokens(tokenizer):
    record = dialogue(1)
    out = tokenizer.apply_chat_template(
        record.messages, tools=record.tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    text = tokenizer.decode(out["input_ids"])
    assert "<tools>\n{\"name\":\"propose_change\",\"description\":\"Dry-run a change.\"" in text
    assert '<tool_call>\n{"name": "propose_change", "arguments": {"action": "set_bid", "id": "kw_0000001", "value": 0.5}}\n</tool_call>' in text
    assert "<tool_response>\n{" in text
    masked = tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m])
    assert masked.startswith("<tool_call>") and masked.endswith("Reply 'confirm'.<|im_end|>")
    assert "Set the bid" not in masked and "<tool_response>" not in masked and "You are adguide" not in masked


def test_template_accepts_arguments_as_mapping_or_string(tokenizer):
    as_string = dialogue(2).messages
    as_mapping = json.loads(json.dumps(as_string))
    call = as_mapping[2]["tool_calls"][0]["function"]
    call["arguments"] = json.loads(call["arguments"])
    render = lambda m: tokenizer.apply_chat_template(m, tools=TOOLS, tokenize=False)  # noqa: E731
    assert render(as_string) == render(as_mapping)


def test_generation_prompt_is_a_prefix_of_the_rendered_answer(tokenizer):
    msgs = dialogue(3).messages
    prompt = tokenizer.apply_chat_template(msgs[:2], tools=TOOLS, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(msgs[:3], tools=TOOLS, tokenize=False)
    assert full.startswith(prompt) and prompt.endswith("<|im_start|>assistant\n")


def test_too_repetitive_corpus_is_refused():
    from training.tokenizer import CorpusTooSmallError, train_tokenizer

    with pytest.raises(CorpusTooSmallError, match="supports only"):
        train_tokenizer(["bid budget bid budget"] * 50, 4096)


# --- model dirs ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer) -> Path:
    from training.model import build_model, save_model_dir

    out = tmp_path_factory.mktemp("model")
    save_model_dir(build_model(preset("tiny").model, tokenizer), tokenizer, out)
    return out


def test_model_dir_is_standard_and_loads_with_transformers(model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    from training.model import validate_model_dir

    config = validate_model_dir(model_dir)
    assert config["model_type"] == "qwen2" and config["vocab_size"] >= len(tokenizer) and config["vocab_size"] % 64 == 0
    assert "chat_template" in json.loads((model_dir / "tokenizer_config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    loaded = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    auto = AutoTokenizer.from_pretrained(str(model_dir))  # what vLLM uses: must tokenize identically
    sample = "Set kw_0000012's bid to 0.75 -- ACoS 23.4% <tool_call>"
    assert auto(sample)["input_ids"] == loaded(sample)["input_ids"] == tokenizer(sample)["input_ids"]
    ids = loaded.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_corrupt_or_incomplete_model_dirs_are_refused(model_dir, tmp_path):
    import shutil

    from training.model import CheckpointError, validate_model_dir

    with pytest.raises(CheckpointError, match="does not exist"):
        validate_model_dir(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="missing tokenizer.json"):
        validate_model_dir(broken)
    truncated = tmp_path / "truncated"
    shutil.copytree(model_dir, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        validate_model_dir(truncated)


# --- configs ----------------------------------------------------------------------------------------------------


def test_presets_and_bad_config_names():
    assert preset("tiny").model.hidden_size < preset("small").model.hidden_size
    with pytest.raises(ValueError, match="config must be one of tiny, small"):
        preset("huge")
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        ModelConfig(hidden_size=100, intermediate_size=64, num_hidden_layers=1, num_attention_heads=3, num_key_value_heads=1)


def test_a_config_that_cannot_fit_in_memory_is_refused_up_front():
    small = preset("small")
    assert check_fits_in_memory(small.model, 4096, small.sft.batch_size, small.sft.max_length) > 0
    huge = ModelConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                       num_key_value_heads=8)
    with pytest.raises(MemoryError, match="lower batch_size or max_length"):
        check_fits_in_memory(huge, 128_000, 8, 4096, what="SFT")


# --- datasets ------------------------------------------------------------------------------------------------------


def test_dataset_round_trip_and_malformed_calls_named_by_line(tmp_path):
    good = tmp_path / "good.jsonl"
    write_dataset([dialogue(i) for i in range(3)], good)
    assert [r.id for r in read_dataset(good)] == ["d0", "d1", "d2"]

    bad = tmp_path / "bad.jsonl"
    rows = [dialogue(0).model_dump_json(), dialogue(1, arguments='{"action": "set_bid", ').model_dump_json()]
    unknown = dialogue(2).model_dump()
    unknown["messages"][2]["tool_calls"][0]["function"]["name"] = "delete_everything"
    orphan = dialogue(3).model_dump()
    orphan["messages"][3]["tool_call_id"] = "call_9"
    rows += [json.dumps(unknown), json.dumps(orphan), '{"id": "x"}']
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError) as err:
        read_dataset(bad)
    text = str(err.value)
    assert "bad.jsonl:2 (d1): messages[2].tool_calls[0].function.arguments is not valid JSON" in text
    assert "bad.jsonl:3 (d2): messages[2].tool_calls[0].function.name 'delete_everything' is not one of" in text
    assert "bad.jsonl:4 (d3): messages[3].tool_call_id 'call_9' answers no earlier tool call" in text
    assert "bad.jsonl:5: 5 validation errors" in text and "4 problem(s)" in text
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "missing.jsonl")


def test_splits_are_by_advertiser_and_deterministic():
    ids = [f"adv_{i:04d}" for i in range(20)]
    a = assign_splits(ids, 0.1, 0.2, seed=3)
    assert a == assign_splits(list(reversed(ids)), 0.1, 0.2, seed=3)
    counts = {s: sum(v == s for v in a.values()) for s in Split}
    assert counts[Split.VAL] == 2 and counts[Split.TEST] == 4 and counts[Split.TRAIN] == 14
    with pytest.raises(ValueError, match="cannot fill val"):
        assign_splits(ids[:2], 0.5, 0.4, seed=0)


# --- scoring and preference pairs ----------------------------------------------------------------------------------


def test_scores_reward_the_oracle_and_punish_unsafe_or_ungrounded_answers():
    from training.scoring import score, teacher_completion

    record = dialogue(1)
    teacher = score(record, teacher_completion(record))
    assert teacher.success and teacher.safe and teacher.grounding == 1.0 and teacher.tool_match == 1.0
    assert teacher.outcome == pytest.approx(1.0)  # the same simulated profit as the oracle's

    made_up = [{"role": "assistant", "content": "Your profit will be $999.99 a day, guaranteed."}]
    bad = score(record, made_up)
    assert not bad.safe and bad.grounding == 0.0 and not bad.success and bad.total < teacher.total - 2

    half = teacher_completion(record)
    half = half[:2] + [{"role": "assistant", "content": "Proposed. Profit goes from $120.50 to $987.65."}]
    partial = score(record, half)
    assert partial.grounding == pytest.approx(0.5) and partial.safe


def test_pairs_are_cut_at_the_first_differing_assistant_turn():
    from training.preferences import Candidate, pairs_for
    from training.scoring import score, teacher_completion

    record = dialogue(1)
    good = teacher_completion(record)
    worse = good[:2] + [{"role": "assistant", "content": "Proposed. Profit goes from $120.50 to $987.65."}]
    cands = [Candidate(source="sft", added=a, score=score(record, a)) for a in (good, worse, good)]
    pairs = pairs_for(record, cands, min_margin=0.05)
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair.prompt[-1]["role"] == "tool" and len(pair.prompt) == 4  # system, user, call, result
    assert pair.chosen[0]["content"].startswith("Proposed: bid") and "$987.65" in pair.rejected[0]["content"]
    assert pair.margin == pytest.approx(cands[0].score.total - cands[1].score.total)
    assert pairs_for(record, cands, min_margin=5.0) == []


def test_parse_assistant_reads_hermes_calls_and_marks_broken_ones():
    from training.rollout import parse_assistant

    msg = parse_assistant('Let me check.\n<tool_call>\n{"name": "performance", "arguments": {"level": "keyword"}}\n</tool_call>')
    assert msg["content"] == "Let me check."
    assert json.loads(msg["tool_calls"][0]["function"]["arguments"]) == {"level": "keyword"}
    broken = parse_assistant('<tool_call>\n{"name": "performance", "arguments": {"level": </tool_call>')
    assert broken["tool_calls"][0]["invalid"] is True
    assert broken["raw"].startswith("<tool_call>")  # kept for the rejected side of a preference pair
    cut = parse_assistant('<tool_call>\n{"name": "account_overview", "arguments": {}}')  # ran out of tokens
    assert cut["tool_calls"][0]["function"]["name"] == "account_overview"
    assert parse_assistant("Plain answer.") == {"role": "assistant", "content": "Plain answer."}


# --- run dirs -----------------------------------------------------------------------------------------------------------


def test_stages_are_resumable_atomic_and_ordered(tmp_path):
    run = Run.open(tmp_path / "run", preset("tiny"))
    calls = []

    def body(work):
        calls.append(1)
        (work.out / "train.jsonl").write_text("x")
        work.summary["n"] = 1

    assert run_stage(run, Stage.DATA, body) is True
    assert run_stage(run, Stage.DATA, body) is False and len(calls) == 1  # skipped: outputs valid
    (run.path(Stage.DATA) / "train.jsonl").write_text("changed!")  # outputs no longer match the record
    assert run_stage(run, Stage.DATA, body) is True and len(calls) == 2
    assert run_stage(run, Stage.DATA, body, force=True) is True and len(calls) == 3

    def crash(work):
        (work.out / "partial").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_stage(run, Stage.BASE, crash)
    assert not run.path(Stage.BASE).exists() and not run.is_done(Stage.BASE)
    with pytest.raises(StageNotReadyError, match="stage 'base' has not completed"):
        run_stage(run, Stage.SFT, body)
    events = [(m["stage"], m["event"]) for m in run.metrics()]
    assert ("data", "skipped") in events and ("base", "failed") in events
    with pytest.raises(ValueError, match="holds a 'tiny' run"):
        Run.open(tmp_path / "run", preset("small"))
    # a changed SFT recipe leaves the data stage valid
    changed = preset("tiny").model_copy(update={"sft": preset("tiny").sft.model_copy(update={"epochs": 2})})
    assert Run.open(tmp_path / "run", changed).is_done(Stage.DATA)
    changed_data = preset("tiny").model_copy(update={"data": preset("tiny").data.model_copy(update={"seed": 99})})
    assert not Run.open(tmp_path / "run", changed_data).is_done(Stage.DATA)
