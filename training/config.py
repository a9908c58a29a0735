"""Pipeline configuration: one pydantic model per stage, and the named presets.

A preset is the whole recipe of a run; `adguide train` stages read it from the run dir's `pipeline.json`, so a
run can be resumed (or inspected) without remembering its flags.

- `small`: the shipped embedded model (MiniLM as a prefix LM) on a 2-core CPU machine, under 90 minutes:
  curriculum data (~8 min), SFT (~50 min: 900 steps of 4,096 tokens at ~3.4 s a step in fp32 on a 2-core
  AMD EPYC; a CPU with AMX runs bf16 at ~1.5 s a step), preference sampling and RFT (~8.5 min), DPO (~9 min:
  40 steps of 8 pairs at ~13 s a step; the measured run's 120 steps took 26 min), the card.
- `tiny`: the same stages in a minute or two on tiny data (the tests run it).
- `gpu`: a pretrained instruct base (Qwen2.5 0.5-1.5B, LoRA) fine-tuned on the same curriculum in the hermes
  chat format with the full tool specifications, for vLLM to serve; `--base-model` names its local dir. The
  tests run it on CPU with a tiny randomly initialised Qwen2 of the same architecture.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from training.curriculum import CurriculumConfig
from training.trainer import TrainConfig


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Preset(StrEnum):
    TINY = "tiny"
    SMALL = "small"
    GPU = "gpu"


class SFTConfig(TrainConfig):
    answer_keep: float = Field(
        0.5,
        gt=0,
        le=1,
        description="share of answer steps trained on (calls and "
        "decisions always): writing an answer is mostly copying, reading the question is "
        "where the examples are needed",
    )
    max_length: int = Field(512, ge=64, le=512)


class PreferenceConfig(_Cfg):
    n_prompts: int = Field(ge=1, le=100_000, description="train-family steps to sample the SFT model on")
    samples: int = Field(4, ge=2, le=32, description="samples per prompt")
    temperature: float = Field(0.8, gt=0, le=5)
    rft_epochs: float = Field(
        1.0,
        ge=0,
        le=10,
        description="passes over the correct samples (rejection-sampling fine-tune) before DPO; 0 skips it",
    )
    gold_when_none_right: bool = Field(
        False,
        description="pair the expert's output with a wrong sample when no "
        "sample is right (off for the shipped recipe: pairs come from the model's own "
        "samples; on for the tiny preset, whose untrained model gets nothing right)",
    )


class DPOConfig(_Cfg):
    beta: float = Field(0.1, gt=0, le=10)
    loss_type: str = Field("sigmoid", pattern="^(sigmoid|ipo|hinge|robust)$")
    learning_rate: float = Field(2e-6, gt=0, le=1)
    max_steps: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1, le=256)
    max_length: int = Field(512, ge=64, le=8192)
    use_lora: bool = Field(
        False, description="LoRA adapters (peft) instead of a full fine-tune (the GPU recipe)"
    )
    lora_r: int = Field(16, ge=1, le=1024)


class CardConfig(_Cfg):
    dialogues_per_advertiser: int = Field(
        6,
        ge=1,
        le=500,
        description="held-out curriculum dialogues per "
        "evaluation advertiser and split, to compare SFT and DPO on",
    )
    advertisers: int = Field(2, ge=1, le=50)


class GpuConfig(_Cfg):
    """The pretrained-base recipe: LoRA SFT on the hermes chat format with TRL's SFTTrainer."""

    base_model: str | None = Field(
        None,
        description="a local model dir (Qwen2.5 0.5-1.5B instruct); None: a tiny "
        "randomly initialised Qwen2 (the CPU test of this path)",
    )
    epochs: float = Field(1.0, gt=0, le=100)
    max_steps: int = Field(-1, ge=-1)
    batch_size: int = Field(4, ge=1, le=1024)
    learning_rate: float = Field(2e-4, gt=0, le=1)
    max_length: int = Field(4096, ge=256, le=131_072)
    lora_r: int = Field(16, ge=1, le=1024)
    dialogues: int = Field(20_000, ge=1, description="curriculum dialogues trained on")


class RouterConfig(_Cfg):
    """The intent router (training/router.py) that `adguide train export` trains into the model dir."""

    per_kind: int = Field(24, ge=1, le=1000, description="messages per intent and advertiser")
    advertisers: int = Field(8, ge=1, le=100, description="advertisers per training world")
    tune_layers: int = Field(
        6, ge=0, le=6, description="encoder layers fine-tuned with the head (0: linear head)"
    )
    epochs: int = Field(2, ge=1, le=20)
    augment: float = Field(
        0.5,
        ge=0,
        le=2,
        description="noisy copies per train message (training/router.py "
        "augment: openers, sign-offs, typos, an action asked for)",
    )
    seeds: int = Field(
        1,
        ge=1,
        le=8,
        description="fine-tunings with different seeds, averaged weight by weight into one router "
        "(training/router.py soup); each adds the fine-tuning's time",
    )


class PipelineConfig(_Cfg):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    curriculum: CurriculumConfig
    sft: SFTConfig
    preferences: PreferenceConfig
    dpo: DPOConfig
    card: CardConfig
    router: RouterConfig = Field(default_factory=RouterConfig)
    gpu: GpuConfig | None = Field(
        None, description="set: the pretrained-base recipe instead of the embedded model"
    )
    threads: int = Field(
        default=2, ge=1, le=256, description="torch threads (1 where other work shares the CPU)"
    )

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> PipelineConfig:
        try:
            return cls.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing: start the run with `adguide train all`") from None


def preset(name: Preset | str) -> PipelineConfig:
    try:
        which = Preset(name)
    except ValueError:
        allowed = ", ".join(p.value for p in Preset)
        raise ValueError(f"config must be one of {allowed} (got {name!r})") from None
    if which is Preset.TINY:  # seconds per stage: proves every stage runs, learns little
        return PipelineConfig(
            name="tiny",
            curriculum=CurriculumConfig(
                n_worlds=1, advertisers_per_world=3, days=30, dialogues=24, val_advertisers=1, processes=1
            ),
            sft=SFTConfig(
                max_steps=4,
                minutes=5,
                warmup_steps=1,
                batch_tokens=1024,
                checkpoint_every=2,
                log_every=1,
                learning_rate=3e-4,
            ),
            preferences=PreferenceConfig(n_prompts=3, samples=2, rft_epochs=1, gold_when_none_right=True),
            dpo=DPOConfig(max_steps=2, batch_size=2),
            card=CardConfig(dialogues_per_advertiser=2, advertisers=1),
            router=RouterConfig(per_kind=2, advertisers=2, tune_layers=1, epochs=1),
            threads=1,
        )
    shipped = PipelineConfig(
        name="small",
        curriculum=CurriculumConfig(
            n_worlds=4, advertisers_per_world=12, days=60, dialogues=22_000, val_advertisers=1
        ),
        sft=SFTConfig(
            max_steps=900,
            minutes=55,
            learning_rate=2e-4,
            freeze_layers=2,
            batch_tokens=4096,
            checkpoint_every=300,
            warmup_steps=100,
            threads=2,
        ),
        preferences=PreferenceConfig(n_prompts=240, samples=4, temperature=0.8, rft_epochs=1),
        dpo=DPOConfig(max_steps=40, batch_size=8, learning_rate=2e-6, beta=0.1),
        card=CardConfig(dialogues_per_advertiser=6, advertisers=2),
        threads=2,
    )
    if which is Preset.GPU:
        return shipped.model_copy(
            update={
                "name": "gpu",
                "gpu": GpuConfig(),
                "dpo": DPOConfig(
                    max_steps=200, batch_size=8, learning_rate=5e-6, use_lora=True, max_length=4096
                ),
            }
        )
    return shipped
