"""Engine-backed tools over in-memory sessions: simulator, keyword tools, and the result cache."""

from __future__ import annotations

import uuid

import pytest

from tools.market.store import MarketStore
from tools.mcp_server import call, connect_in_memory
from tools.mcp_server.cache import ToolCache

ADV = "adv_0001"


def fresh_cache() -> ToolCache:
    return ToolCache(enabled=True, prefix=f"adguide:test:{uuid.uuid4().hex[:8]}")


@pytest.fixture
def entities(tiny_world_path):
    store = MarketStore.open(tiny_world_path)
    adv = store.scoped(ADV)
    kw = next(k for k in adv.keywords() if k.status == "enabled")
    camp = next(
        c
        for c in adv.campaigns()
        if c.id in {g.campaign_id for g in adv.ad_groups() if g.id == kw.ad_group_id}
    )
    store.close()
    return kw, camp


async def test_what_if_zero_change_is_exactly_zero_and_more_bid_spends_more(tiny_world_path, entities):
    kw, camp = entities
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        same = await call(session, "what_if", {"change": "bid", "id": kw.id, "value": kw.bid, "days": 7})
        up = await call(session, "what_if", {"change": "bid", "id": kw.id, "value": kw.bid * 2, "days": 7})
        budget = await call(
            session, "what_if", {"change": "budget", "id": camp.id, "value": camp.daily_budget * 2}
        )
    assert same["campaign_id"] == camp.id and same["keywords"] >= 1
    assert all(r == {"mean": 0.0, "low": 0.0, "high": 0.0} for r in same["difference"].values())
    assert up["change"] == {
        "id": kw.id,
        "field": "bid",
        "before": kw.bid,
        "after": round(kw.bid * 2, 2),
        "name": kw.text,
    }  # the result names what it changed
    assert up["changed"] != up["status_quo"]  # (the campaign's budget may cap the extra spend)
    assert budget["change"]["field"] == "daily_budget"
    assert budget["difference"]["spend"]["mean"] >= -0.01  # more budget never spends less on the same days


async def test_landscape_and_recommended_bid(tiny_world_path, entities):
    kw, _ = entities
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        land = await call(session, "bid_landscape", {"keyword_id": kw.id})
        grid = await call(session, "bid_landscape", {"keyword_id": kw.id, "bids": [0.5, 1.0]})
        best = await call(session, "recommend_bid", {"keyword_id": kw.id})
        acos = await call(
            session, "recommend_bid", {"keyword_id": kw.id, "goal": "target_acos", "target": 0.2}
        )
        err = (await call(session, "recommend_bid", {"keyword_id": kw.id, "goal": "target_roas"}))["error"]
    bids = [p["bid"] for p in land["points"]]
    assert bids == sorted(bids) and bids[0] < kw.bid < bids[-1]
    assert [p["bid"] for p in grid["points"]] == [0.5, 1.0]
    assert best["goal"] == "max_incremental_profit" and best["current_bid"] == kw.bid
    assert best["at_current"]["bid"] == kw.bid
    if best["feasible"]:
        # the optimum is chosen on expected values; allow Monte Carlo noise in the comparison
        assert (
            best["at_bid"]["incremental_profit"]["mean"]
            >= best["at_current"]["incremental_profit"]["mean"] * 0.9
        )
    for rec in (best, acos):  # the gain's range holds the model's uncertainty, and a possible loss is said
        g = rec["gain"]
        assert g is not None and g["low"] <= g["mean"] <= g["high"]
        assert ("includes a loss" in rec["note"]) == (rec["feasible"] and g["low"] < 0 < g["high"]), rec
    assert acos["target"] == 0.2
    if acos["feasible"] and acos["at_bid"]["acos"] is not None:
        assert acos["at_bid"]["acos"] <= 0.2 * 1.15
    assert err["type"] == "InvalidInputError" and err["field"] == "target"


async def test_propose_shows_simulated_impact(tiny_world_path, entities):
    kw, camp = entities
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        prop = await call(session, "propose_change", {"action": "pause", "id": camp.id})
        bid = await call(session, "propose_change", {"action": "set_bid", "id": kw.id, "value": kw.bid * 1.5})
        neg = await call(
            session,
            "propose_change",
            {"action": "add_negatives", "id": kw.ad_group_id, "keywords": [{"text": "zz qq"}]},
        )
    assert prop["impact"]["changed"]["spend"] == 0.0 and prop["impact"]["status_quo"]["spend"] > 0
    assert bid["impact"]["campaign_id"] == camp.id and bid["impact"]["days"] == 7
    assert neg["impact"] is None
    # a proposal whose simulated gain may as well be a loss says so; one that is clearly either does not
    for p in (prop, bid):
        profit = p["impact"]["difference"]["incremental_profit"]
        risky = profit["low"] < 0 < profit["high"]
        assert ("includes a loss" in p["note"]) == risky, p
        assert p["note"].startswith("Nothing changed yet.")


async def test_keyword_tools_return_reasons(tiny_world_path):
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        ideas = await call(session, "keyword_ideas", {"limit": 3})
        negs = await call(session, "negative_ideas", {"limit": 3})
    assert len(ideas["suggestions"]) <= 3 and len(negs["suggestions"]) <= 3
    assert all(s["reason"] for s in ideas["suggestions"] + negs["suggestions"])


async def test_cache_gives_equal_results_and_a_write_invalidates(writable_world_path, entities):
    kw, _ = entities
    args = {"change": "bid", "id": kw.id, "value": round(kw.bid * 1.3, 2), "days": 5}
    cache = fresh_cache()
    async with connect_in_memory(writable_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        uncached = await call(session, "what_if", args)
    async with connect_in_memory(writable_world_path, ADV, cache=cache) as session:
        first = await call(session, "what_if", args)
        second = await call(session, "what_if", args)
        assert cache.hits == 1 and first == second == uncached
        # a write bumps data_version: the same question is recomputed against the new state
        prop = await call(
            session, "propose_change", {"action": "set_bid", "id": kw.id, "value": round(kw.bid * 0.5, 2)}
        )
        await call(session, "apply_change", {"token": prop["token"]})
        after = await call(session, "what_if", args)
    assert after["change"]["before"] == round(kw.bid * 0.5, 2)
    assert after != first


async def test_redis_down_still_serves(tiny_world_path, entities):
    kw, _ = entities
    args = {"change": "bid", "id": kw.id, "value": kw.bid, "days": 3}
    down = ToolCache(url="redis://127.0.0.1:1/0", enabled=True)
    async with connect_in_memory(tiny_world_path, ADV, cache=down) as session:
        out = await call(session, "what_if", args)
        again = await call(session, "what_if", args)
    assert "error" not in out and out == again and down.hits == 0


async def test_budget_allocation_respects_the_total(tiny_world_path):
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        out = await call(session, "allocate_budget", {"days": 7})
        half = await call(session, "allocate_budget", {"days": 7, "total_budget": out["total_budget"] / 2})
        err = (await call(session, "allocate_budget", {"campaign_ids": ["cmp_99999"]}))["error"]
    for res in (out, half):
        assert res["allocated"] <= res["total_budget"] + 0.01
        assert sum(c["budget"] for c in res["campaigns"]) == pytest.approx(res["allocated"], abs=0.05)
    assert out["total_budget"] == pytest.approx(sum(c["current_budget"] for c in out["campaigns"]))
    assert err["type"] == "UnknownIdError" and err["field"] == "campaign_ids"


async def test_budget_moves_are_bounded_by_the_market_models_uncertainty(tiny_world_path):
    """Each campaign's best budget on its own is weighed over the model's draws: the one offered gains on
    average over them (its expected gain, with its 90% range and the share of draws in which it loses), and
    where no move does, doing nothing is offered and the result says so."""
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        out = await call(session, "allocate_budget", {"days": 14})
    assert "market estimated from" in out["market"]
    for c in out["campaigns"]:
        assert c["best_gain_low"] is not None and c["best_gain_high"] is not None
        assert c["best_gain_low"] <= c["best_gain"] + 1e-6 and c["best_gain"] >= 0.0
        assert 0.0 <= c["loss_probability"] <= 1.0
        assert (c["loss_probability"] > 0) == (
            c["best_gain_low"] < 0
        )  # a 90% range below zero: some draws lose
        assert c["point_best_budget"] is not None
        if c["held_for_uncertainty"]:
            assert c["best_budget"] == pytest.approx(c["current_budget"]) and c["best_gain"] == 0.0
            assert any(line.startswith(c["campaign_id"] + ":") for line in out["binding"])


async def test_ab_test_and_kpi_change(tiny_world_path):
    store = MarketStore.open(tiny_world_path)
    exp = store.scoped(ADV).experiments()[0]
    store.close()
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        ab = await call(session, "ab_test", {"experiment_id": exp.id})
        plain = await call(session, "ab_test", {"experiment_id": exp.id, "cuped": False})
        kpi = await call(session, "kpi_change", {"kpi": "sales"})
        span = await call(
            session,
            "kpi_change",
            {
                "kpi": "acos",
                "before_start": "2026-06-01",
                "before_end": "2026-06-10",
                "after_start": "2026-06-21",
            },
        )
        err = (await call(session, "kpi_change", {"after_start": "2026-06-01"}))["error"]
    assert ab["n_control"] + ab["n_treatment"] == exp.n_units
    assert ab["cuped"] and not plain["cuped"]
    assert ab["difference"]["std_error"] <= plain["difference"]["std_error"] * 1.001  # CUPED never widens
    assert sum(c["value"] for c in kpi["contributions"]) == pytest.approx(kpi["change"], abs=0.05)
    assert "2026-06-24..2026-06-30" in kpi["notes"][0]
    assert span["kpi"] == "acos" and "2026-06-01..2026-06-10" in span["notes"][0]
    assert err["field"] == "after_start"


@pytest.mark.slow
async def test_experiment_uplift_reports_effect_and_incrementality(tiny_world_path):
    store = MarketStore.open(tiny_world_path)
    exp = store.scoped(ADV).experiments()[0]
    store.close()
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        out = await call(session, "experiment_uplift", {"experiment_id": exp.id})
    assert out["experiment_id"] == exp.id and out["n_units"] == exp.n_units
    ate = out["ate"]
    assert ate["ci_low"] <= ate["estimate"] <= ate["ci_high"]
    assert sum(g["n"] for g in out["by_predicted_effect"]) == exp.n_units
    if exp.kind == "ad_exposure":
        inc = out["incrementality"]
        assert inc["attributed_sales"] > 0 and "incremental_roas" in inc
    else:
        assert out["incrementality"] is None


async def test_results_conform_to_the_advertised_output_schemas(tiny_world_path, entities):
    """With output schemas on, the mcp client validates every result against them (and raises if not)."""
    kw, camp = entities
    store = MarketStore.open(tiny_world_path)
    exp = store.scoped(ADV).experiments()[0]
    store.close()
    calls: list[tuple[str, dict[str, object]]] = [
        ("account_overview", {}),
        ("performance", {"level": "keyword", "daily": True, "limit": 5}),
        ("search_terms", {"limit": 5}),
        ("what_if", {"change": "budget", "id": camp.id, "value": camp.daily_budget + 1, "days": 3}),
        ("bid_landscape", {"keyword_id": kw.id, "bids": [0.5, 1.0], "days": 3}),
        ("recommend_bid", {"keyword_id": kw.id, "days": 3}),
        ("allocate_budget", {"days": 3}),
        ("ab_test", {"experiment_id": exp.id}),
        ("kpi_change", {"kpi": "roas"}),
        ("negative_ideas", {"limit": 3}),
        ("keyword_ideas", {"limit": 3}),
        ("propose_change", {"action": "set_bid", "id": kw.id, "value": 0.9}),
    ]
    async with connect_in_memory(
        tiny_world_path, ADV, cache=ToolCache(enabled=False), output_schemas=True
    ) as session:
        listed = {t.name: t for t in (await session.list_tools()).tools}
        assert all(t.outputSchema for t in listed.values())
        for name, args in calls:
            res = await session.call_tool(name, args)
            assert not res.isError, (name, res.content)
            assert res.structuredContent is not None


async def test_recommend_bid_respects_the_campaign_budget_cap(tiny_world_path):
    """On a budget-capped campaign a keyword's best bid alone (no cap) takes budget from its campaign's other
    keywords; recommend_bid searches inside the campaign, so following it earns what the evals' judge's
    in-campaign grid search finds, and its `gain` is the campaign's change as the judge measures it."""
    from evals.outcomes import Change, _best_bid, account_on, change_gain, load_account
    from tools.auction.landscape import optimal_bid
    from tools.market.estimate import fit_market_model

    worst = None
    for adv in ("adv_0001", "adv_0002", "adv_0003"):
        acct = load_account(tiny_world_path, adv)
        for k in acct.keywords:
            if k not in acct.markets or not acct.live(k):
                continue
            best_gain, _ = _best_bid(acct, k)
            alone = optimal_bid(
                [acct.markets[k]], "max_incremental_profit", acct.days, margin=acct.margins[k], n_sims=0
            )
            alone_gain = (
                change_gain(acct, Change(action="set_bid", entity=k, value=round(alone.bid, 2))) or 0.0
            )
            if worst is None or best_gain - alone_gain > worst[0]:
                worst = (best_gain - alone_gain, best_gain, adv, k, acct)
    assert worst is not None
    shortfall, best_gain, adv, kw, acct = worst
    assert shortfall > 0.2 * best_gain > 0, "the world has a keyword whose cap-blind best bid loses a lot"
    async with connect_in_memory(tiny_world_path, adv, cache=ToolCache(enabled=False)) as session:
        rec = await call(session, "recommend_bid", {"keyword_id": kw})
    change = Change(action="set_bid", entity=kw, value=round(rec["bid"], 2))
    gain = change_gain(acct, change)
    assert gain is not None and gain >= 0.95 * best_gain
    assert rec["gain"]["low"] <= rec["gain"]["mean"] <= rec["gain"]["high"]
    # the gain said is the campaign's change on the tool's market model as the judge measures a change (its
    # Monte Carlo mean vs the expected value); how far the model is from the truth is bench_advice's to say
    with MarketStore.open(tiny_world_path) as store:
        scoped = store.scoped(adv)
        model = fit_market_model(scoped)
        on_model = account_on(
            scoped,
            model.by_keyword(scoped.keywords(), scoped.negatives()),
            acct.days,
        )
    assert rec["gain"]["mean"] == pytest.approx(change_gain(on_model, change), rel=0.15)
