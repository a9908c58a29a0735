"""server/config.py: settings read from ADGUIDE_* and written back for child processes."""

from __future__ import annotations

import os
from pathlib import Path

from server.config import ENV, GuidanceMode, Settings


def test_to_env_round_trips_through_from_env(monkeypatch) -> None:
    s = Settings(
        redis_url="redis://127.0.0.1:6390/2",
        redis_prefix="adguide-x",
        pg_schema="adguide_x",
        world_path=Path("/tmp/w.sqlite"),
        backend="rules",
        api_keys={"k1": "admin", "k2": "advertiser:adv_0002"},
        turn_seconds=12.5,
        job_max_tries=3,
        guidance=GuidanceMode.OVERVIEW,
        worker_concurrency=5,
        agent_pool_size=7,
        agent_ttl_s=42.0,
    )
    assert {f for f in Settings.model_fields if f != "api_keys"} == set(ENV)  # every field has its variable
    env = s.to_env()
    assert "ADGUIDE_LLM_BASE_URL" not in env  # unset fields stay unset
    for name in list(os.environ):
        if name.startswith("ADGUIDE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    back = Settings.from_env()
    assert back.model_dump() == s.model_dump()
