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


def test_guide_writes_its_proposals_as_a_bulksheet_and_changes_nothing(world, tmp_path):  # noqa: F811
    """`adguide guide --export-bulksheet`: one row per guidance item, read back as a bulksheet whose rows name the
    items' keywords, bids and negatives; the account itself is not written."""
    from tools.market.bulksheet import read_bulksheet
    from tools.market.store import MarketStore

    with MarketStore.open(world) as store:
        before = store.scoped("adv_0001").audit_log()
    out_csv = tmp_path / "guidance.csv"
    out = runner.invoke(
        app, ["guide", "-a", "adv_0001", "--world", str(world), "--json", "--export-bulksheet", str(out_csv)]
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout[out.stdout.index("{") :])  # stdout stays the JSON report
    rows = read_bulksheet(out_csv)
    assert len(rows) == len(report["items"]) and "row(s) for" in out.stderr
    with MarketStore.open(world) as store:
        adv = store.scoped("adv_0001")
        assert adv.audit_log() == before
        keywords = {k.text for k in adv.keywords()}
    for item in report["items"]:  # rows come in the bulksheet's order: campaigns, updates, creates
        p = item["propose"]
        if p["action"] == "set_bid" and "value" in p:
            assert any(r["Bid"] == f"{p['value']:.2f}" and r["Operation"] == "Update" for r in rows), p
        elif p["action"] == "set_budget" and "value" in p:
            assert any(
                r["Daily Budget"] == f"{p['value']:.2f}" and r["Entity"] == "Campaign" for r in rows
            ), p
        elif p["action"] == "add_negatives":
            texts = {k["text"] for k in p["keywords"]}
            assert any(r["Entity"] == "Negative Keyword" and r["Keyword Text"] in texts for r in rows), p
    assert {r["Keyword Text"] for r in rows if r["Entity"] == "Keyword"} <= keywords
    bad = runner.invoke(app, ["guide", "--world", str(world), "--export-bulksheet", str(tmp_path / "x.txt")])
    assert bad.exit_code == 2 and ".csv" in bad.output


def test_chat_exports_the_changes_confirmed_in_it(world, tmp_path, monkeypatch):  # noqa: F811
    """`adguide chat`: a change confirmed at the prompt, then 'export FILE': the bulksheet holds that change (and
    no earlier one); a bad file name is said and the chat goes on."""
    from tools.market.bulksheet import read_bulksheet
    from tools.market.store import MarketStore

    monkeypatch.setenv("ADGUIDE_HOME", str(tmp_path))
    kw = a_keyword(world)
    with MarketStore.open(world) as store:  # an earlier change, before this chat
        store.scoped("adv_0001").set_bid(kw.id, round(kw.bid * 1.05, 2), actor="test")
    new_bid = round(kw.bid * 1.1, 2)
    out_csv = tmp_path / "confirmed.csv"
    lines = [
        f"Set the bid of {kw.id} to ${new_bid:.2f}",
        "y",
        f"export {tmp_path / 'x.txt'}",
        f"export {out_csv}",
    ]
    out = runner.invoke(
        app,
        ["chat", "-a", "adv_0001", "-b", "rules", "--world", str(world)],
        input="\n".join([*lines, "exit", ""]),
    )
    assert out.exit_code == 0, out.output
    assert "Applied" in out.output and "bulksheet not written" in out.output and "1 row(s)" in out.output
    rows = read_bulksheet(out_csv)
    assert len(rows) == 1 and rows[0]["Bid"] == f"{new_bid:.2f}" and rows[0]["Operation"] == "Update"
