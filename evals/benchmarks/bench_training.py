"""Training throughput of the project's model: tokens/s of a full SFT optimizer step, side by side.

Compares, on the same random batches of the `small` (or `--config`) architecture: eager vs sdpa attention,
1 vs 2 torch threads, fp32 on CPU (and bf16 on a GPU when one is present). A step is forward + backward +
AdamW on a batch of `--batch` sequences of `--length` tokens, as SFTTrainer runs it.

    .venv/bin/python evals/benchmarks/bench_training.py [--config small] [--steps 4] [--length 2048]

The machine may be shared: the figures say so, and the best of the timed steps is reported.
"""

from __future__ import annotations

import argparse
import time


def bench(config_name: str, attn: str, threads: int, device: str, batch: int, length: int, steps: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from training.config import preset
    from training.model import padded_vocab_size

    torch.set_num_threads(threads)
    cfg = preset(config_name)
    m = cfg.model
    config = Qwen2Config(
        vocab_size=padded_vocab_size(cfg.tokenizer.vocab_size), hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size, num_hidden_layers=m.num_hidden_layers,
        num_attention_heads=m.num_attention_heads, num_key_value_heads=m.num_key_value_heads,
        max_position_embeddings=m.max_position_embeddings, tie_word_embeddings=True,
    )
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn, dtype=dtype).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (batch, length), device=device)
    times = []
    for step in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    return batch * length / min(times)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=2048)
    args = parser.parse_args()
    rows = []
    if torch.cuda.is_available():
        for attn in ("eager", "sdpa"):
            rows.append((f"cuda bf16 {attn}", bench(args.config, attn, 1, "cuda", args.batch, args.length, args.steps)))
    for threads in (1, 2):
        for attn in ("eager", "sdpa"):
            rows.append((f"cpu fp32 {attn} {threads} thread(s)",
                         bench(args.config, attn, threads, "cpu", args.batch, args.length, args.steps)))
    print(f"SFT step throughput, config {args.config}, batch {args.batch} x {args.length} tokens "
          f"(best of {args.steps} steps; {torch.get_num_threads()} threads available; shared machine)")
    for name, tps in rows:
        print(f"  {name:32s} {tps:10.0f} tokens/s")


if __name__ == "__main__":
    main()
