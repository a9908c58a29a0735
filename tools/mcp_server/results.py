"""Helpers that keep tool results compact and consistent: metric sums, rounding, pages, periods."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from tools.errors import InvalidInputError
from tools.mcp_server.schemas import DateRange, Metrics

T = TypeVar("T")

DEFAULT_PERIOD_DAYS = 30


def round_value(x: float) -> float | None:
    """Money and counts-as-floats to cents; ratios (|x| < 1) to 4 decimals; NaN/inf to null."""
    if not math.isfinite(x):
        return None
    if abs(x) >= 1:
        return round(x, 2)
    return round(x, 4)


def compact(obj: Any) -> Any:
    """Round every float in a JSON-able structure (dicts, lists) the same way."""
    if isinstance(obj, float):
        return round_value(obj)
    if isinstance(obj, dict):
        return {k: compact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [compact(v) for v in obj]
    return obj


class Totals:
    """Running sums of the additive metrics; `metrics()` adds the ratios."""

    __slots__ = ("impressions", "clicks", "spend", "orders", "sales", "organic_sales")

    def __init__(self) -> None:
        self.impressions = 0
        self.clicks = 0
        self.spend = 0.0
        self.orders = 0
        self.sales = 0.0
        self.organic_sales = 0.0

    def add(self, row: Any) -> None:
        self.impressions += row.impressions
        self.clicks += row.clicks
        self.spend += row.spend
        self.orders += row.orders
        self.sales += row.sales
        self.organic_sales += getattr(row, "organic_sales", 0.0)

    def metrics(self) -> dict[str, Any]:
        return {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "spend": self.spend,
            "orders": self.orders,
            "sales": self.sales,
            "ctr": ratio(self.clicks, self.impressions),
            "cpc": ratio(self.spend, self.clicks),
            "cvr": ratio(self.orders, self.clicks),
            "acos": ratio(self.spend, self.sales),
        }

    def model(self) -> Metrics:
        return Metrics(**self.metrics())


def ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def sum_rows(rows: Iterable[Any]) -> Totals:
    totals = Totals()
    for row in rows:
        totals.add(row)
    return totals


def resolve_period(start: dt.date | None, end: dt.date | None, first: dt.date, last: dt.date) -> DateRange:
    """Fill defaults (the last 30 days of data) and check the period lies inside the history."""
    allowed = f"{first.isoformat()} to {last.isoformat()}"
    end = end or last
    start = start or max(first, end - dt.timedelta(days=DEFAULT_PERIOD_DAYS - 1))
    for field, value in (("start", start), ("end", end)):
        if not first <= value <= last:
            raise InvalidInputError(
                f"{field} {value.isoformat()} is outside the data ({allowed})", field=field, allowed=allowed
            )
    if start > end:
        raise InvalidInputError(
            f"start {start.isoformat()} is after end {end.isoformat()}", field="start", allowed=f"<= {end}"
        )
    return DateRange(start=start, end=end)


def relative_value(current: float, relative: float) -> float:
    """Today's bid or budget changed by a fraction (-0.2: a fifth less), to the cent; never below a cent."""
    return max(0.01, round(current * (1.0 + relative), 2))


def new_value(current: float, args: Any) -> float:
    """The bid or budget `args` asks for: its value, or today's changed by relative_change or by change_by."""
    if args.value is not None:
        return float(args.value)
    if getattr(args, "change_by", None) is not None:
        return max(0.01, round(current + args.change_by, 2))
    return relative_value(current, args.relative_change or 0.0)


def period_of(args: Any, first: dt.date, last: dt.date) -> DateRange:
    """The period a tool's Period arguments name: `last_days` (the last N days of data) or start/end."""
    if getattr(args, "last_days", None):
        return resolve_period(max(first, last - dt.timedelta(days=args.last_days - 1)), last, first, last)
    return resolve_period(args.start, args.end, first, last)


def page(rows: Sequence[T], limit: int, cursor: str | None) -> tuple[list[T], str | None]:
    """A slice of already-sorted rows; the cursor is the offset of the next page."""
    offset = 0
    if cursor is not None:
        if not cursor.isdigit() or int(cursor) > len(rows):
            raise InvalidInputError(
                f"cursor {cursor!r} is not a next_cursor of this listing",
                field="cursor",
                allowed="the next_cursor value of the previous page",
            )
        offset = int(cursor)
    chunk = list(rows[offset : offset + limit])
    nxt = offset + limit
    return chunk, (str(nxt) if nxt < len(rows) else None)


def sort_rows(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Descending by the metric, ties (and nulls, last) broken by id so pages are stable."""

    def sort_key(r: dict[str, Any]) -> tuple[int, float, str]:
        v = r.get(key)
        tie = "|".join(str(r.get(f) or "") for f in ("id", "keyword_id", "term", "date"))
        return (v is None, -(v or 0.0), tie)

    return sorted(rows, key=sort_key)
