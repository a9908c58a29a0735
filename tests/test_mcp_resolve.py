"""Tools accept the advertiser's own words for ids: names, parts of names, typos, experiments by kind and month.

Everything runs through a real in-memory MCP session over a generated world; the expected ids are read from
the store, never written down.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tools.market.store import MarketStore
from tools.mcp_server import call, connect_in_memory
from tools.mcp_server.cache import ToolCache
from tools.mcp_server.resolve import (
    Candidate,
    EntityIndex,
    EntityKind,
    Entry,
    Resolver,
    campaign_aliases,
    normalize,
)

ADV, OTHER = "adv_0001", "adv_0002"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.market.data_model import WorldConfig
    from tools.market.generate import generate_world_file

    out = tmp_path_factory.mktemp("resolve_world") / "world.sqlite"
    generate_world_file(WorldConfig(n_advertisers=4, days=45, seed=5), out)
    return out


@pytest.fixture(scope="module")
def account(world: Path) -> dict[str, Any]:
    with MarketStore.open(world) as store:
        adv = store.scoped(ADV)
        return {
            "campaigns": adv.campaigns(),
            "groups": adv.ad_groups(),
            "keywords": adv.keywords(),
            "experiments": adv.experiments(),
            "other_keywords": store.scoped(OTHER).keywords(),
            "other_campaigns": store.scoped(OTHER).campaigns(),
        }


def _session(world: Path, adv: str = ADV) -> Any:
    return connect_in_memory(world, adv, cache=ToolCache(enabled=False))


def _unique_text_keyword(account: dict[str, Any]) -> Any:
    counts = Counter(k.text for k in account["keywords"])
    return next(k for k in account["keywords"] if counts[k.text] == 1 and ":" not in k.text)


def test_campaign_aliases_drop_the_scaffolding() -> None:
    assert campaign_aliases("SP - Generic - Bottle Warmer")[0] == "bottle warmer"
    assert "baby monitor" in campaign_aliases("SP - Auto - Baby Monitor")
    assert campaign_aliases("SP - Brand") == ["brand"]
    assert normalize("The 'Yoga-Mat' campaign!") == "the yoga mat campaign"


async def test_a_keyword_text_resolves_and_the_result_says_to_what(
    world: Path, account: dict[str, Any]
) -> None:
    kw = _unique_text_keyword(account)
    async with _session(world) as session:
        by_name = await call(session, "bid_landscape", {"keyword_id": kw.text.upper()})
        by_id = await call(session, "bid_landscape", {"keyword_id": kw.id})
    assert by_name["keyword_id"] == kw.id
    assert by_name["resolved"] == [
        {
            "field": "keyword_id",
            "query": kw.text.upper(),
            "id": kw.id,
            "kind": "keyword",
            "name": kw.text,
            "detail": by_name["resolved"][0]["detail"],
            "how": "exact",
        }
    ]
    assert "resolved" not in by_id
    assert by_name["points"] == by_id["points"]


async def test_a_campaign_by_its_distinctive_words_with_a_typo(world: Path, account: dict[str, Any]) -> None:
    camp = next(c for c in account["campaigns"] if "Generic" in c.name)
    words = campaign_aliases(camp.name)[0]
    longest = max(words.split(), key=len)
    typo = words.replace(longest, longest[:2] + longest[3:])  # a letter dropped, as sellers type
    async with _session(world) as session:
        exact = await call(
            session, "what_if", {"change": "budget", "id": f"my {words} campaign", "value": 30}
        )
        fuzzy = await call(session, "what_if", {"change": "budget", "id": typo, "value": 30})
    assert exact["campaign_id"] == camp.id and exact["resolved"][0]["how"] == "alias"
    assert fuzzy["campaign_id"] == camp.id and fuzzy["resolved"][0]["how"] == "fuzzy"


async def test_a_name_shared_by_two_keywords_is_ambiguous_until_the_match_type_is_named(world: Path) -> None:
    with MarketStore.open(world) as store:
        for adv_id in store.advertiser_ids():
            kws = store.scoped(adv_id).keywords()
            counts = Counter(k.text for k in kws)
            dup = [k for k in kws if counts[k.text] > 1 and ":" not in k.text]
            if dup:
                break
        else:
            pytest.skip("no advertiser has one keyword text under two match types")
    text = dup[0].text
    twins = [k for k in kws if k.text == text]
    async with _session(world, adv_id) as session:
        out = await call(session, "recommend_bid", {"keyword_id": text})
        picked = await call(session, "recommend_bid", {"keyword_id": f"{text} {twins[0].match_type.value}"})
    err = out["error"]
    assert err["type"] == "AmbiguousReferenceError" and err["field"] == "keyword_id"
    assert {c["id"] for c in err["candidates"]} == {k.id for k in twins}
    assert all(c["kind"] == "keyword" and c["name"] == text for c in err["candidates"])
    assert picked["keyword_id"] == twins[0].id


async def test_words_that_match_nothing_name_what_was_searched(world: Path) -> None:
    async with _session(world) as session:
        out = await call(session, "recommend_bid", {"keyword_id": "quantum flux capacitor"})
    assert out["error"]["type"] == "NoMatchError"
    assert "quantum flux capacitor" in out["error"]["message"] and ADV in out["error"]["message"]
    assert "closest" in out["error"]["message"]


async def test_another_advertisers_names_and_ids_never_resolve(world: Path, account: dict[str, Any]) -> None:
    mine = {k.text for k in account["keywords"]}
    theirs = next(k for k in account["other_keywords"] if k.text not in mine and ":" not in k.text)
    their_camp = account["other_campaigns"][0]
    async with _session(world) as session:
        by_id = await call(session, "recommend_bid", {"keyword_id": theirs.id})
        by_name = await call(session, "find", {"query": theirs.text, "kind": "keyword"})
        camp = await call(session, "propose_change", {"action": "pause", "id": their_camp.id})
    assert "error" in by_id and theirs.text not in by_id["error"]["message"]
    assert all(m["id"] != theirs.id for m in by_name["matches"])
    assert "error" in camp


async def test_experiments_by_kind_and_month(world: Path, account: dict[str, Any]) -> None:
    exps = account["experiments"]
    if not exps:
        pytest.skip("no experiment in this account")
    e = exps[0]
    words = {"promotion": "coupon test", "ad_exposure": "ads holdout"}[e.kind]
    month = dt.date(2026, e.start.month, 1).strftime("%B")
    same = [x for x in exps if x.kind == e.kind and e.start.month in {x.start.month, x.end.month}]
    async with _session(world) as session:
        out = await call(session, "ab_test", {"experiment_id": f"the {words} from {month}"})
    if len(same) == 1:
        assert out["resolved"][0]["id"] == e.id
    else:
        assert out["error"]["type"] == "AmbiguousReferenceError"


async def test_relative_changes_and_last_days(world: Path, account: dict[str, Any]) -> None:
    camp = next(c for c in account["campaigns"] if c.daily_budget >= 10)
    kw = _unique_text_keyword(account)
    async with _session(world) as session:
        cut = await call(
            session, "propose_change", {"action": "set_budget", "id": camp.id, "relative_change": -0.2}
        )
        sim = await call(session, "what_if", {"change": "bid", "id": kw.id, "relative_change": 1.0})
        both = await call(
            session, "what_if", {"change": "bid", "id": kw.id, "value": 1, "relative_change": 1.0}
        )
        lower = await call(session, "propose_change", {"action": "set_bid", "id": kw.text, "change_by": -0.2})
        more = await call(session, "what_if", {"change": "budget", "id": camp.id, "change_by": 50})
        by_and = await call(
            session, "what_if", {"change": "budget", "id": camp.id, "change_by": 5, "value": 9}
        )
        week = await call(session, "performance", {"level": "campaign", "last_days": 7})
        one = await call(session, "performance", {"level": "keyword", "keyword_id": kw.text})
        clash = await call(session, "account_overview", {"last_days": 7, "start": "2026-06-01"})
    assert cut["changes"][0]["after"] == pytest.approx(round(camp.daily_budget * 0.8, 2))
    assert cut["impact"]["changed"] != cut["impact"]["status_quo"]
    assert sim["change"]["after"] == pytest.approx(round(kw.bid * 2, 2))
    assert both["error"]["type"] == "InvalidInputError" and "exactly one" in both["error"]["message"]
    assert lower["changes"][0]["after"] == pytest.approx(max(0.01, round(kw.bid - 0.2, 2)))  # "20 cents less"
    assert more["change"]["after"] == pytest.approx(camp.daily_budget + 50)
    assert by_and["error"]["type"] == "InvalidInputError" and "change_by" in by_and["error"]["message"]
    start, end = dt.date.fromisoformat(week["period"]["start"]), dt.date.fromisoformat(week["period"]["end"])
    assert (end - start).days == 6
    assert [r["id"] for r in one["rows"]] == [kw.id]
    assert clash["error"]["type"] == "InvalidInputError"


async def test_find_ranks_the_accounts_things(world: Path, account: dict[str, Any]) -> None:
    kw = _unique_text_keyword(account)
    async with _session(world) as session:
        out = await call(session, "find", {"query": kw.text})
    assert out["matches"][0]["id"] == kw.id and out["matches"][0]["score"] == 100.0


def _index(names: list[str]) -> EntityIndex:
    entries: dict[EntityKind, list[Entry]] = {k: [] for k in EntityKind}
    for i, name in enumerate(names):
        entries[EntityKind.AD_GROUP].append(
            Entry(Candidate(id=f"ag_{i:06d}", kind=EntityKind.AD_GROUP, name=name), [normalize(name)])
        )
    return EntityIndex("adv_test", entries)


def test_meaning_fallback_uses_the_encoder() -> None:
    """Different words for the same thing ('heater' for 'warmer') resolve through the MiniLM sentence vectors;
    unrelated words still fail with a clear error."""
    from tools.mcp_server.resolve import NoMatchError, default_embed

    resolver = Resolver(_index(["Bottle Warmer", "High Chair", "Baby Monitor", "Diaper Bag"]), default_embed)
    assert resolver.resolve("baby bottle heater", [EntityKind.AD_GROUP], "ad_group_id")[1].how == "meaning"
    assert resolver.resolve("baby bottle heater", [EntityKind.AD_GROUP], "ad_group_id")[0] == "ag_000000"
    assert resolver.resolve("infant video camera", [EntityKind.AD_GROUP], "ad_group_id")[0] == "ag_000002"
    with pytest.raises(NoMatchError, match="garden hose"):
        resolver.resolve("garden hose", [EntityKind.AD_GROUP], "ad_group_id")
    no_encoder = Resolver(_index(["Bottle Warmer", "High Chair"]))
    with pytest.raises(NoMatchError):
        no_encoder.resolve("baby bottle heater", [EntityKind.AD_GROUP], "ad_group_id")


async def test_words_naming_a_thing_of_another_kind_say_what_they_name(
    world: Path, account: dict[str, Any]
) -> None:
    """ "set kw 'adjustable kettlebell' to 1.70" proposed as a budget: the words name a keyword, not a campaign. The
    error names the keyword (a candidate) instead of a campaign that merely shares a word; the agent then proposes
    the keyword's bid (agent/graph.py other_kind_twin)."""
    from agent.graph import other_kind_twin

    counts = Counter(k.text for k in account["keywords"])
    kw = next(k for k in account["keywords"] if counts[k.text] == 1 and len(k.text.split()) >= 3)
    args = {"action": "set_budget", "id": f"kw '{kw.text}'", "value": 1.7}
    async with _session(world) as session:
        out = await call(session, "propose_change", args)
        twin = other_kind_twin("propose_change", args, out)
        assert twin == {"action": "set_bid", "id": kw.id, "value": 1.7}
        proposed = await call(session, "propose_change", twin)
    assert out["error"]["type"] == "OtherKindError" and out["error"]["field"] == "id"
    assert [(c["id"], c["kind"]) for c in out["error"]["candidates"]] == [(kw.id, "keyword")]
    assert kw.text in out["error"]["message"]
    assert proposed["action"] == "set_bid" and proposed["changes"][0]["id"] == kw.id
    # a budget for a campaign named by its words is untouched; other errors have no twin
    assert other_kind_twin("propose_change", args, {"error": {"type": "NoMatchError", "field": "id"}}) is None
    # an id of the other kind ("bump it 30 percent" proposed as a campaign's bid): that campaign's budget
    camp = account["campaigns"][0]
    as_bid = {"action": "set_bid", "id": camp.id, "relative_change": 0.3}
    async with _session(world) as session:
        wrong = await call(session, "propose_change", as_bid)
        twin = other_kind_twin("propose_change", as_bid, wrong)
        assert twin == {"action": "set_budget", "id": camp.id, "relative_change": 0.3}
        assert (await call(session, "propose_change", twin))["changes"][0]["id"] == camp.id
        what_if = {"change": "bid", "id": camp.id, "value": 2.0}
        assert other_kind_twin("what_if", what_if, await call(session, "what_if", what_if)) == {
            **what_if,
            "change": "budget",
        }
