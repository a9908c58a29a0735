"""Stage 3: supervised fine-tuning on teacher dialogues with TRL's SFTTrainer, loss on assistant tokens only.

The chat template's `{% generation %}` markers give TRL the assistant mask (`assistant_only_loss=True`):
the model learns what the assistant writes (calls, answers, the closing `<|im_end|>`), never the system
prompt, the user or the tool results. Throughput is counted in trained-on tokens (all tokens the model
reads, prompt included) per second of training wall time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from training.config import PipelineConfig, check_fits_in_memory
from training.data import DialogueRecord, to_sft_rows
from training.model import load_model, save_model_dir, validate_model_dir
from training.pipeline import StageWork


def sft_dataset(records: list[DialogueRecord], tokenizer: Any, max_length: int) -> Any:
    """A datasets.Dataset for SFTTrainer; dialogues longer than max_length are refused, not silently cut."""
    from datasets import Dataset

    rows = list(to_sft_rows(records))
    import json

    too_long = []
    for record, row in zip(records, rows, strict=True):
        rendered = tokenizer.apply_chat_template(
            row["messages"], tools=json.loads(row["tools"]), tokenize=True, return_dict=True
        )
        n = len(rendered["input_ids"])
        if n > max_length:
            too_long.append(f"{record.id} ({n} tokens)")
    if too_long:
        raise ValueError(
            f"{len(too_long)} dialogue(s) exceed sft.max_length={max_length}: {', '.join(too_long[:5])}; "
            "raise max_length or shorten the tool specs/results"
        )
    return Dataset.from_list(rows)


def train_sft(
    work: StageWork, config: PipelineConfig, base_dir: Path, train: list[DialogueRecord], val: list[DialogueRecord]
) -> None:
    """Fine-tune the model in `base_dir` on `train`; save the result into `work.out` (a model dir)."""
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from training.trainer_utils import ProgressCallback, cpu_safe_args, hardware, quiet_libraries

    quiet_libraries(config.threads)
    cfg = config.sft
    base_config = validate_model_dir(base_dir)
    check_fits_in_memory(config.model, base_config["vocab_size"], cfg.batch_size, cfg.max_length, what="SFT")
    model, tokenizer = load_model(base_dir, threads=config.threads)
    train_ds = sft_dataset(train, tokenizer, cfg.max_length)
    val_ds = sft_dataset(val, tokenizer, cfg.max_length) if val else None
    args = SFTConfig(
        output_dir=str(work.out / "_trainer"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        max_length=cfg.max_length,
        assistant_only_loss=True,
        packing=False,
        seed=config.model.seed,
        eval_strategy="no",
        **cpu_safe_args(config.threads),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        callbacks=[ProgressCallback(work, "SFT")],
    )
    trainer.remove_callback(PrinterCallback)  # the progress callback logs instead
    prepared: Any = trainer.train_dataset
    tokens_per_epoch = sum(len(ids) for ids in prepared["input_ids"])
    assistant_tokens = sum(sum(1 for label in labels if label != -100) for labels in prepared["labels"])
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    epochs_done = float(result.metrics.get("epoch", cfg.epochs))
    tokens_seen = tokens_per_epoch * epochs_done
    eval_loss = trainer.evaluate()["eval_loss"] if val_ds is not None else None
    save_model_dir(trainer.model, tokenizer, work.out / "model")
    import shutil

    shutil.rmtree(work.out / "_trainer", ignore_errors=True)
    work.summary.update(
        dialogues=len(train),
        val_dialogues=len(val),
        steps=int(result.global_step),
        epochs=round(epochs_done, 3),
        train_loss=round(float(result.training_loss), 4),
        val_loss=round(float(eval_loss), 4) if eval_loss is not None else None,
        tokens_per_epoch=tokens_per_epoch,
        assistant_tokens_per_epoch=assistant_tokens,
        train_seconds=round(seconds, 1),
        tokens_per_second=round(tokens_seen / seconds, 1) if seconds > 0 else None,
        hardware=hardware(),
    )
