"""The accepted changes of one advertiser as an Amazon Sponsored Products bulksheet (`adguide market
export-bulksheet`).

Source: the store's audit log (every write made through `AdvertiserStore`: the MCP tools' `apply_change`, jobs,
people), from `since` on. Only the latest value of each (entity, field) is exported, so three bid changes to one
keyword give one row with the last bid. Rows, in the columns of the console's Sponsored Products bulksheet
(`COLUMNS`, a subset of the template's, in its order):

- `Operation=Update`, `Entity=Campaign`: `Daily Budget` (set_budget) and/or `State` (set_status);
- `Operation=Update`, `Entity=Keyword` (`Product Targeting` for a target whose text is its expression, e.g.
  `close-match`, `asin="B0..."`): `Bid` (set_bid) and/or `State` (set_status);
- `Operation=Create`, `Entity=Keyword` for keywords added (add_keyword): `Keyword Text`, `Match Type`, `Bid`,
  `State`, with any later bid or state change to them folded in;
- `Operation=Create`, `Entity=Negative Keyword` for negatives added (add_negative): `Match Type`
  `negativeExact` / `negativePhrase`.

Rows address entities by the console's ids (`Campaign ID`, `Ad Group ID`, `Keyword ID` / `Product Targeting ID`),
which `adguide market import` records from the reports' `campaignId`, `adGroupId`, `keywordId` columns (the
importer's `external_ids` table). Where an id is not known (reports without id columns, a generated world, a
keyword this tool created) the row names the entity instead (`Campaign Name`, `Ad Group Name`, `Keyword Text` +
`Match Type`) and the export says how many rows do: bulksheets 2.0 match Update rows by id, so the console may
refuse those rows until the ids are known (re-import a report with id columns).

Every entity the audit log names must still exist in the account; one that does not, or an action this module
cannot express as a row, stops the export with a `BulksheetError` naming the audit record: nothing is written.

Files: CSV (every cell text); XLSX only where openpyxl is importable. `read_bulksheet` reads either back as
rows of {column: text}.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tools.errors import AdguideError
from tools.market.data_model import AdGroup, MatchType, Status
from tools.market.db import parse_location
from tools.market.store import MarketStore

PRODUCT = "Sponsored Products"

# The console's Sponsored Products bulksheet columns this export fills, in the template's order.
COLUMNS: tuple[str, ...] = (
    "Product",
    "Entity",
    "Operation",
    "Campaign ID",
    "Ad Group ID",
    "Keyword ID",
    "Product Targeting ID",
    "Campaign Name",
    "Ad Group Name",
    "State",
    "Daily Budget",
    "Bid",
    "Keyword Text",
    "Match Type",
    "Product Targeting Expression",
)
REQUIRED_COLUMNS = ("Product", "Entity", "Operation")

NEGATIVE_MATCH = {MatchType.EXACT: "negativeExact", MatchType.PHRASE: "negativePhrase"}
_AUTO_TARGETS = {"close-match", "loose-match", "substitutes", "complements"}
_ADDED_BID = re.compile(r"\bbid (\d+(?:\.\d+)?)(?:\s+in\s+ag_\d+)?\s*$")  # "... bid 1.20 in ag_000003"

Row = dict[str, str]


class BulksheetError(AdguideError):
    """An export that cannot be made (an unknown advertiser or id, an action with no bulksheet row), or a file
    that is not a bulksheet; the message says which."""


class BulksheetExport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    advertiser_id: str
    store_path: str
    since: dt.datetime | None
    changes: int  # audit records exported (several may fold into one row)
    rows: list[Row]
    by_name: int  # rows that name an entity because its console id is not known
    notes: list[str]

    def counts(self) -> dict[str, int]:
        """Rows per "Operation Entity"."""
        out: dict[str, int] = {}
        for r in self.rows:
            key = f"{r['Operation']} {r['Entity']}"
            out[key] = out.get(key, 0) + 1
        return out


def is_target_expression(text: str) -> bool:
    """A product / auto target stored as a broad keyword whose text is its expression (see the importer; a
    generated world writes auto targets as "auto:close-match")."""
    t = text.lower().removeprefix("auto:")
    return t in _AUTO_TARGETS or t.startswith(("asin=", "asin-expanded=", "category="))


@dataclass
class _Change:
    first: int  # the first audit record's id: rows keep the order the changes were made in
    created: bool = False
    values: dict[str, Any] = field(default_factory=dict)  # bid, state, budget, added_bid


def _as_utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


def _money(x: Any) -> str:
    return f"{float(x):.2f}"


def export_bulksheet(
    store_path: Path | str,
    advertiser_id: str,
    since: dt.datetime | None = None,
    after_record: int | None = None,
) -> BulksheetExport:
    """The advertiser's accepted changes (audit records at or after `since`, all when None; a naive time is UTC;
    and after the audit record `after_record` where given) as bulksheet rows. Raises BulksheetError /
    UnknownIdError with a message naming what is wrong."""
    location = parse_location(store_path)
    path = location.url if location.url is not None else location.path
    if location.path is not None and not location.path.is_file():
        raise BulksheetError(
            f"no accounts file at {location.path}; import reports with `adguide market import` "
            "(or name one with --world)",
            field="world",
        )
    since_utc = _as_utc(since) if since is not None else None
    with MarketStore.open(path) as store:
        adv = store.scoped(advertiser_id)  # UnknownIdError: "advertiser ... does not exist"
        records = [
            r
            for r in adv.audit_log()
            if (since_utc is None or _as_utc(r.at) >= since_utc)
            and (after_record is None or r.id > after_record)
        ]
        campaigns = {c.id: c for c in adv.campaigns()}
        groups = {g.id: g for g in adv.ad_groups()}
        keywords = {k.id: k for k in adv.keywords()}
        negatives = {n.id: n for n in adv.negatives()}
        ext = adv.external_ids()

    changes: dict[str, _Change] = {}
    for r in records:
        where = f"audit record {r.id} ({r.action} {r.entity} at {r.at.isoformat()})"

        def missing(what: str, r: Any = r, where: str = where) -> BulksheetError:
            return BulksheetError(
                f"{where}: {what} {r.entity} is not in {adv.advertiser_id}'s account in {path}; "
                "nothing exported",
                field="entity_id",
            )

        if r.action == "set_bid":
            if r.entity not in keywords:
                raise missing("keyword")
            value: Any = _number(r.after, where)
            field_name = "bid"
        elif r.action == "set_budget":
            if r.entity not in campaigns:
                raise missing("campaign")
            value, field_name = _number(r.after, where), "budget"
        elif r.action == "set_status":
            if r.entity not in campaigns and r.entity not in keywords:
                raise missing("campaign or keyword")
            try:
                value, field_name = Status(str(r.after)).value, "state"
            except ValueError:
                raise BulksheetError(
                    f"{where}: status {r.after!r} is not one of enabled, paused", field="status"
                ) from None
        elif r.action in ("add_keyword", "add_keywords"):
            if r.entity not in keywords:
                raise missing("keyword")
            m = _ADDED_BID.search(str(r.after or ""))
            value = float(m.group(1)) if m else keywords[r.entity].bid
            field_name = "added_bid"
        elif r.action in ("add_negative", "add_negatives"):
            if r.entity not in negatives:
                raise missing("negative keyword")
            value, field_name = None, "added"
        else:
            raise BulksheetError(
                f"{where}: action {r.action!r} has no bulksheet row (exported: set_bid, set_budget, set_status, "
                "add_keyword, add_negative); nothing exported",
                field="action",
            )
        change = changes.setdefault(r.entity, _Change(first=r.id))
        if field_name in ("added_bid", "added"):
            change.created = True
        change.values[field_name] = value  # later records overwrite: the latest value per (entity, field)

    def in_account(what: str, ad_group_id: str) -> AdGroup:
        group = groups.get(ad_group_id)
        if group is None or group.campaign_id not in campaigns:
            raise BulksheetError(
                f"{what}'s ad group {ad_group_id} (or its campaign) is not in "
                f"{adv.advertiser_id}'s account in {path}; nothing exported",
                field="entity_id",
            )
        return group

    rows: list[tuple[int, int, Row]] = []  # (section, first record, row)
    by_name = 0
    for entity_id, change in changes.items():
        row: Row = {c: "" for c in COLUMNS}
        row["Product"] = PRODUCT
        named = False
        if entity_id in campaigns:
            camp = campaigns[entity_id]
            row.update({"Entity": "Campaign", "Operation": "Update"})
            if entity_id in ext:
                row["Campaign ID"] = ext[entity_id]
            else:
                row["Campaign Name"], named = camp.name, True
            if "budget" in change.values:
                row["Daily Budget"] = _money(change.values["budget"])
            if "state" in change.values:
                row["State"] = change.values["state"]
            section = 0
        elif entity_id in keywords:
            kw = keywords[entity_id]
            group = in_account(f"keyword {entity_id}", kw.ad_group_id)
            named = _parents(
                row,
                ext,
                campaigns[group.campaign_id].id,
                campaigns[group.campaign_id].name,
                group.id,
                group.name,
            )
            target = is_target_expression(kw.text) and not change.created
            row["Entity"] = "Product Targeting" if target else "Keyword"
            id_column = "Product Targeting ID" if target else "Keyword ID"
            if change.created:
                row["Operation"] = "Create"
                row["Keyword Text"], row["Match Type"] = kw.text, kw.match_type.value
                row["Bid"] = _money(change.values.get("bid", change.values.get("added_bid", kw.bid)))
                row["State"] = change.values.get("state", Status.ENABLED.value)
                section = 2
            else:
                row["Operation"] = "Update"
                if entity_id in ext:
                    row[id_column] = ext[entity_id]
                elif target:
                    row["Product Targeting Expression"], named = kw.text.removeprefix("auto:"), True
                else:
                    row["Keyword Text"], row["Match Type"], named = kw.text, kw.match_type.value, True
                if "bid" in change.values:
                    row["Bid"] = _money(change.values["bid"])
                if "state" in change.values:
                    row["State"] = change.values["state"]
                section = 1
        else:
            neg = negatives[entity_id]
            group = in_account(f"negative keyword {entity_id}", neg.ad_group_id)
            named = _parents(
                row, ext, group.campaign_id, campaigns[group.campaign_id].name, group.id, group.name
            )
            row.update(
                {
                    "Entity": "Negative Keyword",
                    "Operation": "Create",
                    "Keyword Text": neg.text,
                    "Match Type": NEGATIVE_MATCH[neg.match_type],
                    "State": Status.ENABLED.value,
                }
            )
            section = 3
        by_name += named
        rows.append((section, change.first, row))
    rows.sort(key=lambda t: (t[0], t[1]))

    notes: list[str] = []
    when = f" since {since_utc.isoformat()}" if since_utc is not None else ""
    if not records:
        notes.append(f"no accepted changes{when}: the bulksheet has a header and no rows")
    elif len(records) > len(rows):
        notes.append(
            f"{len(records)} accepted change(s){when} in {len(rows)} row(s): only the latest value of "
            "each entity's field is exported"
        )
    if by_name:
        why = (
            "the imported reports carried no campaignId / adGroupId / keywordId columns"
            if not ext
            else "the reports carried no console id for them, or this tool created them"
        )
        notes.append(
            f"{by_name} row(s) name their entity (Campaign Name, Ad Group Name, Keyword Text + Match "
            f"Type) instead of the console's id: {why}. Bulksheets 2.0 match Update rows by id, so the "
            "console may refuse these until a report with id columns is imported"
        )
    n_created = sum(1 for _, _, r in rows if r["Operation"] == "Create")
    if n_created:
        notes.append(
            f"{n_created} Create row(s): the console assigns the new ids; import a report after the "
            "upload so later exports address them by id"
        )
    return BulksheetExport(
        advertiser_id=adv.advertiser_id,
        store_path=str(path),
        since=since_utc,
        changes=len(records),
        rows=[r for _, _, r in rows],
        by_name=by_name,
        notes=notes,
    )


def _parents(
    row: Row, ext: dict[str, str], campaign_id: str, campaign_name: str, group_id: str, group_name: str
) -> bool:
    """Fill the campaign and ad group columns (ids where known, else names); True if a name was used."""
    named = False
    if campaign_id in ext:
        row["Campaign ID"] = ext[campaign_id]
    else:
        row["Campaign Name"], named = campaign_name, True
    if group_id in ext:
        row["Ad Group ID"] = ext[group_id]
    else:
        row["Ad Group Name"], named = group_name, True
    return named


def _number(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise BulksheetError(f"{where}: the new value {value!r} is not a number; nothing exported", field="value")


# --- files -------------------------------------------------------------------------------------------------


def _xlsx_available() -> bool:
    try:
        # lazy: openpyxl is optional (XLSX only)
        import openpyxl  # type: ignore[import-untyped, unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def _columns(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys([*COLUMNS, *(c for r in rows for c in r if c not in COLUMNS)]))


def bulksheet_csv(rows: list[Row]) -> str:
    """The rows as the text of a CSV bulksheet (header first, CRLF lines)."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=_columns(rows), restval="", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_bulksheet(rows: list[Row], path: Path | str) -> Path:
    """Write rows as a CSV (.csv) or, where openpyxl is installed, an XLSX (.xlsx) bulksheet; the file appears
    whole or not at all."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise BulksheetError(f"-o {path}: name a .csv (or .xlsx) file", field="out", allowed=".csv, .xlsx")
    if suffix == ".xlsx" and not _xlsx_available():
        raise BulksheetError(
            f"-o {path}: writing XLSX needs openpyxl, which is not installed; write a .csv",
            field="out",
            allowed=".csv",
        )
    if path.is_dir():
        raise BulksheetError(f"-o {path} is a directory", field="out", allowed="a file path")
    if not path.parent.is_dir():
        raise BulksheetError(
            f"-o {path}: {path.parent} is not a directory",
            field="out",
            allowed="a path in an existing directory",
        )
    columns = _columns(rows)
    tmp = path.with_name(f".{path.name}.writing-{os.getpid()}")
    try:
        if suffix == ".csv":
            tmp.write_text(bulksheet_csv(rows), encoding="utf-8", newline="")
        else:
            # lazy: openpyxl is optional (XLSX only)
            import openpyxl  # type: ignore[import-untyped, unused-ignore]

            wb = openpyxl.Workbook()
            ws = wb.active
            ws.title = "Sponsored Products Campaigns"
            ws.append(columns)
            for r in rows:
                ws.append([r.get(c, "") for c in columns])
            wb.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_bulksheet(path: Path | str) -> list[Row]:
    """The rows of a bulksheet file (CSV, or XLSX where openpyxl is installed) as {column: text}, every column
    of `COLUMNS` present ("" where empty or absent)."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BulksheetError(f"{path}: no such file", field="file") from None
    if data[:2] == b"PK":
        if not _xlsx_available():
            raise BulksheetError(f"{path}: reading XLSX needs openpyxl, which is not installed", field="file")
        # lazy: openpyxl is optional (XLSX only)
        import openpyxl  # type: ignore[import-untyped, unused-ignore]

        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = next((ws for ws in wb.worksheets if "Sponsored Products" in ws.title), wb.worksheets[0])
        table = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BulksheetError(f"{path}: not UTF-8 text", field="file") from None
        table = list(csv.reader(io.StringIO(text, newline="")))
    if not table:
        raise BulksheetError(f"{path}: empty file", field="file")
    header = [h.strip() for h in table[0]]
    for col in REQUIRED_COLUMNS:
        if col not in header:
            raise BulksheetError(
                f"{path} row 1: no {col!r} column; not a Sponsored Products bulksheet", field="file"
            )
    rows: list[Row] = []
    for n, values in enumerate(table[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise BulksheetError(
                f"{path} row {n}: {len(values)} fields, the header has {len(header)}", field="file"
            )
        row = {c: "" for c in COLUMNS}
        row.update({h: v.strip() for h, v in zip(header, values, strict=True)})
        rows.append(row)
    return rows
