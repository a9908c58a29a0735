"""The intent screen: what a message is trying to do, read by the pretrained sentence encoder (all-MiniLM-L6-v2,
tools/keywords/embeddings.py) with a linear head trained on the project's own labelled sets
(agent/guardrails/data/intent_train.jsonl: attacks and benign look-alikes, by phrasing family; training/guardrail.py
fits it and writes `intent_screen.json` beside them).

The rules of agent/guardrails/input.py run first and stay where they are precise; the screen judges what they let
through (`check_input(..., screen=True)`; off by default: on the held-out families it refuses more benign
look-alikes than the 2% the project allows, README). It refuses only when it is sure (the attack classes together at least `threshold`, set on held-out
families of the train set so that benign look-alikes are refused at most about 1% of the time), so a message
that borrows an attack's words ("scratch all that, what's my roas?") is answered.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

SCREEN_FILE = Path(__file__).parent / "data" / "intent_screen.json"
OK = "ok"


class IntentScreen(BaseModel):
    classes: list[str] = Field(
        description="labels in the order of the rows of coef ('ok' and the attack kinds)"
    )
    coef: list[list[float]]
    intercept: list[float]
    threshold: float = Field(ge=0, le=1, description="the attack classes' total probability that refuses")
    summary: dict[str, Any] = Field(default_factory=dict, description="how it was trained and what it scored")

    def probabilities(self, texts: list[str]) -> np.ndarray:
        # lazy: pulls in pydantic_settings at import
        from tools.keywords.embeddings import default_embedder

        x = default_embedder().encode(texts)
        logits = x @ np.asarray(self.coef, dtype=np.float32).T + np.asarray(self.intercept, dtype=np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return np.asarray(p / p.sum(axis=1, keepdims=True))

    def judge(self, text: str) -> tuple[str, float]:
        """(the likeliest attack kind, or 'ok' when the attacks together stay under the threshold; their total)."""
        p = self.probabilities([text])[0]
        ok = self.classes.index(OK)
        attack = float(1.0 - p[ok])
        if attack < self.threshold:
            return OK, attack
        worst = max((i for i in range(len(self.classes)) if i != ok), key=lambda i: p[i])
        return self.classes[worst], attack


@functools.cache
def shipped_screen() -> IntentScreen | None:
    """The screen that ships with the package (None where none was trained: the rules alone screen)."""
    if not SCREEN_FILE.is_file():
        return None
    return IntentScreen.model_validate_json(SCREEN_FILE.read_text())
