"""The FastAPI app: `create_app(settings)` (uvicorn: `adguide serve api`, or `server.app:app_from_env`).

Routes: chat (server/chat.py), batch jobs and the inbox (server/batch.py), operations (/healthz, /readyz,
/metrics) and the web chat page (/). OpenAPI at /docs and /openapi.json. Every request gets a request id
(X-Request-ID, taken from the caller when it is sane) that appears in each log line and error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent import tracing
from agent.configuration import adguide_home
from agent.graph import build_graph
from server import errors
from server.agents import AgentPool, warm_up
from server.auth import KeyRing, Role, authenticate
from server.config import Settings
from server.db import Database
from server.deps import Services
from server.errors import error_body
from server.limits import REDIS_DOWN, connect
from server.logs import request_id_var, setup_logging
from server.metrics import Metrics
from tools.errors import AdguideError
from tools.market.db import parse_location
from tools.market.store import MarketStore

log = logging.getLogger("adguide.server")
WEB_DIR = Path(__file__).parent / "web"
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


class RequestContext:
    """Request id, body limits and access log, as plain ASGI (it sees streamed bodies and SSE responses).

    - a body over `max_body_bytes` gets 413 (by Content-Length up front, or while it streams in);
    - a POST/PUT/PATCH with a body under /v1 must be application/json (415 otherwise);
    - every response carries X-Request-ID; one JSON log line per request."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        incoming = headers.get("x-request-id", "")
        rid = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        request_id_var.set(rid)
        method, path = scope["method"], scope["path"]
        started = time.perf_counter()
        status_seen: dict[str, int] = {}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
                route = _route_of(scope)
                self.metrics.request_latency.labels(route=route).observe(time.perf_counter() - started)
                self.metrics.requests.labels(method=method, route=route, status=str(message["status"])).inc()
            await send(message)

        refusal = self._refuse(method, path, headers)
        if refusal is None and method in _BODY_METHODS and "content-length" not in headers:
            receive, too_large = await self._buffer(
                receive
            )  # a streamed body: counted before the app sees it
            refusal = self._too_large() if too_large else None
        if refusal is not None:
            await refusal(scope, receive, send_with_id)
        else:
            await self.app(scope, receive, send_with_id)
        log.info(
            "%s %s %s",
            method,
            path,
            status_seen.get("status", 0),
            extra={
                "method": method,
                "path": path,
                "status": status_seen.get("status", 0),
                "ms": round(1000 * (time.perf_counter() - started), 1),
            },
        )

    async def _buffer(self, receive: Receive) -> tuple[Receive, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return receive, True
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return replay, False

    def _too_large(self) -> Response:
        return JSONResponse(
            error_body(
                413,
                "payload_too_large",
                f"the request body is over {self.max_body} bytes; send a shorter message",
            ),
            status_code=413,
        )

    def _refuse(self, method: str, path: str, headers: dict[str, str]) -> Response | None:
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return JSONResponse(
                    error_body(400, "bad_request", "Content-Length must be a number of bytes"),
                    status_code=400,
                )
            if int(length) > self.max_body:
                return self._too_large()
        has_body = (length is not None and int(length) > 0) or "chunked" in headers.get(
            "transfer-encoding", ""
        )
        if method in _BODY_METHODS and path.startswith("/v1/") and has_body:
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return JSONResponse(
                    error_body(
                        415,
                        "unsupported_media_type",
                        f"send the body as application/json (got {ctype or 'no Content-Type'})",
                    ),
                    status_code=415,
                )
        return None


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # lazy: pulls in arq at import
        from arq.connections import ArqRedis

        tracing.configure_from_env()  # spans over OTLP where OTEL_EXPORTER_OTLP_ENDPOINT is set; off otherwise
        plain = connect(settings.redis_url)
        redis = ArqRedis(connection_pool=plain.connection_pool, default_queue_name=settings.queue_name)
        db = Database(settings)
        await db.open()
        checkpointer = AsyncPostgresSaver(db.pool)  # type: ignore[arg-type]
        svc = Services(
            settings=settings,
            keys=KeyRing(settings.key_map()),
            redis=redis,
            db=db,
            metrics=metrics,
            checkpointer=checkpointer,
            arq=redis,
        )
        svc.pool = AgentPool(settings, checkpointer)
        svc.reader = build_graph().compile(checkpointer=checkpointer)
        app.state.services = svc
        if not len(svc.keys):
            log.warning(
                "no API keys configured (ADGUIDE_API_KEYS / ADGUIDE_API_KEYS_FILE): every /v1 call gets 401"
            )
        warm = asyncio.create_task(asyncio.to_thread(warm_up), name="warm-up")
        svc.background.add(warm)
        warm.add_done_callback(svc.background.discard)
        try:
            await svc.ready()
        except errors.ApiError:
            log.warning(
                "PostgreSQL is not reachable at startup; /readyz reports it, requests get 503 until it is"
            )
        try:
            yield
        finally:
            for task in list(svc.background):
                task.cancel()
            await svc.pool.close()
            await db.close()
            await redis.aclose()
            tracing.flush()

    app = FastAPI(
        title="adguide API",
        version="0.1.0",
        description="Chat with the advertiser guidance agent (server-sent events), confirm its proposals, run "
        "proactive batch guidance and read your inbox. Authenticate with `Authorization: Bearer <key>`.",
        lifespan=lifespan,
    )
    errors.install(app)
    # lazy: pulls in sse_starlette at import
    from server import batch, changes, chat

    app.include_router(chat.router)
    app.include_router(batch.router)
    app.include_router(changes.router)
    _ops_routes(app, settings, metrics)
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    app.add_middleware(RequestContext, settings=settings, metrics=metrics)
    return app


def _ops_routes(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/healthz", tags=["ops"], summary="The process is up (no dependency checks)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz", tags=["ops"], summary="Redis, PostgreSQL, the world data and the model endpoint answer"
    )
    async def readyz(request: Request) -> JSONResponse:
        svc: Services = request.app.state.services
        checks: dict[str, Any] = {}
        try:
            await svc.redis.ping()
            checks["redis"] = {"ok": True}
        except REDIS_DOWN as exc:
            checks["redis"] = {"ok": False, "error": type(exc).__name__}
        try:
            await svc.ready()
            await svc.db.ping()
            checks["postgres"] = {"ok": True}
        except errors.ApiError as exc:
            checks["postgres"] = {"ok": False, "error": exc.message}
        checks["model"] = await _check_model(settings)
        checks["world"] = _check_world(settings)
        ok = all(c["ok"] for c in checks.values())
        down = [name for name, c in checks.items() if not c["ok"]]
        body: dict[str, Any] = {"status": "ready" if ok else "not_ready"}
        if _is_admin(request, svc):  # endpoints and file paths are for operators, not for anyone who asks
            body["checks"] = checks
        if not ok:
            body["message"] = f"not ready: {', '.join(down)} unavailable"
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def prometheus(request: Request) -> Response:
        svc: Services = request.app.state.services
        with contextlib.suppress(*REDIS_DOWN):  # Redis down: the last known value stays; /readyz says so
            metrics.queue_depth.set(await svc.redis.zcard(settings.queue_name))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _is_admin(request: Request, svc: Services) -> bool:
    try:
        return authenticate(request, svc.keys).role == Role.ADMIN
    except errors.ApiError:
        return False


async def _check_model(settings: Settings) -> dict[str, Any]:
    if not settings.llm_base_url:
        return {"ok": True, "backend": settings.backend or "embedded default", "endpoint": None}
    # lazy: pulls in httpx at import
    import httpx

    url = settings.llm_base_url.rstrip("/") + "/models"
    try:
        async with httpx.AsyncClient(timeout=3.0) as client:
            resp = await client.get(url, headers={"Authorization": f"Bearer {settings.llm_api_key}"})
        return {"ok": resp.status_code == 200, "endpoint": url, "status": resp.status_code}
    except httpx.HTTPError as exc:
        return {"ok": False, "endpoint": url, "error": type(exc).__name__}


def _check_world(settings: Settings) -> dict[str, Any]:
    location = parse_location(settings.world_path, adguide_home() / "world.sqlite")
    if location.url is not None:  # a PostgreSQL store: reachable and filled (one pooled connection)
        try:
            MarketStore.open(location.url).close()
        except (AdguideError, FileNotFoundError):
            return {"ok": False, "path": str(location)}
        return {"ok": True, "path": str(location)}
    assert location.path is not None
    return {"ok": location.path.exists(), "path": str(location.path)}


def app_from_env() -> FastAPI:
    """For `uvicorn --factory server.app:app_from_env`: settings from ADGUIDE_* variables, JSON logs."""
    settings = Settings.from_env()
    setup_logging(settings.log_level)
    # CPU work runs in threads (guardrails, tools, the embedded model); they share the interpreter with the event
    # loop, which waits up to one switch interval each time it wants it back.
    sys.setswitchinterval(settings.switch_interval_ms / 1000)
    return create_app(settings)
