"""The bodies of the pipeline's stages, in order: data -> base -> sft -> preferences -> dpo -> card.

Each `stage_*` checks its inputs first, then runs inside `run_stage` (resumable, atomic, logged). SFT
checkpoints outside the stage's work dir (`<run>/checkpoints/sft`), so an interrupted run resumes where it
stopped (`adguide train all` again). The `gpu` preset swaps base and SFT for the pretrained-base recipe
(training/gpu.py) and keeps the rest.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from agent.curriculum.dialogues import Dialogue
from agent.model.text import load_tokenizer, minilm_dir
from tools.mcp_server import openai_tools
from training import preferences
from training.card import compare, write
from training.config import PipelineConfig
from training.curriculum import write_curriculum
from training.dpo import train_dpo
from training.examples import encode, examples
from training.gpu import build_base, train_sft_lora
from training.pipeline import Run, Stage, StageWork, run_stage
from training.preferences import Pair
from training.trainer import train

Progress = Callable[[str, int, int], None]


def _no_progress(what: str, done: int, total: int) -> None:
    return None


def model_schemas() -> dict[str, dict[str, Any]]:
    """The tools' argument schemas the model writes calls for (apply_change is the graph's, never the model's)."""
    return {
        t["function"]["name"]: t["function"]["parameters"]
        for t in openai_tools()
        if t["function"]["name"] != "apply_change"
    }


def read_dialogues(path: Path, limit: int | None = None) -> list[Dialogue]:
    out = []
    with path.open() as handle:
        for i, line in enumerate(handle):
            if limit is not None and i >= limit:
                break
            if line.strip():
                out.append(Dialogue.model_validate_json(line))
    if not out:
        raise ValueError(f"{path} holds no dialogues: run `adguide train data`")
    return out


def encoded(
    dialogues: list[Dialogue], tok: Any, keep: dict[str, float], seed: int, max_length: int
) -> tuple[list[tuple[list[int], list[int]]], dict[str, int]]:
    """The dialogues' steps as (ids, labels), answers sampled at keep["answer"]; counts per kind."""
    rng = random.Random(seed)
    schemas = model_schemas()
    out: list[tuple[list[int], list[int]]] = []
    kinds: dict[str, int] = {}
    for d in dialogues:
        for e in examples(d, schemas):
            if rng.random() > keep.get(e.kind, 1.0):
                continue
            pair = encode(e, tok, max_length)
            if pair is not None:
                out.append(pair)
                kinds[e.kind] = kinds.get(e.kind, 0) + 1
    return out, kinds


def _worlds(run: Run) -> dict[str, Path]:
    root = run.path(Stage.DATA) / "worlds"
    return {p.parent.name: p for p in sorted(root.glob("*/world.sqlite"))}


def _save_embedded(model: Any, out: Path, tok_dir: Path) -> None:
    model.save_pretrained(out / "model")
    shutil.copy2(tok_dir / "tokenizer.json", out / "model" / "tokenizer.json")


# --- stages ------------------------------------------------------------------------------------------------


def stage_data(work: StageWork, config: PipelineConfig, progress: Progress) -> None:
    work.summary.update(write_curriculum(config.curriculum, work.out, progress))


def stage_base(work: StageWork, config: PipelineConfig) -> None:
    if config.gpu is not None:
        work.summary.update(build_base(config.gpu, work.out / "model"))
        return
    # lazy: pulls in transformers at import
    from agent.model.network import AdguideForPrefixLM

    tok = load_tokenizer()
    model = AdguideForPrefixLM.from_minilm(tok.get_vocab_size())
    model.save_pretrained(work.out / "model")
    tok.save(str(work.out / "model" / "tokenizer.json"))
    work.summary.update(
        parameters=sum(p.numel() for p in model.parameters()),
        vocab=tok.get_vocab_size(),
        encoder=str(minilm_dir()),
    )


def stage_sft(work: StageWork, run: Run, progress: Progress) -> None:
    config = run.config
    base = run.path(Stage.BASE) / "model"
    dialogues = read_dialogues(run.path(Stage.DATA) / "train.jsonl")
    if config.gpu is not None:
        work.summary.update(
            train_sft_lora(config.gpu, base, dialogues, work.out / "model", config.threads, work.log)
        )
        return
    # lazy: pulls in transformers at import
    from agent.model.network import AdguideForPrefixLM

    tok = load_tokenizer(base)
    cfg = config.sft
    data, kinds = encoded(dialogues, tok, {"answer": cfg.answer_keep}, cfg.seed, cfg.max_length)
    val, _ = encoded(read_dialogues(run.path(Stage.DATA) / "val.jsonl"), tok, {}, cfg.seed, cfg.max_length)
    work.log("examples", train=len(data), kinds=kinds, val=len(val[:300]))
    model = AdguideForPrefixLM.from_pretrained(base)
    total = cfg.max_steps if cfg.max_steps > 0 else None

    def log(event: dict[str, Any]) -> None:
        work.log(f"sft_{event.get('event')}", **{k: v for k, v in event.items() if k != "event"})
        if event.get("event") == "train":
            progress("SFT steps", int(event["step"]), int(total or event["of"]))

    summary = train(
        model,
        data,
        work.out,
        cfg,
        pad=tok.token_to_id("[PAD]"),
        val=val[:300],
        log=log,
        save=lambda m, out: _save_embedded(m, out, base),
        checkpoint_dir=run.root / "checkpoints" / "sft",
    )
    shutil.rmtree(run.root / "checkpoints" / "sft", ignore_errors=True)
    work.summary.update(summary, dialogues=len(dialogues), example_kinds=kinds)


def stage_preferences(work: StageWork, run: Run, progress: Progress) -> None:
    """Sample the SFT model on train-family prompts, judge by outcome, train the RFT model, write the DPO pairs."""
    # lazy: pulls in transformers at import
    from agent.model.network import AdguideForPrefixLM

    config = run.config
    sft = run.path(Stage.SFT) / "model"
    dialogues = read_dialogues(run.path(Stage.DATA) / "train.jsonl")
    records = preferences.run(
        sft, dialogues, _worlds(run), config.preferences, config.sft.seed + 1, model_schemas(), progress
    )
    pairs, rft = preferences.pairs_and_rft(records, config.sft.seed, config.preferences.gold_when_none_right)
    (work.out / "samples.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    (work.out / "pairs.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in pairs))
    work.summary.update(preferences.summary(records, pairs))
    if config.preferences.rft_epochs <= 0 or not rft:
        return
    tok = load_tokenizer(sft)
    data = [x for x in (encode(e, tok, config.sft.max_length) for e in rft) if x is not None]
    data = data * max(1, int(config.preferences.rft_epochs))
    cfg = config.sft.model_copy(
        update={
            "max_steps": -1,
            "minutes": 15,
            "warmup_steps": 5,
            "learning_rate": config.sft.learning_rate / 4,
            "checkpoint_every": 10**6,
        }
    )
    model = AdguideForPrefixLM.from_pretrained(sft)
    summary = train(
        model,
        data,
        work.out / "rft",
        cfg,
        pad=tok.token_to_id("[PAD]"),
        log=lambda e: work.log(f"rft_{e.get('event')}", **{k: v for k, v in e.items() if k != "event"}),
        save=lambda m, out: _save_embedded(m, out, sft),
    )
    work.summary.update(rft_examples=len(rft), rft=summary)


def stage_dpo(work: StageWork, run: Run, progress: Progress) -> None:
    config = run.config
    prefs = run.path(Stage.PREFERENCES)
    start = prefs / "rft" / "model" if (prefs / "rft" / "model").is_dir() else run.path(Stage.SFT) / "model"
    pairs = [
        Pair.model_validate_json(line) for line in (prefs / "pairs.jsonl").read_text().splitlines() if line
    ]
    if not pairs:  # every prompt's samples were all right or all wrong: nothing to prefer, SFT/RFT ships
        work.summary.update(pairs=0, skipped="no preference pairs")
        return
    work.summary.update(
        train_dpo(
            start,
            pairs,
            work.out,
            config.dpo,
            config.threads,
            config.sft.seed,
            progress=lambda step, total: progress("DPO steps", step, total),
        ),
        start=start.parent.name,
    )


def stage_card(work: StageWork, run: Run) -> None:
    config = run.config
    candidates = {"sft": run.path(Stage.SFT) / "model"}
    if (run.path(Stage.PREFERENCES) / "rft" / "model").is_dir():
        candidates["rft"] = run.path(Stage.PREFERENCES) / "rft" / "model"
    if (run.path(Stage.DPO) / "model").is_dir():
        candidates["dpo"] = run.path(Stage.DPO) / "model"
    comparison = compare(candidates, config)
    records = {s.value: (record.summary if (record := run.record(s)) else {}) for s in Stage}
    write(work.out, config, records, comparison)
    (work.out / "shipped.txt").write_text(comparison["shipped"] + "\n")
    work.summary.update(
        shipped=comparison["shipped"],
        vs_sft=comparison["vs_sft"],
        task_success={k: v.get("task_success") for k, v in comparison["metrics"].items()},
    )


def shipped_dir(run: Run) -> Path:
    run.require(Stage.CARD)
    shipped = (run.path(Stage.CARD) / "shipped.txt").read_text().strip()
    return {
        "sft": run.path(Stage.SFT) / "model",
        "rft": run.path(Stage.PREFERENCES) / "rft" / "model",
        "dpo": run.path(Stage.DPO) / "model",
    }[shipped]


def _ship_weights_in_fp16(model_dir: Path) -> None:
    """The shipped weights as fp16 safetensors shards (AdguideForPrefixLM.save_pretrained shards them): no
    file the repository keeps is over 25 MB (the tied fp32 embedding alone is 45 MB); the backend loads them
    as fp32, as it loads the training dirs."""
    # lazy: pulls in jsonschema, langchain_core, pydantic_settings at import
    from agent.backends.embedded import is_embedded_dir

    # lazy: pulls in transformers at import
    from agent.model.network import AdguideForPrefixLM

    if not is_embedded_dir(model_dir):
        return
    model = AdguideForPrefixLM.from_pretrained(str(model_dir), dtype=torch.float32)
    for old in model_dir.glob("model*.safetensors*"):
        old.unlink()
    model.half().save_pretrained(model_dir)


def export_model(run: Run, out: Path) -> Path:
    """Copy the shipped model dir (chosen by the card stage) with its card into `out`, atomically."""
    source = shipped_dir(run)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    _ship_weights_in_fp16(tmp)
    for name in ("README.md", "comparison.json"):
        shutil.copy2(run.path(Stage.CARD) / name, tmp / name)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


# --- orchestration ---------------------------------------------------------------------------------------------


def quiet_libraries() -> None:
    """One progress line per stage, not a bar per weight shard and per dataset map."""
    # lazy: datasets is heavy and needed only here
    import datasets

    # lazy: transformers is heavy and needed only here
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def run_one(run: Run, stage: Stage, force: bool = False, progress: Progress = _no_progress) -> bool:
    """Run one stage (after its inputs are checked); False if it was already done."""
    quiet_libraries()
    config = run.config
    bodies: dict[Stage, Callable[[StageWork], None]] = {
        Stage.DATA: lambda w: stage_data(w, config, progress),
        Stage.BASE: lambda w: stage_base(w, config),
        Stage.SFT: lambda w: stage_sft(w, run, progress),
        Stage.PREFERENCES: lambda w: stage_preferences(w, run, progress),
        Stage.DPO: lambda w: stage_dpo(w, run, progress),
        Stage.CARD: lambda w: stage_card(w, run),
    }
    if config.gpu is not None and stage in (Stage.PREFERENCES, Stage.DPO):
        run.log(
            stage,
            "skipped",
            reason="the gpu recipe ships its LoRA SFT model; preferences run on the embedded one",
        )
        return False
    return run_stage(run, stage, bodies[stage], force)


def run_all(run: Run, force: bool = False, progress: Progress = _no_progress) -> dict[Stage, bool]:
    """Every stage in order; with `force`, all are redone."""
    return {stage: run_one(run, stage, force, progress) for stage in Stage}
