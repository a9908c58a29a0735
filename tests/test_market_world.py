"""The generated world: reproducible, realistic in shape, with the hidden structure the advice relies on."""

from __future__ import annotations

import datetime as dt

import pytest

from tools.market.data_model import (
    Keyword,
    KeywordMarket,
    MatchType,
    NegativeKeyword,
    SearchTerm,
    Targeting,
    WorldConfig,
)
from tools.market.world import (
    CATEGORIES,
    HELD_OUT_CATEGORIES,
    HELD_OUT_CATEGORY_NAMES,
    apply_negatives,
    calendar_events,
    generate_world,
    market_for_new_keyword,
    negative_matches,
)


@pytest.fixture(scope="module")
def world():
    return generate_world(WorldConfig(n_advertisers=60, days=90, seed=3))


def _dump(w):
    return [
        [m.model_dump() for m in items]
        for items in (
            w.advertisers,
            w.products,
            w.campaigns,
            w.ad_groups,
            w.keywords,
            w.negatives,
            w.markets,
            w.search_terms,
        )
    ]


def test_same_seed_same_world_and_a_smaller_world_is_a_prefix(world):
    again = generate_world(WorldConfig(n_advertisers=60, days=90, seed=3))
    assert _dump(again) == _dump(world)
    small = generate_world(WorldConfig(n_advertisers=5, days=90, seed=3))
    assert [k.model_dump() for k in small.keywords] == [
        k.model_dump() for k in world.keywords[: len(small.keywords)]
    ]
    other = generate_world(WorldConfig(n_advertisers=60, days=90, seed=4))
    assert _dump(other) != _dump(world)


def test_accounts_have_the_expected_shape(world):
    by_adv: dict[str, list] = {}
    for c in world.campaigns:
        by_adv.setdefault(c.advertiser_id, []).append(c)
    assert set(by_adv) == {a.id for a in world.advertisers}
    assert all(1 <= len(cs) <= 5 for cs in by_adv.values())
    assert sum(len(cs) >= 2 for cs in by_adv.values()) > 0.9 * len(by_adv)
    targeting = {c.targeting for c in world.campaigns}
    assert targeting == {Targeting.AUTO, Targeting.MANUAL}
    assert {k.match_type for k in world.keywords} == set(MatchType)
    assert len({a.name for a in world.advertisers}) == len(world.advertisers)
    assert len({k.id for k in world.keywords}) == len(world.keywords)
    assert [m.keyword_id for m in world.markets] == [k.id for k in world.keywords]
    for p in world.products:
        assert 0 < p.margin < 1 and p.price > 0
    assert len(world.keyword_campaign) == len(world.keywords)
    assert len(world.campaign_advertiser) == len(world.campaigns)


def test_search_terms_include_irrelevant_queries_and_shares_sum_to_one(world):
    by_kw: dict[str, list[SearchTerm]] = {}
    for t in world.search_terms:
        by_kw.setdefault(t.keyword_id, []).append(t)
    assert set(by_kw) == {k.id for k in world.keywords}
    for terms in by_kw.values():
        assert sum(t.share for t in terms) == pytest.approx(1.0, abs=2e-3)
        # relevance is scaled so the keyword's conversion rate is the share-weighted mean over its terms
        assert sum(t.share * t.relevance for t in terms) == pytest.approx(1.0, abs=0.05)
    irrelevant = [t for t in world.search_terms if t.relevance < 0.05]
    assert len(irrelevant) > 0.1 * len(world.search_terms)
    broad = {k.id for k in world.keywords if k.match_type is MatchType.BROAD}
    assert sum(t.keyword_id in broad for t in irrelevant) > 0.5 * len(irrelevant)


def test_markets_hold_what_the_simulator_needs(world):
    for m in world.markets:
        assert m.organic_rate >= m.cannibalization * m.ctr_top * m.cvr
        assert m.events, "every keyword sees the calendar's sales events"
    names = {e.name for m in world.markets for e in m.events}
    assert {"prime_day", "competitor_surge"} <= names
    surges = [e for e in world.events if e.name == "competitor_surge"]
    assert surges and all(e.rival_bid_mult > 1 and e.keyword_ids for e in surges)
    # a surge shows up on exactly the keywords the truth names, from its start day on
    surge = surges[0]
    start_day = (surge.start - world.config.start_date).days
    hit = {
        m.keyword_id
        for m in world.markets
        for e in m.events
        if e.name == "competitor_surge" and e.start == start_day
    }
    assert set(surge.keyword_ids) <= hit
    brand = [
        m
        for k, m in zip(world.keywords, world.markets, strict=True)
        if k.text.split()[0] in {a.name.lower() for a in world.advertisers}
    ]
    generic = [
        m for k, m in zip(world.keywords, world.markets, strict=True) if not k.text.startswith("auto:")
    ]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean([m.cannibalization for m in brand]) > mean([m.cannibalization for m in generic]) + 0.1


def test_prime_day_2026_falls_on_the_second_tuesday_of_july():
    events = {e.name: e for e in calendar_events(dt.date(2026, 6, 1), dt.date(2026, 12, 31))}
    assert events["prime_day"].start == dt.date(2026, 7, 14)
    assert events["prime_day"].end == dt.date(2026, 7, 15)
    assert events["black_friday_cyber_monday"].start == dt.date(2026, 11, 27)


def _market(**kw: float | str) -> KeywordMarket:
    base = dict(
        keyword_id="kw_1",
        base_volume=1000.0,
        n_rivals=5,
        rival_bid_mu=0.0,
        rival_bid_sigma=0.4,
        rival_quality_a=4,
        rival_quality_b=3,
        quality=0.7,
        ctr_top=0.03,
        position_decay=0.7,
        cvr=0.1,
        aov=30.0,
        organic_rate=0.01,
        cannibalization=0.3,
    )
    base.update(kw)
    return KeywordMarket(**base)


def test_negative_matching_is_exact_or_phrase():
    assert negative_matches("yoga mat", "yoga mat", MatchType.EXACT)
    assert not negative_matches("yoga mat free", "yoga mat", MatchType.EXACT)
    assert negative_matches("yoga mat free", "free", MatchType.PHRASE)
    assert negative_matches("best yoga mat", "yoga mat", MatchType.PHRASE)
    assert not negative_matches("yoga mats", "yoga mat", MatchType.PHRASE)


def test_blocking_an_irrelevant_term_saves_clicks_not_orders():
    market = _market()
    terms = [
        SearchTerm(keyword_id="kw_1", term="yoga mat", share=0.8, relevance=1.25),
        SearchTerm(keyword_id="kw_1", term="yoga mat tattoo", share=0.2, relevance=0.0),
    ]
    neg = NegativeKeyword(id="neg_1", ad_group_id="ag_1", text="tattoo", match_type=MatchType.PHRASE)
    adjusted, kept = apply_negatives(market, terms, [neg])
    assert [t.term for t in kept] == ["yoga mat"] and kept[0].share == pytest.approx(1.0)
    assert adjusted.base_volume == pytest.approx(800.0)
    assert adjusted.cvr == pytest.approx(0.125)
    # expected orders per click-share unchanged: volume x cvr stays 100
    assert adjusted.base_volume * adjusted.cvr == pytest.approx(market.base_volume * market.cvr)
    # organic sales do not depend on our targeting
    assert adjusted.base_volume * adjusted.organic_rate == pytest.approx(
        market.base_volume * market.organic_rate
    )
    unchanged, same = apply_negatives(market, terms, [])
    assert unchanged is market and same == terms


def test_a_harvested_search_term_brings_its_own_demand_and_conversion():
    source = _market(keyword_id="kw_1", base_volume=1000.0, cvr=0.1)
    sibling = Keyword(id="kw_1", ad_group_id="ag_1", text="yoga mat", match_type=MatchType.BROAD, bid=1.0)
    good = SearchTerm(keyword_id="kw_1", term="thick yoga mat", share=0.2, relevance=1.5)
    market, terms = market_for_new_keyword(
        "kw_9", "thick yoga mat", MatchType.EXACT, [(sibling, source)], [(good, source)]
    )
    assert market.keyword_id == "kw_9" and terms[0].term == "thick yoga mat"
    assert market.base_volume == pytest.approx(200.0)
    assert market.cvr == pytest.approx(0.15)
    off_topic, _ = market_for_new_keyword("kw_10", "garden hose", MatchType.EXACT, [(sibling, source)], [])
    assert off_topic.cvr < 0.1 * source.cvr


# --- categories ------------------------------------------------------------------------------------------------


def _digest(w) -> str:  # type: ignore[no-untyped-def]
    import hashlib

    h = hashlib.sha256()
    for items in _dump(w):
        for m in items:
            h.update(repr(m).encode())
    for e in w.events:
        h.update(repr(e).encode())
    return h.hexdigest()


def test_a_world_that_names_no_categories_is_the_world_generated_before_categories_existed():
    """Golden digests, computed on the generator before `WorldConfig.categories` existed: existing worlds,
    eval caches and training data must not move. A deliberate change of the generator updates them."""
    small = generate_world(WorldConfig(n_advertisers=5, days=21, seed=9))
    assert _digest(small) == "d71db6f0618311eaeb783239fa882b4b3542b07523ee6ecd2808ca193fdb3872"
    # naming every default category, in any order, is the same draw
    every = [c.name for c in CATEGORIES]
    assert _digest(
        generate_world(WorldConfig(n_advertisers=5, days=21, seed=9, categories=every[::-1]))
    ) == _digest(small)


def test_a_world_of_chosen_categories_draws_only_those_and_the_held_out_ones_only_when_named(world):
    assert not {a.category for a in world.advertisers} & set(HELD_OUT_CATEGORY_NAMES)
    assert {a.category for a in world.advertisers} == {c.name for c in CATEGORIES}
    two = generate_world(WorldConfig(n_advertisers=20, days=30, seed=3, categories=["pet", "office"]))
    assert {a.category for a in two.advertisers} == {"pet", "office"}
    assert {p.category for p in two.products} == {"pet", "office"}
    held = generate_world(
        WorldConfig(n_advertisers=8, days=30, seed=3, categories=list(HELD_OUT_CATEGORY_NAMES))
    )
    assert {a.category for a in held.advertisers} == set(HELD_OUT_CATEGORY_NAMES)
    assert [a.id for a in held.advertisers] == [f"adv_{i:04d}" for i in range(1, 9)]
    nouns = {n for c in HELD_OUT_CATEGORIES for n, _, _ in c.products}
    # every keyword but the auto-targeting ones names a held-out product or is the advertiser's brand
    brands = {a.name.lower() for a in held.advertisers}
    assert all(
        any(n in k.text for n in nouns) or k.text in brands
        for k in held.keywords
        if not k.text.startswith("auto:")
    )


def test_unknown_empty_or_repeated_categories_are_refused_naming_the_valid_ones():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"unknown category 'gardn'; valid: kitchen, .*garden"):
        WorldConfig(categories=["garden", "gardn"])
    with pytest.raises(ValidationError, match=r"at least one category \(valid: kitchen"):
        WorldConfig(categories=[])
    with pytest.raises(ValidationError, match="'pet' more than once"):
        WorldConfig(categories=["pet", "toys", "pet"])
    assert WorldConfig(categories=["pet", "kitchen"]).categories == ["kitchen", "pet"]  # one order, one world
