"""`adguide ask`, `adguide guide` and `adguide guardrails` on a generated world (rules backend)."""

import json

from typer.testing import CliRunner

from adguide_cli import app
from tests.test_agent_graph import a_keyword, bid_of, world, world_template  # noqa: F401  (fixtures)

runner = CliRunner()


def test_ask_answers_and_confirms_with_yes(world, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ADGUIDE_HOME", str(tmp_path))
    out = runner.invoke(
        app, ["ask", "How is my account doing?", "-a", "adv_0001", "-b", "rules", "--world", str(world)]
    )
    assert out.exit_code == 0 and "ad-attributed sales" in out.output
    kw = a_keyword(world)
    out = runner.invoke(
        app,
        [
            "ask",
            f"Set the bid of {kw.id} to ${kw.bid * 1.1:.2f}",
            "-b",
            "rules",
            "--world",
            str(world),
            "--yes",
        ],
    )
    assert out.exit_code == 0 and "Proposed change" in out.output and "Applied" in out.output
    assert bid_of(world, kw.id) == round(kw.bid * 1.1, 2)


def test_missing_world_is_a_clear_error(tmp_path):
    out = runner.invoke(app, ["ask", "hi", "-b", "rules", "--world", str(tmp_path / "nope.sqlite")])
    assert out.exit_code == 1 and "adguide market generate" in out.output


def test_guide_json(world):  # noqa: F811
    out = runner.invoke(app, ["guide", "-a", "adv_0001", "--world", str(world), "--json"])
    assert out.exit_code == 0
    report = json.loads(out.output[out.output.index("{") :])
    assert report["advertiser_id"] == "adv_0001" and report["grounded"] and report["items"]
