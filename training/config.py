"""Pipeline configuration: one pydantic model per stage, and the named presets (`tiny`, `small`).

A preset is the whole recipe of a run; `adguide train` stages read it from the run dir's `pipeline.json`, so
a run can be resumed (or inspected) without remembering its flags. `check_fits_in_memory` refuses a
config whose training state would not fit in this machine's memory before any compute is spent.
"""

from __future__ import annotations

import hashlib
import json
import os
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Preset(StrEnum):
    TINY = "tiny"
    SMALL = "small"


class TokenizerConfig(_Cfg):
    vocab_size: int = Field(ge=300, le=262_144, description="BPE vocabulary including special and added tokens")
    min_frequency: int = Field(default=2, ge=1)


class ModelConfig(_Cfg):
    """A Qwen2-architecture decoder. `vocab_size` comes from the trained tokenizer (rounded up to 64)."""

    hidden_size: int = Field(ge=16, le=16_384)
    intermediate_size: int = Field(ge=16, le=65_536)
    num_hidden_layers: int = Field(ge=1, le=128)
    num_attention_heads: int = Field(ge=1, le=128)
    num_key_value_heads: int = Field(ge=1, le=128)
    max_position_embeddings: int = Field(default=4096, ge=128, le=131_072)
    rope_theta: float = Field(default=10_000.0, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads ({self.num_attention_heads})"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        return self


class DataConfig(_Cfg):
    """Teacher trajectories: how many worlds/advertisers and dialogues per advertiser."""

    n_advertisers: int = Field(ge=4, le=10_000, description="advertisers in the generated training world")
    days: int = Field(default=60, ge=14, le=3650)
    dialogues_per_advertiser: int = Field(ge=1, le=1000)
    val_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    test_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    seed: int = 7


class SFTStageConfig(_Cfg):
    epochs: float = Field(gt=0, le=1000)
    max_steps: int = Field(default=-1, ge=-1, description="-1: run `epochs`")
    batch_size: int = Field(ge=1, le=1024)
    grad_accum: int = Field(default=1, ge=1, le=1024)
    learning_rate: float = Field(gt=0, le=1)
    max_length: int = Field(ge=64, le=131_072)
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)


class PreferenceStageConfig(_Cfg):
    n_prompts: int = Field(ge=1, le=100_000, description="training tasks to sample candidates for")
    candidates_per_prompt: int = Field(ge=2, le=64)
    temperature: float = Field(default=0.7, gt=0, le=5)
    max_new_tokens: int = Field(default=256, ge=8, le=8192)
    max_steps_per_rollout: int = Field(default=6, ge=1, le=50)
    min_margin: float = Field(default=0.05, ge=0, le=10, description="drop pairs whose scores differ less")
    include_teacher: bool = Field(default=True, description="add the teacher's trajectory as one candidate")


class DPOStageConfig(_Cfg):
    loss_type: str = Field(default="sigmoid", pattern="^(sigmoid|ipo|hinge|robust)$")
    beta: float = Field(default=0.1, gt=0, le=10)
    epochs: float = Field(gt=0, le=1000)
    max_steps: int = Field(default=-1, ge=-1)
    batch_size: int = Field(ge=1, le=1024)
    learning_rate: float = Field(gt=0, le=1)
    max_length: int = Field(ge=64, le=131_072)
    use_lora: bool = Field(default=False, description="LoRA adapters (peft) instead of a full fine-tune")
    lora_r: int = Field(default=16, ge=1, le=1024)


class EvalStageConfig(_Cfg):
    n_tasks: int = Field(ge=1, le=100_000, description="held-out test tasks to roll out per model")
    max_new_tokens: int = Field(default=256, ge=8, le=8192)
    max_steps_per_rollout: int = Field(default=6, ge=1, le=50)


class PipelineConfig(_Cfg):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    tokenizer: TokenizerConfig
    model: ModelConfig
    data: DataConfig
    sft: SFTStageConfig
    preferences: PreferenceStageConfig
    dpo: DPOStageConfig
    eval: EvalStageConfig
    threads: int = Field(default=1, ge=1, le=256, description="torch threads: the machine is shared")

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> PipelineConfig:
        try:
            return cls.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing: start the run with `adguide train base`") from None


def preset(name: Preset | str) -> PipelineConfig:
    try:
        which = Preset(name)
    except ValueError:
        allowed = ", ".join(p.value for p in Preset)
        raise ValueError(f"config must be one of {allowed} (got {name!r})") from None
    if which is Preset.TINY:
        # Seconds per stage: proves every stage runs, learns nothing useful.
        return PipelineConfig(
            name="tiny",
            tokenizer=TokenizerConfig(vocab_size=512),
            model=ModelConfig(
                hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                max_position_embeddings=8192,
            ),
            data=DataConfig(n_advertisers=6, days=21, dialogues_per_advertiser=3, val_fraction=0.2, test_fraction=0.2),
            sft=SFTStageConfig(epochs=1, max_steps=2, batch_size=2, learning_rate=1e-3, max_length=8192),
            preferences=PreferenceStageConfig(
                n_prompts=2, candidates_per_prompt=2, max_new_tokens=24, max_steps_per_rollout=2, min_margin=0.0
            ),
            dpo=DPOStageConfig(epochs=1, max_steps=2, batch_size=2, learning_rate=1e-4, max_length=8192),
            eval=EvalStageConfig(n_tasks=2, max_new_tokens=24, max_steps_per_rollout=2),
        )
    # The shipped default: a few MB on disk; SFT, preferences, DPO and the card in about an hour of one (shared) CPU thread.
    return PipelineConfig(
        name="small",
        tokenizer=TokenizerConfig(vocab_size=4096),
        model=ModelConfig(
            hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=3, num_key_value_heads=1,
            max_position_embeddings=6144,
        ),
        data=DataConfig(n_advertisers=40, days=60, dialogues_per_advertiser=12),
        sft=SFTStageConfig(epochs=1, batch_size=4, learning_rate=2e-3, max_length=4608),
        preferences=PreferenceStageConfig(n_prompts=16, candidates_per_prompt=3, max_new_tokens=128, max_steps_per_rollout=4),
        dpo=DPOStageConfig(epochs=2, batch_size=1, learning_rate=5e-5, max_length=4608),
        eval=EvalStageConfig(n_tasks=12, max_new_tokens=128, max_steps_per_rollout=4),
    )


# --- memory ------------------------------------------------------------------------------------------


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux); falls back to total physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def parameter_count(model: ModelConfig, vocab_size: int) -> int:
    h, i, n = model.hidden_size, model.intermediate_size, model.num_hidden_layers
    head_dim = h // model.num_attention_heads
    kv = model.num_key_value_heads * head_dim
    attention = h * h + 2 * h * kv + h * h + (h + 2 * kv)  # q, k, v, o (+ q/k/v biases)
    mlp = 3 * h * i
    norms = 2 * h
    return vocab_size * h + n * (attention + mlp + norms) + h  # tied embeddings


def training_memory_bytes(model: ModelConfig, vocab_size: int, batch_size: int, max_length: int) -> int:
    """A deliberately generous fp32 estimate: weights, grads, two Adam moments, activations and logits."""
    params = parameter_count(model, vocab_size)
    state = params * 4 * 4
    tokens = batch_size * max_length
    activations = tokens * model.hidden_size * model.num_hidden_layers * 4 * 16
    attention = batch_size * model.num_attention_heads * max_length * max_length * 4 * model.num_hidden_layers * 2
    logits = tokens * vocab_size * 4 * 3  # logits, log-softmax, grad
    return state + activations + attention + logits


def check_fits_in_memory(
    model: ModelConfig, vocab_size: int, batch_size: int, max_length: int, *, copies: int = 1, what: str = "training"
) -> int:
    """Raise MemoryError naming the knobs if the estimate exceeds 80% of available memory; return the estimate."""
    need = training_memory_bytes(model, vocab_size, batch_size, max_length) * copies
    have = available_memory_bytes()
    if need > 0.8 * have:
        raise MemoryError(
            f"{what} needs about {need / 2**30:.1f} GiB (model {parameter_count(model, vocab_size) / 1e6:.1f}M params, "
            f"batch_size {batch_size}, max_length {max_length}) but only {have / 2**30:.1f} GiB is available: "
            "lower batch_size or max_length, or pick a smaller model config"
        )
    return need
