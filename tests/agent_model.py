"""A tiny Qwen2 model dir (random weights, byte-level BPE, the hermes chat template) for the backends that serve
any transformers causal LM: the in-process `local` backend and vLLM. Built by the gpu recipe's own builder."""

from __future__ import annotations

from pathlib import Path


def model_dir_for_tests(tmp: Path) -> Path:
    from training.config import GpuConfig
    from training.gpu import build_base

    out = tmp / "tiny-qwen2"
    if not (out / "config.json").is_file():
        build_base(GpuConfig(), out)
    return out
