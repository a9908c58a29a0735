"""`adguide market export-bulksheet`: the accepted changes of an imported account as an Amazon Sponsored Products
bulksheet, read back to check it holds exactly those changes, addressed by the console's ids."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.test_market_import import search_term_rows, targeting_rows, write_gzip_json, write_json
from tools.errors import AdguideError, UnknownIdError
from tools.market.bulksheet import COLUMNS, BulksheetError, export_bulksheet, read_bulksheet, write_bulksheet
from tools.market.cli import market_app
from tools.market.importer import import_reports
from tools.market.store import MarketStore

ACTOR = "tester"


def amazon_id(name: str) -> str:
    """The id the sample report gives a campaign, ad group or keyword (tests.test_market_import)."""
    return str(abs(hash(name)) % 10**12)


def non_empty(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if v} for r in rows]


def stored_ids(path: Path) -> dict[str, str]:
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT entity_id, external_id FROM external_ids"))
    finally:
        con.close()


@pytest.fixture
def account(tmp_path: Path) -> tuple[Path, str]:
    """An account imported from a 28-day spSearchTerm report that carries campaignId / adGroupId / keywordId."""
    report = write_gzip_json(tmp_path / "spSearchTerm.json.gz", search_term_rows())
    out = tmp_path / "accounts.sqlite"
    return out, import_reports([report], "Acme Outdoor", out).advertiser_id


def _ids(path: Path, adv_id: str) -> dict[str, Any]:
    with MarketStore.open(path) as store:
        adv = store.scoped(adv_id)
        camps = {c.name: c for c in adv.campaigns()}
        groups = {g.name: g for g in adv.ad_groups()}
        kws = {(k.text, k.match_type.value): k for k in adv.keywords()}
    return {"camps": camps, "groups": groups, "kws": kws}


def test_importer_records_the_consoles_ids(account):
    out, adv_id = account
    e = _ids(out, adv_id)
    ids = stored_ids(out)
    assert ids[e["camps"]["Brand - Exact"].id] == amazon_id("Brand - Exact")
    assert ids[e["groups"]["Running"].id] == amazon_id("Running")
    assert ids[e["kws"][("acme trail shoes", "exact")].id] == amazon_id("acme trail shoes")
    assert ids[e["kws"][("close-match", "broad")].id] == amazon_id("close-match")
    assert len(ids) == 3 + 4 + 5  # campaigns, ad groups, keywords / targets


def test_reimport_keeps_ids_consistent(tmp_path: Path):
    out = tmp_path / "accounts.sqlite"
    # first without ids (spTargeting has none), then the search-term report with them: the ids are added
    first = import_reports([write_json(tmp_path / "t.json", targeting_rows())], "Acme", out)
    assert stored_ids(out) == {}
    report = write_gzip_json(tmp_path / "st.json.gz", search_term_rows())
    second = import_reports([report], "Acme", out)
    assert second.advertiser_id == first.advertiser_id and not second.unchanged
    ids = stored_ids(out)
    assert len(ids) == 12
    # the same report again changes nothing; a report giving a campaign a new id replaces the old one
    assert import_reports([report], "Acme", out).unchanged
    assert stored_ids(out) == ids
    rows = search_term_rows(start=dt.date(2026, 3, 29), days=1)
    for r in rows:
        if r["campaignName"] == "Auto":
            r["campaignId"] = 777
    import_reports([write_json(tmp_path / "later.json", rows)], "Acme", out)
    auto = _ids(out, first.advertiser_id)["camps"]["Auto"].id
    assert stored_ids(out)[auto] == "777"
    assert sorted(stored_ids(out).values()).count("777") == 1


def test_malformed_id_is_a_clear_import_error(tmp_path: Path):
    rows = search_term_rows(days=1)
    rows[2]["keywordId"] = "12 34"
    with pytest.raises(AdguideError, match=r"row 3, column 'keywordId': not an id"):
        import_reports([write_json(tmp_path / "bad.json", rows)], "Acme", tmp_path / "a.sqlite")


def test_round_trip_holds_exactly_the_accepted_changes_with_ids(account, tmp_path: Path):
    out, adv_id = account
    e = _ids(out, adv_id)
    kw = e["kws"][("acme trail shoes", "exact")]
    running = e["groups"]["Running"]
    with MarketStore.open(out) as store:
        adv = store.scoped(adv_id)
        adv.set_bid(kw.id, 1.30, ACTOR)
        adv.set_bid(kw.id, 1.45, ACTOR)  # the latest of two bids is exported
        adv.set_budget(e["camps"]["Generic - Broad"].id, 60, ACTOR)
        adv.set_status(e["camps"]["Auto"].id, "paused", ACTOR)
        [new_kw] = adv.add_keywords(running.id, [("trail runners", "phrase", 0.8)], ACTOR)
        adv.set_bid(new_kw.id, 0.95, ACTOR)  # folded into the Create row
        adv.add_negatives(running.id, [("running socks", "exact"), ("free shoes", "phrase")], ACTOR)
        n_changes = len(adv.audit_log())

    export = export_bulksheet(out, adv_id)
    path = write_bulksheet(export.rows, tmp_path / "bulk.csv")
    back = read_bulksheet(path)
    assert back == export.rows
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)

    sp = {"Product": "Sponsored Products"}
    assert non_empty(back) == [
        {
            **sp,
            "Entity": "Campaign",
            "Operation": "Update",
            "Campaign ID": amazon_id("Generic - Broad"),
            "Daily Budget": "60.00",
        },
        {
            **sp,
            "Entity": "Campaign",
            "Operation": "Update",
            "Campaign ID": amazon_id("Auto"),
            "State": "paused",
        },
        {
            **sp,
            "Entity": "Keyword",
            "Operation": "Update",
            "Campaign ID": amazon_id("Brand - Exact"),
            "Ad Group ID": amazon_id("Trail Shoes"),
            "Keyword ID": amazon_id("acme trail shoes"),
            "Bid": "1.45",
        },
        {
            **sp,
            "Entity": "Keyword",
            "Operation": "Create",
            "Campaign ID": amazon_id("Generic - Broad"),
            "Ad Group ID": amazon_id("Running"),
            "Keyword Text": "trail runners",
            "Match Type": "phrase",
            "Bid": "0.95",
            "State": "enabled",
        },
        {
            **sp,
            "Entity": "Negative Keyword",
            "Operation": "Create",
            "Campaign ID": amazon_id("Generic - Broad"),
            "Ad Group ID": amazon_id("Running"),
            "Keyword Text": "running socks",
            "Match Type": "negativeExact",
            "State": "enabled",
        },
        {
            **sp,
            "Entity": "Negative Keyword",
            "Operation": "Create",
            "Campaign ID": amazon_id("Generic - Broad"),
            "Ad Group ID": amazon_id("Running"),
            "Keyword Text": "free shoes",
            "Match Type": "negativePhrase",
            "State": "enabled",
        },
    ]
    assert export.changes == n_changes == 8 and export.by_name == 0
    assert export.counts() == {
        "Update Campaign": 2,
        "Update Keyword": 1,
        "Create Keyword": 1,
        "Create Negative Keyword": 2,
    }
    assert any("only the latest value" in n for n in export.notes)


def test_since_exports_only_later_changes(account):
    out, adv_id = account
    e = _ids(out, adv_id)
    kw = e["kws"][("running shoes", "broad")]
    camp = e["camps"]["Brand - Exact"]
    with MarketStore.open(out) as store:
        adv = store.scoped(adv_id)
        adv.set_bid(kw.id, 0.9, ACTOR)
        adv.set_budget(camp.id, 55, ACTOR)
    con = sqlite3.connect(out)  # the first changes were made a day ago
    con.execute("UPDATE audit SET at = '2026-04-01T09:00:00+00:00'")
    con.commit()
    con.close()
    with MarketStore.open(out) as store:
        store.scoped(adv_id).set_budget(camp.id, 70, ACTOR)
    rows = export_bulksheet(out, adv_id, since=dt.datetime(2026, 4, 2)).rows
    assert non_empty(rows) == [
        {
            "Product": "Sponsored Products",
            "Entity": "Campaign",
            "Operation": "Update",
            "Campaign ID": amazon_id("Brand - Exact"),
            "Daily Budget": "70.00",
        }
    ]
    assert len(export_bulksheet(out, adv_id).rows) == 2
    empty = export_bulksheet(out, adv_id, since=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    assert empty.rows == [] and "no accepted changes" in empty.notes[0]


def test_report_without_ids_exports_by_names(tmp_path: Path):
    out = tmp_path / "accounts.sqlite"
    adv_id = import_reports([write_json(tmp_path / "t.json", targeting_rows())], "Acme", out).advertiser_id
    e = _ids(out, adv_id)
    with MarketStore.open(out) as store:
        adv = store.scoped(adv_id)
        adv.set_bid(e["kws"][("acme shoes", "phrase")].id, 0.99, ACTOR)
        adv.set_bid(e["kws"][("close-match", "broad")].id, 0.40, ACTOR)
        adv.set_status(e["camps"]["Brand - Exact"].id, "paused", ACTOR)
    export = export_bulksheet(out, adv_id)
    back = read_bulksheet(write_bulksheet(export.rows, tmp_path / "bulk.csv"))
    sp = {"Product": "Sponsored Products"}
    assert non_empty(back) == [
        {
            **sp,
            "Entity": "Campaign",
            "Operation": "Update",
            "Campaign Name": "Brand - Exact",
            "State": "paused",
        },
        {
            **sp,
            "Entity": "Keyword",
            "Operation": "Update",
            "Campaign Name": "Brand - Exact",
            "Ad Group Name": "Trail Shoes",
            "Keyword Text": "acme shoes",
            "Match Type": "phrase",
            "Bid": "0.99",
        },
        {
            **sp,
            "Entity": "Product Targeting",
            "Operation": "Update",
            "Campaign Name": "Auto",
            "Ad Group Name": "Auto group",
            "Product Targeting Expression": "close-match",
            "Bid": "0.40",
        },
    ]
    assert export.by_name == 3
    assert any("instead of the console's id" in n and "no campaignId" in n for n in export.notes)


def test_unknown_advertiser_and_missing_ids_are_clear_errors(account, tmp_path: Path):
    out, adv_id = account
    with pytest.raises(UnknownIdError, match="advertiser adv_9999 does not exist"):
        export_bulksheet(out, "adv_9999")
    with pytest.raises(BulksheetError, match="no accounts file"):
        export_bulksheet(tmp_path / "nope.sqlite", adv_id)
    # an audit record for a keyword the account does not hold (written behind the store's back)
    con = sqlite3.connect(out)
    con.execute(
        "INSERT INTO audit (adv, actor, action, entity, before, after, at) VALUES "
        "(1, 'x', 'set_bid', 'kw_9999999', '0.5', '0.7', '2026-04-01T00:00:00+00:00')"
    )
    con.commit()
    con.close()
    with pytest.raises(
        BulksheetError, match=r"keyword kw_9999999 is not in adv_0001's account.*nothing exported"
    ):
        export_bulksheet(out, adv_id)


def test_unknown_action_is_refused(account):
    out, adv_id = account
    con = sqlite3.connect(out)
    con.execute(
        "INSERT INTO audit (adv, actor, action, entity, before, after, at) VALUES "
        "(1, 'x', 'set_placement', 'cmp_00001', NULL, '0.5', '2026-04-01T00:00:00+00:00')"
    )
    con.commit()
    con.close()
    with pytest.raises(BulksheetError, match="'set_placement' has no bulksheet row"):
        export_bulksheet(out, adv_id)


def test_read_bulksheet_refuses_other_files(tmp_path: Path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(BulksheetError, match="no 'Product' column"):
        read_bulksheet(p)
    with pytest.raises(BulksheetError, match="openpyxl|name a .csv"):
        write_bulksheet([], tmp_path / "x.txt")


async def test_a_change_applied_through_the_mcp_tools_is_exported(account):
    from tools.mcp_server import call, connect_in_memory
    from tools.mcp_server.cache import ToolCache

    out, adv_id = account
    kw = _ids(out, adv_id)["kws"][("hiking boots", "broad")]
    new_bid = round(kw.bid + 0.25, 2)
    async with connect_in_memory(out, adv_id, cache=ToolCache(enabled=False), actor=ACTOR) as session:
        prop = await call(session, "propose_change", {"action": "set_bid", "id": kw.id, "value": new_bid})
        assert "error" not in prop, prop
        done = await call(session, "apply_change", {"token": prop["token"]})
        assert done["applied"], done
    [row] = export_bulksheet(out, adv_id).rows
    assert non_empty([row]) == [
        {
            "Product": "Sponsored Products",
            "Entity": "Keyword",
            "Operation": "Update",
            "Campaign ID": amazon_id("Generic - Broad"),
            "Ad Group ID": amazon_id("Hiking"),
            "Keyword ID": amazon_id("hiking boots"),
            "Bid": f"{new_bid:.2f}",
        }
    ]


def test_cli_export_json_and_errors(account, tmp_path: Path):
    out, adv_id = account
    kw = _ids(out, adv_id)["kws"][("acme shoes", "phrase")]
    with MarketStore.open(out) as store:
        store.scoped(adv_id).set_bid(kw.id, 1.05, ACTOR)
    runner = CliRunner()
    target = tmp_path / "bulk.csv"
    res = runner.invoke(
        market_app,
        ["export-bulksheet", "--advertiser", adv_id, "--world", str(out), "-o", str(target), "--json"],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["advertiser_id"] == adv_id and summary["rows"] == 1 and summary["by_name"] == 0
    assert summary["counts"] == {"Update Keyword": 1}
    assert read_bulksheet(target)[0]["Bid"] == "1.05"

    for args, message in (
        (["--advertiser", "adv_9999"], "advertiser adv_9999 does not exist"),
        (["--advertiser", adv_id, "--since", "yesterday"], "--since must be an ISO date"),
        (["--advertiser", adv_id, "-o", str(tmp_path / "b.txt")], "name a .csv (or .xlsx) file"),
    ):
        argv = ["export-bulksheet", "--world", str(out), *args]
        argv += [] if "-o" in args else ["-o", str(tmp_path / "b.csv")]
        res = runner.invoke(market_app, argv)
        assert res.exit_code != 0
        lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0], res.output
    assert not (tmp_path / "b.csv").exists()
