"""`adguide keywords ...` on a small generated world: tables and summaries, and one-line errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from adguide_cli import app
from tools.market.data_model import WorldConfig
from tools.market.generate import generate_world_file

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kw") / "world.sqlite"
    generate_world_file(WorldConfig(n_advertisers=2, days=40, seed=5), path)
    return path


def test_negatives_and_recommend_print_a_table_and_a_summary(world: Path) -> None:
    neg = runner.invoke(app, ["keywords", "negatives", "adv_0001", "--world", str(world), "--limit", "5"])
    assert neg.exit_code == 0, neg.output
    assert "suggested negatives shown" in neg.output and "spent $" in neg.output
    rec = runner.invoke(app, ["keywords", "recommend", "adv_0001", "--world", str(world), "--limit", "5"])
    assert rec.exit_code == 0, rec.output
    assert "harvest" in rec.output and "keyword suggestions shown" in rec.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["negatives", "adv_9999"], "adv_9999 does not exist"),
        (["negatives", "adv_0001", "--ad-group", "ag_nope"], "ag_nope"),
        (["recommend", "adv_0001", "--limit", "0"], "limit must be >= 1"),
        (["recommend", "adv_0001", "--last", "0"], "--last must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(world: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["keywords", *args, "--world", str(world)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
