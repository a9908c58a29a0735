"""ADGUIDE_* settings, read from the environment and a settings file, for every layer (pydantic-settings).

A settings model subclasses `EnvSettings`. Each field is read from `ADGUIDE_<FIELD>` (a field may name
another variable with `validation_alias`, e.g. `ADGUIDE_WORLD`), nested models also from
`ADGUIDE_<FIELD>__<SUBFIELD>`, dicts and nested models as JSON. Where the environment does not set a
variable, the settings file does: `$ADGUIDE_ENV_FILE`, else `.env` in the working directory, in dotenv
form with the same names. Empty variables count as unset.

Constructing a model (`Settings(redis_url=...)`) takes exactly the values given, so tests and callers that
pass values never pick up a developer's environment; `from_env(**overrides)` reads the environment and the
file, and `to_env()` writes the variables that make a child process read the same values back.

This module sits in `tools/` (the bottom layer) so the tools, the agent and the server share it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

PREFIX = "ADGUIDE_"
NESTED = "__"
ENV_FILE_VAR = "ADGUIDE_ENV_FILE"


def settings_file() -> Path | None:
    """The dotenv file to read: $ADGUIDE_ENV_FILE (must exist), else ./.env where there is one."""
    if named := os.environ.get(ENV_FILE_VAR):
        path = Path(named)
        if not path.is_file():
            raise SettingsValueError(f"{ENV_FILE_VAR}={named!r}: no such file")
        return path
    default = Path(".env")
    return default if default.is_file() else None


class SettingsValueError(ValueError):
    """A setting that does not validate; the message names the variable (and the file it came from)."""


class EnvSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_nested_delimiter=NESTED,
        env_ignore_empty=True,  # an empty variable is unset, as the hand-parsed settings had it
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit values only: the environment is read by `from_env`, never behind a caller's back.
        return (init_settings,)

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field -> the environment variable that sets it."""
        names = {}
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            names[name] = alias if isinstance(alias, str) else f"{PREFIX}{name.upper()}"
        return names

    @classmethod
    def from_env(
        cls,
        *,
        env_file: Path | None | bool = True,
        defaults: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Self:
        """Settings from the environment, then the settings file (env_file: True = the default one, a path,
        or None/False for none), then `defaults` (a caller's own fallbacks, under both), with `overrides`
        (None values skipped: an option left unset) on top."""
        path = settings_file() if env_file is True else (env_file or None)
        sources: list[tuple[str, dict[str, Any]]] = []
        if path is not None:
            sources.append((f"in {path}", _read(DotEnvSettingsSource(cls, env_file=path), cls, str(path))))
        sources.append(("", _read(EnvSettingsSource(cls), cls, "the environment")))
        values: dict[str, Any] = dict(defaults or {})
        origin: dict[str, str] = {}
        for where, found in sources:  # later sources win: the environment over the file
            for key, value in found.items():
                field = _field_of(cls, key)
                if field is None:
                    continue  # another model's variable in a shared file
                if isinstance(value, dict) and isinstance(values.get(field), dict):
                    value = {**values[field], **value}
                values[field] = value
                origin[field] = where
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsValueError(_explain(cls, exc, origin, set(given))) from None

    def to_env(self) -> dict[str, str]:
        """The variables that make `from_env` in a child process read these settings back; unset (None)
        fields are left out. Dicts, lists and nested models are written as JSON."""
        env = {}
        data = self.model_dump(mode="json")
        for field, var in self.env_names().items():
            value = data[field]
            if value is None:
                continue
            env[var] = json.dumps(value) if isinstance(value, dict | list) else str(value)
        return env


def _read(source: PydanticBaseSettingsSource, cls: type[EnvSettings], where: str) -> dict[str, Any]:
    try:
        return source()
    except SettingsError as exc:  # a JSON value that does not parse: name the variable
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        var = cls.env_names().get(field, f"{PREFIX}{field.upper()}")
        raise SettingsValueError(f"{var} (from {where}) must be JSON: {exc.__cause__ or exc}") from None


def _field_of(cls: type[EnvSettings], key: str) -> str | None:
    """A source's key (a field name, or an alias such as ADGUIDE_WORLD) -> the field name."""
    if key in cls.model_fields:
        return key
    for name, var in cls.env_names().items():
        if var.lower() == key.lower():
            return name
    return None


def _explain(cls: type[EnvSettings], exc: ValidationError, origin: dict[str, str], given: set[str]) -> str:
    names = cls.env_names()
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = loc[0] if loc else "?"
        if field in given:
            label = field  # an explicit value (a CLI option or a caller's argument), not a variable
        else:
            label = names.get(field, field)
            if loc[1:]:
                nested = field in cls.model_fields and _is_model(cls.model_fields[field].annotation)
                rest = [p.upper() for p in loc[1:]] if nested else loc[1:]
                label += "".join(f"{NESTED}{p}" for p in rest) if nested else f"[{'.'.join(rest)}]"
            if where := origin.get(field):
                label += f" ({where})"
        shown = err.get("input")
        hide = isinstance(shown, dict | list | BaseModel) or err["type"] == "missing" or _secret(field)
        shown = "" if hide else f"={shown!r}"
        lines.append(f"{label}{shown}: {err['msg']}")
    return f"invalid settings ({cls.__name__}): " + "; ".join(lines)


def _secret(field: str) -> bool:
    # keys, tokens and URLs (which may hold a password) are never echoed into logs
    return field.endswith(("key", "keys", "url", "token", "tokens", "password"))


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class ToolSettings(EnvSettings):
    """What the tool servers read from ADGUIDE_* (each where it used to: at import, per server, per call)."""

    sim_draws: int = Field(
        default=200, ge=1, le=100_000, description="Monte Carlo draws per simulation (its 90% ranges)"
    )
    mcp_cache: bool = Field(default=True, description="the Redis tool-result cache (on/off)")
    market_view: Literal["seller", "platform"] | None = Field(
        default=None, description="the market model's view; None: what the store offers"
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="the tool-result cache")
    embedding_cache: Path | None = Field(default=None, description="a file of keyword embeddings")
    mcp_tokens: dict[str, str] = Field(
        default_factory=dict, description="HTTP bearer token -> 'advertiser:<id>' | 'admin'"
    )
    mcp_tokens_file: Path | None = Field(default=None, description="the same map as a JSON file")
    store_url: str | None = Field(
        default=None,
        description="the advertiser store in PostgreSQL (postgresql://...), opened where no store is named; "
        "None: $ADGUIDE_HOME/world.sqlite (tools/market/db.py)",
    )

    @field_validator("market_view", mode="before")
    @classmethod
    def _view(cls, v: object) -> object:
        # as it was read by hand: case and spaces do not matter
        return v.strip().lower() or None if isinstance(v, str) else v
