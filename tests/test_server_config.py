"""Settings (tools/settings.py, server/config.py, agent/configuration.py): every field read from ADGUIDE_* or
the settings file, and written back for child processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent.configuration import AgentConfig, AgentEnvironment, BackendKind, CheckpointerKind, Limits
from agent.guardrails.intent import ScreenSettings
from agent.guardrails.tool_args import Policy
from server.config import ENV, GuidanceMode, Settings
from tools.settings import EnvSettings, SettingsValueError, ToolSettings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No ADGUIDE_* from the developer's shell, and no ./.env: only what the test sets."""
    for name in list(os.environ):
        if name.startswith("ADGUIDE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _all_changed(model: EnvSettings) -> None:
    """Every field differs from its default, so a field dropped on the way reads back as its default."""
    fresh = type(model).model_validate({"advertiser_id": "x"} if isinstance(model, AgentConfig) else {})
    for name in type(model).model_fields:
        assert getattr(model, name) != getattr(fresh, name), f"{name} is left at its default in the test"


def _round_trip(model: EnvSettings, monkeypatch: pytest.MonkeyPatch) -> EnvSettings:
    for name, value in model.to_env().items():
        monkeypatch.setenv(name, value)
    return type(model).from_env()


SERVER = Settings(
    redis_url="redis://127.0.0.1:6390/2",
    postgres_url="postgresql://u@db:5433/x",
    redis_prefix="adguide-x",
    pg_schema="adguide_x",
    world_path=Path("/tmp/w.sqlite"),
    backend="rules",
    llm_base_url="http://vllm:8000/v1",
    llm_model="m",
    llm_api_key="sk-1",
    api_keys={"k1": "admin", "k2": "advertiser:adv_0002"},
    api_keys_file=Path("/run/secrets/keys"),
    max_body_bytes=4096,
    max_message_chars=99,
    rate_limit_per_minute=7,
    turn_seconds=12.5,
    job_timeout_s=9.5,
    job_max_tries=3,
    job_retry_base_s=0.5,
    guidance=GuidanceMode.OVERVIEW,
    worker_concurrency=5,
    agent_pool_size=7,
    agent_ttl_s=42.0,
    log_level="DEBUG",
    switch_interval_ms=2.5,
)

AGENT = AgentConfig(
    advertiser_id="adv_0007",
    backend=BackendKind.OPENAI,
    model_dir=Path("/models/m"),
    base_url="http://vllm:8000/v1",
    model_name="adguide",
    api_key="sk-2",
    constrain_arguments=False,
    store_path=Path("/data/world.sqlite"),
    checkpointer=CheckpointerKind.POSTGRES,
    checkpoint_url="postgresql://u@db/x",
    allow_writes=False,
    limits=Limits(max_steps=3, max_seconds=9.0, max_context_tokens=2048),
    policy=Policy(max_bid_change=0.25, max_bid=20.0),
)


TOOLS = ToolSettings(
    sim_draws=50,
    mcp_cache=False,
    market_view="platform",
    redis_url="redis://cache:6379/3",
    embedding_cache=Path("/data/emb.sqlite"),
    mcp_tokens={"t1": "advertiser:adv_0001", "t2": "admin"},
    mcp_tokens_file=Path("/run/secrets/mcp_tokens"),
    store_url="postgresql://u@db:5432/x?options=-csearch_path%3Dadguide_store",
)

AGENT_ENV = AgentEnvironment(model_dir=Path("/models/dpo"), postgres_url="postgresql://u@db/y")

SCREEN = ScreenSettings(intent_screen=False)

SAMPLES: list[EnvSettings] = [SERVER, AGENT, TOOLS, AGENT_ENV, SCREEN]


def test_every_settings_model_has_a_sample() -> None:
    """A new settings model joins the round trip below, or this fails."""

    def all_subclasses(cls: type) -> set[type]:
        return {c for sub in cls.__subclasses__() for c in {sub, *all_subclasses(sub)}}

    assert all_subclasses(EnvSettings) == {type(m) for m in SAMPLES}


@pytest.mark.parametrize("model", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_field_round_trips_through_the_environment(
    model: EnvSettings, clean_env: pytest.MonkeyPatch
) -> None:
    _all_changed(model)
    assert set(type(model).env_names()) == set(type(model).model_fields)
    back = _round_trip(model, clean_env)
    assert back.model_dump() == model.model_dump()


def test_unset_fields_stay_unset_and_the_old_names_hold(clean_env: pytest.MonkeyPatch) -> None:
    env = Settings(backend="rules").to_env()
    assert "ADGUIDE_LLM_BASE_URL" not in env
    assert env["ADGUIDE_BACKEND"] == "rules"
    # the names docker/compose.yaml and the docs use
    assert ENV["world_path"] == "ADGUIDE_WORLD" and ENV["api_keys"] == "ADGUIDE_API_KEYS"
    agent_names = AgentConfig.env_names()
    assert agent_names["base_url"] == "ADGUIDE_LLM_BASE_URL" and agent_names["store_path"] == "ADGUIDE_WORLD"
    assert (
        agent_names["model_name"] == "ADGUIDE_LLM_MODEL" and agent_names["api_key"] == "ADGUIDE_LLM_API_KEY"
    )
    assert agent_names["advertiser_id"] == "ADGUIDE_ADVERTISER"


def test_explicit_values_ignore_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ADGUIDE_AGENT_POOL_SIZE", "3")
    clean_env.setenv("ADGUIDE_BACKEND", "teacher")
    assert Settings().agent_pool_size == 32 and Settings().backend is None
    assert AgentConfig(advertiser_id="adv_0001").backend is None
    assert Settings.from_env().agent_pool_size == 3
    assert Settings.from_env(backend="rules").backend == "rules"  # an option beats the variable


def test_empty_variables_are_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ADGUIDE_BACKEND", "")
    clean_env.setenv("ADGUIDE_AGENT_TTL_S", "")
    s = Settings.from_env()
    assert s.backend is None and s.agent_ttl_s == 300.0


def test_nested_bounds_by_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ADGUIDE_LIMITS__MAX_STEPS", "4")
    clean_env.setenv("ADGUIDE_POLICY__MAX_BID", "12.5")
    config = AgentConfig.from_env("adv_0002")
    assert config.limits.max_steps == 4 and config.limits.max_seconds == Limits().max_seconds
    assert config.policy.max_bid == 12.5
    assert config.advertiser_id == "adv_0002"


def test_the_settings_file_under_the_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# shared by the API, the workers and the CLI\n"
        "ADGUIDE_AGENT_POOL_SIZE=5\nADGUIDE_WORLD=/data/w.sqlite\nADGUIDE_ADVERTISER=adv_0003\n"
        "ADGUIDE_LIMITS__MAX_STEPS=2\nOTHER_TOOL_SETTING=1\n"
    )
    clean_env.setenv("ADGUIDE_WORLD", "/env/w.sqlite")
    s = Settings.from_env()
    assert s.agent_pool_size == 5  # from ./.env
    assert s.world_path == Path("/env/w.sqlite")  # the environment wins
    config = AgentConfig.from_env(defaults={"advertiser_id": "adv_0001"})
    assert config.advertiser_id == "adv_0003" and config.limits.max_steps == 2
    named = tmp_path / "prod.env"
    named.write_text("ADGUIDE_AGENT_TTL_S=9\n")
    clean_env.setenv("ADGUIDE_ENV_FILE", str(named))
    assert Settings.from_env().agent_ttl_s == 9.0 and Settings.from_env().agent_pool_size == 32
    assert Settings.from_env(env_file=None).agent_ttl_s == 300.0
    clean_env.setenv("ADGUIDE_ENV_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(SettingsValueError, match="ADGUIDE_ENV_FILE"):
        Settings.from_env()


def test_defaults_sit_under_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    assert AgentConfig.from_env(defaults={"advertiser_id": "adv_0001"}).advertiser_id == "adv_0001"
    clean_env.setenv("ADGUIDE_ADVERTISER", "adv_0009")
    assert AgentConfig.from_env(defaults={"advertiser_id": "adv_0001"}).advertiser_id == "adv_0009"
    assert AgentConfig.from_env("adv_0002").advertiser_id == "adv_0002"


@pytest.mark.parametrize(
    ("var", "value", "model", "says"),
    [
        ("ADGUIDE_AGENT_POOL_SIZE", "many", Settings, "ADGUIDE_AGENT_POOL_SIZE='many'"),
        ("ADGUIDE_AGENT_TTL_S", "-1", Settings, "ADGUIDE_AGENT_TTL_S='-1'"),
        ("ADGUIDE_PG_SCHEMA", "Robert'); DROP", Settings, "ADGUIDE_PG_SCHEMA="),
        ("ADGUIDE_GUIDANCE", "sometimes", Settings, "ADGUIDE_GUIDANCE='sometimes'"),
        ("ADGUIDE_API_KEYS", "{not json", Settings, "ADGUIDE_API_KEYS"),
        ("ADGUIDE_API_KEYS", '["k"]', Settings, "ADGUIDE_API_KEYS"),
        ("ADGUIDE_BACKEND", "gpt", AgentConfig, "ADGUIDE_BACKEND='gpt'"),
        ("ADGUIDE_LIMITS__MAX_STEPS", "0", AgentConfig, "ADGUIDE_LIMITS__MAX_STEPS='0'"),
        ("ADGUIDE_ALLOW_WRITES", "perhaps", AgentConfig, "ADGUIDE_ALLOW_WRITES='perhaps'"),
        ("ADGUIDE_SIM_DRAWS", "lots", ToolSettings, "ADGUIDE_SIM_DRAWS='lots'"),
        ("ADGUIDE_MARKET_VIEW", "truth", ToolSettings, "ADGUIDE_MARKET_VIEW='truth'"),
        ("ADGUIDE_MCP_CACHE", "maybe", ToolSettings, "ADGUIDE_MCP_CACHE='maybe'"),
    ],
)
def test_invalid_values_name_the_variable(
    var: str, value: str, model: type[EnvSettings], says: str, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv(var, value)
    kwargs: dict[str, Any] = {"advertiser_id": "adv_0001"} if model is AgentConfig else {}
    with pytest.raises(ValueError) as info:
        model.from_env(**kwargs)
    assert says in str(info.value), str(info.value)


def test_secrets_are_not_echoed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ADGUIDE_API_KEYS", '["secret-key-1"]')
    with pytest.raises(SettingsValueError) as info:
        Settings.from_env()
    assert "secret-key-1" not in str(info.value) and "ADGUIDE_API_KEYS" in str(info.value)


def test_nested_models_are_json_in_to_env() -> None:
    env = AGENT.to_env()
    assert Limits.model_validate_json(env["ADGUIDE_LIMITS"]) == AGENT.limits
    assert isinstance(AGENT.limits, BaseModel)


def test_tool_settings_read_as_before(clean_env: pytest.MonkeyPatch) -> None:
    assert ToolSettings.from_env() == ToolSettings()  # nothing set: the old defaults
    clean_env.setenv("ADGUIDE_MARKET_VIEW", " Seller ")
    clean_env.setenv("ADGUIDE_MCP_CACHE", "OFF")
    got = ToolSettings.from_env()
    assert got.market_view == "seller" and got.mcp_cache is False
