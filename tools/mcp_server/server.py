"""The adguide MCP server: the tools of `schemas.TOOLS`, bound to a scope, with errors the model can act on.

`build_server(store_path, scope)` gives a server for one session scope (in-memory, stdio).
`build_server(store_path, tokens={...})` gives one for streamable HTTP where each request's bearer
token selects the scope. The protocol side is the MCP SDK's low-level `Server`, with the tool handlers
registered through its public decorators (`list_tools`, `call_tool`); the HTTP app is assembled from the
SDK's public session manager and bearer-auth middleware, the way FastMCP assembles its own. Output schemas (schemas.py) are not advertised by default: the mcp 1.x client
validates every structured result against them with jsonschema, ~40 ms a call (bench_mcp.py); pass
`output_schemas=True` for clients that want them. Tool specs, handlers included, come from `schemas.TOOLS`
(not from handler signatures), inputs are validated with the pydantic models, every call resolves the
advertiser from the scope (never from the model), and any failure becomes
`{"error": {type, message, field, allowed}}` with isError set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Route
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from tools.errors import AdguideError
from tools.mcp_server.cache import ToolCache
from tools.mcp_server.context import ToolContext
from tools.mcp_server.resolve import AmbiguousReferenceError, Resolved, ResolverCache, default_embed
from tools.mcp_server.results import compact
from tools.mcp_server.schemas import TOOLS, ToolSpec, build_models, input_schema, output_schema
from tools.mcp_server.scope import Scope, ScopeError

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Tools over one advertiser's ad account: reports, an auction simulator, uplift analysis, optimizers "
    "and keyword ideas. Numbers you state must come from tool results. Changes need propose_change, "
    "the user's confirmation, then apply_change."
)

Handler = Callable[[ToolContext, Any], BaseModel]

# Every tool's handler, from its spec (schemas.TOOLS); importing them loads the engines.
HANDLERS: dict[str, Handler] = {spec.name: spec.load_handler() for spec in TOOLS}


def error_result(
    err_type: str,
    message: str,
    field: str | None = None,
    allowed: str | None = None,
    candidates: list[dict[str, Any]] | None = None,
) -> types.CallToolResult:
    error: dict[str, Any] = {"type": err_type, "message": message, "field": field, "allowed": allowed}
    if candidates is not None:  # an ambiguous name: what it may mean, for a question back to the user
        error["candidates"] = candidates
    payload = {"error": error}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(payload, separators=(",", ":")))],
        structuredContent=None,
        isError=True,
    )


def _validation_error(err: ValidationError) -> types.CallToolResult:
    first = err.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    ctx = first.get("ctx") or {}
    allowed = ctx.get("expected") or ", ".join(f"{k} {v}" for k, v in ctx.items() if k != "error") or None
    if first["type"] == "extra_forbidden":
        allowed = "only the fields of the tool's input schema"
    message = f"{field}: {first['msg']}" if field else first["msg"]
    if len(err.errors()) > 1:
        message += f" (and {len(err.errors()) - 1} more problem(s))"
    return error_result("InvalidInputError", message, field, str(allowed) if allowed else None)


class StaticTokens:
    """Bearer tokens → scopes, checked on every HTTP request (mcp's TokenVerifier protocol)."""

    def __init__(self, tokens: dict[str, Scope]) -> None:
        self.tokens = dict(tokens)

    async def verify_token(self, token: str) -> AccessToken | None:
        scope = self.tokens.get(token)
        if scope is None:
            return None
        return AccessToken(token=token, client_id=scope.label, scopes=[scope.label])


# What FastMCP (which this server was built on before) applies to an app on its default host: requests must
# name a loopback host, so a web page cannot reach a local server through DNS rebinding.
LOOPBACK_ONLY = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
    allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
)


class AdguideMCP:
    """An MCP server whose tools are a registry of specs (schemas.TOOLS by default), on the SDK's low-level
    `Server` (`self.server`): list_tools and call_tool are its registered handlers."""

    def __init__(
        self,
        store_path: str | Path,
        scope: Scope | None = None,
        *,
        tokens: dict[str, Scope] | None = None,
        cache: ToolCache | None = None,
        actor: str = "agent",
        output_schemas: bool = False,
        tools: Sequence[ToolSpec] = TOOLS,
    ) -> None:
        # lazy: pulls in numpy at import
        from tools.market.store import MarketStore

        if (scope is None) == (tokens is None):
            raise ValueError("give either a fixed scope or a bearer-token map (HTTP), not both or neither")
        self.tokens = StaticTokens(tokens) if tokens is not None else None
        self.server: Server[Any, Any] = Server("adguide", instructions=INSTRUCTIONS)
        self.server.list_tools()(self.list_tools)
        # the specs' pydantic models validate inputs, with errors in the form the model can act on
        self.server.call_tool(validate_input=False)(self.call_tool)
        # empty, as FastMCP served them: clients see the same capabilities as before
        self.server.list_resources()(_none)
        self.server.list_resource_templates()(_none)
        self.server.list_prompts()(_none)
        self.store_path = Path(store_path)
        self.store_key = str(self.store_path.resolve())
        self.store = MarketStore.open(self.store_path)
        self.fixed_scope = scope
        self.cache = cache if cache is not None else ToolCache()
        self.actor = actor
        self.resolvers = ResolverCache(embed=default_embed)
        self._scoped: dict[str, Any] = {}
        build_models()
        self.specs = {spec.name: spec for spec in tools}
        self.handlers = {name: spec.load_handler() for name, spec in self.specs.items()}
        self._tool_lists = {admin: self._tool_list(tools, admin, output_schemas) for admin in (False, True)}

    # --- transports ----------------------------------------------------------------------------------

    async def run_stdio_async(self) -> None:
        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())

    def streamable_http_app(
        self, *, path: str = "/mcp", stateless: bool = False, json_response: bool = False
    ) -> Starlette:
        """The streamable-HTTP app at `path`; with a token map, every request needs a known bearer token."""
        manager = StreamableHTTPSessionManager(
            app=self.server, json_response=json_response, stateless=stateless, security_settings=LOOPBACK_ONLY
        )
        endpoint: Any = _SessionEndpoint(manager)
        middleware: list[Middleware] = []
        if self.tokens is not None:
            middleware = [
                Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(self.tokens)),
                Middleware(AuthContextMiddleware),
            ]
            endpoint = RequireAuthMiddleware(endpoint, required_scopes=[], resource_metadata_url=None)
        return Starlette(
            routes=[Route(path, endpoint=endpoint)],
            middleware=middleware,
            lifespan=lambda app: manager.run(),
        )

    # --- scope -------------------------------------------------------------------------------------

    def _session_scope(self) -> Scope:
        if self.fixed_scope is not None:
            return self.fixed_scope
        try:
            request = self.server.request_context.request
        except LookupError as exc:
            raise ValueError("no scope outside a request") from exc
        user = request.scope.get("user") if request is not None else None
        token = getattr(user, "access_token", None)
        if token is None:
            raise ScopeError(
                "no bearer token on this request", field=None, allowed="Authorization: Bearer <token>"
            )
        return Scope.parse(token.scopes[0])

    def _context(self, advertiser_id: str, scope: Scope) -> ToolContext:
        adv = self._scoped.get(advertiser_id)
        if adv is None:
            adv = self._scoped[advertiser_id] = self.store.scoped(advertiser_id)
        return ToolContext(
            store=self.store,
            adv=adv,
            advertiser_id=advertiser_id,
            actor=f"mcp:{scope.label}:{self.actor}",
            store_key=self.store_key,
            resolver=self.resolvers.resolver(adv, self.store.data_version),
        )

    # --- MCP handlers ----------------------------------------------------------------------------------

    @staticmethod
    def _tool_list(tools: Sequence[ToolSpec], admin: bool, with_output: bool) -> list[types.Tool]:
        return [
            types.Tool(
                name=spec.name,
                description=spec.description,
                inputSchema=input_schema(spec, admin=admin),
                outputSchema=output_schema(spec) if with_output else None,
                annotations=types.ToolAnnotations(
                    readOnlyHint=spec.read_only,
                    destructiveHint=spec.destructive,
                    idempotentHint=spec.idempotent,
                    openWorldHint=False,
                ),
            )
            for spec in tools
        ]

    # Input schemas come from the specs and differ per session (admin sessions name the advertiser), and an
    # unknown tool answers in the structured error form: FastMCP's function-derived tools could do neither.
    async def list_tools(self) -> list[types.Tool]:
        try:
            admin = self._session_scope().admin
        except (ScopeError, ValueError):  # listed outside a request or without a token: the plain list
            admin = False
        return self._tool_lists[admin]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        spec = self.specs.get(name)
        if spec is None:
            return error_result(
                "UnknownToolError", f"no tool named {name!r}", "name", ", ".join(sorted(self.specs))
            )
        try:
            return await self._run(spec, dict(arguments or {}))
        except AmbiguousReferenceError as err:
            return error_result(
                type(err).__name__,
                err.message,
                err.field,
                err.allowed,
                [c.model_dump(mode="json") for c in err.candidates],
            )
        except AdguideError as err:
            return error_result(type(err).__name__, err.message, err.field, err.allowed)
        except ValidationError as err:
            return _validation_error(err)
        except Exception:  # never a stack trace to the model; the log has it
            log.exception("tool %s failed", name)
            return error_result(
                "InternalError", f"{name} failed unexpectedly; try other arguments or another tool"
            )

    async def _run(self, spec: ToolSpec, arguments: dict[str, Any]) -> types.CallToolResult:
        scope = self._session_scope()
        advertiser_id = scope.resolve(arguments.pop("advertiser_id", None))
        args = spec.input.model_validate(arguments)
        ctx = self._context(advertiser_id, scope)
        if spec.references:  # words -> ids inside the scope; a rare meaning match loads the encoder
            args, resolved = await anyio.to_thread.run_sync(_resolve_references, spec, args, ctx)
        else:
            resolved = []
        key = None
        if spec.cached:
            key = self.cache.key(
                spec.name, advertiser_id, self.store.data_version, args.model_dump(mode="json")
            )
            hit = await self.cache.get(key)
            if hit is not None:
                return _ok(hit, json.loads(hit), resolved)
        handler = self.handlers[spec.name]
        if spec.heavy:
            out = await anyio.to_thread.run_sync(handler, ctx, args)
        else:
            out = handler(ctx, args)
        payload = compact(out.model_dump(mode="json"))
        text = json.dumps(payload, separators=(",", ":"))
        if key is not None:
            await self.cache.set(key, text)
        return _ok(text, payload, resolved)


def _resolve_references(spec: ToolSpec, args: Any, ctx: ToolContext) -> tuple[Any, list[Resolved]]:
    """Every entity argument given in words, as the id it names (schemas.ToolSpec.references)."""
    assert ctx.resolver is not None
    update: dict[str, Any] = {}
    resolved: list[Resolved] = []
    for field_name, ref in spec.references.items():
        value = getattr(args, field_name)
        kinds = ref.kinds_for(args)
        if value is None or not kinds:
            continue
        ids = []
        for item in value if isinstance(value, list) else [value]:
            entity_id, how = ctx.resolver.resolve(item, kinds, field_name)
            ids.append(entity_id)
            if how is not None:
                resolved.append(how)
        update[field_name] = ids if isinstance(value, list) else ids[0]
    return (args.model_copy(update=update) if resolved else args), resolved


def _ok(text: str, payload: dict[str, Any], resolved: list[Resolved] | None = None) -> types.CallToolResult:
    if resolved:  # the words the caller used and what they named, after the (cacheable) result itself
        payload = {**payload, "resolved": [r.model_dump(mode="json") for r in resolved]}
        text = json.dumps(payload, separators=(",", ":"))
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structuredContent=payload
    )


async def _none() -> list[Any]:
    return []


class _SessionEndpoint:
    """The ASGI endpoint that hands each request to the streamable-HTTP session manager."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, send)


def build_server(
    store_path: str | Path,
    scope: Scope | None = None,
    *,
    tokens: dict[str, Scope] | None = None,
    cache: ToolCache | None = None,
    actor: str = "agent",
    output_schemas: bool = False,
    tools: Sequence[ToolSpec] = TOOLS,
) -> AdguideMCP:
    """A server over the world store at `store_path`, bound to `scope` (or to per-request bearer tokens),
    serving the tools of `tools` (the registry, schemas.TOOLS, unless a caller adds its own)."""
    return AdguideMCP(
        store_path,
        scope,
        tokens=tokens,
        cache=cache,
        actor=actor,
        output_schemas=output_schemas,
        tools=tools,
    )


def tool_specs() -> list[ToolSpec]:
    """The tools this server serves: every spec of the registry."""
    return list(TOOLS)
