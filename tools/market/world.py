"""A seeded world of sponsored-product advertising: advertisers, their accounts and the hidden market.

`generate_world(config)` builds, for every advertiser, products, campaigns (auto and manual: brand,
generic, competitor), ad groups, keywords with realistic texts, the search terms each keyword matches
(some irrelevant, so negative-keyword advice has a right answer) and a `KeywordMarket` per keyword:
seasonal demand with dated sales events, a rival field that can shift (competitor surges and exits),
position CTR, conversion rate, order value, organic sales and how much of them ads cannibalize.

Each advertiser draws from its own generator seeded by (seed, advertiser index), so a world of 10
advertisers is exactly the first 10 of a world of 1,000 with the same seed. Its category is drawn from
`CATEGORIES`, or from the categories the config names (`WorldConfig.categories`), which is how a world of
a held-out category (`HELD_OUT_CATEGORIES`, never drawn by default) is made. Market parameters are drawn
as arrays per advertiser; the only Python loops are over the entities themselves (text assembly).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tools.market.categories import (  # noqa: F401  (the category specs live there; re-exported)
    CATEGORIES,
    CATEGORY_BY_NAME,
    HELD_OUT_CATEGORIES,
    HELD_OUT_CATEGORY_NAMES,
    CategorySpec,
    category_pool,
)
from tools.market.data_model import (
    AdGroup,
    Advertiser,
    Campaign,
    Keyword,
    KeywordMarket,
    MarketEvent,
    MatchType,
    NegativeKeyword,
    Product,
    SearchTerm,
    Status,
    Targeting,
    WorldConfig,
)

# Days of market (events, seasonality) generated beyond the history, so what-ifs about the coming
# weeks see the sales events that lie ahead.
FUTURE_DAYS = 90

# Organic buyers per search must cover the ad clicks that would have bought anyway
# (cannibalization x ctr_top x cvr); the simulator floors organic sales at zero otherwise.
_ORGANIC_HEADROOM = 1.5

AUTO_TARGETS = ("auto:close-match", "auto:loose-match", "auto:substitutes", "auto:complements")


INTENT_WORDS = ("best", "cheap", "gift", "for beginners", "on sale", "top rated", "premium", "2026")
_SUFFIX_MODIFIERS = {"gift", "on sale", "2026", "set", "set of 2", "set of 3", "pack of 12", "home gym"}
# Words that make a query irrelevant to a product: the searcher wants something else.
JUNK_WORDS = (
    "repair",
    "diy",
    "tattoo",
    "costume",
    "meaning",
    "drawing",
    "replacement part",
    "used",
    "rental",
    "clipart",
    "toy",
    "manual pdf",
    "near me",
    "job",
    "free",
    "coloring page",
    "svg",
    "recall",
)
_BRAND_HEADS = (
    "Nord",
    "Bright",
    "Oak",
    "Blue",
    "Peak",
    "True",
    "Urban",
    "Wild",
    "Silver",
    "Green",
    "Iron",
    "Sun",
    "Cedar",
    "Lumen",
    "Pure",
    "Zen",
    "Nova",
    "Terra",
    "Alto",
    "Vela",
    "Kiva",
    "Mosa",
    "Orla",
    "Rove",
)
_BRAND_TAILS = (
    "ware",
    "co",
    "labs",
    "works",
    "home",
    "ly",
    "craft",
    "nest",
    "gear",
    "wise",
    "ora",
    "ify",
    "hub",
    "kind",
)


class CampaignKind:
    """What a campaign is for; decides its keywords' texts and market parameters."""

    AUTO = 0
    BRAND = 1
    GENERIC = 2
    COMPETITOR = 3


@dataclass
class WorldEvent:
    """A market event as a fact about the world (truth store): what happened to whom, and when."""

    advertiser_id: str
    name: str
    start: dt.date
    end: dt.date
    keyword_ids: list[str]
    demand_mult: float
    rival_bid_mult: float
    rival_count_mult: float


@dataclass
class World:
    config: WorldConfig
    advertisers: list[Advertiser] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    campaigns: list[Campaign] = field(default_factory=list)
    ad_groups: list[AdGroup] = field(default_factory=list)
    keywords: list[Keyword] = field(default_factory=list)
    negatives: list[NegativeKeyword] = field(default_factory=list)
    markets: list[KeywordMarket] = field(default_factory=list)  # aligned with `keywords`
    search_terms: list[SearchTerm] = field(default_factory=list)
    events: list[WorldEvent] = field(default_factory=list)  # per-advertiser event facts (truth)
    # index arrays over the lists above, for vectorized simulation
    keyword_campaign: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [K] into campaigns
    campaign_advertiser: np.ndarray = field(
        default_factory=lambda: np.zeros(0, np.int64)
    )  # [C] into advertisers

    @property
    def keyword_advertiser(self) -> np.ndarray:
        """[K] index into advertisers."""
        return self.campaign_advertiser[self.keyword_campaign]

    @property
    def horizon_days(self) -> int:
        """Days covered by market parameters (history plus the future the simulator may be asked about)."""
        return self.config.days + FUTURE_DAYS


# --- calendar --------------------------------------------------------------------------------------------


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th given weekday (0 = Monday) of a month; n = -1 for the last."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


@dataclass(frozen=True)
class CalendarEvent:
    name: str
    start: dt.date
    end: dt.date  # inclusive
    demand_mult: float
    rival_bid_mult: float
    categories: frozenset[str] | None  # None = every category


def calendar_events(first: dt.date, last: dt.date) -> list[CalendarEvent]:
    """Retail events between two dates (every year they touch): public knowledge, same for everyone."""
    every = None
    out: list[CalendarEvent] = []
    for year in range(first.year, last.year + 1):
        prime = _nth_weekday(year, 7, 1, 2)  # second Tuesday of July, two days
        big_deal = _nth_weekday(year, 10, 1, 2)
        thanksgiving = _nth_weekday(year, 11, 3, 4)
        labor_day = _nth_weekday(year, 9, 0, 1)
        mothers_day = _nth_weekday(year, 5, 6, 2)
        d = dt.timedelta
        out += [
            CalendarEvent("prime_day_lull", prime - d(days=6), prime - d(days=1), 0.85, 1.0, every),
            CalendarEvent("prime_day", prime, prime + d(days=1), 2.6, 1.35, every),
            CalendarEvent("prime_big_deal_days", big_deal, big_deal + d(days=1), 1.8, 1.25, every),
            CalendarEvent(
                "black_friday_cyber_monday",
                thanksgiving + d(days=1),
                thanksgiving + d(days=4),
                2.2,
                1.3,
                every,
            ),
            CalendarEvent(
                "holiday_gifting",
                dt.date(year, 12, 1),
                dt.date(year, 12, 20),
                1.45,
                1.15,
                frozenset({"toys", "electronics", "beauty", "kitchen", "home"}),
            ),
            CalendarEvent(
                "back_to_school",
                dt.date(year, 7, 20),
                dt.date(year, 8, 31),
                1.5,
                1.1,
                frozenset({"office", "electronics"}),
            ),
            CalendarEvent(
                "labor_day_sale",
                labor_day - d(days=3),
                labor_day,
                1.3,
                1.05,
                frozenset({"outdoor", "home", "kitchen", "garden"}),
            ),
            CalendarEvent(
                "new_year_resolutions",
                dt.date(year, 1, 1),
                dt.date(year, 1, 21),
                1.6,
                1.1,
                frozenset({"fitness"}),
            ),
            CalendarEvent(
                "mothers_day",
                mothers_day - d(days=10),
                mothers_day,
                1.4,
                1.1,
                frozenset({"beauty", "kitchen", "home", "garden"}),
            ),
        ]
    return [e for e in out if e.end >= first and e.start <= last]


# --- generation ------------------------------------------------------------------------------------------


def generate_world(config: WorldConfig) -> World:
    """Build the whole world for `config`; the same config always gives the same world."""
    world = World(config=config)
    start = config.start_date
    horizon_last = start + dt.timedelta(days=config.days + FUTURE_DAYS - 1)
    holidays = calendar_events(start, horizon_last)
    used_names: set[str] = set()
    pool = category_pool(config.categories)
    keyword_campaign: list[int] = []
    campaign_advertiser: list[int] = []
    for i in range(config.n_advertisers):
        rng = np.random.default_rng([config.seed, i])
        _generate_advertiser(world, i, rng, used_names, holidays, keyword_campaign, campaign_advertiser, pool)
    world.keyword_campaign = np.asarray(keyword_campaign, dtype=np.int64)
    world.campaign_advertiser = np.asarray(campaign_advertiser, dtype=np.int64)
    return world


def _with(modifier: str, noun: str) -> str:
    """'best' + 'yoga mat' -> 'best yoga mat'; 'for kids' + 'puzzle' -> 'puzzle for kids'."""
    if modifier.startswith("for ") or modifier in _SUFFIX_MODIFIERS:
        return f"{noun} {modifier}"
    return f"{modifier} {noun}"


def _modifiers(rng: np.random.Generator, pool: tuple[str, ...], noun: str, k: int) -> list[str]:
    """k modifiers from the pool that do not repeat a word of the noun ('ergonomic ergonomic chair')."""
    words = set(noun.split())
    return _pick(rng, [m for m in pool if not words & set(m.split())], k)


def _pick(rng: np.random.Generator, items: tuple[str, ...] | list[str], k: int = 1) -> list[str]:
    idx = rng.choice(len(items), size=min(k, len(items)), replace=False)
    return [items[int(j)] for j in idx]


def _brand_name(rng: np.random.Generator, used: set[str]) -> str:
    for _ in range(50):
        name = str(rng.choice(_BRAND_HEADS)) + str(rng.choice(_BRAND_TAILS))
        if name not in used:
            break
    else:  # more advertisers than name pairs: a numbered sister brand
        base = name
        n = 2
        while f"{base} {n}" in used:
            n += 1
        name = f"{base} {n}"
    used.add(name)
    return name


@dataclass
class _KeywordDraft:
    text: str
    match_type: MatchType
    kind: int  # CampaignKind
    noun: str
    price: float
    terms: list[tuple[str, float, float]]  # (term, raw share, raw relevance)


def _generate_advertiser(
    world: World,
    adv_index: int,
    rng: np.random.Generator,
    used_names: set[str],
    holidays: list[CalendarEvent],
    keyword_campaign: list[int],
    campaign_advertiser: list[int],
    pool: tuple[CategorySpec, ...] = CATEGORIES,
) -> None:
    cat = pool[int(rng.integers(len(pool)))]
    brand = _brand_name(rng, used_names)
    adv_id = f"adv_{adv_index + 1:04d}"
    target_acos = float(np.round(rng.uniform(0.15, 0.45), 2))
    world.advertisers.append(Advertiser(id=adv_id, name=brand, category=cat.name, target_acos=target_acos))

    # products: distinct nouns of the category
    n_products = int(rng.integers(3, 7))
    noun_idx = rng.choice(len(cat.products), size=n_products, replace=False)
    products: list[Product] = []
    for j in noun_idx:
        noun, lo, hi = cat.products[int(j)]
        attr = _modifiers(rng, cat.attributes, noun, 1)[0]
        price = float(np.floor(rng.uniform(lo, hi))) + 0.99
        margin = float(np.round(rng.uniform(*cat.margin), 2))
        products.append(
            Product(
                id=f"prd_{len(world.products) + len(products) + 1:06d}",
                advertiser_id=adv_id,
                name=f"{brand} {_with(attr, noun).title()}",
                category=cat.name,
                price=price,
                margin=margin,
            )
        )
    world.products += products
    nouns = {p.id: cat.products[int(j)][0] for p, j in zip(products, noun_idx, strict=True)}

    # campaigns: usually one auto campaign, a brand campaign, generic campaigns, sometimes a competitor one
    kinds: list[int] = []
    if rng.random() < 0.8:
        kinds.append(CampaignKind.AUTO)
    if rng.random() < 0.7:
        kinds.append(CampaignKind.BRAND)
    kinds += [CampaignKind.GENERIC] * int(rng.integers(1, 3))
    if rng.random() < 0.35:
        kinds.append(CampaignKind.COMPETITOR)
    kinds = kinds[:5]

    drafts_by_group: list[
        tuple[int, list[Product], list[_KeywordDraft]]
    ] = []  # (campaign slot, products, drafts)
    campaign_names: list[str] = []
    for slot, kind in enumerate(kinds):
        n_groups = 1 if kind in (CampaignKind.BRAND, CampaignKind.COMPETITOR) else int(rng.integers(1, 3))
        group_products = _split_products(rng, products, n_groups)
        label = {
            CampaignKind.AUTO: "Auto",
            CampaignKind.BRAND: "Brand",
            CampaignKind.GENERIC: "Generic",
            CampaignKind.COMPETITOR: "Competitor Conquesting",
        }[kind]
        head_noun = nouns[group_products[0][0].id]
        suffix = f" - {head_noun.title()}" if kind in (CampaignKind.AUTO, CampaignKind.GENERIC) else ""
        campaign_names.append(f"SP - {label}{suffix}")
        for prods in group_products:
            drafts = _keyword_drafts(rng, kind, brand, cat, [nouns[p.id] for p in prods], prods)
            drafts_by_group.append((slot, prods, drafts))

    # markets, drawn as arrays over this advertiser's keywords
    all_drafts = [d for _, _, ds in drafts_by_group for d in ds]
    market_params = _draw_markets(rng, all_drafts, cat, adv_index, world.config, holidays)

    # entities
    first_campaign = len(world.campaigns)
    bids = market_params.pop("_bid")
    spend_guess = np.zeros(len(kinds))
    k = 0
    for slot, prods, drafts in drafts_by_group:
        ag_number = len(world.ad_groups) + 1
        ag_id = f"ag_{ag_number:06d}"
        cmp_id = f"cmp_{first_campaign + slot + 1:05d}"
        group_bids = bids[k : k + len(drafts)]
        world.ad_groups.append(
            AdGroup(
                id=ag_id,
                campaign_id=cmp_id,
                name=" + ".join(nouns[p.id].title() for p in prods),
                product_ids=[p.id for p in prods],
                default_bid=float(np.round(np.median(group_bids), 2)),
            )
        )
        group_terms: set[str] = set()
        for draft in drafts:
            kw_id = f"kw_{len(world.keywords) + 1:07d}"
            world.keywords.append(
                Keyword(
                    id=kw_id,
                    ad_group_id=ag_id,
                    text=draft.text,
                    match_type=draft.match_type,
                    bid=float(bids[k]),
                    status=Status.PAUSED if rng.random() < 0.04 else Status.ENABLED,
                )
            )
            params = {name: values[k] for name, values in market_params.items()}
            market = KeywordMarket(keyword_id=kw_id, **params)
            world.markets.append(market)
            keyword_campaign.append(first_campaign + slot)
            world.search_terms += _normalized_terms(kw_id, draft.terms)
            group_terms.update(t for t, _, _ in draft.terms)
            # rough unconstrained spend: top-slot share of clicks at a second-price-ish CPC
            spend_guess[slot] += market.base_volume * market.ctr_top * 0.45 * bids[k] * 0.75
            k += 1
        # a few negatives set up long ago, never matching a current term (they already excluded theirs)
        for junk in _pick(rng, JUNK_WORDS, int(rng.integers(0, 3))):
            if not any(junk in t for t in group_terms):
                world.negatives.append(
                    NegativeKeyword(
                        id=f"neg_{len(world.negatives) + 1:06d}",
                        ad_group_id=ag_id,
                        text=junk,
                        match_type=MatchType.PHRASE,
                    )
                )

    # budgets: most campaigns have room, about a third run out of budget on a typical day
    budget_ratio = rng.choice([0.5, 0.7, 0.9, 1.3, 1.8, 2.5, 4.0], size=len(kinds))
    for slot, kind in enumerate(kinds):
        world.campaigns.append(
            Campaign(
                id=f"cmp_{first_campaign + slot + 1:05d}",
                advertiser_id=adv_id,
                name=campaign_names[slot],
                daily_budget=float(max(5.0, np.round(spend_guess[slot] * budget_ratio[slot]))),
                status=Status.PAUSED if rng.random() < 0.03 else Status.ENABLED,
                targeting=Targeting.AUTO if kind == CampaignKind.AUTO else Targeting.MANUAL,
            )
        )
        campaign_advertiser.append(adv_index)

    _add_advertiser_events(
        world, rng, adv_id, first_kw=len(world.keywords) - len(all_drafts), drafts=all_drafts
    )


def _split_products(rng: np.random.Generator, products: list[Product], n_groups: int) -> list[list[Product]]:
    """`n_groups` ad groups, each advertising 1-2 of the products (groups may share products)."""
    groups = []
    for _ in range(n_groups):
        k = int(rng.integers(1, 3))
        groups.append(_pick_products(rng, products, k))
    return groups


def _pick_products(rng: np.random.Generator, products: list[Product], k: int) -> list[Product]:
    idx = rng.choice(len(products), size=min(k, len(products)), replace=False)
    return [products[int(i)] for i in idx]


def _keyword_drafts(
    rng: np.random.Generator,
    kind: int,
    brand: str,
    cat: CategorySpec,
    nouns: list[str],
    prods: list[Product],
) -> list[_KeywordDraft]:
    """Keyword texts of one ad group and the search terms each one matches (raw shares and relevance)."""
    noun = nouns[0]
    price = prods[0].price
    price_of = {nn: p.price for nn, p in zip(nouns, prods, strict=True)}
    b = brand.lower()
    drafts: list[_KeywordDraft] = []

    def junk_terms(base: str, n: int) -> list[tuple[str, float, float]]:
        return [
            (f"{base} {w}", float(rng.uniform(0.04, 0.12)), float(rng.uniform(0.0, 0.03)))
            for w in _pick(rng, JUNK_WORDS, n)
        ]

    if kind == CampaignKind.AUTO:
        other_nouns = [p[0] for p in cat.products if p[0] not in nouns]
        for target in AUTO_TARGETS:
            terms: list[tuple[str, float, float]] = []
            if target.endswith("close-match"):
                terms += [
                    (noun, 0.4, 1.0),
                    (_with(_modifiers(rng, cat.attributes, noun, 1)[0], noun), 0.25, 1.1),
                    (f"{b} {noun}", 0.1, 1.6),
                ]
                terms += junk_terms(noun, 1)
            elif target.endswith("loose-match"):
                terms += [
                    (_with(_pick(rng, INTENT_WORDS)[0], noun), 0.3, 0.9),
                    (_with(_modifiers(rng, cat.attributes, noun, 1)[0], noun), 0.2, 0.9),
                ]
                terms += junk_terms(noun, 2)
                terms += [(f"{_pick(rng, other_nouns)[0]}", 0.1, 0.15)]
            elif target.endswith("substitutes"):
                terms += [(f"{r.lower()} {noun}", 0.3, 0.45) for r in _pick(rng, cat.rival_brands, 2)]
                terms += [(f"{noun} alternative", 0.1, 0.5)]
                terms += junk_terms(noun, 1)
            else:  # complements
                terms += [(f"{o}", 0.3, 0.25) for o in _pick(rng, other_nouns, 2)]
                terms += [(f"{noun} accessories", 0.2, 0.4)]
                terms += junk_terms(noun, 1)
            drafts.append(_KeywordDraft(target, MatchType.BROAD, kind, noun, price, terms))
        return drafts

    if kind == CampaignKind.BRAND:
        texts = [(b, MatchType.EXACT), (f"{b} {noun}", MatchType.EXACT), (f"{b} {noun}", MatchType.PHRASE)]
        if len(nouns) > 1:
            texts.append((f"{b} {nouns[1]}", MatchType.EXACT))
        for text, mt in texts:
            kw_noun = next((nn for nn in nouns if nn in text), noun)
            terms = [(text, 1.0, 1.0)]
            if mt is MatchType.PHRASE:
                terms += [(_with(_modifiers(rng, cat.attributes, text, 1)[0], text), 0.3, 1.0)]
                terms += junk_terms(text, 1)
            drafts.append(_KeywordDraft(text, mt, kind, kw_noun, price_of[kw_noun], terms))
        return drafts

    if kind == CampaignKind.COMPETITOR:
        for rival in _pick(rng, cat.rival_brands, int(rng.integers(2, 4))):
            r = rival.lower()
            text = f"{r} {noun}"
            mt = MatchType.EXACT if rng.random() < 0.6 else MatchType.PHRASE
            terms = [(text, 1.0, 1.0)]
            if mt is MatchType.PHRASE:
                terms += [(_with(_modifiers(rng, cat.attributes, text, 1)[0], text), 0.3, 1.0)]
                terms += junk_terms(text, 1)
            drafts.append(_KeywordDraft(text, mt, kind, noun, price, terms))
        return drafts

    # generic: the category vocabulary around each advertised noun, in all three match types
    n_keywords = int(rng.integers(4, 9))
    candidates: list[str] = []
    for nn in nouns:
        candidates += [nn] + [_with(a, nn) for a in _modifiers(rng, cat.attributes, nn, 3)]
        candidates += [_with(w, nn) for w in _pick(rng, INTENT_WORDS, 2)]
    seen: set[tuple[str, MatchType]] = set()
    for text in _pick(rng, candidates, n_keywords):
        mt = MatchType(str(rng.choice(["exact", "phrase", "broad"], p=[0.4, 0.3, 0.3])))
        if (text, mt) in seen:
            continue
        seen.add((text, mt))
        kw_noun = next(nn for nn in nouns if nn in text)
        terms = [(text, 0.55, 1.0)]
        if mt is MatchType.EXACT:
            terms += [(f"{text}s" if not text.endswith("s") else text[:-1], 0.15, 0.95)]
        elif mt is MatchType.PHRASE:
            terms += [
                (_with(_pick(rng, INTENT_WORDS)[0], text), 0.25, 1.0),
                (_with(_modifiers(rng, cat.attributes, text, 1)[0], text), 0.15, 1.05),
            ]
            terms += junk_terms(text, int(rng.integers(0, 2)))
        else:
            terms += [
                (_with(_modifiers(rng, cat.attributes, text, 1)[0], kw_noun), 0.2, 1.0),
                (
                    f"{cat.rival_brands[int(rng.integers(len(cat.rival_brands)))].lower()} {kw_noun}",
                    0.12,
                    0.4,
                ),
            ]
            terms += junk_terms(kw_noun, int(rng.integers(1, 3)))
        drafts.append(_KeywordDraft(text, mt, kind, kw_noun, price_of[kw_noun], terms))
    return drafts


def _normalized_terms(keyword_id: str, raw: list[tuple[str, float, float]]) -> list[SearchTerm]:
    """Merge duplicates, scale shares to 1 and relevance so that sum(share * relevance) = 1.

    With that scaling the keyword's conversion rate is the share-weighted mean over its terms, so a
    negative keyword that removes an irrelevant term raises the keyword's conversion rate as it should.
    """
    merged: dict[str, list[float]] = {}
    for term, raw_share, raw_rel in raw:
        if term in merged:
            merged[term][0] += raw_share
        else:
            merged[term] = [raw_share, raw_rel]
    terms = list(merged)
    shares = np.array([merged[t][0] for t in terms])
    shares = shares / shares.sum()
    rel = np.array([merged[t][1] for t in terms])
    rel = np.clip(rel / max(float((shares * rel).sum()), 1e-9), 0.0, 2.0)
    return [
        SearchTerm(
            keyword_id=keyword_id,
            term=t,
            share=float(np.round(s, 4)) or 1e-4,
            relevance=float(np.round(r, 3)),
        )
        for t, s, r in zip(terms, shares, rel, strict=True)
    ]


def _draw_markets(
    rng: np.random.Generator,
    drafts: list[_KeywordDraft],
    cat: CategorySpec,
    adv_index: int,
    config: WorldConfig,
    holidays: list[CalendarEvent],
) -> dict[str, np.ndarray | list]:
    """Market parameters for one advertiser's keywords, as arrays (plus the advertiser's initial bids)."""
    n = len(drafts)
    kind = np.array([d.kind for d in drafts])
    match = np.array([{"exact": 0, "phrase": 1, "broad": 2}[d.match_type.value] for d in drafts])
    price = np.array([d.price for d in drafts])
    is_auto, is_brand, is_generic, is_comp = (kind == k for k in range(4))

    def by_kind(
        auto: tuple[float, float],
        brand: tuple[float, float],
        generic: tuple[float, float],
        comp: tuple[float, float],
    ) -> np.ndarray:
        lo = np.select([is_auto, is_brand, is_generic], [auto[0], brand[0], generic[0]], comp[0])
        hi = np.select([is_auto, is_brand, is_generic], [auto[1], brand[1], generic[1]], comp[1])
        return rng.uniform(lo, hi)

    # demand: broader match types and cheaper products see more searches
    log_vol = np.select([is_auto, is_brand, is_generic], [np.log(700), np.log(45), np.log(260)], np.log(120))
    log_vol = log_vol + np.array([0.0, 0.45, 0.9])[match] - 0.25 * (np.log(price) - np.log(40))
    base_volume = np.round(np.exp(log_vol + rng.normal(0, 0.7, n)), 1)

    ctr_top = by_kind((0.012, 0.03), (0.06, 0.14), (0.015, 0.045), (0.006, 0.018))
    cvr = by_kind((0.05, 0.12), (0.15, 0.30), (0.06, 0.14), (0.02, 0.06))
    aov = np.round(price * rng.uniform(1.0, 1.25, n), 2)
    cannibalization = by_kind((0.15, 0.45), (0.55, 0.9), (0.1, 0.4), (0.0, 0.1))
    # the simulator needs organic buyers enough for the ads to cannibalize (see _ORGANIC_HEADROOM)
    organic_rate = np.maximum(
        by_kind((0.002, 0.008), (0.03, 0.10), (0.001, 0.008), (0.0003, 0.002)),
        _ORGANIC_HEADROOM * cannibalization * ctr_top * cvr,
    )
    n_rivals = np.round(by_kind((4, 10), (0.5, 2.0), (3, 11), (4, 8)), 2)
    quality = np.clip(
        rng.beta(5, 3, n) + np.where(is_brand, 0.2, 0.0) - np.where(is_comp, 0.15, 0.0), 0.1, 1.0
    )

    # rivals bid about their value per click times their ACoS target; category-wide noise
    value_per_click = aov * cvr
    rival_bid_mu = np.log(value_per_click * rng.uniform(0.15, 0.35, n)) + rng.normal(0, 0.2, n)
    rival_bid_sigma = rng.uniform(0.3, 0.6, n)
    # competitor terms: the brand owner is a strong, high-quality rival
    rival_quality_a = np.where(is_comp, 7.0, 4.0) + rng.uniform(-0.5, 0.5, n)
    rival_quality_b = np.full(n, 3.0)

    # our initial bids: value per click times the advertiser's own ACoS idea, with keyword-level error
    bid = np.clip(
        np.round(value_per_click * rng.uniform(0.2, 0.45) * np.exp(rng.normal(0, 0.35, n)), 2), 0.1, 20.0
    )

    # seasonality: weekly peak on Sunday or Monday, yearly peak at the category's day of year
    start = config.start_date
    weekly_amp = rng.uniform(0.05, 0.2, n)
    peak_wd = rng.choice([6, 0])
    weekly_phase = math.pi / 2 - 2 * math.pi * ((peak_wd - start.weekday()) % 7) / 7
    yearly_amp = np.clip(cat.yearly_amp * rng.uniform(0.7, 1.3, n), 0.0, 0.9)
    start_doy = start.timetuple().tm_yday
    yearly_phase = math.pi / 2 - 2 * math.pi * (cat.peak_day_of_year - start_doy) / 365.25

    events = [
        MarketEvent(
            name=h.name,
            start=max(0, (h.start - start).days),
            end=(h.end - start).days,
            demand_mult=h.demand_mult,
            rival_bid_mult=h.rival_bid_mult,
        )
        for h in holidays
        if h.categories is None or cat.name in h.categories
    ]
    return {
        "base_volume": base_volume,
        "weekly_amp": np.round(weekly_amp, 3),
        "weekly_phase": np.full(n, round(weekly_phase, 4)),
        "yearly_amp": np.round(yearly_amp, 3),
        "yearly_phase": np.full(n, round(yearly_phase, 4)),
        "n_rivals": n_rivals,
        "rival_bid_mu": np.round(rival_bid_mu, 4),
        "rival_bid_sigma": np.round(rival_bid_sigma, 3),
        "rival_quality_a": np.round(rival_quality_a, 3),
        "rival_quality_b": rival_quality_b,
        "quality": np.round(quality, 3),
        "ctr_top": np.round(ctr_top, 4),
        "position_decay": np.round(rng.uniform(0.55, 0.8, n), 3),
        "cvr": np.round(cvr, 4),
        "aov": aov,
        "organic_rate": np.round(organic_rate, 5),
        "cannibalization": np.round(cannibalization, 3),
        "events": [list(events) for _ in range(n)],
        "_bid": bid,
    }


def _add_advertiser_events(
    world: World, rng: np.random.Generator, adv_id: str, first_kw: int, drafts: list[_KeywordDraft]
) -> None:
    """Advertiser-specific shifts: a competitor surge or exit on some keywords, a viral trend on a noun."""
    days = world.config.days
    start = world.config.start_date
    horizon = days + FUTURE_DAYS
    keyword_ids = [kw.id for kw in world.keywords[first_kw:]]
    markets = world.markets[first_kw:]
    nouns = sorted({d.noun for d in drafts if d.kind != CampaignKind.BRAND})
    if not nouns:
        return

    def add(
        name: str, noun: str, first: int, last: int, demand: float, bid_mult: float, count_mult: float
    ) -> None:
        hit = [j for j, d in enumerate(drafts) if d.noun == noun and d.kind != CampaignKind.BRAND]
        event = MarketEvent(
            name=name,
            start=first,
            end=last,
            demand_mult=demand,
            rival_bid_mult=bid_mult,
            rival_count_mult=count_mult,
        )
        for j in hit:
            markets[j].events.append(event)
        world.events.append(
            WorldEvent(
                advertiser_id=adv_id,
                name=name,
                start=start + dt.timedelta(days=first),
                end=start + dt.timedelta(days=last),
                keyword_ids=[keyword_ids[j] for j in hit],
                demand_mult=demand,
                rival_bid_mult=bid_mult,
                rival_count_mult=count_mult,
            )
        )

    if rng.random() < 0.35 and days >= 10:  # a new rival floods one product's keywords
        first = int(rng.integers(int(days * 0.4), max(int(days * 0.4) + 1, days - 4)))
        last = horizon - 1 if rng.random() < 0.6 else min(horizon - 1, first + int(rng.integers(14, 31)))
        add(
            "competitor_surge",
            str(rng.choice(nouns)),
            first,
            last,
            1.0,
            float(np.round(rng.uniform(1.4, 2.0), 2)),
            float(np.round(rng.uniform(1.2, 1.6), 2)),
        )
    if rng.random() < 0.1 and days >= 10:  # a rival runs out of stock
        first = int(rng.integers(0, max(1, days - 14)))
        add(
            "competitor_exit",
            str(rng.choice(nouns)),
            first,
            min(horizon - 1, first + int(rng.integers(10, 30))),
            1.0,
            0.8,
            0.6,
        )
    if rng.random() < 0.1 and days >= 10:  # a social-media moment for one product type
        first = int(rng.integers(0, max(1, days - 10)))
        add(
            "viral_trend",
            str(rng.choice(nouns)),
            first,
            min(horizon - 1, first + int(rng.integers(5, 15))),
            float(np.round(rng.uniform(1.6, 2.5), 2)),
            1.1,
            1.0,
        )


def keyword_hash_seed(*parts: str) -> int:
    """A stable seed from strings (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "little")


# --- markets after the advertiser's own edits ------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    return text.lower().split()


def negative_matches(term: str, negative_text: str, match_type: MatchType) -> bool:
    """Amazon-style negatives: exact blocks the identical query, phrase blocks any query containing it."""
    t, n = _tokens(term), _tokens(negative_text)
    if match_type is MatchType.EXACT:
        return t == n
    return any(t[i : i + len(n)] == n for i in range(len(t) - len(n) + 1))


def apply_negatives(
    market: KeywordMarket, terms: list[SearchTerm], negatives: list[NegativeKeyword]
) -> tuple[KeywordMarket, list[SearchTerm]]:
    """The keyword's market once its ad group's negatives block some of its search terms.

    Volume shrinks by the blocked share and conversion rate becomes the mean over the terms left, so
    blocking an irrelevant term saves its clicks without losing orders. Organic sales do not depend on
    our targeting, so the organic rate is raised to keep them whole on the smaller volume.
    """
    kept = [t for t in terms if not any(negative_matches(t.term, n.text, n.match_type) for n in negatives)]
    if len(kept) == len(terms):
        return market, terms
    kept_share = sum(t.share for t in kept)
    if kept_share <= 0:  # every query blocked: the keyword no longer enters any auction
        return market.model_copy(update={"base_volume": 0.0}), []
    kept_rel = sum(t.share * t.relevance for t in kept) / kept_share
    total_rel = sum(t.share * t.relevance for t in terms) or 1.0
    adjusted = _with_organic_floor(
        market.model_copy(
            update={
                "base_volume": market.base_volume * kept_share,
                "cvr": min(0.95, market.cvr * kept_rel / total_rel),
                "organic_rate": min(0.95, market.organic_rate / kept_share),
            }
        )
    )
    renormalized = [t.model_copy(update={"share": t.share / kept_share}) for t in kept]
    return adjusted, renormalized


def markets_today(
    keywords: Sequence[Keyword],
    markets: dict[str, KeywordMarket],
    terms: dict[str, list[SearchTerm]],
    negatives: Sequence[NegativeKeyword],
    ad_group_keywords: dict[str, list[Keyword]],
) -> dict[str, KeywordMarket]:
    """The markets of `keywords` as the simulator should run them today, from `markets` and their queries
    (`terms`, by keyword id): a keyword without a market (added since) is derived from those of its ad group's
    keywords (`ad_group_keywords`) that have one (market_for_new_keyword), and left out when none has; then
    its ad group's negatives are applied. Serves the true markets (the judge) and the estimated ones (the
    tools) alike."""
    negatives_by_group: dict[str, list[NegativeKeyword]] = {}
    for n in negatives:
        negatives_by_group.setdefault(n.ad_group_id, []).append(n)
    known: list[tuple[SearchTerm, KeywordMarket]] | None = None
    out = {}
    for kw in keywords:
        market, kw_terms = markets.get(kw.id), terms.get(kw.id, [])
        if market is None:
            siblings = [
                (k, markets[k.id]) for k in ad_group_keywords.get(kw.ad_group_id, []) if k.id in markets
            ]
            if not siblings:
                continue
            if known is None:
                known = [
                    (t, markets[t.keyword_id]) for ts in terms.values() for t in ts if t.keyword_id in markets
                ]
            market, kw_terms = market_for_new_keyword(kw.id, kw.text, kw.match_type, siblings, known)
        negs = negatives_by_group.get(kw.ad_group_id)
        out[kw.id] = apply_negatives(market, kw_terms, negs)[0] if negs else market
    return out


def market_for_new_keyword(
    keyword_id: str,
    text: str,
    match_type: MatchType,
    siblings: list[tuple[Keyword, KeywordMarket]],
    known_terms: list[tuple[SearchTerm, KeywordMarket]],
) -> tuple[KeywordMarket, list[SearchTerm]]:
    """Market of a keyword the advertiser adds, derived from what the world already knows.

    A text that is one of the advertiser's observed search terms (harvesting) inherits that term's demand
    and conversion rate; any other text takes the closest sibling keyword of its ad group, with less
    demand (a new long-tail text) and, when it shares no word with the group's keywords, a conversion rate
    near zero (an off-topic keyword does not sell the product).
    """
    if not siblings:
        raise ValueError("an ad group without keywords gives nothing to derive a new keyword's market from")
    words = set(_tokens(text))
    match_factor = {MatchType.EXACT: 1.0, MatchType.PHRASE: 1.6, MatchType.BROAD: 2.5}[match_type]

    def overlap(kw: Keyword) -> int:
        return len(words & set(_tokens(kw.text)))

    _, template = max(siblings, key=lambda pair: overlap(pair[0]))
    same = [(t, m) for t, m in known_terms if _tokens(t.term) == _tokens(text)]
    if same:
        volume = sum(t.share * m.base_volume for t, m in same)
        cvr = sum(t.share * m.base_volume * m.cvr * t.relevance for t, m in same) / max(volume, 1e-9)
        volume *= match_factor
    else:
        related = max(overlap(kw) for kw, _ in siblings) > 0
        volume = template.base_volume * 0.35 * match_factor
        cvr = template.cvr * (0.9 if related else 0.05)
    market = template.model_copy(
        update={
            "keyword_id": keyword_id,
            "base_volume": round(float(volume), 1),
            "cvr": float(min(0.95, max(cvr, 1e-4))),
            "events": list(template.events),
        }
    )
    return _with_organic_floor(market), [
        SearchTerm(keyword_id=keyword_id, term=text, share=1.0, relevance=1.0)
    ]


def _with_organic_floor(market: KeywordMarket) -> KeywordMarket:
    floor = _ORGANIC_HEADROOM * market.cannibalization * market.ctr_top * market.cvr
    if market.organic_rate >= floor:
        return market
    return market.model_copy(update={"organic_rate": min(0.95, floor)})
