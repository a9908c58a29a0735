"""Agent configuration: which model backend, which tools, which checkpointer, and the per-turn bounds.

Everything has an embedded default that works on a laptop with nothing running: the "local" backend when a
model dir exists (else "rules"), the in-memory MCP session over `$ADGUIDE_HOME/world.sqlite`, SQLite
checkpoints in `$ADGUIDE_HOME/threads.sqlite`. Environment variables (ADGUIDE_*) override the defaults;
the server passes explicit values. The advertiser scope is *never* read from a message: callers set it.

`AgentConfig.from_env` reads every field from ADGUIDE_* (tools/settings.py: the environment, then the
settings file): the names the server shares (ADGUIDE_BACKEND, ADGUIDE_LLM_BASE_URL, ADGUIDE_LLM_MODEL,
ADGUIDE_LLM_API_KEY, ADGUIDE_WORLD), ADGUIDE_ADVERTISER for the scope, ADGUIDE_<FIELD> for the rest, and
the bounds as ADGUIDE_LIMITS__<FIELD> / ADGUIDE_POLICY__<FIELD> (or JSON in ADGUIDE_LIMITS / ADGUIDE_POLICY).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, Field

from agent.guardrails.input import MAX_INPUT_CHARS
from agent.guardrails.tool_args import Policy
from tools.settings import EnvSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO_ROOT / "training" / "models"


class BackendKind(StrEnum):
    RULES = "rules"  # deterministic rule-based policy (agent/backends/rules.py)
    TEACHER = (
        "teacher"  # keyword rules read the intent, the expert policy plans it (agent/backends/teacher.py)
    )
    LOCAL = "local"  # transformers, in process, the project's own model dir
    OPENAI = "openai"  # any OpenAI-compatible server (vLLM in production)


class CheckpointerKind(StrEnum):
    MEMORY = "memory"
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class Limits(BaseModel):
    """Bounds of one turn; hitting one ends the turn with a graceful answer."""

    max_steps: int = Field(default=6, ge=1, le=50, description="model calls per turn")
    max_seconds: float = Field(default=120.0, gt=0, le=3600, description="wall time per turn")
    max_tokens: int = Field(default=4000, ge=16, description="generated tokens per turn")
    max_new_tokens: int = Field(default=384, ge=8, le=8192, description="generated tokens per model call")
    tool_timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_input_chars: int = Field(default=MAX_INPUT_CHARS, ge=1)
    max_tool_result_chars: int = Field(default=6000, ge=200, description="what the model sees of one result")
    max_context_tokens: int | None = Field(
        default=None,
        ge=512,
        description="the model's window (prompt + answer); older turns that don't fit are "
        "left out of what it reads. None: the local model's own window; 4096 for an OpenAI-compatible server "
        "(what scripts/serve_vllm.sh serves)",
    )


class AgentEnvironment(EnvSettings):
    """What the agent reads from ADGUIDE_* outside one AgentConfig: defaults that a config left unset."""

    model_dir: Path | None = Field(default=None, description="the model dir when a config names none")
    postgres_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/test",
        description="postgres checkpoints when a config names no URL (the server's database)",
    )


def adguide_home() -> Path:
    # The environment only, not the settings file: the store (tools/market/store.py) and the training pipeline
    # read ADGUIDE_HOME the same way, and all three must agree on where the data lives.
    return Path(os.environ.get("ADGUIDE_HOME", Path.home() / ".adguide"))


def default_model_dir() -> Path | None:
    """The newest trained model dir (DPO, else SFT, else any) under training/models, or $ADGUIDE_MODEL_DIR."""
    if named := AgentEnvironment.from_env().model_dir:
        return named
    if not MODELS_DIR.is_dir():
        return None
    dirs = [p.parent for p in MODELS_DIR.glob("**/config.json") if (p.parent / "tokenizer.json").exists()]
    if not dirs:
        return None
    rank = {"dpo": 0, "sft": 1}
    return sorted(
        dirs, key=lambda d: (min((rank.get(part, 9) for part in d.parts), default=9), -d.stat().st_mtime)
    )[0]


class AgentConfig(EnvSettings):
    advertiser_id: str = Field(
        validation_alias="ADGUIDE_ADVERTISER",
        description="the caller's scope: set by auth or the CLI, never by the model",
    )
    backend: BackendKind | None = Field(
        default=None, description="None: local if a model dir exists, else rules"
    )
    model_dir: Path | None = None
    base_url: str | None = Field(
        default=None,
        validation_alias="ADGUIDE_LLM_BASE_URL",
        description="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1",
    )
    model_name: str | None = Field(default=None, validation_alias="ADGUIDE_LLM_MODEL")
    api_key: str = Field(default="EMPTY", validation_alias="ADGUIDE_LLM_API_KEY")
    constrain_arguments: bool = Field(
        default=True, description="enum of the advertiser's own ids in tool schemas"
    )
    store_path: Path | None = Field(
        default=None,
        validation_alias="ADGUIDE_WORLD",
        description="world.sqlite; None: $ADGUIDE_HOME/world.sqlite",
    )
    checkpointer: CheckpointerKind = CheckpointerKind.SQLITE
    checkpoint_url: str | None = Field(default=None, description="sqlite file or postgres URL")
    allow_writes: bool = True
    limits: Limits = Field(default_factory=Limits)
    policy: Policy = Field(default_factory=Policy)

    def resolved_backend(self) -> BackendKind:
        if self.backend is not None:
            return self.backend
        if self.base_url:
            return BackendKind.OPENAI
        return BackendKind.LOCAL if (self.model_dir or default_model_dir()) else BackendKind.RULES

    def resolved_checkpoint_url(self) -> str:
        if self.checkpoint_url:
            return self.checkpoint_url
        if self.checkpointer == CheckpointerKind.POSTGRES:
            return AgentEnvironment.from_env().postgres_url
        return str(adguide_home() / "threads.sqlite")

    @classmethod
    def from_env(
        cls,
        advertiser_id: str | None = None,
        *,
        env_file: Path | None | bool = True,
        defaults: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Self:
        """ADGUIDE_* settings with `overrides` on top; the scope is `advertiser_id`, else ADGUIDE_ADVERTISER."""
        return super().from_env(
            env_file=env_file, defaults=defaults, advertiser_id=advertiser_id, **overrides
        )
