"""The intent screen: what a message is trying to do, read by the pretrained sentence encoder (all-MiniLM-L6-v2,
agent/encoder.py) with its top layers fine-tuned together with a linear head on the project's own labelled sets
(agent/guardrails/data/intent_train.jsonl: attacks and benign look-alikes, by phrasing family). training/guardrail.py
trains it and writes `intent_screen.json` (classes, head, threshold, summary) and `intent_screen.safetensors` (the
tuned encoder layers, fp16) beside them; a screen without tuned layers reads the encoder as it ships.

The rules of agent/guardrails/input.py run first and stay where they are precise; the screen judges what they let
through (on by default, `check_input(..., screen=False)` or ADGUIDE_INTENT_SCREEN=0 turns it off). It refuses only
when it is sure: the attack classes together at least `threshold`, set on the train rows by leave-families-out (each
family scored by a screen trained without it) so that about 1% of benign look-alikes would be refused. A message that
borrows an attack's words ("scratch all that, what's my roas?") is answered.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from agent.encoder import TunedEncoder
from tools.settings import EnvSettings

DATA = Path(__file__).parent / "data"
SCREEN_FILE = DATA / "intent_screen.json"
TUNED_FILE = DATA / "intent_screen.safetensors"  # the encoder's fine-tuned top layers (training/guardrail.py)
OK = "ok"


class IntentScreen(BaseModel):
    classes: list[str] = Field(
        description="labels in the order of the rows of coef ('ok' and the attack kinds)"
    )
    coef: list[list[float]]
    intercept: list[float]
    threshold: float = Field(ge=0, le=1, description="the attack classes' total probability that refuses")
    tuned_layers: int = Field(
        0,
        ge=0,
        le=6,
        description="encoder top layers fine-tuned with the head (in TUNED_FILE); 0: as shipped",
    )
    max_tokens: int = Field(128, ge=16, le=512, description="tokens of a message the encoder reads")
    summary: dict[str, Any] = Field(default_factory=dict, description="how it was trained and what it scored")
    _encoder: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _threads_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def load(cls, path: Path = SCREEN_FILE, tuned: Path = TUNED_FILE) -> IntentScreen | None:
        if not path.is_file():
            return None
        screen = cls.model_validate_json(path.read_text())
        if screen.tuned_layers and not tuned.is_file():
            raise FileNotFoundError(f"{path} was trained with tuned encoder layers, but {tuned} is missing")
        return screen

    def encoder(self) -> TunedEncoder:
        """Loaded on first use (a second or two: transformers and the weights), once per screen."""
        with self._lock:
            if self._encoder is None:
                self._encoder = (
                    TunedEncoder.load(TUNED_FILE, self.max_tokens)
                    if self.tuned_layers
                    else TunedEncoder.base(self.max_tokens)
                )
            return self._encoder

    def use_encoder(self, encoder: TunedEncoder) -> None:
        """Read with `encoder` (the one training just tuned) instead of loading the shipped layers."""
        self._encoder = encoder

    def probabilities(self, texts: list[str]) -> np.ndarray:
        encoder = self.encoder()
        # lazy: torch comes with the encoder (loaded above)
        import torch

        # One thread: a message is a few dozen tokens, too little work to split, and on a busy machine two threads
        # that wait on each other took 0.6 s a message against 0.08 s on one (measured at load 9 on 2 cores). The
        # count is process-wide, so it is set and put back under the screen's lock.
        with self._threads_lock:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                x = encoder.encode(texts)
            finally:
                torch.set_num_threads(threads)
        logits = x @ np.asarray(self.coef, dtype=np.float32).T + np.asarray(self.intercept, dtype=np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return np.asarray(p / p.sum(axis=1, keepdims=True))

    def attack(self, texts: list[str]) -> np.ndarray:
        """The attack classes' total probability of each text."""
        return np.asarray(1.0 - self.probabilities(texts)[:, self.classes.index(OK)])

    def judge(self, text: str) -> tuple[str, float]:
        """(the likeliest attack kind, or 'ok' when the attacks together stay under the threshold; their total)."""
        p = self.probabilities([text])[0]
        ok = self.classes.index(OK)
        attack = float(1.0 - p[ok])
        if attack < self.threshold:
            return OK, attack
        worst = max((i for i in range(len(self.classes)) if i != ok), key=lambda i: p[i])
        return self.classes[worst], attack


class ScreenSettings(EnvSettings):
    intent_screen: bool = Field(
        True,
        description="ADGUIDE_INTENT_SCREEN: the intent screen judges what the input rules let through (0: off)",
    )


@functools.cache
def screen_on() -> bool:
    """Whether check_input runs the screen where its caller leaves it to the setting (read once per process)."""
    return ScreenSettings.from_env().intent_screen


@functools.cache
def shipped_screen() -> IntentScreen | None:
    """The screen that ships with the package (None where none was trained: the rules alone screen)."""
    return IntentScreen.load()


@functools.lru_cache(maxsize=1024)
def judge_shipped(text: str) -> tuple[str, float]:
    """The shipped screen's verdict on a text, remembered (the graph and a backend may both ask of one message);
    ('ok', 0.0) where no screen ships."""
    screen = shipped_screen()
    return screen.judge(text) if screen is not None else (OK, 0.0)
