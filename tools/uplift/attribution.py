"""Why did my KPI change? Exact decompositions of a change between two periods.

Along the ad funnel (sales = impressions x CTR x CVR x order value; spend = impressions x CTR x CPC;
ACoS = CPC / (CVR x order value); ROAS = 1 / ACoS):

- ``lmdi`` (log-mean Divisia): contribution of driver j = L(after, before) * exponent_j * ln(x_j after / x_j
  before), with L the logarithmic mean. Exact for a multiplicative KPI: contributions sum to the change.
- ``shapley``: each driver's average marginal effect over all orders of switching drivers from their
  before to their after value. Exact for any KPI function, and fair where drivers interact, e.g. when the
  KPI sums funnels over keywords (``segment_by``) or drivers are zero in one period.

Behind the drivers, factors (own bid/budget changes, competitor pressure, seasonality) are attributed by a
Shapley value over counterfactual KPI values the caller supplies, e.g. the simulator's what-ifs with a
subset of the factors at their new state.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

from tools.errors import InvalidInputError
from tools.market.data_model import PerformanceRow
from tools.uplift.models import Attribution, Contribution, Kpi, Method

MAX_SHAPLEY_PLAYERS = 12


# KPI = product of drivers ** exponent
KPI_DRIVERS: dict[Kpi, dict[str, int]] = {
    Kpi.SALES: {"impressions": 1, "ctr": 1, "cvr": 1, "order_value": 1},
    Kpi.ORDERS: {"impressions": 1, "ctr": 1, "cvr": 1},
    Kpi.CLICKS: {"impressions": 1, "ctr": 1},
    Kpi.SPEND: {"impressions": 1, "ctr": 1, "cpc": 1},
    Kpi.ACOS: {"cpc": 1, "cvr": -1, "order_value": -1},
    Kpi.ROAS: {"cvr": 1, "order_value": 1, "cpc": -1},
}


class FunnelTotals(BaseModel):
    """Summed report rows of one period (or one segment of a period)."""

    impressions: float = Field(default=0.0, ge=0)
    clicks: float = Field(default=0.0, ge=0)
    spend: float = Field(default=0.0, ge=0)
    orders: float = Field(default=0.0, ge=0)
    sales: float = Field(default=0.0, ge=0)

    @classmethod
    def from_rows(cls, rows: Sequence[PerformanceRow]) -> FunnelTotals:
        return cls(
            impressions=float(sum(r.impressions for r in rows)),
            clicks=float(sum(r.clicks for r in rows)),
            spend=float(sum(r.spend for r in rows)),
            orders=float(sum(r.orders for r in rows)),
            sales=float(sum(r.sales for r in rows)),
        )

    @classmethod
    def from_arrays(
        cls, *, impressions: object, clicks: object, spend: object, orders: object, sales: object
    ) -> FunnelTotals:
        """Totals of per-day (or per-keyword) arrays, e.g. the simulator's DaySimResult fields."""
        return cls(
            impressions=float(np.sum(impressions)),  # type: ignore[call-overload]
            clicks=float(np.sum(clicks)),  # type: ignore[call-overload]
            spend=float(np.sum(spend)),  # type: ignore[call-overload]
            orders=float(np.sum(orders)),  # type: ignore[call-overload]
            sales=float(np.sum(sales)),  # type: ignore[call-overload]
        )

    def drivers(self) -> dict[str, float | None]:
        """Funnel ratios; None where the stage below is empty (no clicks: CVR undefined)."""

        def ratio(a: float, b: float) -> float | None:
            return a / b if b > 0 else None

        return {
            "impressions": self.impressions,
            "ctr": ratio(self.clicks, self.impressions),
            "cvr": ratio(self.orders, self.clicks),
            "order_value": ratio(self.sales, self.orders),
            "cpc": ratio(self.spend, self.clicks),
        }


def paired_drivers(before: FunnelTotals, after: FunnelTotals) -> tuple[dict[str, float], dict[str, float]]:
    """Drivers of both periods; a ratio undefined in one period takes the other period's value (it did not
    change: e.g. a new keyword's sales come from its impressions), and 0 when undefined in both."""
    b, a = before.drivers(), after.drivers()
    out_b: dict[str, float] = {}
    out_a: dict[str, float] = {}
    for k in b:
        vb, va = b[k], a[k]
        out_b[k] = vb if vb is not None else (va if va is not None else 0.0)
        out_a[k] = va if va is not None else out_b[k]
    return out_b, out_a


def kpi_from_totals(kpi: Kpi, totals: FunnelTotals) -> float:
    t = totals
    if kpi is Kpi.ACOS:
        return t.spend / t.sales if t.sales > 0 else math.nan
    if kpi is Kpi.ROAS:
        return t.sales / t.spend if t.spend > 0 else math.nan
    return float(getattr(t, kpi.value))


def _kpi_from_drivers(kpi: Kpi, d: Mapping[str, float]) -> float:
    value = 1.0
    for name, exp in KPI_DRIVERS[kpi].items():
        if exp < 0 and d[name] == 0:
            return math.nan
        value *= d[name] ** exp
    return value


def _logmean(a: float, b: float) -> float:
    d = math.log(a) - math.log(b)
    return a if d == 0 else (a - b) / d  # a == b, or so close that the logs are equal


def _contributions(values: dict[str, float], change: float) -> list[Contribution]:
    return [
        Contribution(name=k, value=float(v), share=float(v / change) if change != 0 else None)
        for k, v in values.items()
    ]


def shapley_values(players: Sequence[str], value: Callable[[frozenset[str]], float]) -> dict[str, float]:
    """Exact Shapley values of `value` (a function of the set of players switched to their new state)."""
    m = len(players)
    if m == 0:
        return {}
    if m > MAX_SHAPLEY_PLAYERS:
        raise InvalidInputError(
            f"exact Shapley attribution takes at most {MAX_SHAPLEY_PLAYERS} drivers or factors (got {m})",
            field="factors",
        )
    cache: dict[frozenset[str], float] = {}

    def v(s: frozenset[str]) -> float:
        if s not in cache:
            cache[s] = float(value(s))
            if not math.isfinite(cache[s]):
                raise InvalidInputError(
                    f"the KPI is undefined when {sorted(s) or 'nothing'} changed (e.g. ACoS with no sales)",
                    field="kpi",
                )
        return cache[s]

    out = {}
    for p in players:
        others = [q for q in players if q != p]
        total = 0.0
        for size in range(m):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for combo in itertools.combinations(others, size):
                s = frozenset(combo)
                total += weight * (v(s | {p}) - v(s))
        out[p] = total
    return out


def _as_segments(
    data: FunnelTotals | Sequence[PerformanceRow], segment_by: str | None, field: str
) -> dict[str, FunnelTotals]:
    if isinstance(data, FunnelTotals):
        if segment_by is not None:
            raise InvalidInputError(f"{field}: segment_by needs report rows, not totals", field="segment_by")
        return {"all": data}
    rows = list(data)
    if segment_by is None:
        return {"all": FunnelTotals.from_rows(rows)}
    groups: dict[str, list[PerformanceRow]] = {}
    for r in rows:
        key = getattr(r, segment_by, None)
        if key is None:
            raise InvalidInputError(
                f"{field} rows have no field {segment_by!r} (e.g. keyword_id on KeywordDay, campaign_id on CampaignDay)",
                field="segment_by",
            )
        groups.setdefault(str(key), []).append(r)
    return {k: FunnelTotals.from_rows(v) for k, v in groups.items()}


def funnel_attribution(
    before: FunnelTotals | Sequence[PerformanceRow],
    after: FunnelTotals | Sequence[PerformanceRow],
    *,
    kpi: Kpi | str = Kpi.SALES,
    method: Method | str = Method.AUTO,
    segment_by: str | None = None,
) -> Attribution:
    """Split the change of `kpi` between two periods into funnel drivers; contributions sum to the change.

    `before`/`after` are report rows (KeywordDay, CampaignDay, ...) or their totals. With `segment_by`
    (e.g. "keyword_id") the KPI is the sum over segments of each segment's funnel, so a shift of volume
    between keywords of different CVR is attributed fairly (Shapley) rather than averaged away.
    """
    try:
        k, meth = Kpi(kpi), Method(method)
    except ValueError as exc:
        raise InvalidInputError(
            f"{exc}; kpi is one of {[x.value for x in Kpi]}, method one of {[x.value for x in Method]}",
            field="kpi",
        ) from None
    seg_b = _as_segments(before, segment_by, "before")
    seg_a = _as_segments(after, segment_by, "after")
    keys = sorted(set(seg_b) | set(seg_a))
    empty = FunnelTotals()
    pairs = {s: paired_drivers(seg_b.get(s, empty), seg_a.get(s, empty)) for s in keys}
    d_b = {s: pairs[s][0] for s in keys}
    d_a = {s: pairs[s][1] for s in keys}
    tot_b = FunnelTotals.from_rows([]) if not keys else _sum_totals([seg_b.get(s, empty) for s in keys])
    tot_a = FunnelTotals.from_rows([]) if not keys else _sum_totals([seg_a.get(s, empty) for s in keys])
    y0, y1 = kpi_from_totals(k, tot_b), kpi_from_totals(k, tot_a)
    for label, y in (("before", y0), ("after", y1)):
        if not math.isfinite(y):
            raise InvalidInputError(
                f"{k.value} is undefined in the {label} period (no sales or no spend)", field=label
            )
    change = y1 - y0
    drivers = list(KPI_DRIVERS[k])
    notes: list[str] = []

    single = len(keys) == 1
    positive = single and all(d_b[keys[0]][j] > 0 and d_a[keys[0]][j] > 0 for j in drivers)
    if meth is Method.LMDI and not positive:
        raise InvalidInputError(
            "lmdi needs every driver > 0 in both periods and no segments; use method='shapley'",
            field="method",
        )
    if meth is Method.LMDI or (meth is Method.AUTO and positive):
        s = keys[0]
        lm = _logmean(y1, y0)
        values = {j: lm * exp * math.log(d_a[s][j] / d_b[s][j]) for j, exp in KPI_DRIVERS[k].items()}
        used = Method.LMDI
    else:
        if k in (Kpi.ACOS, Kpi.ROAS) and not single:
            # ratio of sums over segments: numerator and denominator funnels per segment
            def value(switched: frozenset[str]) -> float:
                spend = sales = 0.0
                for s in keys:
                    d = {
                        j: (d_a[s] if j in switched else d_b[s])[j]
                        for j in ("impressions", "ctr", "cvr", "order_value", "cpc")
                    }
                    clicks = d["impressions"] * d["ctr"]
                    spend += clicks * d["cpc"]
                    sales += clicks * d["cvr"] * d["order_value"]
                if k is Kpi.ACOS:
                    return spend / sales if sales > 0 else math.nan
                return sales / spend if spend > 0 else math.nan

            drivers = ["impressions", "ctr", "cvr", "order_value", "cpc"]
        else:

            def value(switched: frozenset[str]) -> float:
                return sum(
                    _kpi_from_drivers(k, {j: (d_a[s] if j in switched else d_b[s])[j] for j in drivers})
                    for s in keys
                )

        values = shapley_values(drivers, value)
        used = Method.SHAPLEY
        if not single:
            notes.append(f"drivers switched together across {len(keys)} segments ({segment_by})")
    residual = change - sum(values.values())
    if abs(residual) > 1e-6 * max(1.0, abs(change)):  # defensive: the methods above are exact
        notes.append(f"unexplained residual {residual:.4g}")
    return Attribution(
        kpi=k.value,
        before=y0,
        after=y1,
        change=change,
        method=used.value,
        contributions=_contributions(values, change),
        notes=notes,
    )


def _sum_totals(parts: Sequence[FunnelTotals]) -> FunnelTotals:
    return FunnelTotals(
        impressions=sum(p.impressions for p in parts),
        clicks=sum(p.clicks for p in parts),
        spend=sum(p.spend for p in parts),
        orders=sum(p.orders for p in parts),
        sales=sum(p.sales for p in parts),
    )


def factor_attribution(
    factors: Sequence[str],
    values: Mapping[frozenset[str], float] | Callable[[frozenset[str]], float],
    *,
    kpi: str = "sales",
) -> Attribution:
    """Attribute a KPI change to factors from counterfactual KPI values.

    values(S) is the KPI when the factors in S are at their new state and the others at their old one
    (values(empty) = before, values(all) = after). With a callable or a complete table of all subsets the
    result is the exact Shapley value. With only the leave-one-out what-ifs (all factors changed but one,
    plus both endpoints) each factor gets what reverting it alone would remove, and an "interaction" line
    holds the rest so that the contributions still sum to the change.
    """
    names = list(dict.fromkeys(factors))
    if len(names) != len(factors) or not names:
        raise InvalidInputError("factors must be distinct names, at least one", field="factors")
    all_set, empty = frozenset(names), frozenset[str]()
    if callable(values):
        fn = values
        y0, y1 = float(fn(empty)), float(fn(all_set))
        contrib = shapley_values(names, fn)
        method = "shapley"
    else:
        table = {frozenset(k): float(v) for k, v in values.items()}
        unknown = set().union(*table) - set(names) if table else set()
        if unknown:
            raise InvalidInputError(f"values name unknown factors {sorted(unknown)}", field="values")
        for needed, label in (
            (empty, "no factor changed (before)"),
            (all_set, "all factors changed (after)"),
        ):
            if needed not in table:
                raise InvalidInputError(f"values lacks the KPI with {label}", field="values")
        y0, y1 = table[empty], table[all_set]
        if len(table) >= 2 ** len(names):
            contrib = shapley_values(names, table.__getitem__)
            method = "shapley"
        else:
            missing = [f for f in names if all_set - {f} not in table]
            if missing:
                raise InvalidInputError(
                    f"values needs every subset of factors (exact Shapley) or at least the leave-one-out what-ifs; "
                    f"missing the what-if with only {missing} reverted",
                    field="values",
                )
            contrib = {f: y1 - table[all_set - {f}] for f in names}
            contrib["interaction"] = (y1 - y0) - sum(contrib.values())
            method = "leave_one_out"
    change = y1 - y0
    if not (math.isfinite(y0) and math.isfinite(y1)):
        raise InvalidInputError("the KPI values must be finite", field="values")
    return Attribution(
        kpi=kpi,
        before=y0,
        after=y1,
        change=change,
        method=method,
        contributions=_contributions(contrib, change),
    )


def attribution_table(att: Attribution) -> list[tuple[str, float]]:
    """(label, value) pairs for a waterfall: before, each contribution, after."""
    return [("before", att.before), *((c.name, c.value) for c in att.contributions), ("after", att.after)]


__all__ = [
    "Attribution",
    "Contribution",
    "FunnelTotals",
    "Kpi",
    "Method",
    "attribution_table",
    "factor_attribution",
    "funnel_attribution",
    "kpi_from_totals",
    "shapley_values",
]
