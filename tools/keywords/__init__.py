"""Keyword recommendations and negative-keyword suggestions from search terms, with sentence embeddings."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Exports load on first use, so importing a sub-module (e.g. the CLI) stays fast.
_EXPORTS = {
    "Embedder": "tools.keywords.embeddings",
    "EmbeddingModelMissingError": "tools.keywords.embeddings",
    "default_embedder": "tools.keywords.embeddings",
    "load_model": "tools.keywords.embeddings",
    "recommend_keywords": "tools.keywords.engine",
    "suggest_negatives": "tools.keywords.engine",
    "KeywordRecommendations": "tools.keywords.models",
    "KeywordSuggestion": "tools.keywords.models",
    "NegativeKind": "tools.keywords.models",
    "NegativesOptions": "tools.keywords.models",
    "NegativeSuggestion": "tools.keywords.models",
    "NegativeSuggestions": "tools.keywords.models",
    "RecommendOptions": "tools.keywords.models",
    "SuggestionSource": "tools.keywords.models",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


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
