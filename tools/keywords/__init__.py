"""Keyword recommendations and negative-keyword suggestions from search terms, with sentence embeddings."""

from tools.keywords.embeddings import Embedder, EmbeddingModelMissingError, default_embedder, load_model
from tools.keywords.engine import recommend_keywords, suggest_negatives
from tools.keywords.models import (
    KeywordRecommendations,
    KeywordSuggestion,
    NegativeKind,
    NegativesOptions,
    NegativeSuggestion,
    NegativeSuggestions,
    RecommendOptions,
    SuggestionSource,
)

__all__ = [
    "Embedder",
    "EmbeddingModelMissingError",
    "KeywordRecommendations",
    "KeywordSuggestion",
    "NegativeKind",
    "NegativesOptions",
    "NegativeSuggestion",
    "NegativeSuggestions",
    "RecommendOptions",
    "SuggestionSource",
    "default_embedder",
    "load_model",
    "recommend_keywords",
    "suggest_negatives",
]
