"""One error shape for every failure: `{"error": {"code", "message", "request_id"}}`, with a message that says
what to do. No stack trace ever reaches a caller; unexpected failures are logged with the request id."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.logs import request_id_var

log = logging.getLogger("adguide.server")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


class DependencyDown(ApiError):
    """Redis or PostgreSQL can't be reached: 503, retry later; nothing was accepted."""

    def __init__(self, name: str, exc: BaseException | None = None) -> None:
        super().__init__(
            503,
            "dependency_unavailable",
            f"{name} is unavailable right now; nothing was changed, retry in a few seconds",
            headers={"Retry-After": "5"},
            extra={"dependency": name},
        )
        self.cause = exc


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "status": status,
            "request_id": request_id_var.get(),
            **extra,
        }
    }


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(err.status, err.code, err.message, **err.extra),
        status_code=err.status,
        headers=err.headers,
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


def _describe(err: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
    ctx = err.get("ctx") or {}
    allowed = ""
    if "max_length" in ctx:
        allowed = f" (at most {ctx['max_length']} characters)"
    elif "min_length" in ctx:
        allowed = f" (at least {ctx['min_length']})"
    elif "expected" in ctx:
        allowed = f" (allowed: {ctx['expected']})"
    return f"{where}: {err.get('msg', 'invalid')}{allowed}"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if isinstance(exc, DependencyDown):
            log.warning("dependency down: %s (%r)", exc.extra.get("dependency"), exc.cause)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = (
                next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
            )
            return JSONResponse(
                error_body(
                    400,
                    "malformed_json",
                    f'the body is not valid JSON ({detail}); send a JSON object such as {{"message": "..."}}',
                ),
                status_code=400,
            )
        fields = [_describe(e) for e in errors]
        return JSONResponse(
            error_body(422, "invalid_input", "; ".join(fields), fields=fields), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}; see /docs for the API"
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs for the API"
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(exc.status_code, code, message),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(
                500,
                "internal",
                "something went wrong on our side; it was logged with this request id, retry or report it",
            ),
            status_code=500,
        )
