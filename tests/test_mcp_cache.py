"""The Redis tool-result cache: keys, on/off switch, and graceful behaviour when Redis is down."""

from __future__ import annotations

import uuid

from tools.mcp_server.cache import ToolCache


def _cache(**kw) -> ToolCache:
    return ToolCache(prefix=f"adguide:test:{uuid.uuid4().hex[:8]}", **kw)


def test_key_depends_on_tool_scope_version_and_args():
    c = _cache(enabled=True)
    base = c.key("what_if", "adv_0001", "v1", {"id": "kw_1", "value": 1.0})
    assert base == c.key("what_if", "adv_0001", "v1", {"value": 1.0, "id": "kw_1"})  # argument order
    assert base != c.key("what_if", "adv_0002", "v1", {"id": "kw_1", "value": 1.0})
    assert base != c.key("what_if", "adv_0001", "v2", {"id": "kw_1", "value": 1.0})
    assert base != c.key("what_if", "adv_0001", "v1", {"id": "kw_1", "value": 1.5})
    assert base != c.key("bid_landscape", "adv_0001", "v1", {"id": "kw_1", "value": 1.0})


def test_key_changes_with_the_tools_code(tmp_path):
    """A deploy that changes how a tool computes never reads results the old code cached."""
    from tools.mcp_server.cache import code_version, source_digest

    assert code_version() in _cache(enabled=True).key(
        "recommend_bid", "adv_0001", "v1", {"keyword_id": "kw_1"}
    )
    (tmp_path / "auction").mkdir()
    (tmp_path / "auction" / "landscape.py").write_text("BID_STEPS = 10\n")
    before = source_digest(tmp_path)
    assert source_digest(tmp_path) == before  # stable
    (tmp_path / "auction" / "landscape.py").write_text("BID_STEPS = 12\n")
    assert source_digest(tmp_path) != before


async def test_set_then_get_on_real_redis():
    c = _cache(enabled=True, ttl_s=30)
    key = c.key("t", "adv_0001", "v1", {"a": 1})
    assert await c.get(key) is None
    await c.set(key, '{"x":1}')
    assert await c.get(key) == '{"x":1}'
    assert (c.hits, c.misses) == (1, 1)
    await c.aclose()


async def test_disabled_cache_stores_nothing():
    c = _cache(enabled=False)
    key = c.key("t", "adv_0001", "v1", {})
    await c.set(key, "1")
    assert await c.get(key) is None
    assert c.hits == c.misses == 0


async def test_env_switch(monkeypatch):
    monkeypatch.setenv("ADGUIDE_MCP_CACHE", "off")
    assert ToolCache().enabled is False
    monkeypatch.setenv("ADGUIDE_MCP_CACHE", "on")
    assert ToolCache().enabled is True


async def test_redis_down_means_no_cache_not_failure():
    c = _cache(url="redis://127.0.0.1:1/0", enabled=True)  # nothing listens on port 1
    key = c.key("t", "adv_0001", "v1", {})
    await c.set(key, "1")
    assert await c.get(key) is None
    assert c._redis() is None  # backed off: later calls skip Redis without waiting on it
