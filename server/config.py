"""Server settings: one pydantic-settings model, read from ADGUIDE_* environment variables or the settings
file (tools/settings.py: `$ADGUIDE_ENV_FILE`, else `./.env`); tests pass values.

The API and the workers read the same settings, so a deployment sets them once (docker/compose.yaml).
Every field is `ADGUIDE_<FIELD>` but `world_path` (ADGUIDE_WORLD); `api_keys` is a JSON object.
Redis keys all start with `redis_prefix` and PostgreSQL tables live in `pg_schema`: two deployments
(or two test sessions) can share one Redis and one database without seeing each other.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator

from tools.settings import EnvSettings

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class GuidanceMode(StrEnum):
    PROACTIVE = "proactive"  # the agent's proactive mode: ranked, simulated guidance items (seconds each)
    OVERVIEW = "overview"  # one grounded chat turn ("How is my account doing?"): a fast digest


class Settings(EnvSettings):
    redis_url: str = "redis://127.0.0.1:6379/0"
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    redis_prefix: str = Field(default="adguide", min_length=1, max_length=64)
    pg_schema: str = Field(
        default="adguide_server", description="schema for threads, jobs, results, checkpoints"
    )
    world_path: Path | None = Field(
        default=None,
        validation_alias="ADGUIDE_WORLD",  # the name deployments use (docker/compose.yaml)
        description="world.sqlite; None: $ADGUIDE_HOME/world.sqlite",
    )
    backend: str | None = Field(default=None, description="agent backend: rules | teacher | local | openai")
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible model server (vLLM)")
    llm_model: str | None = None
    llm_api_key: str = "EMPTY"
    api_keys: dict[str, str] = Field(
        default_factory=dict, description="API key -> 'advertiser:<id>' | 'admin'"
    )
    api_keys_file: Path | None = None
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_message_chars: int = Field(default=4000, ge=1, le=100_000)
    rate_limit_per_minute: int = Field(default=60, ge=1, le=1_000_000, description="requests per API key")
    turn_seconds: float = Field(default=60.0, gt=0, le=3600, description="wall-time budget of one chat turn")
    job_timeout_s: float = Field(
        default=120.0, gt=0, le=3600, description="one advertiser's guidance in a batch"
    )
    job_max_tries: int = Field(default=4, ge=1, le=20)
    job_retry_base_s: float = Field(
        default=2.0, ge=0, le=300, description="first retry delay; doubles per try"
    )
    guidance: GuidanceMode = Field(
        default=GuidanceMode.PROACTIVE, description="what a batch worker runs per advertiser"
    )
    worker_concurrency: int = Field(
        default=2, ge=1, le=64, description="advertisers at once per worker process"
    )
    agent_pool_size: int = Field(
        default=32, ge=1, le=10_000, description="open agents (MCP sessions) per API process"
    )
    agent_ttl_s: float = Field(
        default=300.0, gt=0, description="an open agent is rebuilt after this (fresh ids)"
    )
    log_level: str = "INFO"
    switch_interval_ms: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="the API process's GIL switch interval: how long a guardrail or tool thread may hold the "
        "interpreter before the event loop (and /healthz) gets a turn; Python's default is 5 ms",
    )

    @field_validator("pg_schema")
    @classmethod
    def _schema_ident(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError(
                f"pg_schema must be a lowercase SQL identifier ([a-z_][a-z0-9_]*, <= 63 chars), got {v!r}"
            )
        return v

    @field_validator("redis_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_.:-]+$", v):
            raise ValueError(f"redis_prefix may hold letters, digits and _.:- only (got {v!r})")
        return v

    @property
    def queue_name(self) -> str:
        return f"{self.redis_prefix}:queue"

    @property
    def checkpoint_url(self) -> str:
        """The PostgreSQL URL with this schema first on the search path (LangGraph's tables land there)."""
        sep = "&" if "?" in self.postgres_url else "?"
        return f"{self.postgres_url}{sep}options=-csearch_path%3D{self.pg_schema}"

    def key_map(self) -> dict[str, str]:
        """API keys -> scope labels: inline ones plus ADGUIDE_API_KEYS / the keys file."""
        keys = dict(self.api_keys)
        if self.api_keys_file is not None:
            keys.update(_read_keys(self.api_keys_file.read_text(), str(self.api_keys_file)))
        return keys

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, v: object) -> object:
        # ADGUIDE_API_KEYS arrives parsed; say what shape it must have, and keep labels as strings
        if isinstance(v, str):
            return _read_keys(v, "ADGUIDE_API_KEYS")
        if not isinstance(v, dict):
            raise ValueError("must be a JSON object of API key -> 'advertiser:<id>' or 'admin'")
        return {str(k): str(val) for k, val in v.items()}


# Field -> environment variable (kept for callers that read it): every field, `api_keys` included.
ENV = Settings.env_names()


def _read_keys(raw: str, source: str) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{source} must be a JSON object of API key -> scope label: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{source} must be a JSON object of API key -> 'advertiser:<id>' or 'admin'")
    return {str(k): str(v) for k, v in data.items()}
