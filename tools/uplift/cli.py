"""`adguide uplift ...`: analyze an experiment, explain a KPI change, and draw the plots."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from tools.market.experiments import ExperimentUnits

uplift_app = typer.Typer(
    help="Causal uplift: experiments, incrementality, why a KPI changed.", no_args_is_help=True
)
plot_app = typer.Typer(help="PNG plots: Qini/uplift curves, attribution waterfalls.", no_args_is_help=True)
uplift_app.add_typer(plot_app, name="plot")

WorldOpt = typer.Option(None, "--world", help="world.sqlite (default: $ADGUIDE_HOME/world.sqlite)")
AdvOpt = typer.Option(None, "--advertiser", help="advertiser id, e.g. adv_0001")
ExpOpt = typer.Option(None, "--experiment", help="experiment id (default: the advertiser's first)")
DemoOpt = typer.Option(None, "--demo", help="simulate a demo experiment instead: ad_exposure or promotion")
SeedOpt = typer.Option(0, "--seed", help="random seed (demo data and cross-fitting)")


def _fail(err: Exception) -> None:
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    Console(stderr=True).print(f"[red]error:[/red] {err}")
    raise typer.Exit(code=2)


def _load_units(
    world: Path | None, advertiser: str | None, experiment: str | None, demo: str | None, seed: int
) -> tuple[str, ExperimentUnits, float]:
    """(label, units, planned treatment share)."""
    # lazy: pulls in numpy at import
    from tools.market.experiments import EffectSetup, ExperimentKind, OutcomeKind, simulate_units

    if demo is not None:
        kind = ExperimentKind(demo)
        units, _ = simulate_units(
            experiment_id=f"demo_{kind.value}",
            kind=kind,
            outcome=OutcomeKind.REVENUE,
            n_units=20_000,
            treatment_share=0.5,
            setup=EffectSetup(scale=0.35, heterogeneity=1.0, low_signal=False),
            seed=seed,
        )
        return f"demo {kind.value} experiment (revenue, 20,000 users)", units, 0.5
    # lazy: keeps the CLI's start fast
    from tools.errors import InvalidInputError

    # lazy: pulls in numpy at import
    from tools.market.store import MarketStore

    store = MarketStore.open(world)
    adv_id = advertiser or next(
        (a for a in store.advertiser_ids() if store.scoped(a).experiments()), store.advertiser_ids()[0]
    )
    adv = store.scoped(adv_id)
    exps = adv.experiments()
    if not exps:
        raise InvalidInputError(f"advertiser {adv_id} ran no experiments", field="advertiser")
    exp = next((e for e in exps if e.id == experiment), None) if experiment else exps[0]
    if exp is None:
        raise InvalidInputError(
            f"experiment {experiment} is not one of {adv_id}'s experiments ({[e.id for e in exps]})",
            field="experiment",
        )
    label = f"{exp.id} ({exp.kind}, outcome {exp.outcome}, {exp.n_units:,} users)"
    return label, adv.experiment_units(exp.id), exp.treatment_share


@uplift_app.command("experiment")
def experiment_cmd(
    world: Path | None = WorldOpt,
    advertiser: str | None = AdvOpt,
    experiment: str | None = ExpOpt,
    demo: str | None = DemoOpt,
    seed: int = SeedOpt,
) -> None:
    """Analyze a randomized experiment: A/B with CUPED, who responds (CATE), and ad incrementality."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from rich.progress import Progress

    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy, scipy, sklearn at import
    from tools.uplift.ab import analyze_ab

    # lazy: pulls in numpy, scipy, sklearn at import
    from tools.uplift.cate import fit_cate
    from tools.uplift.effects import effects_by_predicted_group
    from tools.uplift.incrementality import ad_incrementality

    console = Console()
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("loading", total=3)
            label, units, share = _load_units(world, advertiser, experiment, demo, seed)
            progress.update(task, advance=1, description="A/B analysis")
            ab = analyze_ab(
                units.outcome, units.treatment, pre_outcome=units.pre_outcome, expected_treatment_share=share
            )
            progress.update(task, advance=1, description="fitting effects")
            fit = fit_cate(
                units.X,
                units.treatment,
                units.outcome,
                randomized=True,
                covariate_names=units.covariate_names,
                seed=seed,
            )
            groups = effects_by_predicted_group(fit, n_groups=4)
            inc = None
            if (
                units.ad_spend is not None
                and units.attributed_sales is not None
                and units.revenue is not None
            ):
                inc = ad_incrementality(
                    units.revenue,
                    units.treatment,
                    units.ad_spend,
                    units.attributed_sales,
                    expected_treatment_share=share,
                )
            progress.update(task, advance=1)
    except (AdguideError, FileNotFoundError, ValueError) as err:
        _fail(err)
        return
    arm = fit.summary.arms[0]
    console.print(f"[bold]{label}[/bold]")
    console.print(
        f"A/B: {ab.verdict}"
        + (f" (CUPED removed {ab.variance_reduction:.0%} of variance)" if ab.cuped else "")
    )
    console.print(f"SRM: {ab.srm.message}")
    console.print(f"Effects: {arm.message}")
    for g in groups:
        e = g.effect
        console.print(f"  {g.segment}: {e.estimate:.4g} [{e.ci_low:.4g}, {e.ci_high:.4g}] (n={g.n})")
    if inc is not None:
        console.print(f"Incrementality: {inc.verdict}")
    for w in [*ab.warnings, *fit.summary.warnings]:
        console.print(f"[yellow]warning:[/yellow] {w}")


@plot_app.command("qini")
def plot_qini_cmd(
    out: Path = typer.Option(Path("qini.png"), "--out", help="PNG path"),
    world: Path | None = WorldOpt,
    advertiser: str | None = AdvOpt,
    experiment: str | None = ExpOpt,
    demo: str | None = DemoOpt,
    seed: int = SeedOpt,
) -> None:
    """Qini and uplift curves of the fitted effect model on an experiment (honest out-of-fold scores)."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy, scipy, sklearn at import
    from tools.uplift.cate import Estimator, fit_cate

    # lazy: pulls in numpy, scipy, sklearn at import
    from tools.uplift.metrics import uplift_curves
    from tools.uplift.plots import plot_uplift_curves

    try:
        label, units, _ = _load_units(world, advertiser, experiment, demo, seed)
        curves = {}
        for est in (Estimator.X, Estimator.LINEAR):
            fit = fit_cate(units.X, units.treatment, units.outcome, estimator=est, randomized=True, seed=seed)
            curves[f"{est.value} learner"] = uplift_curves(fit.oof_cate(), units.outcome, units.treatment)
        path = plot_uplift_curves(curves, out, title=label)
    except (AdguideError, FileNotFoundError, ValueError) as err:
        _fail(err)
        return
    Console().print(f"wrote {path}")


def _period(value: str, field: str) -> tuple[dt.date, dt.date]:
    # lazy: keeps the CLI's start fast
    from tools.errors import InvalidInputError

    try:
        a, b = value.split(":")
        return dt.date.fromisoformat(a), dt.date.fromisoformat(b)
    except ValueError:
        raise InvalidInputError(
            f"{field} must be START:END dates, e.g. 2026-06-01:2026-06-30 (got {value!r})"
        ) from None


@plot_app.command("waterfall")
def plot_waterfall_cmd(
    out: Path = typer.Option(Path("waterfall.png"), "--out", help="PNG path"),
    kpi: str = typer.Option("sales", "--kpi", help="sales, orders, clicks, spend, acos or roas"),
    before: str | None = typer.Option(None, "--before", help="START:END of the first period"),
    after: str | None = typer.Option(None, "--after", help="START:END of the second period"),
    world: Path | None = WorldOpt,
    advertiser: str | None = AdvOpt,
    demo: bool = typer.Option(False, "--demo", help="use built-in demo totals instead of a world"),
) -> None:
    """Waterfall of a KPI change between two periods, split into funnel drivers (exact)."""
    # lazy: keeps the CLI's start fast
    from rich.console import Console

    # lazy: keeps the CLI's start fast
    from tools.errors import AdguideError

    # lazy: pulls in numpy at import
    from tools.uplift.attribution import FunnelTotals, funnel_attribution

    # lazy: pulls in numpy, scipy, sklearn at import
    from tools.uplift.plots import plot_waterfall

    try:
        if demo:
            b = FunnelTotals(impressions=120_000, clicks=3_000, spend=2_400, orders=300, sales=12_000)
            a = FunnelTotals(impressions=150_000, clicks=3_300, spend=3_100, orders=290, sales=12_500)
            att = funnel_attribution(b, a, kpi=kpi)
        else:
            # lazy: pulls in numpy at import
            from tools.market.store import MarketStore

            store = MarketStore.open(world)
            adv = store.scoped(advertiser or store.advertiser_ids()[0])
            end = store.end_date
            p_b = (
                _period(before, "--before")
                if before
                else (end - dt.timedelta(days=27), end - dt.timedelta(days=14))
            )
            p_a = _period(after, "--after") if after else (end - dt.timedelta(days=13), end)
            att = funnel_attribution(adv.campaign_days(*p_b), adv.campaign_days(*p_a), kpi=kpi)
        path = plot_waterfall(att, out)
    except (AdguideError, FileNotFoundError, ValueError) as err:
        _fail(err)
        return
    console = Console()
    console.print(f"{att.kpi}: {att.before:.4g} -> {att.after:.4g} ({att.method})")
    for c in att.contributions:
        console.print(f"  {c.name}: {c.value:+.4g}")
    console.print(f"wrote {path}")
