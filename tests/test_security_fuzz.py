"""Hostile input, generated: the HTTP API fuzzed from its own OpenAPI schema (schemathesis, in process over ASGI
with real Redis and PostgreSQL), and every MCP tool fuzzed with arbitrary arguments (hypothesis).

What must hold: no 5xx and no hang from the API; from the tools only structured errors (never
`InternalError`, the type an unexpected exception becomes), and both keep serving afterwards."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server_support import ADMIN, ADV1, cleanup, unique_settings

SLOW_REQUEST_S = 30.0  # a rules-backend turn takes about a second; anything near this is a hang
API_EXAMPLES = 25  # per operation: 11 operations, a bounded run (~40 s on the shared 2-core machine)
TOOL_EXAMPLES = 50  # per tool


def _operations(app: Any) -> list[Any]:
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]  # Err raises here


def _fuzz_operation(
    op: Any, headers: dict[str, str], tried: dict[str, int], statuses: set[int]
) -> Callable[[], None]:
    @settings(
        max_examples=API_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy())
    def fuzz(case: Any) -> None:
        started = time.perf_counter()
        response = case.call(headers={**headers, **(case.headers or {})})
        took = time.perf_counter() - started
        tried[op.label] = tried.get(op.label, 0) + 1
        statuses.add(response.status_code)
        assert response.status_code < 500, (op.label, case.body, case.path_parameters, response.text[:500])
        assert took < SLOW_REQUEST_S, (op.label, took)
        if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
            error = response.json()["error"]  # one error shape, a message that says what to do
            assert error["message"] and error["code"] and "Traceback" not in response.text

    return fuzz  # type: ignore[no-any-return]


@pytest.mark.slow
def test_api_fuzzed_from_its_openapi_schema_never_5xx_nor_hangs(writable_world_path: Path) -> None:
    from schemathesis.python import asgi

    from server.app import create_app

    s = unique_settings(writable_world_path)
    app = create_app(s)
    tried: dict[str, int] = {}
    statuses: set[int] = set()
    try:
        operations = _operations(app)
        assert len(operations) >= 11, [op.label for op in operations]
        for op in operations:
            _fuzz_operation(op, ADMIN if "/jobs" in op.path else ADV1, tried, statuses)()
        assert len(tried) == len(operations)
        assert statuses & {200, 201, 202} and statuses & {404, 422}  # both sides of the schema were reached
    finally:
        asgi.shutdown_lifespans()
        cleanup(s)


# --- MCP tools ----------------------------------------------------------------------------------------------

STRUCTURED = {"InvalidInputError", "UnknownIdError", "ScopeError", "ConfirmationError", "UnknownToolError"}

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _arguments(spec_schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The tool's own field names with values of any JSON type, plus stray keys (advertiser_id included)."""
    fields = list(spec_schema.get("properties", {})) + ["advertiser_id", "__proto__", "level"]
    own = st.dictionaries(st.sampled_from(fields), json_value, max_size=5)
    stray = st.dictionaries(st.text(max_size=12), json_value, max_size=3)
    return st.builds(lambda a, b: {**b, **a}, own, stray)


class ToolSession:
    """One in-memory MCP session held open on a background event loop, so sync hypothesis tests can call it."""

    def __init__(self, world: Path, advertiser_id: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.closing = asyncio.Event()
        self.ready: Future[Any] = Future()
        self.holder = asyncio.run_coroutine_threadsafe(self._hold(world, advertiser_id), self.loop)
        self.session = self.ready.result(60)

    async def _hold(self, world: Path, advertiser_id: str) -> None:
        from tools.mcp_server import connect_in_memory
        from tools.mcp_server.cache import ToolCache

        try:
            async with connect_in_memory(world, advertiser_id, cache=ToolCache(enabled=False)) as session:
                self.ready.set_result(session)
                await self.closing.wait()
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
            raise

    def call(self, name: str, args: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        from tools.mcp_server import call

        return asyncio.run_coroutine_threadsafe(call(self.session, name, args), self.loop).result(timeout)

    def tools(self) -> dict[str, dict[str, Any]]:
        listed = asyncio.run_coroutine_threadsafe(self.session.list_tools(), self.loop).result(60)
        return {t.name: t.inputSchema for t in listed.tools}

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.closing.set)
        try:
            self.holder.result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


@pytest.fixture
def tool_session(writable_world_path: Path) -> Iterator[ToolSession]:
    session = ToolSession(writable_world_path, "adv_0001")
    try:
        yield session
    finally:
        session.close()


def _check_result(name: str, args: dict[str, Any], out: dict[str, Any]) -> None:
    if "error" in out:
        err = out["error"]
        assert err["type"] in STRUCTURED, (name, args, err)  # InternalError = an unexpected exception
        assert err["message"] and "Traceback" not in json.dumps(out)


def _fuzz_tool(
    tool_session: ToolSession, name: str, schema: dict[str, Any], counts: dict[str, int]
) -> Callable[[], None]:
    @settings(
        max_examples=TOOL_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(args=_arguments(schema))
    def call(args: dict[str, Any]) -> None:
        out = tool_session.call(name, args)
        _check_result(name, args, out)
        counts[name] = counts.get(name, 0) + 1

    return call  # type: ignore[no-any-return]


@pytest.mark.slow
def test_every_mcp_tool_answers_arbitrary_arguments_with_structured_errors(tool_session: ToolSession) -> None:
    schemas = tool_session.tools()
    assert len(schemas) >= 8
    counts: dict[str, int] = {}
    for name, schema in sorted(schemas.items()):
        _fuzz_tool(tool_session, name, schema, counts)()
    assert set(counts) == set(schemas)
    # the session still serves a plain call after all of it
    assert tool_session.call("account_overview", {})["advertiser"]["id"] == "adv_0001"


def test_tool_arguments_that_name_another_advertiser_or_break_types_get_clear_errors(
    tool_session: ToolSession,
) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("account_overview", {"advertiser_id": "adv_0002"}, "ScopeError"),
        ("performance", {"level": "keyword", "limit": -1}, "InvalidInputError"),
        ("performance", {"level": "galaxy"}, "InvalidInputError"),
        ("performance", {"level": "keyword", "limit": 10**30}, "InvalidInputError"),
        ("performance", {"level": {"$ne": None}}, "InvalidInputError"),
        ("no_such_tool", {}, "UnknownToolError"),
    ]
    for name, args, expected in cases:
        out = tool_session.call(name, args)
        assert out.get("error", {}).get("type") == expected, (name, args, out)
        _check_result(name, args, out)
        assert out["error"]["message"]
