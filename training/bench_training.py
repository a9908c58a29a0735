"""Training throughput of the embedded model: our loop (training/trainer.py) beside TRL's SFTTrainer, on the same
model, the same curriculum examples and the same number of threads, in one run.

    python -m training.bench_training --dialogues /path/to/train.jsonl --steps 20

Prints tokens/s (real tokens: prompt and output, no padding) and examples/s for each; the loop's choices are
what it measures: length-bucketed batches padded to a few shapes, the output layer only at output positions
(both trainers get that from the model's own loss), bf16 autocast where the CPU has AMX, the bottom two layers
frozen, and glibc told to keep freed memory.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from agent.model.text import load_tokenizer
from training.trainer import TrainConfig, train


def _examples(path: Path, n: int) -> list[tuple[list[int], list[int]]]:
    # lazy: pulls in numpy at import
    from training.stages import encoded, read_dialogues

    return encoded(read_dialogues(path, limit=n), load_tokenizer(), {"answer": 0.5}, seed=0, max_length=512)[
        0
    ]


def ours(data: list[tuple[list[int], list[int]]], steps: int, threads: int) -> dict[str, float]:
    # lazy: pulls in transformers at import
    from agent.model.network import AdguideForPrefixLM

    model = AdguideForPrefixLM.from_minilm(load_tokenizer().get_vocab_size())
    cfg = TrainConfig(
        max_steps=steps,
        minutes=60,
        warmup_steps=2,
        batch_tokens=4096,
        threads=threads,
        checkpoint_every=10**6,
        log_every=10**6,
    )

    with tempfile.TemporaryDirectory() as out:
        summary = train(model, data, Path(out), cfg, pad=0)
    return {
        "tokens_per_s": summary["tokens_per_s"],
        "examples_per_s": summary["examples_per_s"],
        "examples": summary["examples"],
        "bf16": summary["bf16"],
    }


def trl(
    data: list[tuple[list[int], list[int]]], steps: int, threads: int, batch_size: int
) -> dict[str, float]:
    """TRL's SFTTrainer on the same (ids, labels) rows, fp32, its own collator (padding to the longest)."""
    # lazy: datasets is heavy and needed only here
    from datasets import Dataset

    # lazy: transformers is heavy and needed only here
    from transformers import PrinterCallback

    # lazy: trl is heavy and needed only here
    from trl import SFTConfig, SFTTrainer

    # lazy: pulls in transformers at import
    from agent.model.network import AdguideForPrefixLM

    # lazy: pulls in numpy at import
    from training.dpo import hf_tokenizer

    torch.set_num_threads(threads)
    model = AdguideForPrefixLM.from_minilm(load_tokenizer().get_vocab_size())
    rows = [{"input_ids": x, "completion_mask": [int(label != -100) for label in y]} for x, y in data]
    args = SFTConfig(
        output_dir="/tmp/bench-trl-sft",
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=1e-4,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=10**6,
        activation_checkpointing=False,
        completion_only_loss=True,
        dataset_kwargs={"skip_prepare_dataset": False},
        max_length=512,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=hf_tokenizer(None)
    )  # None: the shipped encoder's tokenizer
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    used = steps * batch_size
    tokens = sum(len(r["input_ids"]) for r in rows[:used])
    return {
        "tokens_per_s": round(tokens / seconds, 1),
        "examples_per_s": round(used / seconds, 2),
        "examples": used,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dialogues", type=Path, required=True, help="curriculum train.jsonl (adguide train data)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    data = _examples(args.dialogues, 600)
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{len(data)} examples; {args.steps} steps each; {args.threads} threads; load {load}")
    mine = ours(data, args.steps, args.threads)
    print(
        f"ours (bucketed, bf16={mine['bf16']}, 2 layers frozen): {mine['tokens_per_s']:.0f} tokens/s, "
        f"{mine['examples_per_s']:.1f} examples/s"
    )
    batch = max(1, round(mine["examples"] / args.steps))
    theirs = trl(data, args.steps, args.threads, batch)
    print(
        f"TRL SFTTrainer (batch {batch}, fp32): {theirs['tokens_per_s']:.0f} tokens/s, "
        f"{theirs['examples_per_s']:.1f} examples/s"
    )
    print(f"ours / TRL: {mine['tokens_per_s'] / theirs['tokens_per_s']:.2f}x tokens/s")


if __name__ == "__main__":
    main()
