"""DPO with TRL's DPOTrainer on the model's own preference pairs (training/preferences.py).

The embedded model is a prefix LM that every trainer sees as a causal LM (agent/model/network.py): the prompt
is `[CLS] <compact prompt> [SEP]`, the completion the model's output, `[SEP]` its end, and the model finds the
prompt's end itself. The reference is the policy's starting point (the RFT model, or SFT when there is none),
loaded separately and frozen. On CPU: fp32, no gradient checkpointing (STACK.md). The GPU recipe passes LoRA.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.model.text import load_tokenizer
from training.preferences import Pair


def hf_tokenizer(model_dir: Path | None) -> Any:
    """The model's WordPiece tokenizer behind transformers' interface (what TRL tokenizes with)."""
    # lazy: transformers is heavy and needed only here
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=load_tokenizer(model_dir),
        eos_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
    )


def train_dpo(
    start_dir: Path,
    pairs: list[Pair],
    out: Path,
    cfg: Any,
    threads: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """DPO from the model in `start_dir` (also the frozen reference); the result is saved as a model dir in `out`.
    `progress(step, total)` hears of every optimizer step (the CLI's progress lines and ETA)."""
    # lazy: torch is heavy and needed only here
    import torch

    # lazy: datasets is heavy and needed only here
    from datasets import Dataset

    # lazy: transformers is heavy and needed only here
    from transformers import PrinterCallback, TrainerCallback

    # lazy: pulls in transformers at import
    from transformers.utils import logging as hf_logging

    # lazy: trl is heavy and needed only here
    from trl import DPOConfig, DPOTrainer

    # lazy: pulls in torch, transformers at import
    from agent.model.network import AdguideForPrefixLM

    if not pairs:
        raise ValueError(
            "no preference pairs: every prompt's samples were all right or all wrong; sample more"
        )
    torch.set_num_threads(threads)
    hf_logging.set_verbosity_error()
    tokenizer = hf_tokenizer(start_dir)
    policy = AdguideForPrefixLM.from_pretrained(start_dir)
    reference = AdguideForPrefixLM.from_pretrained(start_dir).eval()
    data = Dataset.from_list(
        [{"prompt": f"[CLS] {p.prompt} [SEP]", "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    )
    args = DPOConfig(
        output_dir=str(out / "_trainer"),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        beta=cfg.beta,
        loss_type=[cfg.loss_type],
        max_length=cfg.max_length,
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=10,
        activation_checkpointing=False,
        dataloader_num_workers=0,
    )
    trainer = DPOTrainer(
        model=policy, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
    )
    trainer.remove_callback(PrinterCallback)
    if progress is not None:
        report = progress

        class _Progress(TrainerCallback):  # type: ignore[misc]
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                report(int(state.global_step), int(state.max_steps))

        trainer.add_callback(_Progress())
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    model_dir = out / "model"
    trainer.model.save_pretrained(model_dir)  # type: ignore[union-attr,operator]
    tokenizer.backend_tokenizer.save(str(model_dir / "tokenizer.json"))

    shutil.rmtree(out / "_trainer", ignore_errors=True)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    return {
        "pairs": len(pairs),
        "steps": int(result.global_step),
        "train_loss": round(float(result.training_loss), 4),
        "seconds": round(seconds, 1),
        "reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None,
        "reward_margin": logs[-1].get("rewards/margins") if logs else None,
    }
