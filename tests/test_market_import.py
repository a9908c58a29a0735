"""`adguide market import`: Sponsored Products reports (API v3 GZIP_JSON / JSON, console CSV) into an accounts
store. The tests write small reports in the documented formats themselves, malformed ones included."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tools.errors import AdguideError
from tools.market.cli import market_app
from tools.market.importer import ReportImportError, ReportType, canonical_column, import_reports
from tools.market.store import MarketStore

START = dt.date(2026, 3, 1)
DAYS = 28

# (campaign, budget, ad group, keyword or target, matchType, keywordBid, search terms)
ACCOUNT = [
    ("Brand - Exact", 40.0, "Trail Shoes", "acme trail shoes", "EXACT", 1.10, ["acme trail shoes"]),
    (
        "Brand - Exact",
        40.0,
        "Trail Shoes",
        "acme shoes",
        "PHRASE",
        0.85,
        ["acme shoes men", "acme shoes sale"],
    ),
    (
        "Generic - Broad",
        25.0,
        "Running",
        "running shoes",
        "BROAD",
        0.70,
        ["running shoes", "best running shoes women", "running socks"],
    ),
    ("Generic - Broad", 25.0, "Hiking", "hiking boots", "BROAD", None, ["hiking boots waterproof"]),
    (
        "Auto",
        15.0,
        "Auto group",
        "close-match",
        "TARGETING_EXPRESSION_PREDEFINED",
        0.55,
        ["trail running shoes", "b0c1234567"],
    ),
]


def search_term_rows(start: dt.date = START, days: int = DAYS, seed: int = 1) -> list[dict[str, Any]]:
    """spSearchTerm rows as the API v3 report gives them (timeUnit DAILY)."""
    rng = random.Random(seed)
    rows = []
    for d in range(days):
        date = (start + dt.timedelta(days=d)).isoformat()
        for camp, budget, group, text, match, bid, terms in ACCOUNT:
            for term in terms:
                impressions = rng.randint(5, 400)
                clicks = rng.randint(0, min(impressions, 12))
                orders = rng.randint(0, clicks)
                row = {
                    "date": date,
                    "campaignId": abs(hash(camp)) % 10**12,
                    "campaignName": camp,
                    "campaignBudgetAmount": budget,
                    "campaignBudgetType": "DAILY_BUDGET",
                    "adGroupId": abs(hash(group)) % 10**12,
                    "adGroupName": group,
                    "keywordId": abs(hash(text)) % 10**12,
                    "keyword": None if match.startswith("TARGETING") else text,
                    "targeting": text,
                    "keywordType": match if match.startswith("TARGETING") else "KEYWORD",
                    "matchType": match,
                    "searchTerm": term,
                    "impressions": impressions,
                    "clicks": clicks,
                    "cost": round(clicks * rng.uniform(0.3, 1.4), 2),
                    "purchases7d": orders,
                    "sales7d": round(orders * rng.uniform(15, 45), 2),
                    "costPerClick": None,
                }
                if bid is not None:
                    row["keywordBid"] = bid
                rows.append(row)
    return rows


def targeting_rows(start: dt.date = START, days: int = DAYS, seed: int = 2) -> list[dict[str, Any]]:
    """spTargeting rows (one per keyword/target and day)."""
    rng = random.Random(seed)
    rows = []
    for d in range(days):
        for camp, budget, group, text, match, bid, _ in ACCOUNT:
            impressions = rng.randint(50, 1500)
            clicks = rng.randint(0, 30)
            orders = rng.randint(0, clicks // 2)
            rows.append(
                {
                    "date": (start + dt.timedelta(days=d)).isoformat(),
                    "campaignName": camp,
                    "campaignBudgetAmount": budget,
                    "adGroupName": group,
                    "keyword": text,
                    "targeting": text,
                    "matchType": match,
                    "keywordBid": bid,
                    "impressions": impressions,
                    "clicks": clicks,
                    "cost": round(clicks * rng.uniform(0.3, 1.4), 2),
                    "purchases7d": orders,
                    "sales7d": round(orders * rng.uniform(15, 45), 2),
                }
            )
    return rows


CONSOLE_HEADERS = {
    "date": "Date",
    "campaignName": "Campaign Name",
    "adGroupName": "Ad Group Name",
    "targeting": "Targeting",
    "matchType": "Match Type",
    "searchTerm": "Customer Search Term",
    "impressions": "Impressions",
    "clicks": "Clicks",
    "cost": "Spend",
    "purchases7d": "7 Day Total Orders (#)",
    "sales7d": "7 Day Total Sales ($)",
}


def write_gzip_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(gzip.compress(json.dumps(rows).encode()))
    return path


def write_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(rows, indent=1))
    return path


def write_console_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A console download: display headers, dates as 'Mar 01, 2026', money with a currency sign."""
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(CONSOLE_HEADERS.values())
        for r in rows:
            date = dt.date.fromisoformat(r["date"]).strftime("%b %d, %Y")
            values = {
                **r,
                "date": date,
                "cost": f"${r['cost']:,.2f}",
                "sales7d": f"${r['sales7d']:,.2f}",
                "matchType": r["matchType"].title() if not r["matchType"].startswith("TARGETING") else "-",
            }
            w.writerow(values[k] for k in CONSOLE_HEADERS)
    return path


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "impressions": sum(r["impressions"] for r in rows),
        "clicks": sum(r["clicks"] for r in rows),
        "spend_cents": sum(round(r["cost"] * 100) for r in rows),
        "orders": sum(r["purchases7d"] for r in rows),
        "sales_cents": sum(round(r["sales7d"] * 100) for r in rows),
    }


def stored_totals(days: list[Any]) -> dict[str, Any]:
    return {
        "impressions": sum(d.impressions for d in days),
        "clicks": sum(d.clicks for d in days),
        "spend_cents": sum(round(d.spend * 100) for d in days),
        "orders": sum(d.orders for d in days),
        "sales_cents": sum(round(d.sales * 100) for d in days),
    }


def read_back(path: Path, adv_id: str) -> dict[str, dict[str, Any]]:
    with MarketStore.open(path) as store:
        adv = store.scoped(adv_id)
        first, last = store.start_date, store.end_date
        return {
            "keyword_days": stored_totals(adv.keyword_days(first, last)),
            "campaign_days": stored_totals(adv.campaign_days(first, last)),
            "search_term_days": stored_totals(adv.search_term_days(first, last)),
        }


def digest(path: Path) -> str:
    """Every row of every table, meta included."""
    h = hashlib.sha256()
    con = sqlite3.connect(path)
    try:
        tables = [
            r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        for t in tables:
            h.update(t.encode())
            for row in sorted(repr(r) for r in con.execute(f"SELECT * FROM {t}")):
                h.update(row.encode())
    finally:
        con.close()
    return h.hexdigest()


@pytest.fixture
def st_rows() -> list[dict[str, Any]]:
    return search_term_rows()


@pytest.fixture
def imported(tmp_path: Path, st_rows) -> tuple[Path, Path, str]:
    """A 28-day spSearchTerm GZIP_JSON report imported into a new accounts file."""
    report = write_gzip_json(tmp_path / "spSearchTerm.json.gz", st_rows)
    out = tmp_path / "accounts.sqlite"
    summary = import_reports([report], "Acme Outdoor", out)
    return out, report, summary.advertiser_id


# --- reading and totals ----------------------------------------------------------------------------------


def test_gzip_search_term_report_28_days_exact_totals(tmp_path: Path, st_rows):
    report = write_gzip_json(tmp_path / "report.json.gz", st_rows)
    out = tmp_path / "accounts.sqlite"
    summary = import_reports([report], "Acme Outdoor", out)
    assert summary.created and not summary.unchanged
    assert summary.advertiser_id == "adv_0001"
    assert summary.files[0].report_type == ReportType.SEARCH_TERM and summary.files[0].format == "GZIP_JSON"
    assert (summary.start, summary.end) == (START, START + dt.timedelta(days=DAYS - 1))
    expected = totals(st_rows)
    back = read_back(out, summary.advertiser_id)
    assert back == {"keyword_days": expected, "campaign_days": expected, "search_term_days": expected}
    assert summary.totals == {
        "impressions": expected["impressions"],
        "clicks": expected["clicks"],
        "spend": expected["spend_cents"] / 100,
        "orders": expected["orders"],
        "sales": expected["sales_cents"] / 100,
    }
    assert summary.rows == {
        "keyword_days": DAYS * len(ACCOUNT),
        "campaign_days": DAYS * 3,
        "search_term_days": len(st_rows),
    }

    with MarketStore.open(out) as store:
        assert (store.start_date, store.end_date) == (summary.start, summary.end)
        assert store.data_version  # generation_id and write_count exist
        adv = store.scoped(summary.advertiser_id)
        assert not adv.has_auction_log()
        camps = {c.name: c for c in adv.campaigns()}
        assert set(camps) == {"Brand - Exact", "Generic - Broad", "Auto"}
        assert [c.id for c in adv.campaigns()] == ["cmp_00001", "cmp_00002", "cmp_00003"]
        assert camps["Auto"].targeting == "auto" and camps["Brand - Exact"].targeting == "manual"
        assert camps["Brand - Exact"].daily_budget == 40.0
        groups = adv.ad_groups()
        assert [g.id for g in groups] == [f"ag_{i:06d}" for i in range(1, 5)]
        kws = {(k.text, k.match_type.value): k for k in adv.keywords()}
        assert (
            kws[("acme trail shoes", "exact")].bid == 1.10
            and kws[("acme trail shoes", "exact")].id == "kw_0000001"
        )
        assert kws[("close-match", "broad")].bid == 0.55
        # no keywordBid: the mean cost per click
        hiking = [r for r in st_rows if r["keyword"] == "hiking boots"]
        cpc = sum(r["cost"] for r in hiking) / sum(r["clicks"] for r in hiking)
        assert kws[("hiking boots", "broad")].bid == pytest.approx(round(cpc, 2))
        days = adv.keyword_days(store.start_date, store.end_date)
        assert all(
            d.avg_position is None and d.impression_share is None and d.organic_sales == 0 for d in days
        )
        products = adv.products()
        assert len(products) == len(groups) and all(p.margin == 0.3 and p.price > 0 for p in products)
        trail = [r for r in st_rows if r["adGroupName"] == "Trail Shoes"]
        price = sum(r["sales7d"] for r in trail) / sum(r["purchases7d"] for r in trail)
        trail_group = next(g for g in groups if g.name == "Trail Shoes")
        assert next(p for p in products if p.id in trail_group.product_ids).price == pytest.approx(
            price, abs=0.01
        )
        terms = {d.term for d in adv.search_term_days(store.start_date, store.end_date)}
        assert terms == {t for *_, ts in ACCOUNT for t in ts}
    assert any("placeholder product" in a for a in summary.assumptions)


def test_console_csv_with_display_headers(tmp_path: Path, st_rows):
    report = write_console_csv(tmp_path / "Sponsored Products Search term report.csv", st_rows)
    summary = import_reports([report], "Acme Outdoor", tmp_path / "accounts.sqlite")
    assert summary.files[0].format == "CSV" and summary.files[0].report_type == ReportType.SEARCH_TERM
    expected = totals(st_rows)
    assert read_back(tmp_path / "accounts.sqlite", summary.advertiser_id)["search_term_days"] == expected
    assert summary.counts["keywords"] == len(ACCOUNT)
    assert canonical_column("7 Day Total Sales ($)") == "sales7d"
    assert canonical_column(" Customer Search Term ") == "searchTerm"


def write_console_xlsx(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The console's XLSX download: display headers, dates as dates, money as numbers, trailing empty rows."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(CONSOLE_HEADERS.values()))
    for r in rows:
        values = {**r, "date": dt.date.fromisoformat(r["date"]), "matchType": r["matchType"].title()}
        sheet.append([values[k] for k in CONSOLE_HEADERS])
    sheet.append([None] * len(CONSOLE_HEADERS))
    book.save(path)
    return path


def test_console_xlsx_is_read_as_its_csv_twin(tmp_path: Path, st_rows):
    rows = [r for r in st_rows if not r["matchType"].startswith("TARGETING")]
    report = write_console_xlsx(tmp_path / "Sponsored Products Search term report.xlsx", rows)
    summary = import_reports([report], "Acme Outdoor", tmp_path / "accounts.sqlite")
    assert summary.files[0].format == "XLSX" and summary.files[0].report_type == ReportType.SEARCH_TERM
    assert summary.files[0].rows == len(rows)
    assert read_back(tmp_path / "accounts.sqlite", summary.advertiser_id)["search_term_days"] == totals(rows)
    twin = write_console_csv(tmp_path / "twin.csv", rows)
    again = import_reports([twin], "Acme Outdoor", tmp_path / "csv.sqlite")
    assert read_back(tmp_path / "csv.sqlite", again.advertiser_id) == read_back(
        tmp_path / "accounts.sqlite", summary.advertiser_id
    )


def test_a_damaged_workbook_is_a_clear_error_and_writes_nothing(tmp_path: Path):
    bad = tmp_path / "report.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ReportImportError, match="not a readable XLSX workbook"):
        import_reports([bad], "Acme Outdoor", tmp_path / "accounts.sqlite")
    assert not (tmp_path / "accounts.sqlite").exists()


def test_targeting_json_and_search_terms_together(tmp_path: Path, st_rows):
    """keyword-days come from spTargeting (complete), search-term-days from spSearchTerm, campaign-days from
    spCampaigns where given, else the keyword sums."""
    tg = targeting_rows()
    camp_rows = [
        {
            "date": (START + dt.timedelta(days=d)).isoformat(),
            "campaignName": "Brand - Exact",
            "campaignStatus": "ENABLED",
            "campaignBudgetAmount": 45.0,
            "impressions": 5000 + d,
            "clicks": 60,
            "cost": 51.25,
            "purchases7d": 7,
            "sales7d": 210.5,
        }
        for d in range(DAYS)
    ]
    files = [
        write_json(tmp_path / "spTargeting.json", tg),
        write_gzip_json(tmp_path / "spSearchTerm.json.gz", st_rows),
        write_json(tmp_path / "spCampaigns.json", camp_rows),
    ]
    out = tmp_path / "accounts.sqlite"
    summary = import_reports(files, "Acme Outdoor", out)
    assert [f.report_type for f in summary.files] == [
        ReportType.TARGETING,
        ReportType.SEARCH_TERM,
        ReportType.CAMPAIGNS,
    ]
    back = read_back(out, summary.advertiser_id)
    assert back["keyword_days"] == totals(tg)
    assert back["search_term_days"] == totals(st_rows)
    other = [r for r in tg if r["campaignName"] != "Brand - Exact"]
    expected_campaigns = {k: totals(other)[k] + totals(camp_rows)[k] for k in totals(other)}
    assert back["campaign_days"] == expected_campaigns
    with MarketStore.open(out) as store:
        brand = next(c for c in store.scoped(summary.advertiser_id).campaigns() if c.name == "Brand - Exact")
        assert brand.daily_budget == 45.0


# --- malformed reports: a clear error, and nothing written -----------------------------------------------


def _set(rows: list[dict[str, Any]], i: int, **changes: Any) -> list[dict[str, Any]]:
    rows = [dict(r) for r in rows]
    rows[i].update(changes)
    return rows


@pytest.mark.parametrize(
    ("break_rows", "message"),
    [
        (lambda rows: _set(rows, 6, clicks=-3), "row 7, column 'clicks': must be >= 0"),
        (lambda rows: _set(rows, 9, impressions="many"), "row 10, column 'impressions': not a number"),
        (lambda rows: _set(rows, 2, purchases7d=1.5), "row 3, column 'purchases7d': must be a whole number"),
        (lambda rows: _set(rows, 40, date="2026-02-30"), "row 41, column 'date': not a date"),
        (
            lambda rows: _set(rows, 11, matchType="FUZZY"),
            "row 12, column 'matchType': unknown match type 'FUZZY'",
        ),
        (
            lambda rows: (
                [r for r in rows[:5]] + [{k: v for k, v in rows[5].items() if k != "cost"}] + rows[6:]
            ),
            "row 6, column 'cost': missing",
        ),
        (lambda rows: _set(rows, 0, sales7d=None), "row 1, column 'sales7d': empty"),
        (
            lambda rows: [{k: v for k, v in r.items() if k != "date"} for r in rows],
            "row 1, column 'date': missing; an spSearchTerm report needs it (a summary report has none",
        ),
    ],
)
def test_malformed_json_names_row_and_column_and_leaves_store_unchanged(
    tmp_path, imported, st_rows, break_rows, message
):
    out, _, _ = imported
    before = digest(out)
    bad = write_gzip_json(
        tmp_path / "bad.json.gz", break_rows(search_term_rows(start=START + dt.timedelta(days=5)))
    )
    good = write_json(tmp_path / "good.json", targeting_rows(start=START - dt.timedelta(days=3), days=5))
    with pytest.raises(AdguideError) as err:
        import_reports([good, bad], "Acme Outdoor", out)
    assert str(bad) in str(err.value) and message in str(err.value)
    assert digest(out) == before


def _drop_column(lines: list[str], header: str) -> list[str]:
    rows = list(csv.reader(lines))
    at = rows[0].index(header)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([r[:at] + r[at + 1 :] for r in rows])
    return buf.getvalue().splitlines()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: _drop_column(lines, "Clicks"), "row 1 (header), column 'clicks': missing"),
        (
            lambda lines: lines[:3] + [lines[3].replace("Mar 01, 2026", "03/01/26")] + lines[4:],
            "row 4, column 'Date': not a date",
        ),
        (
            lambda lines: lines[:1] + [lines[1].replace(",Exact,", ",Exactly,")] + lines[2:],
            "row 2, column 'Match Type': unknown match type 'Exactly'",
        ),
        (lambda lines: lines[:2] + [lines[2] + ",extra"] + lines[3:], "row 3: "),
    ],
)
def test_malformed_console_csv(tmp_path, imported, st_rows, edit, message):
    out, _, _ = imported
    before = digest(out)
    path = write_console_csv(tmp_path / "bad.csv", st_rows[:20])
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    path.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    with pytest.raises(AdguideError) as err:
        import_reports([path], "Acme Outdoor", out)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)
    assert digest(out) == before


def test_errors_before_any_file_exists_create_nothing(tmp_path, st_rows):
    bad = write_json(tmp_path / "bad.json", _set(st_rows, 3, cost="1.2.3"))
    with pytest.raises(AdguideError, match="row 4, column 'cost': not a number"):
        import_reports([bad], "Acme Outdoor", tmp_path / "accounts.sqlite")
    unknown = write_json(tmp_path / "unknown.json", [{"foo": 1}])
    with pytest.raises(AdguideError, match="cannot tell the report type"):
        import_reports([unknown], "Acme Outdoor", tmp_path / "accounts.sqlite")
    twice = write_json(tmp_path / "st.json", st_rows)
    with pytest.raises(AdguideError, match="the same row is also at"):
        import_reports([twice, twice], "Acme Outdoor", tmp_path / "accounts.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "st.json", "unknown.json"]


def test_refuses_a_generated_world(writable_world_path, tmp_path, st_rows):
    before = digest(writable_world_path)
    report = write_json(tmp_path / "st.json", st_rows)
    with pytest.raises(AdguideError, match="generated world"):
        import_reports([report], "Acme Outdoor", writable_world_path)
    assert digest(writable_world_path) == before


# --- re-imports ------------------------------------------------------------------------------------------


def test_reimporting_the_same_files_changes_nothing(imported, st_rows):
    out, report, adv_id = imported
    before = digest(out)
    again = import_reports([report], "Acme Outdoor", out)
    assert again.unchanged and not again.created and again.advertiser_id == adv_id
    assert again.new == {"campaigns": 0, "ad_groups": 0, "keywords": 0, "search_terms": 0, "products": 0}
    assert digest(out) == before
    assert read_back(out, adv_id)["search_term_days"] == totals(st_rows)


def test_overlapping_reimport_replaces_days_never_doubles(tmp_path, imported, st_rows):
    out, _, adv_id = imported
    with MarketStore.open(out) as store:
        version = store.data_version
    later = search_term_rows(start=START + dt.timedelta(days=14), days=21, seed=9)  # days 15-35
    summary = import_reports([write_json(tmp_path / "later.json", later)], "Acme Outdoor", out)
    assert summary.advertiser_id == adv_id and not summary.unchanged
    kept = [r for r in st_rows if dt.date.fromisoformat(r["date"]) < START + dt.timedelta(days=14)]
    expected = {k: totals(kept)[k] + totals(later)[k] for k in totals(kept)}
    assert read_back(out, adv_id) == {
        t: expected for t in ("keyword_days", "campaign_days", "search_term_days")
    }
    with MarketStore.open(out) as store:
        assert store.end_date == START + dt.timedelta(days=34)
        assert store.data_version != version
        assert len(store.scoped(adv_id).keywords()) == len(ACCOUNT)  # matched, not duplicated


def test_an_earlier_import_shifts_every_advertisers_days(tmp_path, imported, st_rows):
    out, _, adv_id = imported
    early = search_term_rows(start=START - dt.timedelta(days=10), days=7, seed=5)
    other = import_reports([write_json(tmp_path / "early.json", early)], "Second Shop", out)
    assert other.advertiser_id == "adv_0002" and other.created
    with MarketStore.open(out) as store:
        assert store.start_date == START - dt.timedelta(days=10)
        first = store.scoped(adv_id).keyword_days(store.start_date, store.end_date)
        assert min(d.date for d in first) == START and max(d.date for d in first) == START + dt.timedelta(
            days=27
        )
        second = store.scoped("adv_0002")
        assert {c.id for c in second.campaigns()} == {"cmp_00004", "cmp_00005", "cmp_00006"}
        assert min(k.id for k in second.keywords()) == f"kw_{len(ACCOUNT) + 1:07d}"
    assert read_back(out, adv_id)["search_term_days"] == totals(st_rows)
    assert read_back(out, "adv_0002")["search_term_days"] == totals(early)


# --- the CLI ---------------------------------------------------------------------------------------------


def test_cli_json_summary_last_line(tmp_path, st_rows):
    report = write_gzip_json(tmp_path / "st.json.gz", st_rows)
    out = tmp_path / "accounts.sqlite"
    result = CliRunner().invoke(
        market_app, ["import", str(report), "--advertiser-name", "Acme Outdoor", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    expected = totals(st_rows)
    assert last["advertiser_id"] == "adv_0001"
    assert last["rows"]["search_term_days"] == len(st_rows)
    assert last["totals"] == {
        "impressions": expected["impressions"],
        "clicks": expected["clicks"],
        "spend": expected["spend_cents"] / 100,
        "orders": expected["orders"],
        "sales": expected["sales_cents"] / 100,
    }

    bad = write_json(tmp_path / "bad.json", _set(st_rows, 0, clicks=-1))
    result = CliRunner().invoke(market_app, ["import", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and "row 1, column 'clicks'" in result.output
    assert "Traceback" not in result.output


def test_default_out_is_accounts_file_in_adguide_home(tmp_path, monkeypatch, st_rows):
    monkeypatch.setenv("ADGUIDE_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    report = write_json(tmp_path / "st.json", st_rows[:30])
    result = CliRunner().invoke(market_app, ["import", str(report)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "accounts.sqlite").is_file()


# --- the MCP tools on an imported account ----------------------------------------------------------------


async def test_mcp_tools_answer_with_the_reports_totals(imported, st_rows):
    from tools.mcp_server import call, connect_in_memory
    from tools.mcp_server.cache import ToolCache

    out, _, adv_id = imported
    expected = totals(st_rows)
    async with connect_in_memory(out, adv_id, cache=ToolCache(enabled=False)) as session:
        overview = await call(session, "account_overview", {})
        perf = await call(session, "performance", {"level": "keyword"})
        camp = await call(session, "performance", {"level": "campaign", "last_days": DAYS})
    for result in (overview, perf, camp):
        assert "error" not in result, result
        t = result["totals"]
        assert (t["impressions"], t["clicks"], t["orders"]) == (
            expected["impressions"],
            expected["clicks"],
            expected["orders"],
        )
        assert round(t["spend"] * 100) == expected["spend_cents"]
        assert round(t["sales"] * 100) == expected["sales_cents"]
    assert overview["advertiser"]["id"] == adv_id and overview["counts"]["keywords"] == len(ACCOUNT)


async def test_recommend_bid_on_an_imported_keyword(imported):
    from tools.mcp_server import call, connect_in_memory
    from tools.mcp_server.cache import ToolCache

    out, _, adv_id = imported
    with MarketStore.open(out) as store:
        kw = store.scoped(adv_id).keywords()[0]
    async with connect_in_memory(out, adv_id, cache=ToolCache(enabled=False)) as session:
        best = await call(session, "recommend_bid", {"keyword_id": kw.id})
    assert "error" not in best, best
    assert best["current_bid"] == kw.bid
    assert "seller" in json.dumps(best.get("market"))


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same report requested with timeUnit SUMMARY: one row per keyword and search term over the period."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (r["campaignName"], r["adGroupName"], r.get("keyword"), r["matchType"], r["searchTerm"])
        s = out.setdefault(
            key,
            {
                **{k: v for k, v in r.items() if k != "date"},
                **dict.fromkeys(("impressions", "clicks", "purchases7d"), 0),
            }
            | {"cost": 0.0, "sales7d": 0.0, "startDate": START.isoformat()},
        )
        s["endDate"] = (START + dt.timedelta(days=DAYS - 1)).isoformat()
        for k in ("impressions", "clicks", "purchases7d", "cost", "sales7d"):
            s[k] = round(s[k] + r[k], 2)
    return list(out.values())


def test_a_summary_report_is_spread_over_its_period_and_says_so(tmp_path: Path, st_rows):
    """An spSearchTerm SUMMARY report (startDate/endDate, no date): the totals are exactly the daily report's,
    spread evenly over its days, and the import says day-to-day figures are not known."""
    report = write_json(tmp_path / "summary.json", summary_rows(st_rows))
    summary = import_reports([report], "Acme Outdoor", tmp_path / "accounts.sqlite")
    assert summary.files[0].summary and summary.files[0].rows == len(summary_rows(st_rows)) * DAYS
    assert (summary.files[0].start, summary.files[0].end) == (START, START + dt.timedelta(days=DAYS - 1))
    back = read_back(tmp_path / "accounts.sqlite", summary.advertiser_id)
    assert back["search_term_days"] == totals(st_rows)
    assert any("summary report" in a and "spread evenly" in a for a in summary.assumptions)
    with MarketStore.open(tmp_path / "accounts.sqlite") as store:
        days = store.scoped(summary.advertiser_id).campaign_days(store.start_date, store.end_date)
    per_day = {d.date for d in days}
    assert len(per_day) == DAYS


def test_a_summary_row_that_ends_before_it_starts_is_a_clear_error(tmp_path: Path, st_rows):
    rows = summary_rows(st_rows)
    rows[3]["endDate"] = (START - dt.timedelta(days=2)).isoformat()
    report = write_json(tmp_path / "summary.json", rows)
    with pytest.raises(ReportImportError, match=r"row 4.*endDate.*ends \(.*\) before it starts"):
        import_reports([report], "Acme Outdoor", tmp_path / "accounts.sqlite")
    assert not (tmp_path / "accounts.sqlite").exists()
