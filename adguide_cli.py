"""The `adguide` command: one typer app composed of each package's own sub-commands.

Sub-apps are imported lazily inside the commands that need them, so `adguide --help` stays fast and
the packages keep their dependency direction (nothing imports server/, training/ or evals/).
"""

import typer

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

from agent.cli import agent_app  # noqa: E402

app.add_typer(agent_app)  # chat, ask, guide, guardrails as top-level commands

if __name__ == "__main__":
    app()
