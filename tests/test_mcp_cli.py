"""`adguide tools list|serve`: the listing with token costs, and clear errors for bad flags."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from adguide_cli import app
from tools.mcp_server.schemas import TOOLS

runner = CliRunner()


def test_list_shows_every_tool_and_the_total_token_cost():
    res = runner.invoke(app, ["tools", "list"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for spec in TOOLS:
        assert spec.name in res.output
    assert "total" in res.output and "destructive" in res.output


def test_list_json_gives_openai_function_specs():
    res = runner.invoke(app, ["tools", "list", "--json", "--admin"])
    assert res.exit_code == 0
    specs = json.loads(res.output)
    assert [s["function"]["name"] for s in specs] == [t.name for t in TOOLS]
    assert all("advertiser_id" in s["function"]["parameters"]["required"] for s in specs)


def test_serve_needs_exactly_one_scope(tmp_path):
    res = runner.invoke(
        app, ["tools", "serve", "--transport", "stdio", "--store", str(tmp_path / "w.sqlite")]
    )
    assert res.exit_code != 0 and "--advertiser" in res.output
    res = runner.invoke(
        app, ["tools", "serve", "--advertiser", "adv_0001", "--admin", "--store", str(tmp_path / "w.sqlite")]
    )
    assert res.exit_code != 0


def test_serve_without_a_world_says_how_to_make_one(tmp_path):
    res = runner.invoke(
        app, ["tools", "serve", "--advertiser", "adv_0001", "--store", str(tmp_path / "none.sqlite")]
    )
    assert res.exit_code == 1
    assert "adguide market generate" in res.output
