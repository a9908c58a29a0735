import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.errors import InvalidInputError
from tools.market.data_model import CampaignDay, KeywordDay
from tools.uplift.attribution import (
    FunnelTotals,
    Kpi,
    factor_attribution,
    funnel_attribution,
    kpi_from_totals,
)

BEFORE = FunnelTotals(impressions=10000, clicks=300, spend=240, orders=30, sales=1200)
AFTER = FunnelTotals(impressions=12000, clicks=330, spend=300, orders=28, sales=1260)

positive = st.floats(min_value=1.0, max_value=1e5)


@st.composite
def totals(draw: st.DrawFn) -> FunnelTotals:
    imp = draw(positive)
    clicks = imp * draw(st.floats(0.001, 0.5))
    orders = clicks * draw(st.floats(0.01, 0.5))
    return FunnelTotals(
        impressions=imp,
        clicks=clicks,
        spend=clicks * draw(st.floats(0.05, 5.0)),
        orders=orders,
        sales=orders * draw(st.floats(1.0, 200.0)),
    )


@settings(max_examples=60, deadline=None)
@given(totals(), totals(), st.sampled_from(list(Kpi)), st.sampled_from(["lmdi", "shapley"]))
def test_contributions_sum_exactly_to_the_change(
    b: FunnelTotals, a: FunnelTotals, kpi: Kpi, method: str
) -> None:
    att = funnel_attribution(b, a, kpi=kpi, method=method)
    assert att.before == pytest.approx(kpi_from_totals(kpi, b))
    assert att.after == pytest.approx(kpi_from_totals(kpi, a))
    assert att.total() == pytest.approx(att.change, rel=1e-9, abs=1e-9 * max(1.0, abs(att.before)))


def test_single_driver_change_is_attributed_to_that_driver_only() -> None:
    after = FunnelTotals(
        impressions=20000, clicks=600, spend=480, orders=60, sales=2400
    )  # only impressions doubled
    att = funnel_attribution(BEFORE, after, kpi="sales")
    values = {c.name: c.value for c in att.contributions}
    assert values["impressions"] == pytest.approx(1200)
    assert all(abs(v) < 1e-9 for k, v in values.items() if k != "impressions")
    acos = funnel_attribution(BEFORE, after, kpi="acos")
    assert acos.change == pytest.approx(0) and all(abs(c.value) < 1e-12 for c in acos.contributions)


def test_lmdi_and_shapley_agree_in_sign_and_roughly_in_size() -> None:
    lmdi = funnel_attribution(BEFORE, AFTER, kpi="roas", method="lmdi")
    shap = funnel_attribution(BEFORE, AFTER, kpi="roas", method="shapley")
    assert lmdi.method == "lmdi" and shap.method == "shapley"
    for a, b in zip(lmdi.contributions, shap.contributions, strict=True):
        assert a.name == b.name and a.value == pytest.approx(b.value, rel=0.05)


def _kw(day: int, kw: str, imp: int, clicks: int, spend: float, orders: int, sales: float) -> KeywordDay:
    return KeywordDay(
        date=dt.date(2026, 6, day),
        keyword_id=kw,
        bid=1.0,
        impressions=imp,
        clicks=clicks,
        spend=spend,
        orders=orders,
        sales=sales,
    )


def test_keyword_rows_with_segments_attribute_mix_shifts_and_new_keywords() -> None:
    before = [_kw(1, "k1", 5000, 200, 150, 20, 800), _kw(2, "k2", 5000, 100, 90, 10, 400)]
    after = [_kw(8, "k1", 3000, 120, 90, 12, 480), _kw(9, "k3", 9000, 210, 200, 16, 780)]
    for kpi in ["sales", "acos", "spend"]:
        att = funnel_attribution(before, after, kpi=kpi, segment_by="keyword_id")
        assert att.method == "shapley"
        assert att.total() == pytest.approx(att.change)
    sales = funnel_attribution(before, after, kpi="sales", segment_by="keyword_id")
    # k1 kept its funnel ratios, k2 left and k3 came: all of it is a volume (impressions) change
    assert {c.name: round(c.value, 6) for c in sales.contributions}["impressions"] == pytest.approx(
        sales.change
    )
    campaign = [
        CampaignDay(
            date=dt.date(2026, 6, 1),
            campaign_id="c1",
            budget=50,
            impressions=100,
            clicks=5,
            spend=4,
            orders=1,
            sales=30,
        )
    ]
    assert funnel_attribution(campaign, campaign, kpi="sales").change == 0
    with pytest.raises(InvalidInputError, match="no field 'keyword_id'"):
        funnel_attribution(campaign, campaign, segment_by="keyword_id")


def test_undefined_kpi_and_bad_method_are_refused() -> None:
    no_sales = FunnelTotals(impressions=100, clicks=3, spend=2.0)
    with pytest.raises(InvalidInputError, match="acos is undefined in the before period"):
        funnel_attribution(no_sales, AFTER, kpi="acos")
    with pytest.raises(InvalidInputError, match="lmdi needs every driver > 0"):
        funnel_attribution(FunnelTotals(), AFTER, kpi="sales", method="lmdi")
    with pytest.raises(InvalidInputError, match="kpi is one of"):
        funnel_attribution(BEFORE, AFTER, kpi="profit")
    # zero before: shapley handles it, all from impressions
    att = funnel_attribution(FunnelTotals(), AFTER, kpi="sales")
    assert att.method == "shapley" and att.contributions[0].value == pytest.approx(1260)


def _world(switched: frozenset[str]) -> float:
    # a KPI where own bids and seasonality interact
    return (
        100
        + 10 * ("bid" in switched)
        - 5 * ("competitors" in switched)
        + 20 * ("season" in switched)
        + 4 * ("bid" in switched and "season" in switched)
    )


def test_factor_attribution_shapley_splits_interactions_fairly() -> None:
    att = factor_attribution(["bid", "competitors", "season"], _world)
    values = {c.name: c.value for c in att.contributions}
    assert values == pytest.approx({"bid": 12.0, "competitors": -5.0, "season": 22.0})
    assert att.total() == pytest.approx(att.change) and att.change == 29.0
    import itertools

    names = ["bid", "competitors", "season"]
    table = {frozenset(c): _world(frozenset(c)) for r in range(4) for c in itertools.combinations(names, r)}
    assert {c.name: c.value for c in factor_attribution(names, table).contributions} == pytest.approx(values)


def test_factor_attribution_from_leave_one_out_what_ifs() -> None:
    names = ["bid", "competitors", "season"]
    all_set = frozenset(names)
    table = {frozenset(): _world(frozenset()), all_set: _world(all_set)}
    table |= {all_set - {f}: _world(all_set - {f}) for f in names}
    att = factor_attribution(names, table)
    values = {c.name: c.value for c in att.contributions}
    assert att.method == "leave_one_out"
    assert values["bid"] == 14.0 and values["interaction"] == pytest.approx(-4.0)
    assert math.isclose(att.total(), att.change)
    del table[all_set - {"season"}]
    with pytest.raises(InvalidInputError, match=r"missing the what-if with only \['season'\] reverted"):
        factor_attribution(names, table)
