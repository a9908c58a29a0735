"""`adguide keywords ...`: negative-keyword suggestions and keyword recommendations for one advertiser.

Bad input ends with one line naming the option and what it accepts (exit code 2). Heavy imports (the
embedding model, scipy) stay inside the commands so `adguide --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

keywords_app = typer.Typer(
    help="Keyword recommendations and negative keywords from search terms.", no_args_is_help=True
)
_err = Console(stderr=True)
_out = Console()

_WORLD = typer.Option(None, "--world", "-w", help="world file (default: $ADGUIDE_HOME/world.sqlite)")
_LAST = typer.Option(30, "--last", help="use the last N days of search terms (1-3,650)")
_AD_GROUP = typer.Option(None, "--ad-group", help="only this ad group (e.g. ag_000012)")
_LIMIT = typer.Option(20, "--limit", help="suggestions to show (1-500)")


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _inputs(advertiser_id: str, world: Path | None, last: int) -> dict[str, Any]:
    """The advertiser's rows for the last `last` days, its keywords, products, negatives and goal."""
    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy at import
    from tools.market.store import default_world_path, open_scoped

    try:
        with open_scoped((world or default_world_path()).expanduser(), advertiser_id, last) as (
            store,
            adv,
            start,
        ):
            return {
                "search_term_days": adv.search_term_days(start, store.end_date),
                "keywords": adv.keywords(),
                "products": adv.products(),
                "negatives": adv.negatives(),
                "target_acos": adv.advertiser.target_acos,
                "auto_ad_group_ids": {
                    g.id for c in adv.campaigns() if c.targeting.value == "auto" for g in adv.ad_groups(c.id)
                },
            }
    except (FileNotFoundError, AdguideError) as err:
        _fail(str(err))


def _run(engine: Any, inputs: dict[str, Any], **options: Any) -> Any:
    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy, pydantic_settings at import
    from tools.keywords.embeddings import EmbeddingModelMissingError, load_model

    with _out.status("loading the sentence-embedding model"):
        try:
            load_model()
        except EmbeddingModelMissingError as err:
            _fail(str(err), code=1)
    try:
        return engine(**inputs, **options)
    except AdguideError as err:
        _fail(str(err))


def _table(columns: tuple[str, ...]) -> Any:
    # lazy: keeps the CLI's start fast
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for col in columns:
        table.add_column(col, justify="left" if col in ("term", "ad group", "why", "reason") else "right")
    return table


@keywords_app.command()
def negatives(
    advertiser_id: str = typer.Argument(..., help="e.g. adv_0001"),
    world: Path | None = _WORLD,
    last: int = _LAST,
    ad_group: str | None = _AD_GROUP,
    limit: int = _LIMIT,
) -> None:
    """Search terms to add as negative keywords: spend without orders, or unrelated to what you sell."""
    # lazy: pulls in numpy, pydantic_settings, scipy at import
    from tools.keywords import suggest_negatives

    inputs = _inputs(advertiser_id, world, last)
    inputs.pop("target_acos")
    inputs.pop("auto_ad_group_ids")
    result = _run(suggest_negatives, inputs, ad_group_id=ad_group, limit=limit)
    table = _table(("term", "ad group", "why", "clicks", "orders", "spend", "sim", "P(low)"))
    for s in result.suggestions:
        table.add_row(
            s.text,
            s.ad_group_id,
            s.kind.value,
            f"{s.clicks:,}",
            f"{s.orders:,}",
            f"${s.spend:,.2f}",
            f"{s.similarity:.2f}",
            f"{s.p_below:.0%}",
        )
    _out.print(table)
    _out.print(
        f"{len(result.suggestions)} of {result.total} suggested negatives shown ({result.start} .. {result.end}); "
        f"they spent ${result.spend_saved:,.2f} and brought ${result.sales_lost:,.2f} of attributed sales.",
        highlight=False,
    )


@keywords_app.command()
def recommend(
    advertiser_id: str = typer.Argument(..., help="e.g. adv_0001"),
    world: Path | None = _WORLD,
    last: int = _LAST,
    ad_group: str | None = _AD_GROUP,
    limit: int = _LIMIT,
    target_acos: float | None = typer.Option(None, "--target-acos", help="default: the advertiser's goal"),
) -> None:
    """New keywords: converting search terms to promote, and related terms, with suggested bids."""
    # lazy: pulls in numpy, pydantic_settings, scipy at import
    from tools.keywords import recommend_keywords

    inputs = _inputs(advertiser_id, world, last)
    goal = inputs.pop("target_acos")
    result = _run(
        recommend_keywords, inputs, ad_group_id=ad_group, limit=limit, target_acos=target_acos or goal
    )
    table = _table(("term", "ad group", "why", "match", "bid", "clicks", "orders", "ACoS", "sim"))
    for s in result.suggestions:
        table.add_row(
            s.text,
            s.ad_group_id,
            s.source.value,
            s.match_type.value,
            f"${s.bid:.2f}",
            f"{s.clicks:,}",
            f"{s.orders:,}",
            f"{s.acos:.0%}" if s.acos is not None else "-",
            f"{s.similarity:.2f}",
        )
    _out.print(table)
    goal_words = f"target ACoS {result.target_acos:.0%}" if result.target_acos is not None else "no sales yet"
    _out.print(
        f"{len(result.suggestions)} of {result.total} keyword suggestions shown ({result.start} .. {result.end}, "
        f"{goal_words}).",
        highlight=False,
    )
