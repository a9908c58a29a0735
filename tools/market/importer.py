"""Import a seller's Amazon Sponsored Products reports into an accounts store (`adguide market import`).

Reads the Ads API v3 reports `spSearchTerm`, `spTargeting` and `spCampaigns` (GZIP_JSON or plain JSON: an
array of row objects) and console CSV downloads of the same reports (display headers such as "Campaign Name",
"Customer Search Term", "7 Day Total Sales" map to the API names in `COLUMN_ALIASES`, the one place that
defines the mapping). The report type is told from the columns. Rows must be daily (a `date` column).

Every row is validated before anything is written; a malformed one stops the import with an error naming the
file, the row (1-based element of a JSON array; the line of a CSV file, the header being row 1) and the column.
The whole import is one transaction (SQLite or PostgreSQL, tools.market.db), so the store is either fully
updated or unchanged.

What is written, for one advertiser (found by name, or created):
- campaigns, ad groups, keywords (text, match type; bid = the latest `keywordBid`, else the mean cost per click)
  and search terms, matched to existing rows by name / text, never duplicated;
- daily history in the store's daily tables (money in cents): keyword-days from `spTargeting` (else the sum
  of the keyword's `spSearchTerm` rows), search-term-days from `spSearchTerm`, campaign-days from
  `spCampaigns` (else the sum of the campaign's keyword-days). Reports carry no organic sales, average
  position or impression share: organic is 0, the other two NULL. The days the import covers (its first to
  its last date) are replaced for that advertiser: re-importing the same files changes nothing.
- one placeholder product per ad group (reports carry no products): price = the ad group's sales per order
  (the account's where it has no orders), margin 0.3. The summary lists this and every other assumption.
- the console's own ids (`campaignId`, `adGroupId`, `keywordId`; console headers "Campaign ID", "Ad Group ID",
  "Keyword ID") where the reports carry them, in the importer's table `external_ids` (store id -> Amazon id;
  the store schema has no column for them). The bulksheet export (tools.market.bulksheet) addresses Update rows
  with them. Where rows disagree the latest row's id wins; a re-import overwrites an entity's id, and an Amazon
  id that another entity of the same kind held (a renamed campaign, say) moves to the entity the reports give.

Product / auto targets (`TARGETING_EXPRESSION`, `TARGETING_EXPRESSION_PREDEFINED`, e.g. `close-match`,
`asin="B0..."`) are stored as broad keywords whose text is the expression; a campaign with predefined targets
is an auto campaign. An imported account has no truth file and no platform auction log: the tools answer from
the market model estimated from the seller's own reports (the seller view).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import math
import os
import re
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tools.errors import AdguideError, InvalidInputError
from tools.market.data_model import MatchType, Status, Targeting
from tools.market.db import Db, StoreLocation, migrate, parse_location
from tools.market.store import (
    BUMP_WRITE_COUNT,
    MAX_BID,
    MAX_KEYWORD_CHARS,
    SCHEMA_VERSION,
    connect,
    default_world_path,
    open_db,
    write_meta,
)
from tools.market.truth import truth_path_for

IMPORTED_CATEGORY = "imported"
PLACEHOLDER_MARGIN = 0.3
FALLBACK_PRICE = 30.0  # a placeholder product's price when the account has no orders at all
FALLBACK_BID = 0.75  # a keyword's bid when neither a bid nor a click is in the reports
BUDGET_HEADROOM = 1.5  # a campaign's budget, where no report gives it: this times its highest daily spend
MAX_ROWS = 2_000_000
# The console's ids of the imported entities (the store schema has no column for them), keyed by store id.
EXTERNAL_IDS_TABLE = "external_ids"
EXTERNAL_IDS_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {EXTERNAL_IDS_TABLE} "
    "(adv INTEGER, entity_id TEXT PRIMARY KEY, external_id TEXT NOT NULL)"
)
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class ReportImportError(AdguideError):
    """A report that cannot be imported; the message names the file, row and column."""


class ReportType(StrEnum):
    SEARCH_TERM = "spSearchTerm"
    TARGETING = "spTargeting"
    CAMPAIGNS = "spCampaigns"


# --- the column mapping (the one place) ------------------------------------------------------------------

# API v3 column names the importer reads. Everything else in a report is ignored.
API_COLUMNS = (
    "date",
    "startDate",  # a summary report (timeUnit SUMMARY) has a period instead of a date
    "endDate",
    "campaignId",
    "campaignName",
    "campaignStatus",
    "campaignBudgetAmount",
    "adGroupId",
    "adGroupName",
    "keywordId",
    "keyword",
    "targeting",
    "keywordType",
    "matchType",
    "searchTerm",
    "keywordBid",
    "impressions",
    "clicks",
    "cost",
    "purchases7d",
    "sales7d",
)

# Console display headers (lower case, spaces collapsed, a trailing currency like "($)" dropped) -> API name.
COLUMN_ALIASES: dict[str, str] = {
    **{name.lower(): name for name in API_COLUMNS},
    "date": "date",
    "day": "date",
    "start date": "startDate",
    "end date": "endDate",
    "campaign name": "campaignName",
    "campaign id": "campaignId",
    "campaign status": "campaignStatus",
    "status": "campaignStatus",
    "budget": "campaignBudgetAmount",
    "campaign budget": "campaignBudgetAmount",
    "campaign budget amount": "campaignBudgetAmount",
    "ad group name": "adGroupName",
    "ad group id": "adGroupId",
    "keyword id": "keywordId",
    "keyword": "keyword",
    "targeting": "targeting",
    "keyword type": "keywordType",
    "match type": "matchType",
    "customer search term": "searchTerm",
    "search term": "searchTerm",
    "keyword bid": "keywordBid",
    "bid": "keywordBid",
    "impressions": "impressions",
    "clicks": "clicks",
    "spend": "cost",
    "cost": "cost",
    "7 day total orders (#)": "purchases7d",
    "7 day total orders": "purchases7d",
    "7 day total sales": "sales7d",
}

FUNNEL = ("impressions", "clicks", "cost", "purchases7d", "sales7d")
REQUIRED: dict[ReportType, tuple[str, ...]] = {
    ReportType.SEARCH_TERM: ("date", "campaignName", "adGroupName", "matchType", "searchTerm", *FUNNEL),
    ReportType.TARGETING: ("date", "campaignName", "adGroupName", "matchType", *FUNNEL),
    ReportType.CAMPAIGNS: ("date", "campaignName", *FUNNEL),
}
KEYWORD_TEXT = ("keyword", "targeting")  # keyword-level reports need one of these

TARGET_TYPES = {"TARGETING_EXPRESSION", "TARGETING_EXPRESSION_PREDEFINED"}
AUTO_TARGETS = {"close-match", "loose-match", "substitutes", "complements"}
CAMPAIGN_STATUS = {"ENABLED": Status.ENABLED, "PAUSED": Status.PAUSED, "ARCHIVED": Status.PAUSED}
_CURRENCY_SUFFIX = re.compile(r"\s*\([^\w#]+\)$")
_NUMBER_CLEAN = re.compile(r"^[\s$€£¥₹]+|[\s,]")


def canonical_column(header: str) -> str | None:
    """The API name of a report column (API names and console display headers), None if not read."""
    norm = " ".join(str(header).replace("\ufeff", "").strip().lower().split())
    norm = _CURRENCY_SUFFIX.sub("", norm)
    return COLUMN_ALIASES.get(norm)


# --- models ----------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Funnel(_Model):
    impressions: int = 0
    clicks: int = 0
    spend_cents: int = 0
    orders: int = 0
    sales_cents: int = 0

    def __add__(self, other: Funnel) -> Funnel:
        return Funnel(
            impressions=self.impressions + other.impressions,
            clicks=self.clicks + other.clicks,
            spend_cents=self.spend_cents + other.spend_cents,
            orders=self.orders + other.orders,
            sales_cents=self.sales_cents + other.sales_cents,
        )

    def totals(self) -> dict[str, float | int]:
        return {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "spend": self.spend_cents / 100,
            "orders": self.orders,
            "sales": self.sales_cents / 100,
        }


class ReportRow(_Model):
    """One validated report row in the API's terms (money in cents)."""

    report: ReportType
    where: str  # "file row N", for messages
    date: dt.date
    campaign: str
    ad_group: str | None = None
    text: str | None = None  # keyword text or target expression
    match_type: MatchType | None = None
    is_target: bool = False
    auto_target: bool = False
    search_term: str | None = None
    funnel: Funnel
    keyword_bid: float | None = None
    budget: float | None = None
    campaign_status: Status | None = None
    # the console's ids, where the report has them
    campaign_ext: str | None = None
    ad_group_ext: str | None = None
    keyword_ext: str | None = None


class FileReport(_Model):
    path: str
    format: str  # "GZIP_JSON" | "JSON" | "CSV" | "XLSX"
    summary: bool = False  # a period's totals (startDate, endDate), spread evenly over its days
    report_type: ReportType
    rows: int
    start: dt.date | None
    end: dt.date | None


class ImportSummary(_Model):
    path: str
    advertiser_id: str
    advertiser_name: str
    created: bool
    unchanged: bool
    files: list[FileReport]
    start: dt.date
    end: dt.date
    history: dict[str, dt.date]
    rows: dict[str, int]  # daily rows written by this import, per table
    new: dict[str, int]  # entities created by this import
    counts: dict[str, int]  # the advertiser's entities after the import
    totals: dict[str, float | int]  # campaign-days of the import (the account's totals)
    keyword_totals: dict[str, float | int]
    search_term_totals: dict[str, float | int]
    assumptions: list[str]


# --- reading files ---------------------------------------------------------------------------------------


def _fail(where: str, column: str | None, problem: str) -> ReportImportError:
    at = f"{where}, column {column!r}" if column else where
    return ReportImportError(f"{at}: {problem}", field=column or "file")


def _read_raw(path: Path) -> tuple[str, list[dict[str, Any]], dict[str, str]]:
    """(format, rows as {API name: raw value}, {API name: the file's own header}) of one report file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReportImportError(f"{path}: no such file", field="file") from None
    except IsADirectoryError:
        raise ReportImportError(f"{path}: is a directory, not a report file", field="file") from None
    fmt = "JSON"
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ReportImportError(f"{path}: not a readable gzip file ({err})", field="file") from None
        fmt = "GZIP_JSON"
    if data[:2] == b"PK":  # a zip: the console's XLSX download
        return "XLSX", *_xlsx_rows(path, data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReportImportError(
            f"{path}: not UTF-8 text (a report is JSON, gzipped JSON or CSV)", field="file"
        ) from None
    stripped = text.lstrip()
    if fmt == "GZIP_JSON" or stripped[:1] in ("[", "{"):
        return fmt, *_json_rows(path, text)
    return "CSV", *_csv_rows(path, text)


def _json_rows(path: Path, text: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ReportImportError(
            f"{path}: not valid JSON (line {err.lineno}: {err.msg})", field="file"
        ) from None
    if not isinstance(doc, list):
        raise ReportImportError(f"{path}: a report must be a JSON array of row objects", field="file")
    rows: list[dict[str, Any]] = []
    headers: dict[str, str] = {}
    for n, obj in enumerate(doc, start=1):
        if not isinstance(obj, dict):
            raise _fail(f"{path} row {n}", None, "not a JSON object")
        row: dict[str, Any] = {}
        for key, value in obj.items():
            name = canonical_column(key)
            if name is not None:
                row[name] = value
                headers.setdefault(name, key)
        rows.append(row)
    return rows, headers


def _cell(value: Any) -> str:
    """A worksheet cell as the CSV download writes it: dates as ISO days, whole numbers without ".0"."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx_rows(path: Path, data: bytes) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The first worksheet of a console XLSX download, read as its CSV twin (header row, then one row a line)."""
    try:
        # lazy: optional dependency, may be missing
        from openpyxl import load_workbook
    except ImportError:
        raise ReportImportError(
            f"{path}: XLSX workbooks need openpyxl (pip install openpyxl); or save the sheet as CSV",
            field="file",
        ) from None
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises zipfile, KeyError and its own errors for a damaged workbook
        raise ReportImportError(
            f"{path}: not a readable XLSX workbook ({type(err).__name__})", field="file"
        ) from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise ReportImportError(f"{path}: the workbook has no worksheet", field="file")
        lines = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
    while lines and not any(lines[-1]):  # trailing empty rows a spreadsheet keeps
        lines.pop()
    if lines:
        width = len(lines[0])
        while width and not lines[0][width - 1]:  # empty columns right of the header
            width -= 1
        lines = [line[:width] + [""] * (width - len(line)) for line in lines]
    return _table_rows(path, iter(enumerate(lines, start=1)))


def _csv_rows(path: Path, text: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _table_rows(path, ((reader.line_num, values) for values in reader))
    except csv.Error as err:
        raise ReportImportError(
            f"{path} row {reader.line_num}: malformed CSV ({err})", field="file"
        ) from None


def _table_rows(
    path: Path, lines: Iterator[tuple[int, list[str]]]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rows of a header-then-values table (CSV or a worksheet) as {API name: raw value}, with the headers."""
    try:
        _, header = next(lines)
    except StopIteration:
        raise ReportImportError(f"{path}: empty file", field="file") from None
    names = [canonical_column(h) for h in header]
    headers: dict[str, str] = {}
    for name, h in zip(names, header, strict=True):
        if name is not None:
            if name in headers:
                raise _fail(f"{path} row 1", h, f"a second column for {name} (also {headers[name]!r})")
            headers[name] = h.strip().lstrip("\ufeff")
    rows: list[dict[str, Any]] = []
    for line, values in lines:
        if not any(v.strip() for v in values):
            rows.append({})  # a blank line keeps its row number; skipped below
            continue
        if len(values) != len(header):
            raise _fail(f"{path} row {line}", None, f"{len(values)} fields, the header has {len(header)}")
        rows.append({n: v for n, v in zip(names, values, strict=True) if n is not None})
    return rows, headers


def detect_report_type(columns: Iterable[str]) -> ReportType | None:
    """spSearchTerm if it has search terms, spTargeting if it has keywords/targets per ad group,
    spCampaigns if it has campaigns only."""
    cols = set(columns)
    if "searchTerm" in cols:
        return ReportType.SEARCH_TERM
    if "adGroupName" in cols and cols & set(KEYWORD_TEXT):
        return ReportType.TARGETING
    if "campaignName" in cols and "adGroupName" not in cols:
        return ReportType.CAMPAIGNS
    return None


@dataclass
class _FileRows:
    report: FileReport
    rows: list[ReportRow]


def read_report(path: Path | str) -> _FileRows:
    """Read and validate one report file; raises ReportImportError naming the file, row and column."""
    path = Path(path)
    fmt, raw, headers = _read_raw(path)
    summary = "date" not in headers and {"startDate", "endDate"} <= headers.keys()
    if summary:  # each row is validated as of its first day, then spread over its period (_spread)
        headers["date"] = headers["startDate"]
        for values in raw:
            if values:
                values["date"] = values.get("startDate")
    columns = set(headers)
    kind = detect_report_type(columns)
    if kind is None:
        seen = ", ".join(sorted(headers.values())) or "none that a Sponsored Products report has"
        raise ReportImportError(
            f"{path}: cannot tell the report type from its columns ({seen}); expected an spSearchTerm "
            "(with searchTerm), spTargeting (adGroupName and keyword/targeting) or spCampaigns report",
            field="file",
        )
    csv_file = fmt in ("CSV", "XLSX")  # a header row, then rows: a blank one is skipped
    first_row = 2 if csv_file else 1
    if csv_file or not raw:  # a CSV header names every column once; check it before the rows
        for col in REQUIRED[kind]:
            if col not in columns:
                raise _fail(f"{path} row 1 (header)", col, _missing(col, kind))
        if kind != ReportType.CAMPAIGNS and not columns & set(KEYWORD_TEXT):
            raise _fail(f"{path} row 1 (header)", "keyword", _missing("keyword", kind))
    if len(raw) > MAX_ROWS:
        raise ReportImportError(
            f"{path}: {len(raw):,} rows, more than the {MAX_ROWS:,} one file may hold", field="file"
        )
    rows: list[ReportRow] = []
    for n, values in enumerate(raw, start=first_row):
        if csv_file and not values:
            continue
        row = _row(kind, f"{path} row {n}", values, headers)
        if not summary:
            rows.append(row)
            continue
        end = _date(row.where, headers["endDate"], values.get("endDate") or "")
        if end < row.date:
            raise _fail(row.where, headers["endDate"], f"ends ({end}) before it starts ({row.date})")
        rows += _spread(row, end)
    dates = [r.date for r in rows]
    report = FileReport(
        path=str(path),
        format=fmt,
        report_type=kind,
        rows=len(rows),
        start=min(dates) if dates else None,
        end=max(dates) if dates else None,
        summary=summary,
    )
    return _FileRows(report, rows)


def _spread(row: ReportRow, end: dt.date) -> list[ReportRow]:
    """A summary row's totals over the days of its period, evenly: whole counts and cents, the remainder on the
    first days, so the days add up to the row exactly."""
    n = (end - row.date).days + 1
    split = {}
    for name, total in row.funnel.model_dump().items():
        base, extra = divmod(int(total), n)
        split[name] = [base + (1 if i < extra else 0) for i in range(n)]
    return [
        row.model_copy(
            update={
                "date": row.date + dt.timedelta(days=i),
                "funnel": Funnel(**{name: values[i] for name, values in split.items()}),
            }
        )
        for i in range(n)
    ]


def _missing(col: str, kind: ReportType) -> str:
    extra = ""
    if col == "date":
        extra = " (a summary report has none: request the report with timeUnit DAILY)"
    elif col == "keyword":
        extra = " (keyword or targeting)"
    return f"missing; an {kind.value} report needs it{extra}"


def _row(kind: ReportType, where: str, values: dict[str, Any], headers: dict[str, str]) -> ReportRow:
    def col(name: str) -> str:
        return headers.get(name, name)

    def present(name: str) -> bool:
        v = values.get(name)
        return v is not None and not (isinstance(v, str) and v.strip() in ("", "-", "--"))

    def need(name: str) -> Any:
        if name not in values:
            raise _fail(where, col(name), _missing(name, kind))
        if not present(name):
            raise _fail(where, col(name), "empty")
        return values[name]

    def text(name: str) -> str:
        v = need(name)
        if not isinstance(v, str | int):
            raise _fail(where, col(name), f"must be text (got {v!r})")
        s = " ".join(str(v).split())
        if not s:
            raise _fail(where, col(name), "empty")
        return s

    def number(
        name: str, *, count: bool = False, positive: bool = False, optional: bool = False
    ) -> float | None:
        if optional and not present(name):
            return None
        v = need(name)
        x: float | None = None
        if isinstance(v, bool):
            x = None
        elif isinstance(v, int | float):
            x = float(v)
        elif isinstance(v, str):
            try:
                x = float(_NUMBER_CLEAN.sub("", v))
            except ValueError:
                x = None
        if x is None or not math.isfinite(x):
            raise _fail(where, col(name), f"not a number (got {v!r})")
        if x < 0 or (positive and x == 0):
            raise _fail(where, col(name), f"must be {'> 0' if positive else '>= 0'} (got {v!r})")
        if count and x != int(x):
            raise _fail(where, col(name), f"must be a whole number (got {v!r})")
        return x

    funnel = Funnel(
        impressions=int(number("impressions", count=True) or 0),
        clicks=int(number("clicks", count=True) or 0),
        spend_cents=round((number("cost") or 0.0) * 100),
        orders=int(number("purchases7d", count=True) or 0),
        sales_cents=round((number("sales7d") or 0.0) * 100),
    )
    date = _date(where, col("date"), need("date"))
    bid = number("keywordBid", positive=True, optional=True)
    if bid is not None and bid > MAX_BID:
        raise _fail(where, col("keywordBid"), f"must be <= {MAX_BID:g} (got {values['keywordBid']!r})")
    status = None
    if present("campaignStatus"):
        raw_status = str(values["campaignStatus"]).strip().upper()
        if raw_status not in CAMPAIGN_STATUS:
            raise _fail(
                where,
                col("campaignStatus"),
                f"unknown campaign status {values['campaignStatus']!r} (one of {', '.join(CAMPAIGN_STATUS)})",
            )
        status = CAMPAIGN_STATUS[raw_status]

    def external_id(name: str) -> str | None:
        if not present(name):
            return None
        v = values[name]
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        s = str(v).strip() if isinstance(v, str | int) and not isinstance(v, bool) else ""
        if not _EXTERNAL_ID.match(s):
            raise _fail(where, col(name), f"not an id (got {v!r})")
        return s

    fields: dict[str, Any] = {
        "report": kind,
        "where": where,
        "date": date,
        "campaign": text("campaignName"),
        "funnel": funnel,
        "keyword_bid": bid,
        "budget": number("campaignBudgetAmount", positive=True, optional=True),
        "campaign_status": status,
        "campaign_ext": external_id("campaignId"),
    }
    if kind != ReportType.CAMPAIGNS:
        fields["ad_group"] = text("adGroupName")
        fields["ad_group_ext"] = external_id("adGroupId")
        fields["keyword_ext"] = external_id("keywordId")
        fields.update(_keyword(where, values, col, present))
    if kind == ReportType.SEARCH_TERM:
        fields["search_term"] = text("searchTerm").lower()
    return ReportRow(**fields)


def _keyword(where: str, values: dict[str, Any], col: Any, present: Any) -> dict[str, Any]:
    """text, match type and whether the row is a product/auto target rather than a keyword."""
    raw_match = str(values.get("matchType") or "").strip().upper().replace(" ", "_")
    raw_type = str(values.get("keywordType") or "").strip().upper().replace(" ", "_")
    keyword = " ".join(str(values["keyword"]).split()) if present("keyword") else ""
    targeting = " ".join(str(values["targeting"]).split()) if present("targeting") else ""
    expression = targeting or keyword
    looks_target = expression.lower() in AUTO_TARGETS or expression.lower().startswith(
        ("asin=", "asin-expanded=", "category=")
    )
    if raw_match in TARGET_TYPES or (
        raw_match in ("", "-", "--") and (raw_type in TARGET_TYPES or looks_target)
    ):
        if not expression:
            raise _fail(where, col("targeting"), "empty (a target row needs its expression)")
        if len(expression) > MAX_KEYWORD_CHARS:
            raise _fail(where, col("targeting"), f"longer than {MAX_KEYWORD_CHARS} characters")
        auto = (
            raw_match == "TARGETING_EXPRESSION_PREDEFINED"
            or raw_type == "TARGETING_EXPRESSION_PREDEFINED"
            or expression.lower() in AUTO_TARGETS
        )
        return {"text": expression, "match_type": MatchType.BROAD, "is_target": True, "auto_target": auto}
    try:
        match_type = MatchType(raw_match.lower())
    except ValueError:
        got = values.get("matchType")
        problem = "empty" if raw_match in ("", "-", "--") else f"unknown match type {got!r}"
        raise _fail(
            where,
            col("matchType"),
            f"{problem} (one of EXACT, PHRASE, BROAD, TARGETING_EXPRESSION, TARGETING_EXPRESSION_PREDEFINED)",
        ) from None
    word = (keyword or targeting).lower()
    name = "keyword" if keyword or "keyword" in values else "targeting"
    if not word:
        raise _fail(where, col(name), "empty")
    if len(word) > MAX_KEYWORD_CHARS:
        raise _fail(where, col(name), f"longer than {MAX_KEYWORD_CHARS} characters")
    return {"text": word, "match_type": match_type, "is_target": False, "auto_target": False}


_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%b %d, %Y", "%B %d, %Y", "%d %b %Y")


def _date(where: str, column: str, value: Any) -> dt.date:
    s = str(value).strip()
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise _fail(where, column, f"not a date (got {value!r}; use YYYY-MM-DD)")


# --- the import plan (pure Python, before the store is touched) -------------------------------------------

_KwKey = tuple[str, str, str, str]  # campaign, ad group, text, match type


@dataclass
class _Plan:
    files: list[FileReport]
    start: dt.date
    end: dt.date
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> budget, status, auto
    ad_groups: dict[tuple[str, str], None] = field(default_factory=dict)
    keywords: dict[_KwKey, float | None] = field(default_factory=dict)  # -> bid (None: unknown)
    terms: dict[tuple[_KwKey, str], None] = field(default_factory=dict)
    keyword_days: dict[tuple[_KwKey, dt.date], tuple[Funnel, float | None]] = field(default_factory=dict)
    term_days: dict[tuple[_KwKey, str, dt.date], Funnel] = field(default_factory=dict)
    campaign_days: dict[tuple[str, dt.date], tuple[Funnel, float | None]] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    # the console's ids (the latest row's where rows disagree)
    campaign_ext: dict[str, str] = field(default_factory=dict)
    ad_group_ext: dict[tuple[str, str], str] = field(default_factory=dict)
    keyword_ext: dict[_KwKey, str] = field(default_factory=dict)


def _kw_key(r: ReportRow) -> _KwKey:
    assert r.ad_group is not None and r.text is not None and r.match_type is not None
    return (r.campaign, r.ad_group, r.text, r.match_type.value)


def plan_import(paths: Sequence[Path | str]) -> _Plan:
    """Read and validate every file, and work out what the store should hold for the days they cover."""
    if not paths:
        raise ReportImportError("name at least one report file", field="file")
    read = [read_report(p) for p in paths]
    rows = [r for f in read for r in f.rows]
    if not rows:
        raise ReportImportError("the reports hold no rows; nothing to import", field="file")
    plan = _Plan(
        files=[f.report for f in read], start=min(r.date for r in rows), end=max(r.date for r in rows)
    )

    seen: dict[tuple[Any, ...], str] = {}

    def once(key: tuple[Any, ...], r: ReportRow) -> None:
        if key in seen:
            raise ReportImportError(
                f"{r.where}: the same row is also at {seen[key]} (a report imported twice in "
                "one command, or two overlapping reports of one type)",
                field="file",
            )
        seen[key] = r.where

    latest: dict[str, dict[str, tuple[dt.date, Any]]] = defaultdict(dict)

    def note(campaign: str, what: str, day: dt.date, value: Any) -> None:
        if value is not None and (what not in latest[campaign] or day >= latest[campaign][what][0]):
            latest[campaign][what] = (day, value)

    st_by_kw_day: dict[tuple[_KwKey, dt.date], list[ReportRow]] = defaultdict(list)
    kw_bids: dict[_KwKey, tuple[dt.date, float]] = {}
    day_budgets: dict[tuple[str, dt.date], float] = {}
    ext_conflicts: set[str] = set()

    def ext(ids: dict[Any, str], key: Any, value: str | None, what: str) -> None:
        if value is None:
            return
        if key in ids and ids[key] != value:
            ext_conflicts.add(what)
        ids[key] = value  # rows are in date order: the latest wins

    for r in sorted(rows, key=lambda r: r.date):
        plan.campaigns.setdefault(r.campaign, {"auto": False})
        ext(plan.campaign_ext, r.campaign, r.campaign_ext, "campaign")
        note(r.campaign, "budget", r.date, r.budget)
        note(r.campaign, "status", r.date, r.campaign_status)
        if r.budget is not None:
            day_budgets[(r.campaign, r.date)] = r.budget
        if r.report == ReportType.CAMPAIGNS:
            once((r.report, r.campaign, r.date), r)
            plan.campaign_days[(r.campaign, r.date)] = (r.funnel, r.budget)
            continue
        key = _kw_key(r)
        plan.ad_groups[(r.campaign, key[1])] = None
        ext(plan.ad_group_ext, (r.campaign, key[1]), r.ad_group_ext, "ad group")
        ext(plan.keyword_ext, key, r.keyword_ext, "keyword")
        plan.keywords.setdefault(key, None)
        if r.auto_target:
            plan.campaigns[r.campaign]["auto"] = True
        if r.keyword_bid is not None:
            kw_bids[key] = (r.date, r.keyword_bid)
        if r.report == ReportType.TARGETING:
            once((r.report, key, r.date), r)
            plan.keyword_days[(key, r.date)] = (r.funnel, r.keyword_bid)
        else:
            assert r.search_term is not None
            once((r.report, key, r.search_term, r.date), r)
            plan.terms[(key, r.search_term)] = None
            plan.term_days[(key, r.search_term, r.date)] = r.funnel
            st_by_kw_day[(key, r.date)].append(r)
    for (key, day), st_rows in st_by_kw_day.items():
        if (key, day) not in plan.keyword_days:
            total = sum((r.funnel for r in st_rows), Funnel())
            bid = next((r.keyword_bid for r in st_rows if r.keyword_bid is not None), None)
            plan.keyword_days[(key, day)] = (total, bid)

    # bids: the latest keywordBid, else the mean cost per click (keyword, ad group, account), else a default
    spend: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for (key, _), (f, _) in plan.keyword_days.items():
        for k in (key, key[:2], "account"):
            spend[k][0] += f.spend_cents
            spend[k][1] += f.clicks
    n_cpc = n_default = 0
    for key in plan.keywords:
        if key in kw_bids:
            plan.keywords[key] = kw_bids[key][1]
            continue
        cents, clicks = next((spend[k] for k in (key, key[:2], "account") if spend[k][1] > 0), (0, 0))
        if clicks:
            plan.keywords[key] = max(0.02, round(cents / clicks / 100, 2))
            n_cpc += 1
        else:
            n_default += 1
    if n_cpc:
        plan.assumptions.append(
            f"{n_cpc} keyword bid(s) not in the reports (no keywordBid column): set to the "
            "mean cost per click"
        )
    if n_default:
        plan.assumptions.append(
            f"{n_default} keyword bid(s) with neither a keywordBid nor a click: "
            f"kept as stored, or ${FALLBACK_BID:.2f} for new keywords"
        )

    # campaign-days: spCampaigns rows where given, else the sum of the campaign's keyword-days
    derived: dict[tuple[str, dt.date], Funnel] = defaultdict(Funnel)
    for (key, day), (f, _) in plan.keyword_days.items():
        derived[(key[0], day)] = derived[(key[0], day)] + f
    for cd, f in derived.items():
        if cd not in plan.campaign_days:
            plan.campaign_days[cd] = (f, day_budgets.get(cd))
    max_spend: dict[str, int] = defaultdict(int)
    for (camp, _), (f, _) in plan.campaign_days.items():
        max_spend[camp] = max(max_spend[camp], f.spend_cents)
    for name, info in plan.campaigns.items():
        info["budget"] = latest[name].get("budget", (None, None))[1]
        info["status"] = latest[name].get("status", (None, None))[1]
        info["budget_guess"] = max(1.0, math.ceil(max_spend[name] / 100 * BUDGET_HEADROOM))
    n_auto = sum(1 for k in plan.keywords if k[3] == MatchType.BROAD.value and _is_expression(k[2]))
    if n_auto:
        plan.assumptions.append(
            f"{n_auto} product/auto target(s) stored as broad keywords whose text is the targeting expression"
        )
    n_without = (
        sum(1 for c in plan.campaigns if c not in plan.campaign_ext)
        + sum(1 for g in plan.ad_groups if g not in plan.ad_group_ext)
        + sum(1 for k in plan.keywords if k not in plan.keyword_ext)
    )
    if n_without:
        plan.assumptions.append(
            f"{n_without} campaign(s) / ad group(s) / keyword(s) without a console id in the "
            "reports (no campaignId / adGroupId / keywordId): a bulksheet export names them "
            "instead"
        )
    if ext_conflicts:
        plan.assumptions.append(
            f"a {' / '.join(sorted(ext_conflicts))} name with several console ids in the "
            "reports (merged by name): the latest row's id is kept"
        )
    for report in plan.files:
        if report.summary:
            plan.assumptions.append(
                f"{Path(report.path).name} is a summary report ({report.start} to {report.end}): its totals are spread evenly "
                "over its days, so day-to-day figures are not known (request timeUnit DAILY for them)"
            )
    plan.assumptions.append(
        "reports carry no organic sales, average position or impression share: organic "
        "sales are 0 and the other two unknown"
    )
    return plan


def _is_expression(text: str) -> bool:
    t = text.lower()
    return t in AUTO_TARGETS or t.startswith(("asin=", "asin-expanded=", "category="))


# --- writing ---------------------------------------------------------------------------------------------


def default_accounts_path() -> Path:
    """$ADGUIDE_HOME/accounts.sqlite (beside the generated world.sqlite)."""
    return default_world_path().with_name("accounts.sqlite")


def import_reports(
    paths: Sequence[Path | str], advertiser_name: str, out: Path | str | None = None
) -> ImportSummary:
    """Import report files as one advertiser's account into the accounts store at `out`: an SQLite file
    (created if absent) or a PostgreSQL URL (its schema is migrated first). None: $ADGUIDE_STORE_URL, else
    $ADGUIDE_HOME/accounts.sqlite. All or nothing: any error leaves the store as it was."""
    name = " ".join(str(advertiser_name).split())
    if not name or len(name) > 200:
        raise InvalidInputError(
            "--advertiser-name must be 1-200 characters", field="advertiser_name", allowed="1-200 characters"
        )
    location = parse_location(out, default_accounts_path())
    plan = plan_import(paths)
    if location.url is not None:
        return _import_into_database(location, plan, name)
    path = location.path
    assert path is not None
    if path.is_dir():
        raise InvalidInputError(f"--out {path} is a directory", field="out", allowed="a .sqlite file path")
    if path.exists():
        conn = _open_existing(path)
        try:
            return _write(conn, str(path), plan, name)
        finally:
            conn.close()
    if not path.parent.is_dir():
        raise InvalidInputError(
            f"--out: {path.parent} is not a directory", field="out", allowed="a path in an existing directory"
        )
    tmp = path.with_name(f".{path.name}.importing-{os.getpid()}")
    try:
        migrate(StoreLocation(path=tmp))
        conn = Db(connect(tmp), "sqlite")
        try:
            summary = _write(conn, str(path), plan, name)
        finally:
            conn.close()
        os.replace(tmp, path)
        return summary
    finally:
        tmp.unlink(missing_ok=True)


def _import_into_database(location: StoreLocation, plan: _Plan, name: str) -> ImportSummary:
    """PostgreSQL: the schema is brought to head (its own transaction, idempotent), then the import is one
    transaction that also writes the meta rows of a store that has none yet."""
    migrate(location)
    conn = open_db(location)
    try:
        _check_meta(
            str(location), dict(conn.execute("SELECT key, value FROM meta").fetchall()), empty_ok=True
        )
        return _write(conn, str(location), plan, name)
    finally:
        conn.close()


def _new_meta(plan: _Plan) -> dict[str, str]:
    return {
        "generation_id": _new_generation_id(),
        "start_date": plan.start.isoformat(),
        "end_date": plan.end.isoformat(),
        "source": "import",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _new_generation_id() -> str:
    return f"imp-{uuid.uuid4().hex[:8]}"


def _open_existing(path: Path) -> Db:
    if truth_path_for(path).exists():
        raise InvalidInputError(
            f"{path} is a generated world (it has a truth file); import into an accounts file, e.g. "
            f"--out {default_accounts_path()}",
            field="out",
            allowed="an accounts file (created by `adguide market import`)",
        )
    conn = connect(path)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        conn.close()
        raise InvalidInputError(f"{path} is not an adguide store", field="out") from None
    try:
        _check_meta(str(path), meta)
    except InvalidInputError:
        conn.close()
        raise
    return Db(conn, "sqlite")


def _check_meta(where: str, meta: dict[str, str], empty_ok: bool = False) -> None:
    if not meta and empty_ok:
        return  # a new database store: the import writes its meta
    problem = None
    if meta.get("schema_version") != SCHEMA_VERSION:
        problem = f"has schema version {meta.get('schema_version')!r}, this adguide writes {SCHEMA_VERSION!r}"
    elif "config" in meta:
        problem = "is a generated world"
    elif not {"start_date", "end_date", "generation_id", "write_count"} <= meta.keys():
        problem = "lacks its meta keys"
    if problem:
        raise InvalidInputError(f"{where} {problem}; import into an accounts store", field="out")


_ADV_TABLES = {  # table -> its ordering for the advertiser's digest
    "advertisers": "idx",
    "products": "id",
    "campaigns": "idx",
    "ad_groups": "id",
    "keywords": "idx",
    "negatives": "id",
    "search_terms": "idx",
    "keyword_days": "day, keyword_idx",
    "campaign_days": "day, campaign_idx",
    "search_term_days": "day, term_idx",
    EXTERNAL_IDS_TABLE: "entity_id",
}


def _digest(conn: Db, adv: int | None) -> str:
    h = hashlib.sha256()
    for key in ("start_date", "end_date"):
        h.update(repr(conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()).encode())
    if adv is None:
        return h.hexdigest()
    for table, order in _ADV_TABLES.items():
        column = "idx" if table == "advertisers" else "adv"
        for row in conn.execute(f"SELECT * FROM {table} WHERE {column} = ? ORDER BY {order}", (adv,)):
            h.update(repr(row).encode())
        h.update(b"|")
    return h.hexdigest()


def _next_number(conn: Db, table: str, prefix: str, idx: bool) -> int:
    (n,) = conn.execute(
        f"SELECT COALESCE(MAX(CAST(SUBSTR(id, {len(prefix) + 1}) AS INTEGER)), 0) FROM {table}"
    ).fetchone()
    if idx:
        (m,) = conn.execute(f"SELECT COALESCE(MAX(idx), 0) FROM {table}").fetchone()
        n = max(n, m)
    return int(n) + 1


def _write(conn: Db, path: str, plan: _Plan, name: str) -> ImportSummary:
    conn.begin_write()
    try:
        if not conn.execute("SELECT 1 FROM meta LIMIT 1").fetchone():
            write_meta(conn, _new_meta(plan))  # a new store: its meta is part of the same transaction
        summary = _apply(conn, path, plan, name)
        if summary.unchanged:
            conn.rollback()
        else:
            conn.commit()
        return summary
    except BaseException:
        conn.rollback()
        raise


def _apply(conn: Db, path: str, plan: _Plan, name: str) -> ImportSummary:
    assumptions = list(plan.assumptions)
    if not conn.is_pg:
        conn.execute(EXTERNAL_IDS_SCHEMA)  # a file made before the migrations lacks it
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    start, end = dt.date.fromisoformat(meta["start_date"]), dt.date.fromisoformat(meta["end_date"])
    found = conn.execute("SELECT idx, id FROM advertisers WHERE name = ? ORDER BY idx", (name,)).fetchall()
    if len(found) > 1:
        raise InvalidInputError(
            f"{path} has {len(found)} advertisers named {name!r}", field="advertiser_name"
        )
    created = not found
    before = _digest(conn, found[0][0] if found else None)
    if found:
        adv, adv_id = found[0]
    else:
        adv = _next_number(conn, "advertisers", "adv_", idx=True)
        adv_id = f"adv_{adv:04d}"
        conn.execute(
            "INSERT INTO advertisers (idx, id, name, category, target_acos) VALUES (?, ?, ?, ?, NULL)",
            (adv, adv_id, name, IMPORTED_CATEGORY),
        )
    (category,) = conn.execute("SELECT category FROM advertisers WHERE idx = ?", (adv,)).fetchone()

    # the file's day 0 moves back if this import starts earlier: shift every advertiser's day indices
    has_days = any(
        conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
        for t in ("keyword_days", "campaign_days", "search_term_days")
    )
    new_start = min(start, plan.start) if has_days else plan.start
    new_end = max(end, plan.end) if has_days else plan.end
    shift = (start - new_start).days
    if shift > 0:
        for table in ("keyword_days", "campaign_days", "search_term_days"):
            conn.execute(f"UPDATE {table} SET day = -(day + ?) - 1", (shift,))  # negative: no key clashes
            conn.execute(f"UPDATE {table} SET day = -day - 1")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'start_date'", (new_start.isoformat(),))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'end_date'", (new_end.isoformat(),))

    def day(d: dt.date) -> int:
        return (d - new_start).days

    new = {"campaigns": 0, "ad_groups": 0, "keywords": 0, "search_terms": 0, "products": 0}

    # campaigns (matched by name)
    camp_idx: dict[str, tuple[int, str]] = {}
    n_budget_guess = 0
    for cname, info in plan.campaigns.items():
        row = conn.execute(
            "SELECT idx, id, daily_budget, status, targeting FROM campaigns WHERE adv = ? AND name = ?"
            " ORDER BY idx LIMIT 1",
            (adv, cname),
        ).fetchone()
        targeting = Targeting.AUTO.value if info["auto"] else None
        if row is None:
            n = _next_number(conn, "campaigns", "cmp_", idx=True)
            budget = info["budget"]
            if budget is None:
                budget = info["budget_guess"]
                n_budget_guess += 1
            conn.execute(
                "INSERT INTO campaigns (idx, id, adv, name, daily_budget, status, targeting) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    n,
                    f"cmp_{n:05d}",
                    adv,
                    cname,
                    round(float(budget), 2),
                    (info["status"] or Status.ENABLED).value,
                    targeting or Targeting.MANUAL.value,
                ),
            )
            camp_idx[cname] = (n, f"cmp_{n:05d}")
            new["campaigns"] += 1
        else:
            camp_idx[cname] = (row[0], row[1])
            conn.execute(
                "UPDATE campaigns SET daily_budget = ?, status = ?, targeting = ? WHERE idx = ?",
                (
                    round(float(info["budget"]), 2) if info["budget"] is not None else row[2],
                    info["status"].value if info["status"] is not None else row[3],
                    targeting or row[4],
                    row[0],
                ),
            )
    if n_budget_guess:
        assumptions.append(
            f"{n_budget_guess} campaign budget(s) not in the reports (no campaignBudgetAmount): "
            f"set to {BUDGET_HEADROOM:g}x the campaign's highest daily spend"
        )
    budgets = {
        cname: conn.execute(
            "SELECT daily_budget FROM campaigns WHERE idx = ?", (camp_idx[cname][0],)
        ).fetchone()[0]
        for cname in plan.campaigns
    }

    # ad groups (matched by campaign and name), each with a placeholder product
    group_id: dict[tuple[str, str], str] = {}
    for cname, gname in plan.ad_groups:
        cmp_id = camp_idx[cname][1]
        row = conn.execute(
            "SELECT id FROM ad_groups WHERE adv = ? AND campaign_id = ? AND name = ? ORDER BY id LIMIT 1",
            (adv, cmp_id, gname),
        ).fetchone()
        if row is not None:
            group_id[(cname, gname)] = row[0]
            continue
        g = _next_number(conn, "ad_groups", "ag_", idx=False)
        p = _next_number(conn, "products", "prd_", idx=False)
        ag_id, prd_id = f"ag_{g:06d}", f"prd_{p:06d}"
        conn.execute(
            "INSERT INTO products (id, adv, name, category, price, margin) VALUES (?, ?, ?, ?, ?, ?)",
            (prd_id, adv, f"{gname} (placeholder product)", category, FALLBACK_PRICE, PLACEHOLDER_MARGIN),
        )
        group_bids = [b for k, b in plan.keywords.items() if k[:2] == (cname, gname) and b is not None]
        default_bid = round(sorted(group_bids)[len(group_bids) // 2], 2) if group_bids else FALLBACK_BID
        conn.execute(
            "INSERT INTO ad_groups (id, adv, campaign_id, name, product_ids, default_bid)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ag_id, adv, cmp_id, gname, json.dumps([prd_id]), default_bid),
        )
        group_id[(cname, gname)] = ag_id
        new["ad_groups"] += 1
        new["products"] += 1

    # keywords (matched by ad group, text and match type)
    kw_idx: dict[_KwKey, int] = {}
    kw_bid: dict[_KwKey, float] = {}
    kw_id: dict[_KwKey, str] = {}
    for key, bid in plan.keywords.items():
        ag_id = group_id[key[:2]]
        row = conn.execute(
            "SELECT idx, bid, id FROM keywords WHERE adv = ? AND ad_group_id = ? AND text = ? AND "
            "match_type = ? ORDER BY idx LIMIT 1",
            (adv, ag_id, key[2], key[3]),
        ).fetchone()
        if row is None:
            n = _next_number(conn, "keywords", "kw_", idx=True)
            value = bid if bid is not None else FALLBACK_BID
            conn.execute(
                "INSERT INTO keywords (idx, id, adv, campaign_id, ad_group_id, text, match_type, bid, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    n,
                    f"kw_{n:07d}",
                    adv,
                    camp_idx[key[0]][1],
                    ag_id,
                    key[2],
                    key[3],
                    value,
                    Status.ENABLED.value,
                ),
            )
            kw_idx[key], kw_bid[key], kw_id[key] = n, value, f"kw_{n:07d}"
            new["keywords"] += 1
        else:
            value = bid if bid is not None else row[1]
            conn.execute("UPDATE keywords SET bid = ? WHERE idx = ?", (value, row[0]))
            kw_idx[key], kw_bid[key], kw_id[key] = row[0], value, row[2]

    # the console's ids of the campaigns, ad groups and keywords
    _write_external_ids(
        conn,
        adv,
        [
            *((camp_idx[c][1], x) for c, x in plan.campaign_ext.items()),
            *((group_id[g], x) for g, x in plan.ad_group_ext.items()),
            *((kw_id[k], x) for k, x in plan.keyword_ext.items()),
        ],
    )

    # search terms (matched by keyword and text)
    term_idx: dict[tuple[_KwKey, str], int] = {}
    for key, term in plan.terms:
        row = conn.execute(
            "SELECT idx FROM search_terms WHERE adv = ? AND keyword_idx = ? AND term = ? "
            "ORDER BY idx LIMIT 1",
            (adv, kw_idx[key], term),
        ).fetchone()
        if row is None:
            (n,) = conn.execute("SELECT COALESCE(MAX(idx), 0) + 1 FROM search_terms").fetchone()
            conn.execute(
                "INSERT INTO search_terms (idx, adv, keyword_idx, term) VALUES (?, ?, ?, ?)",
                (n, adv, kw_idx[key], term),
            )
            term_idx[(key, term)] = n
            new["search_terms"] += 1
        else:
            term_idx[(key, term)] = row[0]

    # the covered days are replaced, never added to
    first, last = day(plan.start), day(plan.end)
    for table in ("keyword_days", "campaign_days", "search_term_days"):
        conn.execute(f"DELETE FROM {table} WHERE adv = ? AND day BETWEEN ? AND ?", (adv, first, last))
    conn.executemany(
        "INSERT INTO keyword_days (adv, day, keyword_idx, impressions, clicks, spend_cents, orders, sales_cents,"
        " organic_cents, avg_position, impression_share, bid_cents) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?)",
        [
            (adv, day(d), kw_idx[key], *_funnel(f), round((bid if bid is not None else kw_bid[key]) * 100))
            for (key, d), (f, bid) in sorted(plan.keyword_days.items(), key=_by_day)
        ],
    )
    conn.executemany(
        "INSERT INTO campaign_days (adv, day, campaign_idx, impressions, clicks, spend_cents, orders, sales_cents,"
        " organic_cents, budget_cents, budget_exhausted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, NULL)",
        [
            (adv, day(d), camp_idx[c][0], *_funnel(f), round((b if b is not None else budgets[c]) * 100))
            for (c, d), (f, b) in sorted(plan.campaign_days.items(), key=_by_day)
        ],
    )
    conn.executemany(
        "INSERT INTO search_term_days (adv, day, term_idx, impressions, clicks, spend_cents, orders, sales_cents,"
        " organic_cents) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
        [
            (adv, day(d), term_idx[(key, term)], *_funnel(f))
            for (key, term, d), f in sorted(
                plan.term_days.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])
            )
        ],
    )

    # placeholder prices: each ad group's sales per order over its whole stored history
    if _set_prices(conn, adv):
        assumptions.append(f"the account has no orders: placeholder products priced ${FALLBACK_PRICE:.2f}")
    n_products = conn.execute("SELECT COUNT(*) FROM products WHERE adv = ?", (adv,)).fetchone()[0]
    if n_products:
        assumptions.append(
            f"reports name no products: {n_products} placeholder product(s), one per ad group, "
            f"priced at the ad group's sales per order (the account's where it has none), "
            f"margin {PLACEHOLDER_MARGIN:g}"
        )

    unchanged = not created and _digest(conn, adv) == before
    if not unchanged:
        conn.execute(BUMP_WRITE_COUNT)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'generation_id'", (_new_generation_id(),))

    counts = {
        t: conn.execute(f"SELECT COUNT(*) FROM {t} WHERE adv = ?", (adv,)).fetchone()[0]
        for t in ("campaigns", "ad_groups", "keywords", "search_terms", "products")
    }
    return ImportSummary(
        path=str(path),
        advertiser_id=adv_id,
        advertiser_name=name,
        created=created,
        unchanged=unchanged,
        files=plan.files,
        start=plan.start,
        end=plan.end,
        history={"start": new_start, "end": new_end},
        rows={
            "keyword_days": len(plan.keyword_days),
            "campaign_days": len(plan.campaign_days),
            "search_term_days": len(plan.term_days),
        },
        new=new,
        counts=counts,
        totals=sum((f for f, _ in plan.campaign_days.values()), Funnel()).totals(),
        keyword_totals=sum((f for f, _ in plan.keyword_days.values()), Funnel()).totals(),
        search_term_totals=sum(plan.term_days.values(), Funnel()).totals(),
        assumptions=assumptions,
    )


def _write_external_ids(conn: Db, adv: int, pairs: Sequence[tuple[str, str]]) -> None:
    """Record (store id, console id) pairs. An Amazon id names one entity of a kind (cmp_, ag_, kw_) per
    advertiser, so the entity that held it before (a renamed campaign, say) loses it."""
    for entity_id, external_id in pairs:
        prefix = entity_id.split("_", 1)[0] + "_"
        conn.execute(
            f"DELETE FROM {EXTERNAL_IDS_TABLE} WHERE adv = ? AND external_id = ? AND entity_id != ? "
            "AND substr(entity_id, 1, ?) = ?",
            (adv, external_id, entity_id, len(prefix), prefix),
        )
        conn.execute(
            f"INSERT INTO {EXTERNAL_IDS_TABLE} (adv, entity_id, external_id) VALUES (?, ?, ?) "
            "ON CONFLICT (entity_id) DO UPDATE SET adv = excluded.adv, external_id = excluded.external_id",
            (adv, entity_id, external_id),
        )


def external_ids(conn: Db | sqlite3.Connection, adv: int) -> dict[str, str]:
    """The console's ids of one advertiser's entities (store id -> Amazon id); empty where none were imported
    (and in a world file made before the migrations, which has no such table)."""
    db = conn if isinstance(conn, Db) else Db(conn, "sqlite")
    if EXTERNAL_IDS_TABLE not in db.tables():
        return {}
    rows = db.execute(f"SELECT entity_id, external_id FROM {EXTERNAL_IDS_TABLE} WHERE adv = ?", (adv,))
    return {str(e): str(x) for e, x in rows}


def _by_day(item: tuple[tuple[Any, dt.date], Any]) -> tuple[dt.date, Any]:
    return item[0][1], item[0][0]


def _funnel(f: Funnel) -> tuple[int, int, int, int, int]:
    return f.impressions, f.clicks, f.spend_cents, f.orders, f.sales_cents


def _set_prices(conn: Db, adv: int) -> bool:
    """Price every product of the advertiser's ad groups at the group's sales per order; True if the account
    has no orders at all (the fallback price is used)."""
    by_group = dict(
        (g, (orders, sales))
        for g, orders, sales in conn.execute(
            "SELECT k.ad_group_id, SUM(d.orders), SUM(d.sales_cents) FROM keyword_days d JOIN keywords k "
            "ON k.idx = d.keyword_idx WHERE d.adv = ? GROUP BY k.ad_group_id",
            (adv,),
        )
    )
    orders = sum(o for o, _ in by_group.values())
    sales = sum(s for _, s in by_group.values())
    if not orders:
        orders, sales = conn.execute(
            "SELECT COALESCE(SUM(orders), 0), COALESCE(SUM(sales_cents), 0) FROM campaign_days WHERE adv = ?",
            (adv,),
        ).fetchone()
    account = sales / orders / 100 if orders and sales else None
    for g, product_ids in conn.execute(
        "SELECT id, product_ids FROM ad_groups WHERE adv = ?", (adv,)
    ).fetchall():
        o, s = by_group.get(g, (0, 0))
        price = s / o / 100 if o and s else account if account is not None else FALLBACK_PRICE
        for p in json.loads(product_ids):
            conn.execute("UPDATE products SET price = ? WHERE id = ? AND adv = ?", (round(price, 2), p, adv))
    return account is None


def describe(summary: ImportSummary) -> dict[str, Any]:
    """The summary as plain JSON data."""
    return json.loads(summary.model_dump_json())


def summary_lines(summary: ImportSummary) -> Iterator[str]:
    """A few lines for people."""
    verb = "created" if summary.created else ("unchanged" if summary.unchanged else "updated")
    yield (
        f"{summary.advertiser_id} {summary.advertiser_name!r} {verb} in {summary.path}: "
        f"{summary.start} .. {summary.end} (history {summary.history['start']} .. {summary.history['end']})"
    )
    for f in summary.files:
        yield f"  {f.path}: {f.report_type.value} ({f.format}), {f.rows:,} rows, {f.start} .. {f.end}"
    t = summary.totals
    yield (
        f"  totals: {t['impressions']:,} impressions, {t['clicks']:,} clicks, spend ${t['spend']:,.2f}, "
        f"{t['orders']:,} orders, sales ${t['sales']:,.2f}"
    )
    yield "  rows: " + ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    yield "  account: " + ", ".join(f"{k} {v:,} ({summary.new[k]:,} new)" for k, v in summary.counts.items())
    for a in summary.assumptions:
        yield f"  assumed: {a}"
