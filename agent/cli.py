"""`adguide chat`, `adguide ask "..."`, `adguide guide --advertiser ID`, `adguide guardrails`.

They run on the embedded defaults: the world at $ADGUIDE_HOME/world.sqlite (make it with `adguide market
generate`), the in-process model when one is trained (else the rule-based backend), SQLite thread memory.
The advertiser scope is an option here (the server takes it from auth), never something typed in a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from agent.events import Proposal

agent_app = typer.Typer(help="Talk to the agent.", no_args_is_help=True)

ADVERTISER = typer.Option(
    None, "--advertiser", "-a", help="advertiser id (default: $ADGUIDE_ADVERTISER or adv_0001)"
)
BACKEND = typer.Option(
    None, "--backend", "-b", help="rules | teacher | local | openai (default: local if trained)"
)
MODEL_DIR = typer.Option(None, "--model-dir", help="model dir for the local backend")
BASE_URL = typer.Option(None, "--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
WORLD = typer.Option(None, "--world", help="world.sqlite (default: $ADGUIDE_HOME/world.sqlite)")
THREAD = typer.Option(None, "--thread", "-t", help="conversation id (resume one, or a new id)")


def _config(
    advertiser: str | None,
    backend: str | None,
    model_dir: Path | None,
    base_url: str | None,
    world: Path | None,
    **kw: Any,
) -> Any:
    # lazy: pulls in jsonschema, pydantic_settings at import
    from agent.configuration import AgentConfig

    try:  # the scope: --advertiser, else ADGUIDE_ADVERTISER (environment or settings file), else the demo's
        return AgentConfig.from_env(
            advertiser,
            defaults={"advertiser_id": "adv_0001"},
            backend=backend,
            model_dir=model_dir,
            base_url=base_url,
            store_path=world,
            **kw,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _quiet() -> None:
    for name in ("mcp", "httpx", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _run(coro: Any) -> Any:
    # lazy: pulls in jsonschema, pydantic_settings at import
    from agent.backends import BackendUnavailableError

    # lazy: keeps the CLI's start fast
    from agent.tracing import TracingConfigError

    try:
        return asyncio.run(coro)
    except (FileNotFoundError, BackendUnavailableError, TracingConfigError) as exc:
        # lazy: keeps the CLI's start fast
        from rich.console import Console

        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _render_confirmation(console: Any, event: Proposal) -> None:
    # lazy: keeps the CLI's start fast
    from rich.table import Table

    # lazy: keeps the CLI's start fast
    from agent.events import ExtraConfirmation

    if isinstance(event, ExtraConfirmation):
        console.print(f"[yellow]{event.question}[/yellow]")
        for reason in event.reasons:
            console.print(f"  • {reason}")
        return
    table = Table(title=f"Proposed change ({event.action})")
    for col in ("id", "field", "before", "after"):
        table.add_column(col)
    for c in event.changes or []:
        table.add_row(
            str(c["id"]),
            str(c["field"]),
            str(c["before"]),
            json.dumps(c["after"]) if isinstance(c["after"], dict) else str(c["after"]),
        )
    console.print(table)
    if event.impact:
        # lazy: keeps the CLI's start fast
        from agent.expert import impact_text

        console.print(impact_text(event.impact))
    for reason in event.extra_confirmation:
        console.print(f"[yellow]Beyond the usual bounds: {reason}[/yellow]")


async def _turn(
    agent: Any, console: Any, thread: str, message: str | None, resume: Any = None, interactive: bool = True
) -> None:
    """Stream one turn to the console; confirmations become prompts when interactive."""
    # lazy: keeps the CLI's start fast
    from rich.prompt import Confirm

    # lazy: keeps the CLI's start fast
    from agent import events as ev

    # lazy: pulls in jsonschema, langchain_core, langgraph, ... at import
    from agent.graph import AgentError

    confirmation: Proposal | None = None
    try:
        async for event in agent.stream(thread, message, resume=resume):
            match event:
                case ev.ToolCall():
                    console.print(f"[dim]→ {event.name}({json.dumps(event.args)})[/dim]")
                case ev.ToolResult(ok=False):
                    console.print(f"[dim red]  {event.name} failed: {event.text[:200]}[/dim red]")
                case ev.Final():
                    console.print(event.text)
                case ev.Confirmation() | ev.ExtraConfirmation():
                    confirmation = event
    except AgentError as exc:
        console.print(f"[red]{exc}[/red]")
        return
    if confirmation is None:
        return
    _render_confirmation(console, confirmation)
    if not interactive:
        console.print(f"Waiting for your confirmation: adguide chat --thread {thread}")
        return
    yes = Confirm.ask("Apply this change?", default=False)
    await _turn(agent, console, thread, None, resume="confirm" if yes else "reject", interactive=True)


@agent_app.command()
def chat(
    advertiser: str | None = ADVERTISER,
    thread: str | None = THREAD,
    backend: str | None = BACKEND,
    model_dir: Path | None = MODEL_DIR,
    base_url: str | None = BASE_URL,
    world: Path | None = WORLD,
) -> None:
    """Interactive chat with the agent (confirmations are asked as prompts). 'export FILE' writes the changes you
    confirmed in this chat as a Sponsored Products bulksheet (.csv or .xlsx) to upload in the console. Ctrl-D or
    'exit' to leave."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from rich.prompt import Prompt

    # lazy: pulls in jsonschema, langchain_core, langgraph, ... at import
    from agent.graph import Agent

    _quiet()
    console = Console()
    config = _config(advertiser, backend, model_dir, base_url, world)
    thread_id = thread or f"cli-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with Agent(config) as agent:
            console.print(
                f"[bold]adguide[/bold] · {config.advertiser_id} · backend {config.resolved_backend().value} "
                f"· thread {thread_id}"
            )
            first_record = _last_audit_record(config)  # what this chat confirms comes after it
            if pending := await agent.pending(thread_id):  # a resumed thread waiting for a confirmation
                _render_confirmation(console, pending)
                yes = Prompt.ask("Apply this change?", choices=["y", "n"], default="n") == "y"
                await _turn(agent, console, thread_id, None, resume="confirm" if yes else "reject")
            while True:
                try:
                    message = Prompt.ask("[bold cyan]you[/bold cyan]")
                except (EOFError, KeyboardInterrupt):
                    break
                if message.strip().lower() in ("exit", "quit"):
                    break
                if message.strip().lower().startswith("export "):
                    _export_confirmed(console, config, first_record, Path(message.strip()[7:].strip()))
                    continue
                await _turn(agent, console, thread_id, message)

    _run(main())


@agent_app.command()
def ask(
    question: str = typer.Argument(..., help="the question"),
    advertiser: str | None = ADVERTISER,
    thread: str | None = THREAD,
    backend: str | None = BACKEND,
    model_dir: Path | None = MODEL_DIR,
    base_url: str | None = BASE_URL,
    world: Path | None = WORLD,
    yes: bool = typer.Option(False, "--yes", help="confirm a proposed change without asking"),
    no: bool = typer.Option(False, "--no", help="reject a proposed change without asking"),
    trace: bool = typer.Option(
        False,
        "--trace",
        help="print the turn's spans (model calls, tool calls, guardrail checks) as a tree after the answer",
    ),
) -> None:
    """Ask one question and print the answer."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from agent import tracing

    # lazy: pulls in jsonschema, langchain_core, langgraph, ... at import
    from agent.graph import Agent

    _quiet()
    console = Console()
    config = _config(advertiser, backend, model_dir, base_url, world)
    thread_id = thread or f"ask-{uuid.uuid4().hex[:8]}"
    try:
        spans = tracing.in_memory() if trace else None  # also over OTLP where an endpoint is configured
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def main() -> None:
        async with Agent(config) as agent:
            await _turn(
                agent, console, thread_id, question, interactive=sys.stdin.isatty() and not (yes or no)
            )
            if (yes or no) and await agent.pending(thread_id):
                await _turn(
                    agent, console, thread_id, None, resume="confirm" if yes else "reject", interactive=False
                )

    try:
        _run(main())
    finally:
        if spans is not None:
            tracing.disable()  # flushes the OTLP batch too
            console.rule("trace")
            for line in tracing.span_tree(list(spans.get_finished_spans())):
                console.print(line, highlight=False, markup=False)


@agent_app.command()
def guide(
    advertiser: str | None = ADVERTISER,
    backend: str | None = BACKEND,
    world: Path | None = WORLD,
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    max_items: int = typer.Option(5, min=1, max=20, help="how many guidance items"),
    export_bulksheet: Path | None = typer.Option(
        None,
        "--export-bulksheet",
        help="also write the proposed changes as a Sponsored Products bulksheet (.csv or .xlsx) to upload in "
        "the console (nothing in the account changes)",
    ),
) -> None:
    """Proactive guidance: a ranked list of changes with expected impact, interval and confidence."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: pulls in jsonschema, langchain_core, langgraph, ... at import
    from agent.graph import Agent

    # lazy: pulls in jsonschema, langchain_core, langgraph, ... at import
    from agent.proactive import guide as run_guide

    _quiet()
    console = Console()
    config = _config(advertiser, backend or "rules", None, None, world, checkpointer="memory")

    if export_bulksheet is not None and export_bulksheet.suffix.lower() not in (".csv", ".xlsx"):
        raise typer.BadParameter("name a .csv (or .xlsx) file", param_hint="--export-bulksheet")

    async def main() -> Any:
        async with Agent(config) as agent:
            with console.status("Analysing the account (optimizers and simulations)..."):
                return await run_guide(agent, f"guide-{uuid.uuid4().hex[:8]}", max_items=max_items)

    report = _run(main())
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        console.print(f"[bold]Guidance for {report.advertiser_id}[/bold]")
        console.print(report.text())
        if not report.grounded:
            console.print("[yellow]Some figures could not be verified against the tool results.[/yellow]")
    if export_bulksheet is not None:
        _write_guidance_bulksheet(report, config.store_path, export_bulksheet)


def _last_audit_record(config: Any) -> int:
    """The id of the advertiser's latest audit record (0 for none): changes confirmed later are this session's."""
    # lazy: pulls in numpy at import
    from tools.mcp_server.bulksheet import last_change

    return last_change(config.store_path, config.advertiser_id)


def _export_confirmed(console: Any, config: Any, after_record: int, out: Path) -> None:
    """The changes confirmed in this chat as a bulksheet at `out`; an error is said, and the chat goes on."""
    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy at import
    from tools.mcp_server.bulksheet import confirmed_changes, write_bulksheet

    try:
        export = confirmed_changes(config.store_path, config.advertiser_id, after_record)
        write_bulksheet(export.rows, out)
    except (AdguideError, OSError) as exc:
        console.print(f"[red]bulksheet not written: {exc}[/red]")
        return
    console.print(
        f"Bulksheet with {len(export.rows)} row(s) of the changes confirmed in this chat written to {out}"
    )
    for note in export.notes:
        console.print(f"  note: {note}")


def _write_guidance_bulksheet(report: Any, store: Path | None, out: Path) -> None:
    """The report's proposals as a bulksheet at `out`; what happened goes to stderr (stdout may hold --json)."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: pulls in jsonschema, langchain_core, langgraph, ... at import
    from agent.proactive import guidance_bulksheet

    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy at import
    from tools.mcp_server.bulksheet import write_bulksheet

    try:
        with tempfile.TemporaryDirectory(prefix="adguide-guidance-") as tmp:
            export = _run(guidance_bulksheet(report, store, Path(tmp)))
        write_bulksheet(export.rows, out)
    except (AdguideError, OSError) as exc:
        Console(stderr=True).print(f"[red]bulksheet not written: {exc}[/red]")
        raise typer.Exit(1) from None
    Console(stderr=True).print(
        f"Bulksheet with {len(export.rows)} row(s) for {len(report.items)} guidance item(s) written to {out}"
    )
    for note in export.notes:
        Console(stderr=True).print(f"  note: {note}")


@agent_app.command()
def guardrails() -> None:
    """Precision, recall and false-positive rate of each guardrail on its test sets."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from rich.table import Table

    # lazy: pulls in numpy at import
    from agent.guardrails.evaluate import evaluate_all, fabrication_pass_rate

    logging.getLogger("adguide.guardrails").setLevel(logging.ERROR)
    table = Table(
        title="Guardrails (dev sets were written with the patterns; held-out sets were not tuned on)"
    )
    for col in ("guardrail/set", "cases", "+/-", "precision", "recall", "FPR benign", "exact"):
        table.add_column(col)
    for s in evaluate_all():
        table.add_row(
            s.guardrail,
            str(s.cases),
            f"{s.positives}/{s.negatives}",
            f"{s.precision:.3f}",
            f"{s.recall:.3f}",
            f"{s.false_positive_rate:.3f}",
            f"{s.exact:.3f}",
        )
    console = Console()
    console.print(table)
    console.print(
        "Share of invented numbers the grounding check accepts over a 30-day report:",
        {k: round(v, 3) for k, v in fabrication_pass_rate().items()},
    )
