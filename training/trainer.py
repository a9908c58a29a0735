"""A lean supervised fine-tuning loop for the embedded model, sized for CPU.

Why not TRL's SFTTrainer here: our examples are short prompts with shorter outputs, and most of the cost
of a step is the 30k-word output layer. This loop computes it only at output positions (the prefix LM's
`forward(labels=...)`), batches by length (no padding waste beyond a bucket), runs bf16 autocast where the CPU
has AMX, and freezes the bottom layers (the pretrained encoder's reading of English stays; the top layers
learn to write). `training/bench_training.py` measures it beside TRL's SFTTrainer on the same data.

It stops at a step count or a wall-clock budget (what "held-out success per training hour" needs), reports
tokens/s and examples/s with an ETA, checkpoints every `checkpoint_every` steps, and resumes from the last
checkpoint (model, optimizer, schedule, data order).
"""

from __future__ import annotations

import ctypes.util
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

Log = Callable[[dict[str, Any]], None]


class TrainConfig(BaseModel):
    learning_rate: float = Field(1e-4, gt=0, le=1)
    weight_decay: float = 0.01
    warmup_steps: int = Field(100, ge=0)
    batch_tokens: int = Field(4096, ge=64, description="tokens per batch, padding included")
    max_steps: int = Field(-1, ge=-1, description="-1: until the examples are used once or the budget ends")
    minutes: float = Field(60.0, gt=0, description="wall-clock budget")
    freeze_layers: int = Field(
        2, ge=0, description="bottom Transformer layers (and embeddings' positions) kept fixed"
    )
    bf16: bool = True
    threads: int = Field(1, ge=1, le=64)
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(20, ge=1)
    seed: int = 0


def tune_malloc() -> None:
    """Keep freed memory in the process (glibc): a training step allocates and frees the same large buffers,
    and returning them to the OS every step costs more system time than the step's math (1.6x slower here)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name)
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_trim_threshold, 2**30)
    libc.mallopt(m_mmap_threshold, 2**30)


def amx_available() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


WIDTH_STEP = 64  # batches are padded to a multiple of this: a few distinct shapes, so the CPU kernels' caches
# (and the memory they hold) stop growing after the first steps, and steps run faster


def padded(length: int) -> int:
    return -(-length // WIDTH_STEP) * WIDTH_STEP


def batches(lengths: list[int], batch_tokens: int, seed: int) -> list[list[int]]:
    """Indices grouped by similar length so each batch is about `batch_tokens` tokens with padding; the batch
    order is shuffled (the same for the same seed, so a resumed run continues the same order)."""
    lengths = [padded(n) for n in lengths]
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    out: list[list[int]] = []
    chunk = 2000  # sort within chunks: similar lengths together, yet every part of the data in every stretch
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batch: list[int] = []
        longest = 0
        for i in part:
            longest_if = max(longest, lengths[i])
            if batch and longest_if * (len(batch) + 1) > batch_tokens:
                out.append(batch)
                batch, longest_if = [], lengths[i]
            batch.append(i)
            longest = longest_if
        if batch:
            out.append(batch)
    rng.shuffle(out)
    return out


def collate(
    items: list[tuple[list[int], list[int]]], pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = padded(max(len(ids) for ids, _ in items))
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (x, y) in enumerate(items):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return ids, labels, mask


def _freeze(model: Any, layers: int) -> None:
    for p in model.parameters():
        p.requires_grad = True
    if layers <= 0:
        return
    emb = model.model.embeddings
    for p in (
        *emb.position_embeddings.parameters(),
        *emb.token_type_embeddings.parameters(),
        *emb.LayerNorm.parameters(),
    ):
        p.requires_grad = False
    for layer in model.model.encoder.layer[:layers]:
        for p in layer.parameters():
            p.requires_grad = False


def _lr(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / max(1, cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate_loss(
    model: Any, data: list[tuple[list[int], list[int]]], pad: int, batch_tokens: int, bf16: bool
) -> float:
    model.eval()
    total, n = 0.0, 0
    for batch in batches([len(x) for x, _ in data], batch_tokens, seed=0):
        ids, labels, mask = collate([data[i] for i in batch], pad)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(ids, attention_mask=mask, labels=labels)
        k = int((labels[:, 1:] != -100).sum())
        total += float(out.loss) * k
        n += k
    model.train()
    return total / max(1, n)


def train(
    model: Any,
    data: list[tuple[list[int], list[int]]],
    out: Path,
    cfg: TrainConfig,
    *,
    pad: int,
    val: list[tuple[list[int], list[int]]] | None = None,
    log: Log | None = None,
    save: Callable[[Any, Path], None] | None = None,
    checkpoint_dir: Path | None = None,
) -> dict[str, Any]:
    """Train `model` on (ids, labels) pairs; the final model under `out`. Checkpoints go to `checkpoint_dir`
    (default `out/checkpoint`) and a run resumes from there. Returns the run's figures."""
    emit = log or (lambda _e: None)
    tune_malloc()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    bf16 = cfg.bf16 and amx_available()
    _freeze(model, cfg.freeze_layers)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
    )
    plan = batches([len(x) for x, _ in data], cfg.batch_tokens, cfg.seed)
    total_steps = len(plan) if cfg.max_steps < 0 else min(cfg.max_steps, len(plan))
    ckpt = checkpoint_dir or out / "checkpoint"
    step = first = 0
    if (ckpt / "state.pt").exists():
        state = torch.load(ckpt / "state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = first = int(state["step"])
        emit({"event": "resumed", "step": step})
    model.train()
    started = time.time()
    budget = cfg.minutes * 60
    seen_tokens = seen_examples = 0
    window_loss, window_n = 0.0, 0
    stopped = "data"
    while step < total_steps:
        if time.time() - started >= budget:
            stopped = "budget"
            break
        batch = plan[step]
        ids, labels, mask = collate([data[i] for i in batch], pad)
        for group in opt.param_groups:
            group["lr"] = _lr(step, total_steps, cfg)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen_tokens += int(mask.sum())
        seen_examples += len(batch)
        window_loss += float(loss.detach())
        window_n += 1
        if step % cfg.log_every == 0 or step == total_steps:
            elapsed = time.time() - started
            rate = seen_tokens / max(elapsed, 1e-6)
            eta = min((total_steps - step) * elapsed / max(1, step - first), budget - elapsed)
            emit(
                {
                    "event": "train",
                    "step": step,
                    "of": total_steps,
                    "loss": round(window_loss / window_n, 4),
                    "lr": opt.param_groups[0]["lr"],
                    "tokens_per_s": round(rate, 1),
                    "examples_per_s": round(seen_examples / max(elapsed, 1e-6), 2),
                    "elapsed_s": round(elapsed),
                    "eta_s": round(max(0.0, eta)),
                }
            )
            window_loss, window_n = 0.0, 0
        if step % cfg.checkpoint_every == 0 and step < total_steps:
            ckpt.mkdir(parents=True, exist_ok=True)
            tmp = ckpt / "state.pt.tmp"
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, tmp)
            tmp.replace(ckpt / "state.pt")
            if val:
                emit(
                    {
                        "event": "val",
                        "step": step,
                        "loss": round(evaluate_loss(model, val, pad, cfg.batch_tokens, bf16), 4),
                    }
                )
    elapsed = time.time() - started
    summary = {
        "steps": step,
        "of": total_steps,
        "stopped": stopped,
        "seconds": round(elapsed, 1),
        "tokens": seen_tokens,
        "examples": seen_examples,
        "bf16": bf16,
        "threads": cfg.threads,
        "tokens_per_s": round(seen_tokens / max(elapsed, 1e-6), 1),
        "examples_per_s": round(seen_examples / max(elapsed, 1e-6), 2),
    }
    if val:
        summary["val_loss"] = round(evaluate_loss(model, val, pad, cfg.batch_tokens, bf16), 4)
    model.eval()
    if save is not None:
        save(model, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    emit({"event": "done", **summary})
    return summary
