"""The pretrained-base recipe (`--config gpu`): a Qwen2.5 instruct model (0.5-1.5B) LoRA-fine-tuned on the same
curriculum, in the hermes chat format with the full tool specifications, for vLLM to serve.

External models read the tools' specs (they did not learn them) and write hermes `<tool_call>{json}</tool_call>`,
which vLLM's `--tool-call-parser hermes` parses; so the curriculum's dialogues are rendered as OpenAI-style
messages with the tools, and TRL's SFTTrainer trains the assistant tokens only (LoRA adapters via peft, merged
into the weights before saving: the output is a plain model dir `scripts/serve_vllm.sh` serves). Without a
`base_model` the recipe builds a tiny randomly initialised Qwen2 of the same architecture, with a byte-level
BPE tokenizer and the project's hermes chat template: that is how CI runs this path on a CPU.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.curriculum.dialogues import Dialogue
from agent.prompts import system_prompt
from tools.mcp_server import openai_tools
from training.model import ModelConfig, build_model, save_model_dir
from training.tokenizer import project_corpus, train_tokenizer

Log = Callable[..., None]


def dialogue_messages(d: Dialogue) -> list[dict[str, Any]]:
    """A curriculum dialogue as the OpenAI-style thread an external model is trained on (typed decisions are
    the graph's: the conversation stops before them)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(d.advertiser_id)}]
    for turn in d.turns:
        if turn.decision is not None:
            break
        messages.append({"role": "user", "content": turn.user})
        for step in turn.steps:
            m = step.message
            if m.get("tool_calls"):
                messages.append({"role": "assistant", "content": None, "tool_calls": m["tool_calls"]})
                for call, result in zip(m["tool_calls"], step.results, strict=False):
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
            else:
                messages.append({"role": "assistant", "content": m.get("content") or ""})
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    return messages


def build_base(cfg: Any, out: Path) -> dict[str, Any]:
    """The base model dir: the configured pretrained model (copied), or a tiny random Qwen2 for CPU tests."""
    if cfg.base_model:
        source = Path(cfg.base_model)
        if not (source / "config.json").is_file():
            raise FileNotFoundError(
                f"--base-model {source} is not a model dir (no config.json); point it at a local "
                "Qwen2.5 instruct checkpoint"
            )
        shutil.copytree(source, out)
        return {"base": str(source)}

    tokenizer = train_tokenizer(project_corpus(), vocab_size=2048)
    save_model_dir(build_model(ModelConfig(), tokenizer), tokenizer, out)
    return {"base": "tiny random Qwen2 (CPU test of the gpu recipe)", "vocab": len(tokenizer)}


def train_sft_lora(
    cfg: Any, base: Path, dialogues: list[Dialogue], out: Path, threads: int, log: Log
) -> dict[str, Any]:
    """LoRA SFT with TRL on the hermes-rendered dialogues (assistant tokens only); merged and saved to `out`."""
    # lazy: torch is heavy and needed only here
    import torch

    # lazy: datasets is heavy and needed only here
    from datasets import Dataset

    # lazy: peft is heavy and needed only here
    from peft import LoraConfig

    # lazy: transformers is heavy and needed only here
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback

    # lazy: trl is heavy and needed only here
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(threads)
    tools = [t for t in openai_tools() if t["function"]["name"] != "apply_change"]
    rows = []
    for d in dialogues[: cfg.dialogues]:
        messages = dialogue_messages(d)
        if len(messages) > 1:
            rows.append({"messages": [_arrow_safe(m) for m in messages], "tools": json.dumps(tools)})
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32
    )
    args = SFTConfig(
        output_dir=str(out.parent / "_trainer"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        max_length=cfg.max_length,
        assistant_only_loss=True,
        packing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        activation_checkpointing=False,
        disable_tqdm=True,
    )
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora,
    )
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    merged: Any = trainer.model.merge_and_unload()  # type: ignore[union-attr,operator]
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    log("gpu_sft", steps=int(result.global_step), seconds=round(seconds, 1))

    shutil.rmtree(out.parent / "_trainer", ignore_errors=True)
    return {
        "dialogues": len(rows),
        "steps": int(result.global_step),
        "train_loss": round(float(result.training_loss), 4),
        "seconds": round(seconds, 1),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def _arrow_safe(message: dict[str, Any]) -> dict[str, Any]:
    """Arguments as JSON strings and every key present (Arrow fills missing keys with nulls otherwise)."""
    out = {"role": message["role"], "content": message.get("content") or ""}
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
            }
            for c in message["tool_calls"]
        ]
    if message.get("tool_call_id"):
        out["tool_call_id"] = message["tool_call_id"]
    return out
