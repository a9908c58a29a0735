"""Negative suggestions on a generated marketplace, scored against the hidden relevance of its search terms.

The world's irrelevant queries (relevance < 0.1: "... costume", "... svg", "... near me") spend without
selling; precision says how many suggested negatives are such terms, recall how many of the clicked ones
(and how much of their spend) the suggestions catch. Low-click junk cannot be told apart from bad luck,
so recall by count is modest by design; recall by spend is what saves money.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.keywords import Embedder, suggest_negatives
from tools.keywords.embeddings import normalize_text
from tools.market.data_model import Keyword, NegativeKeyword, Product, SearchTermDay, WorldConfig
from tools.market.generate import generate_world_file
from tools.market.store import MarketStore
from tools.market.truth import TruthStore

IRRELEVANT = 0.1  # relevance below this marks a junk query


@dataclass
class AdvertiserData:
    rows: list[SearchTermDay]
    keywords: list[Keyword]
    products: list[Product]
    negatives: list[NegativeKeyword]
    relevance: dict[tuple[str, str], float]  # (ad group, normalised term) -> hidden relevance


def generated_advertisers(path: Path, n_advertisers: int, days: int, seed: int) -> list[AdvertiserData]:
    """A world generated into `path`, read back through the store as the MCP server would."""
    generate_world_file(WorldConfig(n_advertisers=n_advertisers, days=days, seed=seed), path)
    out = []
    with MarketStore.open(path) as store, TruthStore.open(path) as truth:
        for advertiser_id in store.advertiser_ids():
            adv = store.scoped(advertiser_id)
            keywords = adv.keywords()
            ad_group_of = {k.id: k.ad_group_id for k in keywords}
            relevance: dict[tuple[str, str], float] = {}
            for t in truth.search_term_truth(adv):
                key = (ad_group_of[t.keyword_id], normalize_text(t.term))
                relevance[key] = max(relevance.get(key, 0.0), t.relevance)
            rows = adv.search_term_days(store.start_date, store.end_date)
            if rows:
                out.append(AdvertiserData(rows, keywords, adv.products(), adv.negatives(), relevance))
    return out


def score_negatives(advertisers: list[AdvertiserData], embedder: Embedder) -> dict[str, float]:
    tp = fp = fn = 0
    junk_spend = caught_spend = 0.0
    for adv in advertisers:
        spend: dict[tuple[str, str], float] = {}
        ad_group_of = {k.id: k.ad_group_id for k in adv.keywords}
        for r in adv.rows:
            key = (ad_group_of[r.keyword_id], normalize_text(r.term))
            spend[key] = spend.get(key, 0.0) + r.spend
        result = suggest_negatives(
            adv.rows, adv.keywords, adv.products, adv.negatives, limit=500, embedder=embedder
        )
        flagged = {(s.ad_group_id, s.text) for s in result.suggestions}
        junk = {k for k in spend if adv.relevance.get(k, 1.0) < IRRELEVANT}
        tp += len(flagged & junk)
        fp += len(flagged - junk)
        fn += len(junk - flagged)
        junk_spend += sum(spend[k] for k in junk)
        caught_spend += sum(spend[k] for k in junk & flagged)
    return {
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "spend_recall": caught_spend / max(junk_spend, 1e-9),
        "flagged": tp + fp,
    }


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.mark.slow
def test_negatives_on_a_generated_world_are_mostly_junk_queries(tmp_path: Path, embedder: Embedder) -> None:
    scores = score_negatives(generated_advertisers(tmp_path / "world.sqlite", 12, days=60, seed=11), embedder)
    print(scores)  # figures for the report: pytest -s
    assert scores["flagged"] >= 20
    assert scores["precision"] >= 0.8
    assert scores["spend_recall"] >= 0.6
