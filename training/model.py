"""Build, save and load a Qwen2-architecture model in standard HF format: the gpu recipe's tiny test base.

A model dir holds config.json, generation_config.json, model.safetensors, tokenizer.json and
tokenizer_config.json (with the hermes chat template); transformers' AutoModelForCausalLM and vLLM load it.
`validate_model_dir` checks a dir before any compute is spent on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from training.tokenizer import EOS_TOKEN, PAD_TOKEN, load_tokenizer, save_tokenizer


class ModelConfig(BaseModel):
    """A Qwen2-architecture decoder's size (the tiny random base that tests the gpu recipe and vLLM on CPU)."""

    hidden_size: int = Field(64, ge=16)
    intermediate_size: int = Field(128, ge=16)
    num_hidden_layers: int = Field(1, ge=1)
    num_attention_heads: int = Field(
        1, ge=1
    )  # head_dim 64: vLLM's CPU attention rejects small heads (16 fails)
    num_key_value_heads: int = Field(1, ge=1)
    max_position_embeddings: int = Field(8192, ge=128)
    rope_theta: float = 10_000.0
    seed: int = 0


REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


class CheckpointError(ValueError):
    """A model dir that is missing, incomplete or corrupt."""


def padded_vocab_size(tokenizer_len: int, multiple: int = 64) -> int:
    return -(-tokenizer_len // multiple) * multiple


def build_model(cfg: ModelConfig, tokenizer: Any) -> Any:
    """A freshly initialised Qwen2ForCausalLM sized for `tokenizer` (fp32, tied embeddings, sdpa attention)."""
    # lazy: torch is heavy and needed only here
    import torch

    # lazy: transformers is heavy and needed only here
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    config = Qwen2Config(
        vocab_size=padded_vocab_size(len(tokenizer)),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        use_cache=True,
    )
    torch.manual_seed(cfg.seed)
    # sdpa: 2.5x eager for a training step at ~3k tokens on CPU (training/bench_training.py)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=[eos_id, pad_id],
        pad_token_id=pad_id,
        bos_token_id=None,
        do_sample=False,
        max_new_tokens=512,
    )
    return model


def save_model_dir(model: Any, tokenizer: Any, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.use_cache = True  # trainers switch it off; inference (and vLLM) want it on
    model.save_pretrained(str(out_dir), safe_serialization=True)
    save_tokenizer(tokenizer, out_dir)
    # Loaders older than transformers 5 (vLLM's pins) read a top-level rope_theta.
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config.setdefault("rope_theta", (config.get("rope_parameters") or {}).get("rope_theta", 10_000.0))
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def validate_model_dir(model_dir: Path) -> dict[str, Any]:
    """Cheap checks that a model dir is complete and consistent; returns its config.json. Raises CheckpointError."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"model dir {model_dir} does not exist")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise CheckpointError(f"model dir {model_dir} is incomplete: missing {', '.join(missing)}")
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{model_dir}/config.json is not valid JSON: {err}") from None
    try:
        # lazy: optional dependency, may be missing
        from safetensors import safe_open

        with safe_open(str(model_dir / "model.safetensors"), framework="pt") as weights:
            names = list(weights.keys())
    except Exception as err:  # safetensors raises its own types for truncated or garbled files
        raise CheckpointError(f"{model_dir}/model.safetensors is corrupt or truncated: {err}") from None
    if not any(name.endswith("embed_tokens.weight") for name in names):
        raise CheckpointError(
            f"{model_dir}/model.safetensors has no embedding weights: not a causal LM checkpoint"
        )
    try:
        tokenizer = load_tokenizer(model_dir)
    except Exception as err:
        raise CheckpointError(f"{model_dir} has an unreadable tokenizer: {err}") from None
    if len(tokenizer) > int(config.get("vocab_size", 0)):
        raise CheckpointError(
            f"{model_dir}: tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.get('vocab_size')}"
        )
    return config


def load_model(model_dir: Path, threads: int = 1) -> tuple[Any, Any]:
    """(model, tokenizer) from a validated dir, in fp32 eval mode on CPU."""
    # lazy: torch is heavy and needed only here
    import torch

    # lazy: transformers is heavy and needed only here
    from transformers import AutoModelForCausalLM

    validate_model_dir(model_dir)
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.float32, attn_implementation="sdpa"
    )
    model.eval()
    return model, load_tokenizer(model_dir)


def model_dir_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in Path(model_dir).iterdir() if p.is_file())
