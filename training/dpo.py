"""Stage 5: DPO (or IPO, `loss_type="ipo"`) on the simulator-labelled pairs with TRL's DPOTrainer.

The small model is fully fine-tuned; a real base model on a GPU uses LoRA adapters (peft), merged into
the weights before saving so the output is again a plain model dir. The reference model is the SFT
checkpoint: with `ref_model=None` TRL rebuilds it from the policy's saved path (or, under LoRA, disables
the adapters), which is why the SFT stage saves before this one starts.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from training.config import PipelineConfig, check_fits_in_memory
from training.model import load_model, save_model_dir, validate_model_dir
from training.pipeline import StageWork
from training.preferences import PreferencePair


def dpo_dataset(pairs: list[PreferencePair]) -> Any:
    from datasets import Dataset

    if not pairs:
        raise ValueError("no preference pairs: every candidate scored alike; sample more candidates or lower min_margin")
    return Dataset.from_list(
        [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "tools": p.tools} for p in pairs]
    )


def train_dpo(work: StageWork, config: PipelineConfig, sft_dir: Path, pairs: list[PreferencePair]) -> None:
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from training.trainer_utils import ProgressCallback, cpu_safe_args, hardware, quiet_libraries

    quiet_libraries(config.threads)
    cfg = config.dpo
    sft_config = validate_model_dir(sft_dir)
    check_fits_in_memory(
        config.model, sft_config["vocab_size"], 2 * cfg.batch_size, cfg.max_length, copies=2, what="DPO"
    )
    dataset = dpo_dataset(pairs)
    model, tokenizer = load_model(sft_dir, threads=config.threads)
    peft_config = None
    if cfg.use_lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, target_modules="all-linear", task_type="CAUSAL_LM")
    args = DPOConfig(
        output_dir=str(work.out / "_trainer"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        loss_type=[cfg.loss_type],
        beta=cfg.beta,
        max_length=cfg.max_length,
        seed=config.model.seed,
        warmup_steps=0.1,
        **cpu_safe_args(config.threads),
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[ProgressCallback(work, "DPO")],
    )
    trainer.remove_callback(PrinterCallback)
    prepared: Any = trainer.train_dataset
    tokens_per_epoch = sum(
        len(p) + len(c) + len(p) + len(r)
        for p, c, r in zip(prepared["prompt_ids"], prepared["chosen_ids"], prepared["rejected_ids"], strict=True)
    )
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    trained: Any = trainer.model
    if cfg.use_lora:
        trained = trained.merge_and_unload()  # a plain model dir again, loadable without peft
    save_model_dir(trained, tokenizer, work.out / "model")
    shutil.rmtree(work.out / "_trainer", ignore_errors=True)
    epochs_done = float(result.metrics.get("epoch", cfg.epochs))
    logs = [h for h in trainer.state.log_history if "loss" in h]
    last = logs[-1] if logs else {}
    work.summary.update(
        pairs=len(pairs),
        loss_type=cfg.loss_type,
        beta=cfg.beta,
        lora=cfg.use_lora,
        steps=int(result.global_step),
        epochs=round(epochs_done, 3),
        train_loss=round(float(result.training_loss), 4),
        final_reward_accuracy=_round(last.get("rewards/accuracies")),
        final_reward_margin=_round(last.get("rewards/margins")),
        train_seconds=round(seconds, 1),
        tokens_per_second=round(tokens_per_epoch * epochs_done / seconds, 1) if seconds > 0 else None,
        hardware=hardware(),
    )


def _round(value: Any) -> float | None:
    return round(float(value), 4) if value is not None else None
