"""`adguide tools ...`: serve the MCP tools, list them with the token cost of their specs."""

from __future__ import annotations

import enum
import json
import secrets
import sys
from pathlib import Path

import typer

tools_app = typer.Typer(
    help="The MCP tool servers (data, simulator, optimizers, uplift, keywords).", no_args_is_help=True
)


class Transport(enum.StrEnum):
    STDIO = "stdio"
    HTTP = "http"


def _scope_from_flags(advertiser: str | None, admin: bool):  # -> Scope
    # lazy: pulls in pydantic_settings at import
    from tools.mcp_server.scope import Scope

    if admin == (advertiser is not None):
        raise typer.BadParameter("give exactly one of --advertiser ID or --admin")
    return Scope.admin_scope() if admin else Scope.advertiser(str(advertiser))


@tools_app.command("serve")
def serve(
    transport: Transport = typer.Option(Transport.STDIO, help="stdio (one client, one scope) or http"),
    advertiser: str | None = typer.Option(None, help="bind the session to this advertiser"),
    admin: bool = typer.Option(False, "--admin", help="admin scope: every call names its advertiser"),
    store: Path | None = typer.Option(None, help="world store (default: $ADGUIDE_HOME/world.sqlite)"),
    tokens: Path | None = typer.Option(
        None, help="http: JSON file of bearer token -> 'advertiser:<id>' | 'admin' (or $ADGUIDE_MCP_TOKENS)"
    ),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8765),
) -> None:
    """Serve the tools over stdio, or over streamable HTTP with bearer-token auth."""
    # lazy: pulls in pydantic_settings at import
    from tools.mcp_server.scope import load_token_map

    # lazy: pulls in mcp, pydantic_settings, starlette at import
    from tools.mcp_server.transports import serve_http, serve_stdio

    try:
        if transport == Transport.STDIO:
            serve_stdio(store, _scope_from_flags(advertiser, admin))
            return
        token_map = load_token_map(tokens)
        if advertiser is not None or admin:
            token = secrets.token_urlsafe(24)
            token_map[token] = _scope_from_flags(advertiser, admin)
            print(f"bearer token for {token_map[token].label}: {token}", file=sys.stderr)
        if not token_map:
            raise typer.BadParameter("http needs --tokens FILE, $ADGUIDE_MCP_TOKENS, --advertiser or --admin")
        print(f"MCP streamable HTTP on http://{host}:{port}/mcp", file=sys.stderr)
        serve_http(store, token_map, host=host, port=port)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(1) from None


@tools_app.command("list")
def list_tools(
    admin: bool = typer.Option(False, "--admin", help="specs as an admin session sees them"),
    as_json: bool = typer.Option(False, "--json", help="print the OpenAI function specs"),
) -> None:
    """The tools, their hints and the rough token cost of each spec (sent to the model every turn)."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from rich.table import Table

    # lazy: keeps the CLI's start fast
    from tools.mcp_server.schemas import TOOLS, Approval, openai_tools, rough_tokens

    specs = openai_tools(admin=admin)
    if as_json:
        print(json.dumps(specs, indent=1))
        return
    table = Table(title="adguide MCP tools")
    for col in ("tool", "hints", "tokens", "description"):
        table.add_column(col)
    total = 0
    for spec, oa in zip(TOOLS, specs, strict=True):
        cost = rough_tokens(json.dumps(oa, separators=(",", ":")))
        total += cost
        hints = "read-only" if spec.read_only else ("destructive" if spec.destructive else "write")
        if spec.approval != Approval.NONE:  # what the guardrails hold it to
            hints += ", user confirms" if spec.approval == Approval.PROPOSE else ", after confirmation only"
        if spec.cached:
            hints += ", cached"
        table.add_row(spec.name, hints, str(cost), spec.description)
    table.add_row(
        "total", "", str(total), f"{len(specs)} tools (rough count: words, numbers, punctuation runs)"
    )
    Console().print(table)
