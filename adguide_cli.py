"""The `adguide` command: one typer app composed of each package's own sub-commands.

Sub-apps are imported lazily inside the commands that need them, so `adguide --help` stays fast and
the packages keep their dependency direction (nothing imports server/, training/ or evals/).
"""

import functools

import typer

from agent.cli import ask, guide
from tools.market.cli import generate, show

app = typer.Typer(help="adguide: an agent that guides advertisers.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """adguide: an agent that guides advertisers."""


from tools.mcp_server.cli import tools_app  # noqa: E402

app.add_typer(tools_app, name="tools")

from tools.market.cli import market_app  # noqa: E402

app.add_typer(market_app, name="market")

from tools.keywords.cli import keywords_app  # noqa: E402

app.add_typer(keywords_app, name="keywords")

from tools.uplift.cli import uplift_app  # noqa: E402

app.add_typer(uplift_app, name="uplift")

from training.cli import train_app  # noqa: E402

app.add_typer(train_app, name="train")

from server.cli import serve_app  # noqa: E402

app.add_typer(serve_app, name="serve")

from evals.cli import eval_app  # noqa: E402

app.add_typer(eval_app, name="eval")

from agent.cli import agent_app  # noqa: E402

app.add_typer(agent_app)  # chat, ask, guide, guardrails as top-level commands


@app.command()
def demo(
    advertiser: str = typer.Option("adv_0001", "--advertiser", "-a", help="whose account to look at"),
    advertisers: int = typer.Option(100, "--advertisers", "-n", help="world size if one must be generated"),
    question: str = typer.Option(
        "Why did my ACoS change last week, and what should I do about it?", "--question", "-q"
    ),
    backend: str | None = typer.Option(None, "--backend", "-b", help="rules | teacher | local | openai"),
) -> None:
    """The main job on the embedded defaults: make a world if there is none, then ask the agent and get guidance."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: pulls in numpy at import
    from tools.market.store import default_world_path

    console = Console()
    if not default_world_path().exists():
        console.rule("1. No world yet: generating one (advertisers, history, experiments)")
        generate(
            advertisers=advertisers,
            days=120,
            seed=7,
            start="2026-06-01",
            out=None,
            categories=None,
            force=False,
            as_json=False,
        )
    console.rule(f"2. The account of {advertiser}")
    show(advertiser_id=advertiser, world=None, last=7)
    console.rule(f"3. {advertiser} asks (default backend: the project's own model when trained): {question}")
    # a proposed change is rejected (no=True): the demo changes nothing
    ask_with = functools.partial(
        ask,
        question=question,
        advertiser=advertiser,
        thread=None,
        model_dir=None,
        base_url=None,
        world=None,
        yes=False,
        no=True,
        trace=False,
    )
    ask_with(backend=backend)
    if backend is None:
        console.rule("3b. The same question, answered by the expert policy (the eval suite's teacher row)")
        ask_with(backend="teacher")
    console.rule("4. Proactive guidance (what the batch job lands in the inbox)")
    guide(
        advertiser=advertiser, backend=backend, world=None, as_json=False, max_items=5, export_bulksheet=None
    )
    console.print(
        "\nNext: [bold]adguide chat -a " + advertiser + "[/bold] to talk to the agent, "
        "[bold]adguide serve api[/bold] for the web chat."
    )


if __name__ == "__main__":
    app()
