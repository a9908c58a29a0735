"""The bodies of the pipeline's stages, in order: data -> base -> sft -> preferences -> dpo -> card.

Each `stage_*` checks its inputs first (a missing or corrupt checkpoint, a malformed dataset, a config
that cannot fit in memory raise before compute is spent), then runs inside `run_stage` (resumable,
atomic, logged). `run_all` runs every stage that is not already done.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import DataConfig, PipelineConfig, check_fits_in_memory
from training.data import DialogueRecord, Split, assign_splits, read_dataset, write_dataset
from training.pipeline import Run, Stage, StageWork, run_stage

if TYPE_CHECKING:
    from tools.market.data_model import WorldConfig

Progress = Callable[[str, int, int], None]  # (what, done, total)


def _no_progress(what: str, done: int, total: int) -> None:
    return None


def world_path(run: Run, split: str = "world") -> Path:
    return run.path(Stage.DATA) / split / "world.sqlite"


def dataset_path(run: Run, split: Split) -> Path:
    return run.path(Stage.DATA) / f"{split.value}.jsonl"


def preflight(config: PipelineConfig) -> None:
    """Refuse a config whose SFT or DPO step would not fit in memory, before any stage runs."""
    from training.model import padded_vocab_size

    vocab = padded_vocab_size(config.tokenizer.vocab_size)
    check_fits_in_memory(config.model, vocab, config.sft.batch_size, config.sft.max_length, what="SFT")
    check_fits_in_memory(config.model, vocab, 2 * config.dpo.batch_size, config.dpo.max_length, copies=2, what="DPO")


# --- stage 2 (first in order): teacher dialogues ----------------------------------------------------------


def model_tools(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools the model is shown, as the agent shows them: apply_change is the graph's, after the user
    confirms a proposal, never the model's."""
    return [t for t in specs if t["function"]["name"] != "apply_change"]


def _quiet_mcp_logs() -> None:
    for name in ("mcp", "mcp.server", "mcp.server.lowlevel.server", "tools.mcp_server"):
        logging.getLogger(name).setLevel(logging.WARNING)


async def _dialogues_for_world(
    world: Path, n_per_advertiser: int, seed: int, advertisers: list[str], tick: Callable[[], None]
) -> list[dict[str, Any]]:
    import numpy as np

    from agent.teacher import KIND_WEIGHTS, Kind, write_dialogues
    from tools.mcp_server import Scope, connect_in_memory, openai_tools
    from training.rollout import isolated_world

    tools = model_tools(openai_tools())
    kinds = list(KIND_WEIGHTS)
    weights = np.array([KIND_WEIGHTS[k] for k in kinds])
    out: list[dict[str, Any]] = []
    for a, advertiser in enumerate(advertisers):
        rng = np.random.default_rng([seed, a])
        drawn = [kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))] for _ in range(n_per_advertiser)]
        async with connect_in_memory(world, Scope.advertiser(advertiser)) as session:
            for i, kind in enumerate(drawn):
                if kind is Kind.FOLLOW_UP:  # may apply a confirmed change: on its own copy of the world
                    with isolated_world(world) as copy:
                        async with connect_in_memory(copy, Scope.advertiser(advertiser)) as private:
                            out += await write_dialogues(private, advertiser, 1, seed, tools, kinds=[kind], first=i)
                else:
                    out += await write_dialogues(session, advertiser, 1, seed, tools, kinds=[kind], first=i)
                tick()
    return out


def training_world_configs(cfg: DataConfig) -> dict[str, WorldConfig]:
    """The worlds the teacher dialogues come from: `world` (train/val/test advertisers) and `shifted` (other
    advertisers in the holiday season: calendar demand peaks, competitor surges). Both name their categories:
    every category but the held-out ones (tools.market.world.HELD_OUT_CATEGORY_NAMES), which the evaluation's
    new-category split runs on, so that split stays unseen. With today's categories this draws exactly the
    worlds of a config that names none (the shipped model's data)."""
    from tools.market.data_model import WorldConfig
    from tools.market.world import CATEGORY_BY_NAME, HELD_OUT_CATEGORY_NAMES

    categories = [name for name in CATEGORY_BY_NAME if name not in HELD_OUT_CATEGORY_NAMES]
    return {
        "world": WorldConfig(n_advertisers=cfg.n_advertisers, days=cfg.days, seed=cfg.seed, categories=categories),
        "shifted": WorldConfig(n_advertisers=max(2, cfg.n_advertisers // 5), days=cfg.days, seed=cfg.seed + 1000,
                               start_date=dt.date(2026, 10, 1), categories=categories),
    }


def stage_data(work: StageWork, config: PipelineConfig, progress: Progress = _no_progress) -> None:
    from tools.market.generate import generate_world_file
    from tools.market.store import MarketStore
    from tools.market.world import HELD_OUT_CATEGORY_NAMES

    _quiet_mcp_logs()
    cfg = config.data
    configs = training_world_configs(cfg)
    world = work.out / "world" / "world.sqlite"
    shifted = work.out / "shifted" / "world.sqlite"
    for name, path in (("world", world), ("shifted", shifted)):
        generate_world_file(configs[name], path)
        with MarketStore.open(path) as store:
            categories = {store.scoped(a).advertiser.category for a in store.advertiser_ids()}
            held_out = sorted(categories & set(HELD_OUT_CATEGORY_NAMES))
        if held_out:
            raise RuntimeError(f"the training {name} has advertisers in held-out categories {held_out}: the "
                               "evaluation's new-category split would no longer be unseen")
    with MarketStore.open(world) as store:
        ids = store.advertiser_ids()
    with MarketStore.open(shifted) as store:
        shifted_ids = store.advertiser_ids()
    splits = assign_splits(ids, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    total = len(ids) * cfg.dialogues_per_advertiser + len(shifted_ids) * max(1, cfg.dialogues_per_advertiser // 2)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        progress("teacher dialogues", done, total)

    main = asyncio.run(_dialogues_for_world(world, cfg.dialogues_per_advertiser, cfg.seed, ids, tick))
    moved = asyncio.run(
        _dialogues_for_world(shifted, max(1, cfg.dialogues_per_advertiser // 2), cfg.seed, shifted_ids, tick)
    )
    by_split: dict[Split, list[DialogueRecord]] = {s: [] for s in Split}
    for raw in main:
        record = DialogueRecord.model_validate({**raw, "split": splits[raw["advertiser_id"]]})
        by_split[record.split].append(record)
    for raw in moved:
        by_split[Split.SHIFTED].append(DialogueRecord.model_validate({**raw, "split": Split.SHIFTED}))
    counts = {}
    for split, records in by_split.items():
        write_dataset(records, work.out / f"{split.value}.jsonl")
        if records:
            read_dataset(work.out / f"{split.value}.jsonl")  # validate what was written
        counts[split.value] = len(records)
    kinds: dict[str, int] = {}
    for record in by_split[Split.TRAIN]:
        kinds[record.kind.value] = kinds.get(record.kind.value, 0) + 1
    work.summary.update(
        dialogues=counts, train_kinds=kinds, advertisers=len(ids), shifted_advertisers=len(shifted_ids),
        world_days=cfg.days,
    )


# --- stage 1: tokenizer + base model ------------------------------------------------------------------------


def dialogue_texts(records: list[DialogueRecord]) -> list[str]:
    """Dialogue text for the tokenizer corpus: contents, call JSON, and the tool specs once."""
    texts = []
    if records:
        texts.append(json.dumps(records[0].tools))
    for record in records:
        for m in record.messages:
            if m.get("content"):
                texts.append(m["content"])
            for c in m.get("tool_calls") or []:
                texts.append(json.dumps({"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}))
    return texts


def stage_base(work: StageWork, config: PipelineConfig, train: list[DialogueRecord]) -> None:
    from training.model import build_model, save_model_dir
    from training.tokenizer import project_corpus, train_tokenizer

    texts = list(project_corpus()) + dialogue_texts(train)
    tokenizer = train_tokenizer(texts, config.tokenizer.vocab_size, config.tokenizer.min_frequency)
    model = build_model(config.model, tokenizer)
    save_model_dir(model, tokenizer, work.out / "model")
    work.summary.update(
        vocab=len(tokenizer), corpus_texts=len(texts), corpus_chars=sum(len(t) for t in texts),
        parameters=sum(p.numel() for p in model.parameters()),
    )


# --- stage 4: preferences -----------------------------------------------------------------------------------


def stage_preferences(
    work: StageWork, config: PipelineConfig, sft_dir: Path, train: list[DialogueRecord], world: Path,
    progress: Progress = _no_progress,
) -> None:
    from training.model import load_model
    from training.preferences import build_preferences, write_pairs
    from training.trainer_utils import quiet_libraries

    _quiet_mcp_logs()
    quiet_libraries(config.threads)
    model, tokenizer = load_model(sft_dir, threads=config.threads)
    pairs, stats = build_preferences(
        model, tokenizer, train, world, config.preferences, config.data.seed,
        progress=lambda done, total: progress("preference candidates", done, total),
    )
    write_pairs(pairs, work.out / "pairs.jsonl")
    (work.out / "candidates.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stats))
    sft_totals = [t for s in stats for t in s["sft_totals"]]
    work.summary.update(
        prompts=len(stats), pairs=len(pairs),
        chosen_from_teacher=sum(p.chosen_source == "teacher" for p in pairs),
        mean_margin=round(sum(p.margin for p in pairs) / len(pairs), 4) if pairs else None,
        sft_candidates=len(sft_totals),
        sft_mean_score=round(sum(sft_totals) / len(sft_totals), 4) if sft_totals else None,
        sft_success_rate=round(sum(s["sft_success"] for s in stats) / max(1, len(sft_totals)), 4),
    )


# --- stage 6: evaluation + card -------------------------------------------------------------------------------


def stage_card(work: StageWork, run: Run, progress: Progress = _no_progress) -> None:
    from training.card import evaluate, render_card
    from training.config import parameter_count
    from training.model import load_model
    from training.trainer_utils import quiet_libraries

    _quiet_mcp_logs()
    config = run.config
    quiet_libraries(config.threads)
    sft_dir, dpo_dir = run.path(Stage.SFT) / "model", run.path(Stage.DPO) / "model"
    models = {"sft": load_model(sft_dir, config.threads), "dpo": load_model(dpo_dir, config.threads)}
    n = config.eval.n_tasks
    splits = {
        "test": (read_dataset(dataset_path(run, Split.TEST))[:n], world_path(run, "world")),
        "shifted": (read_dataset(dataset_path(run, Split.SHIFTED))[:n], world_path(run, "shifted")),
    }
    total = sum(len(tasks) for tasks, _ in splits.values()) * len(models)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        progress("evaluation rollouts", done, total)

    results = evaluate(models, splits, config.eval.max_steps_per_rollout, config.eval.max_new_tokens, tick)
    test = results["test"]
    # Ship DPO only if it is better on held-out task success, or as good and winning by simulated outcome.
    dpo_success, sft_success = test["dpo"].get("task_success", 0), test["sft"].get("task_success", 0)
    better = dpo_success > sft_success or (dpo_success == sft_success and test["dpo_vs_sft"]["win_rate"] >= 0.5)
    shipped = "dpo" if better else "sft"
    (work.out / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    stages = {s.value: (run.record(s).summary if run.record(s) else {}) for s in Stage}  # type: ignore[union-attr]
    vocab = json.loads((dpo_dir / "config.json").read_text())["vocab_size"]
    card = render_card(
        name=config.name, config=config.model_dump(mode="json"), stages=stages,
        evaluation={k: {m: v for m, v in e.items() if m != "per_task"} for k, e in results.items()},
        model_dir=dpo_dir, params=parameter_count(config.model, vocab), shipped=shipped,
        data_counts=stages.get("data", {}).get("dialogues", {}),
    )
    (work.out / "README.md").write_text(card)
    (work.out / "shipped.txt").write_text(shipped + "\n")
    work.summary.update(shipped=shipped, **{f"{split}_{m}": e[m] for split, e in results.items() for m in e if m != "per_task"})


def export_model(run: Run, out: Path) -> Path:
    """Copy the shipped model dir (chosen by the card stage) with its card into `out`, atomically."""
    run.require(Stage.CARD)
    shipped = (run.path(Stage.CARD) / "shipped.txt").read_text().strip()
    source = run.path(Stage.DPO if shipped == "dpo" else Stage.SFT) / "model"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.copy2(run.path(Stage.CARD) / "README.md", tmp / "README.md")
    shutil.copy2(run.path(Stage.CARD) / "eval.json", tmp / "eval.json")
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


# --- orchestration ---------------------------------------------------------------------------------------------


def run_one(run: Run, stage: Stage, force: bool = False, progress: Progress = _no_progress) -> bool:
    """Run one stage (after its inputs are checked); False if it was already done."""
    from training.dpo import train_dpo
    from training.model import validate_model_dir
    from training.preferences import read_pairs
    from training.sft import train_sft

    config = run.config
    preflight(config)
    if stage is Stage.DATA:
        return run_stage(run, stage, lambda w: stage_data(w, config, progress), force)
    run.require(Stage.DATA)
    if stage is Stage.BASE:
        train = read_dataset(dataset_path(run, Split.TRAIN))
        return run_stage(run, stage, lambda w: stage_base(w, config, train), force)
    if stage is Stage.SFT:
        run.require(Stage.BASE)
        validate_model_dir(run.path(Stage.BASE) / "model")
        train, val = read_dataset(dataset_path(run, Split.TRAIN)), _maybe(dataset_path(run, Split.VAL))
        return run_stage(run, stage, lambda w: train_sft(w, config, run.path(Stage.BASE) / "model", train, val), force)
    if stage is Stage.PREFERENCES:
        run.require(Stage.SFT)
        validate_model_dir(run.path(Stage.SFT) / "model")
        train = read_dataset(dataset_path(run, Split.TRAIN))
        return run_stage(
            run, stage,
            lambda w: stage_preferences(w, config, run.path(Stage.SFT) / "model", train, world_path(run), progress),
            force,
        )
    if stage is Stage.DPO:
        run.require(Stage.PREFERENCES)
        validate_model_dir(run.path(Stage.SFT) / "model")
        pairs = read_pairs(run.path(Stage.PREFERENCES) / "pairs.jsonl")
        return run_stage(run, stage, lambda w: train_dpo(w, config, run.path(Stage.SFT) / "model", pairs), force)
    run.require(Stage.DPO)
    validate_model_dir(run.path(Stage.DPO) / "model")
    return run_stage(run, stage, lambda w: stage_card(w, run, progress), force)


def _maybe(path: Path) -> list[DialogueRecord]:
    if not path.is_file() or path.stat().st_size == 0:
        return []
    return read_dataset(path)


def run_all(run: Run, force: bool = False, progress: Progress = _no_progress) -> dict[Stage, bool]:
    """Every stage in order; with `force`, all are redone."""
    return {stage: run_one(run, stage, force, progress) for stage in Stage}
