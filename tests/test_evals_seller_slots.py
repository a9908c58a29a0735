"""The hand-written seller set's slots (evals/world.py `seller_slots`) on a real generated world: the words a
seller uses name exactly the thing the slot's id is (or, for the ambiguity slots, exactly two things), the
"which one is worst/top" slots are the first row the MCP tools themselves return, relative figures are what a
relative change works out to, and every slot evals/scenarios/sellers.yaml uses is filled by the world the
seller suite runs on."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from evals.scenario import Decision, load_scenarios
from evals.world import account_slots, seller_slots
from tools.market.data_model import Status, WorldConfig
from tools.market.store import MarketStore

# the world the seller suite runs on (evals/scenarios/suites.yaml: 6 advertisers x 60 days, seed 2027)
CONFIG = WorldConfig(n_advertisers=6, days=60, seed=2027, start_date=dt.date(2026, 6, 1))
KINDS = {
    "overview",
    "performance",
    "kpi_change",
    "bid_advice",
    "budget_split",
    "what_if",
    "experiments",
    "keywords",
    "change_request",
    "advice",
    "follow_up",
    "ambiguity",
    "out_of_scope",
    "benign",
}


def words(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).replace("_", " ").split())


def names(short: str, name: str) -> bool:
    return f" {words(short)} " in f" {words(name)} "


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.market.generate import generate_world_file

    out = tmp_path_factory.mktemp("seller_world") / "world.sqlite"
    generate_world_file(CONFIG, out)
    return out


@pytest.fixture(scope="module")
def slots(world: Path) -> dict[str, dict[str, str]]:
    with MarketStore.open(world) as store:
        return {adv: seller_slots(store, adv) for adv in store.advertiser_ids()}


def test_account_slots_merge_the_seller_slots_without_overriding_its_own(world: Path, slots) -> None:  # type: ignore[no-untyped-def]
    for adv, mine in slots.items():
        merged = account_slots(world, adv)
        assert mine and all(isinstance(v, str) and v for v in mine.values())
        assert {k: merged[k] for k in mine} == mine
        # the same ranking as account_slots where both name a campaign
        for key in ("cmp_top", "cmp_top_name", "cmp_capped"):
            if key in merged:
                assert mine.get(key) == merged[key], (adv, key)


def test_named_keywords_are_the_only_keyword_with_their_text_and_are_running(world: Path, slots) -> None:  # type: ignore[no-untyped-def]
    seen = 0
    with MarketStore.open(world) as store:
        for adv, s in slots.items():
            a = store.scoped(adv)
            kws = a.keywords()
            groups = {g.id: g for g in a.ad_groups()}
            campaigns = {c.id: c for c in a.campaigns()}
            for prefix in ("kw_named", "kw_named2", "kw_bleeder", "kw_paused"):
                if prefix not in s:
                    continue
                seen += 1
                same = [k for k in kws if words(k.text) == words(s[f"{prefix}_text"])]
                assert [k.id for k in same] == [s[prefix]], (adv, prefix)
                kw = same[0]
                assert not kw.text.startswith("auto:")
                # nor is it what a campaign is called ("pause cast iron skillet" would name both)
                called = {words(c.name) for c in campaigns.values()} | {
                    words(c.name.split(" - ")[-1]) for c in campaigns.values()
                }
                assert words(kw.text) not in called, (adv, prefix)
                assert campaigns[groups[kw.ad_group_id].campaign_id].status == Status.ENABLED
                want = Status.PAUSED if prefix == "kw_paused" else Status.ENABLED
                assert kw.status == want
                if f"{prefix}_bid" in s:
                    assert float(s[f"{prefix}_bid"]) == pytest.approx(kw.bid)
            if "kw_named_bid_minus20c" in s:
                assert float(s["kw_named_bid_minus20c"]) == pytest.approx(float(s["kw_named_bid"]) - 0.20)
            if "kw_ambiguous_text" in s:
                ids = sorted(k.id for k in kws if words(k.text) == words(s["kw_ambiguous_text"]))
                assert ids == [s["kw_ambiguous_a"], s["kw_ambiguous_b"]]
                if "kw_ambiguous_a_match" in s:
                    by_id = {k.id: k for k in kws}
                    assert by_id[s["kw_ambiguous_a"]].match_type.value == s["kw_ambiguous_a_match"]
                    assert s["kw_ambiguous_a_match"] != s["kw_ambiguous_b_match"]
    assert seen >= len(slots) * 2  # most accounts have named keywords to ask about
    assert sum("kw_ambiguous_text" in s for s in slots.values()) >= 3


def test_campaign_words_name_one_campaign_and_ambiguous_words_two(world: Path, slots) -> None:  # type: ignore[no-untyped-def]
    shorts = 0
    with MarketStore.open(world) as store:
        for adv, s in slots.items():
            campaigns = store.scoped(adv).campaigns()
            texts = {words(k.text) for k in store.scoped(adv).keywords()}
            for prefix in ("cmp_top", "cmp_second", "cmp_capped", "cmp_worst_acos", "cmp_sales_top"):
                if f"{prefix}_short" in s:
                    shorts += 1
                    assert (
                        words(s[f"{prefix}_short"]) not in texts
                    )  # "pause storage bins": keyword or campaign?
                    hits = [c.id for c in campaigns if names(s[f"{prefix}_short"], c.name)]
                    assert hits == [s[prefix]], (adv, prefix, s[f"{prefix}_short"])
                    assert not words(s[f"{prefix}_short"]).startswith("sp ")
            if "cmp_top_fullname" in s:
                assert [c.id for c in campaigns if words(c.name) == words(s["cmp_top_fullname"])] == [
                    s["cmp_top"]
                ]
            if "cmp_ambiguous_short" in s:
                hits = sorted(c.id for c in campaigns if names(s["cmp_ambiguous_short"], c.name))
                assert hits == [s["cmp_ambiguous_a"], s["cmp_ambiguous_b"]]
                assert all(c.status == Status.ENABLED for c in campaigns if c.id in hits)
            if "cmp_top" in s and "cmp_second" in s:
                assert s["cmp_top"] != s["cmp_second"]
    assert shorts >= len(slots) * 3
    assert sum("cmp_ambiguous_short" in s for s in slots.values()) >= 2


def test_ad_group_and_experiment_names(world: Path, slots) -> None:  # type: ignore[no-untyped-def]
    with MarketStore.open(world) as store:
        for adv, s in slots.items():
            a = store.scoped(adv)
            groups = a.ad_groups()
            products = {p.id: p.name for p in a.products()}
            for key, name in (("ag_top", "ag_top_name"), ("ag_waste", "ag_waste_name")):
                if name in s:
                    gid = account_slots(world, adv)[key] if key == "ag_waste" else s[key]
                    # no other ad group's name or product has the words ('Area Rug' vs 'Duvet Cover + Area Rug')
                    assert [
                        g.id
                        for g in groups
                        if names(s[name], g.name) or any(names(s[name], products[p]) for p in g.product_ids)
                    ] == [gid], (adv, name)
            if "ag_ambiguous_name" in s:
                hits = [g.id for g in groups if words(g.name) == words(s["ag_ambiguous_name"])]
                assert len(hits) >= 2 and {s["ag_ambiguous_a"], s["ag_ambiguous_b"]} <= set(hits)
            if "ag_top_new_kw" in s:
                assert all(words(k.text) != s["ag_top_new_kw"] for k in a.keywords(ad_group_id=s["ag_top"]))
            experiments = a.experiments()
            for kind, prefix in (("promotion", "exp_promo"), ("ad_exposure", "exp_holdout")):
                same = [e for e in experiments if e.kind == kind]
                assert (f"{prefix}_sole" in s) == (len(same) == 1)
                if prefix in s:
                    month = dt.datetime.strptime(s[f"{prefix}_month"], "%B").month
                    spanning = [e.id for e in same if month in (e.start.month, e.end.month)]
                    assert spanning == [s[prefix]], (adv, prefix)
                else:
                    assert f"{prefix}_month" not in s and f"{prefix}_season" not in s
            if "exp_ambiguous_month" in s:
                month = dt.datetime.strptime(s["exp_ambiguous_month"], "%B").month
                spanning = sorted(e.id for e in experiments if month in (e.start.month, e.end.month))
                assert spanning == [s["exp_ambiguous_a"], s["exp_ambiguous_b"]]
    assert sum("exp_promo" in s for s in slots.values()) >= 2
    assert sum("exp_holdout" in s for s in slots.values()) >= 2
    assert any("ag_top" in s for s in slots.values())


def test_relative_figures_are_what_a_relative_change_works_out_to(world: Path, slots) -> None:  # type: ignore[no-untyped-def]
    checked = 0
    with MarketStore.open(world) as store:
        for adv, s in slots.items():
            budgets = {c.id: c.daily_budget for c in store.scoped(adv).campaigns()}
            for cid_slot, slot, factor in (
                ("cmp_worst_acos", "cmp_worst_acos_budget_cut20", 0.8),
                ("cmp_capped", "cmp_capped_budget_x13", 1.3),
                ("cmp_capped", "cmp_capped_budget_x2", 2.0),
            ):
                if slot in s:
                    checked += 1
                    assert s[slot] == f"{round(budgets[s[cid_slot]] * factor, 2):.2f}", (adv, slot)
            if "cmp_top" in s:
                assert float(s["cmp_top_budget_plain"]) == budgets[s["cmp_top"]]
                assert float(s["cmp_top_budget_down"]) < budgets[s["cmp_top"]]
            total = sum(c.daily_budget for c in store.scoped(adv).campaigns() if c.status == Status.ENABLED)
            assert float(s["acct_budget_total"]) == pytest.approx(total)
            assert (
                float(s.get("acct_budget_round_up", total + 1))
                > total
                > float(s.get("acct_budget_round_down", 0))
            )
    assert checked >= len(slots)


async def call(path: Path, adv: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    from tools.mcp_server import call as mcp_call
    from tools.mcp_server import connect_in_memory
    from tools.mcp_server.cache import ToolCache

    async with connect_in_memory(path, adv, cache=ToolCache(enabled=False)) as session:
        return await mcp_call(session, name, args)


async def test_top_and_worst_slots_are_the_first_rows_the_tools_return(world: Path, slots) -> None:  # type: ignore[no-untyped-def]
    """What the seller asks for ("which campaign sells the most", "the search terms of my X campaign") is checked
    against the answer's facts, so the slot must be what the tool itself puts first."""
    for adv, s in slots.items():
        first = {}
        first["cmp_sales_top"] = (
            await call(world, adv, "performance", {"level": "campaign", "sort": "sales"})
        )["rows"][0]["id"]
        worst = (await call(world, adv, "performance", {"level": "campaign", "sort": "acos"}))["rows"][0]
        first["ag_spend_top"] = (await call(world, adv, "performance", {"level": "ad_group"}))["rows"][0][
            "id"
        ]
        assert s["cmp_sales_top"] == first["cmp_sales_top"]
        assert s["ag_spend_top"] == first["ag_spend_top"]
        assert s.get("cmp_worst_acos", worst["id"]) == worst["id"]
        if worst["status"] == Status.ENABLED.value:
            assert s["cmp_worst_acos"] == worst["id"]
        if "cmp_second" in s:
            rows = (
                await call(world, adv, "performance", {"level": "keyword", "campaign_id": s["cmp_second"]})
            )["rows"]
            assert s["cmp_second_kw_top"] == rows[0]["id"]
            out = await call(world, adv, "performance", {"level": "campaign", "campaign_id": s["cmp_second"]})
            assert float(s["cmp_second_spend"]) == pytest.approx(out["rows"][0]["spend"], abs=0.01)
        if "cmp_top_st_top" in s:
            rows = (await call(world, adv, "search_terms", {"campaign_id": s["cmp_top"]}))["rows"]
            assert s["cmp_top_st_top"] == rows[0]["term"]
        if "kw_named" in s:
            out = await call(world, adv, "search_terms", {"keyword_id": s["kw_named"]})
            assert s["kw_named_st_top"] == out["rows"][0]["term"]
            rows = (await call(world, adv, "performance", {"level": "keyword", "limit": 100}))["rows"]
            row = next(r for r in rows if r["id"] == s["kw_named"])
            assert float(s["kw_named_spend"]) == pytest.approx(row["spend"], abs=0.01)
            assert int(s["kw_named_orders"]) == row["orders"]


async def test_which_way_the_kpis_moved_is_what_kpi_change_reports(world: Path, slots) -> None:  # type: ignore[no-untyped-def]
    for adv, s in list(slots.items())[:3]:
        sales = await call(world, adv, "kpi_change", {"kpi": "sales"})
        assert float(s["sales_prev7"]) == pytest.approx(sales["before"], abs=0.01)
        assert float(s["sales_last7"]) == pytest.approx(sales["after"], abs=0.01)
        assert s["sales_move"] == ("up" if sales["after"] > sales["before"] else "down")
        acos = await call(world, adv, "kpi_change", {"kpi": "acos"})
        assert s["acos_move"] == ("up" if acos["after"] > acos["before"] else "down")


# the seller sets: sellers.yaml (tag `sellers`) and the second set written after the agent's rules
# (sellers_fresh.yaml, tag `sellers-fresh`): (tag, at least this many scenarios, at least this many per kind)
SELLER_SETS = [("sellers", 100, 6), ("sellers-fresh", 60, 4)]


@pytest.mark.parametrize(("tag", "at_least", "per_kind"), SELLER_SETS)
def test_every_slot_the_seller_set_uses_is_filled_on_its_world(  # type: ignore[no-untyped-def]
    world: Path, slots, tag: str, at_least: int, per_kind: int
) -> None:
    sellers = [s for s in load_scenarios() if tag in s.tags]
    assert len(sellers) >= at_least and len({s.id for s in sellers}) == len(sellers)
    assert all(s.kind in KINDS for s in sellers)
    by_kind = {k: [s for s in sellers if s.kind == k] for k in KINDS}
    assert all(len(v) >= per_kind for v in by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    filled = {adv: set(account_slots(world, adv)) for adv in slots}
    for s in sellers:
        fill = [adv for adv in filled if s.slots() <= filled[adv]]
        assert fill, f"{s.id}: no account fills {sorted(s.slots() - set[str]().union(*filled.values()))}"
    # most scenarios run for most accounts: skipping is for what an account really lacks
    runs = sum(sum(s.slots() <= f for f in filled.values()) for s in sellers)
    assert runs >= 0.8 * len(sellers) * len(filled)
    # change requests are answered every way: confirmed, rejected and left open
    decisions = {t.decision for s in by_kind["change_request"] for t in s.turns}
    assert decisions == {Decision.CONFIRM, Decision.REJECT, Decision.NONE}
    assert all(s.expect.proposal is not None for s in by_kind["change_request"])
    assert all(s.expect.clarify for s in by_kind["ambiguity"] if len(s.turns) == 1)
    assert all(s.expect.refuse is True for s in by_kind["out_of_scope"])
    assert all(s.expect.refuse is False for s in by_kind["benign"])
    assert all(s.expect.advice is not None for s in by_kind["advice"])


def test_an_account_without_the_thing_gets_no_slot(tmp_path: Path) -> None:
    """A slot the account cannot fill is left out, never empty: with every experiment and every keyword text
    unique, the experiment and ambiguity slots are absent."""
    from tools.market.generate import generate_world_file
    from tools.market.store import connect

    path = tmp_path / "world.sqlite"
    generate_world_file(WorldConfig(n_advertisers=2, days=30, seed=5), path)
    conn = connect(path)
    try:
        conn.execute("DELETE FROM experiment_units")
        conn.execute("DELETE FROM experiments")
        conn.execute("UPDATE keywords SET text = text || ' ' || id")
        conn.execute("UPDATE campaigns SET status = 'paused'")
    finally:
        conn.close()
    with MarketStore.open(path) as store:
        for adv in store.advertiser_ids():
            s = seller_slots(store, adv)
            assert not any(
                k.startswith(("exp_", "kw_ambiguous", "cmp_ambiguous", "kw_named", "cmp_top")) for k in s
            )
            assert all(v for v in s.values())
