"""`adguide market generate` and `adguide market show`: summaries, and bad input that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tools.market.cli import market_app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(market_app, list(args))


def test_market_is_a_registered_sub_command():
    from adguide_cli import app

    result = runner.invoke(app, ["market", "--help"])
    assert result.exit_code == 0 and "generate" in result.output and "show" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "--advertisers must be >= 1"),
        (["-n", "200000"], "--advertisers must be <= 100000"),
        (["--days", "0"], "--days must be >= 1"),
        (["--days", "100000"], "--days must be <= 3650"),
        (["-n", "5000", "--days", "3000"], "advertisers x days must be <= 1,000,000"),
        (["--seed", "-4"], "--seed must be >= 0"),
        (["--start", "yesterday"], "--start must be a date as YYYY-MM-DD"),
        (["--categories", "gardn,kitchen"], "--categories: unknown category 'gardn'; valid: kitchen"),
        (["--categories", " , "], "--categories: categories must name at least one category"),
    ],
)
def test_bad_sizes_exit_2_naming_the_option_and_write_nothing(tmp_path: Path, args, message):
    result = _run("generate", *args, "--out", str(tmp_path / "world.sqlite"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_unwritable_or_odd_paths_exit_2(tmp_path: Path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = _run("generate", "-n", "2", "--out", str(blocker / "world.sqlite"))
    assert result.exit_code == 2 and "not a writable directory" in result.output
    result = _run("generate", "-n", "2", "--out", str(tmp_path / "world.db"))
    assert result.exit_code == 2 and "--out must end in .sqlite" in result.output
    result = _run("generate", "-n", "2", "--out", str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_generate_writes_a_world_and_reports_it(tmp_path: Path):
    out = tmp_path / "sub" / "world.sqlite"
    result = _run("generate", "-n", "3", "--days", "20", "--seed", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    for table in ("advertisers", "keyword_days", "campaign_days", "search_term_days", "experiments"):
        assert table in result.output
    assert "MB" in result.output and out.is_file() and (out.parent / "truth.sqlite").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["truth.sqlite", "world.sqlite"]

    before = out.read_bytes()
    again = _run("generate", "-n", "3", "--days", "20", "--out", str(out))
    assert again.exit_code == 2 and "already exists; pass --force" in again.output
    assert out.read_bytes() == before

    forced = _run("generate", "-n", "2", "--days", "10", "--out", str(out), "--force", "--json")
    assert forced.exit_code == 0, forced.output
    summary = json.loads(forced.stdout)
    assert summary["rows"]["advertisers"] == 2 and summary["rows"]["keyword_days"] > 0
    assert summary["world_bytes"] == out.stat().st_size


def test_generate_draws_advertisers_from_the_named_categories(tmp_path: Path):
    from tools.market.store import MarketStore

    out = tmp_path / "world.sqlite"
    result = _run("generate", "-n", "3", "--days", "5", "--categories", "garden", "--out", str(out))
    assert result.exit_code == 0, result.output
    with MarketStore.open(out) as store:
        assert {store.scoped(a).advertiser.category for a in store.advertiser_ids()} == {"garden"}


def test_show_gives_an_account_overview(tiny_world_path: Path):
    result = _run("show", "adv_0001", "--world", str(tiny_world_path))
    assert result.exit_code == 0, result.output
    for word in ("adv_0001", "campaign", "ACoS", "products"):
        assert word in result.output
    assert "cmp_" in result.output


def test_show_bad_input_exits_2_without_a_traceback(tiny_world_path: Path, tmp_path: Path):
    unknown = _run("show", "adv_0999", "--world", str(tiny_world_path))
    assert (
        unknown.exit_code == 2
        and "adv_0999 does not exist" in unknown.output
        and "adv_0001" in unknown.output
    )
    missing = _run("show", "adv_0001", "--world", str(tmp_path / "none.sqlite"))
    assert missing.exit_code == 2 and "adguide market generate" in missing.output
    bad_last = _run("show", "adv_0001", "--world", str(tiny_world_path), "--last", "0")
    assert bad_last.exit_code == 2 and "--last must be >= 1" in bad_last.output
    for result in (unknown, missing, bad_last):
        assert "Traceback" not in result.output
