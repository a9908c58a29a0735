from pathlib import Path

from typer.testing import CliRunner

from adguide_cli import app
from tools.uplift.attribution import FunnelTotals, funnel_attribution
from tools.uplift.metrics import uplift_curves
from tools.uplift.plots import plot_uplift_curves, plot_waterfall

runner = CliRunner()


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_plot_functions_write_pngs(tmp_path: Path) -> None:
    att = funnel_attribution(
        FunnelTotals(impressions=1000, clicks=30, spend=20, orders=3, sales=90),
        FunnelTotals(impressions=1500, clicks=40, spend=35, orders=3, sales=120),
        kpi="acos",
    )
    assert _is_png(plot_waterfall(att, tmp_path / "w.png"))
    curves = uplift_curves([3, 2, 1, 0, 5, 4], [1, 0, 1, 0, 1, 1], [1, 0, 1, 0, 0, 1], n_points=6)
    assert _is_png(plot_uplift_curves({"model": curves}, tmp_path / "sub" / "q.png"))


def test_cli_experiment_and_plots_on_demo_data(tmp_path: Path) -> None:
    res = runner.invoke(app, ["uplift", "experiment", "--demo", "ad_exposure"])
    assert res.exit_code == 0, res.output
    assert "Incrementality: incremental ROAS" in res.output and "A/B: significant" in res.output
    res = runner.invoke(
        app, ["uplift", "plot", "waterfall", "--demo", "--kpi", "roas", "--out", str(tmp_path / "w.png")]
    )
    assert res.exit_code == 0, res.output
    assert _is_png(tmp_path / "w.png")
    res = runner.invoke(
        app, ["uplift", "plot", "qini", "--demo", "promotion", "--out", str(tmp_path / "q.png")]
    )
    assert res.exit_code == 0, res.output
    assert _is_png(tmp_path / "q.png")


def test_cli_errors_are_one_line_not_tracebacks(tmp_path: Path) -> None:
    res = runner.invoke(app, ["uplift", "plot", "waterfall", "--world", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 2
    assert "adguide market generate" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["uplift", "plot", "waterfall", "--demo", "--kpi", "profit"])
    assert res.exit_code == 2 and "kpi is one of" in res.output


def test_cli_reads_experiments_and_reports_from_a_generated_world(tmp_path: Path) -> None:
    world = tmp_path / "world.sqlite"
    res = runner.invoke(app, ["market", "generate", "-n", "4", "-d", "40", "--out", str(world)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["uplift", "experiment", "--world", str(world)])
    assert res.exit_code == 0, res.output
    assert "A/B:" in res.output and "SRM: split" in res.output and "unreliable" not in res.output
    res = runner.invoke(
        app, ["uplift", "plot", "waterfall", "--world", str(world), "--out", str(tmp_path / "w.png")]
    )
    assert res.exit_code == 0, res.output
    assert _is_png(tmp_path / "w.png")
