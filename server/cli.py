"""`adguide serve api` and `adguide serve worker`: the HTTP API (uvicorn) and batch guidance workers (arq).

Both read ADGUIDE_* settings from the environment (server/config.py); the options here override them.
"""

from __future__ import annotations

import os

import typer

serve_app = typer.Typer(help="Run the HTTP API or a batch guidance worker.", no_args_is_help=True)


@serve_app.command("api")
def api(
    host: str = typer.Option("127.0.0.1", help="interface to listen on (0.0.0.0 in a container)"),
    port: int = typer.Option(8080, min=1, max=65535),
    workers: int = typer.Option(1, min=1, max=64, help="uvicorn worker processes"),
    world: str = typer.Option(
        None, help="world.sqlite (default: $ADGUIDE_WORLD or $ADGUIDE_HOME/world.sqlite)"
    ),
    backend: str = typer.Option(None, help="agent backend: rules | teacher | local | openai"),
) -> None:
    """Serve the chat API, batch endpoints, /metrics and the web page."""
    # lazy: pulls in uvicorn at import
    import uvicorn

    if world:
        os.environ["ADGUIDE_WORLD"] = world
    if backend:
        os.environ["ADGUIDE_BACKEND"] = backend
    # lazy: keeps the CLI's start fast
    from agent.tracing import otlp_endpoint

    # lazy: pulls in pydantic_settings at import
    from server.config import Settings

    try:
        Settings.from_env()
        otlp_endpoint()  # OTEL_EXPORTER_OTLP_ENDPOINT, where set, must be an http(s) URL
    except ValueError as exc:  # a bad setting: say which, exit 2
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    uvicorn.run(
        "server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


@serve_app.command("worker")
def worker(
    burst: bool = typer.Option(False, help="exit once the queue is empty (for one-off runs and benchmarks)"),
    concurrency: int = typer.Option(None, min=1, max=64, help="advertisers at once in this process"),
    world: str = typer.Option(
        None, help="world.sqlite (default: $ADGUIDE_WORLD or $ADGUIDE_HOME/world.sqlite)"
    ),
    backend: str = typer.Option(None, help="agent backend: rules | teacher | local | openai"),
) -> None:
    """Run one batch guidance worker (start several, here or on other machines, to scale out)."""
    # lazy: keeps the CLI's start fast
    from agent.tracing import otlp_endpoint

    # lazy: pulls in pydantic_settings at import
    from server.config import Settings

    # lazy: pulls in arq, fastapi, jsonschema, ... at import
    from server.worker import run

    try:
        settings = Settings.from_env(worker_concurrency=concurrency, world_path=world, backend=backend)
        otlp_endpoint()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    run(settings, burst=burst)
