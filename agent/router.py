"""The intent router: which intents a seller's message likely means, from the pretrained sentence encoder
(all-MiniLM-L6-v2, tools/keywords/embeddings.py) and a linear layer trained on the curriculum's train phrasings
(training/router.py writes it into the model dir as `intent_router.json`).

The embedded model uses it in two places, both optional and both measured (README, evaluation):
- **Tool retrieval** (as TinyAgent's tool RAG): on the first step of a turn, when the router is confident and
  every likely intent starts with a tool call, the decoding grammar offers only the tools those intents start
  with and no direct answer. A likely refusal, greeting or reply to the agent leaves the grammar whole.
- **Written answers**: when the model ends a turn whose calls succeeded, the answer is written from the tool
  results by the expert's answer for the most likely intent whose plan matches the calls the model made (every
  figure copied from a result); the model's own text is kept where no such intent exists.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from agent.expert import REFUSALS as REFUSAL_TEXTS
from agent.expert import Done, step
from agent.intents import REFUSALS, WRITE_INTENTS, EntityKind, Intent, IntentKind, Kpi, Metric

ROUTER_FILE = "intent_router.json"
CONFIDENT_MASS = 0.9  # the likely intents: the fewest whose probabilities add up to this ...
MAX_LIKELY = 4  # ... and at most this many
OPEN_MASS = 0.15  # intents answered without tools (refusals, greetings, replies) this likely together: no restriction
_NO_ANSWER_WRITER = WRITE_INTENTS | {IntentKind.FIX_ACOS, IntentKind.FIX_BUDGET}  # they end in a proposal


class IntentRouter(BaseModel):
    classes: list[str] = Field(description="IntentKind values, in the order of the rows of coef")
    coef: list[list[float]]
    intercept: list[float]
    summary: dict[str, Any] = Field(default_factory=dict, description="how it was trained and what it scored")

    @classmethod
    def load(cls, model_dir: Path | str) -> IntentRouter | None:
        path = Path(model_dir) / ROUTER_FILE
        return cls.model_validate_json(path.read_text()) if path.is_file() else None

    def predict(self, texts: Sequence[str]) -> list[dict[IntentKind, float]]:
        from tools.keywords.embeddings import default_embedder

        x = default_embedder().encode(list(texts))
        logits = x @ np.asarray(self.coef, dtype=np.float32).T + np.asarray(self.intercept, dtype=np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        kinds = [IntentKind(c) for c in self.classes]
        return [dict(zip(kinds, map(float, row), strict=True)) for row in p]


@functools.cache
def first_tool(kind: IntentKind) -> str | None:
    """The tool the expert's plan for `kind` calls first (None: it answers without tools)."""
    placeholder = Intent(kind=kind, keyword="x", campaign="x", ad_group="x", experiment="x", entity="x",
                         entity_kind=EntityKind.KEYWORD, value=1.0, total=100.0, term="x")
    message = step(placeholder, [])
    calls = message.get("tool_calls") or []
    return str(calls[0]["function"]["name"]) if calls else None


def likely(probs: dict[IntentKind, float]) -> list[IntentKind]:
    ranked = sorted(probs, key=lambda k: -probs[k])
    out: list[IntentKind] = []
    mass = 0.0
    for kind in ranked[:MAX_LIKELY]:
        out.append(kind)
        mass += probs[kind]
        if mass >= CONFIDENT_MASS:
            return out
    return []  # not confident


def first_step_tools(probs: dict[IntentKind, float]) -> set[str] | None:
    """The tools the first step of a turn may call (and no direct answer), or None for no restriction: the
    likely intents among those that start with a call, unless the intents answered without one (a refusal,
    a greeting, a reply to the agent) together reach OPEN_MASS."""
    open_mass = sum(p for k, p in probs.items() if first_tool(k) is None)
    if open_mass >= OPEN_MASS:
        return None
    kinds = likely({k: p / (1 - open_mass) for k, p in probs.items() if first_tool(k) is not None})
    return {t for t in map(first_tool, kinds) if t} or None


REFUSAL_DOUBT = 0.12  # the router's total refusal probability below which a refusal by the model gets a second look


def refusal_text(text: str) -> bool:
    """Whether an answer is one of the expert's refusals (the embedded model learned them word for word)."""
    head = " ".join(text.split())[:40].lower()
    return any(head and t.lower().startswith(head[:30]) for t in REFUSAL_TEXTS.values())


def tools_instead_of_refusal(probs: dict[IntentKind, float]) -> set[str] | None:
    """When the model refused a message the router reads as an ordinary request (refusals together under
    REFUSAL_DOUBT, a tool intent at least as likely as the answers without tools), the tools of the likely
    tool intents, for a second decoding that must call one; None to let the refusal stand."""
    if sum(p for k, p in probs.items() if k in REFUSALS) >= REFUSAL_DOUBT:
        return None
    tool_intents = {k: p for k, p in probs.items() if first_tool(k) is not None}
    if not tool_intents or max(tool_intents.values()) < max((p for k, p in probs.items() if k not in tool_intents),
                                                            default=0.0) / 2:
        return None
    total = sum(tool_intents.values())
    kinds = likely({k: p / total for k, p in tool_intents.items()}) or sorted(tool_intents, key=lambda k: -probs[k])[:2]
    return {t for t in map(first_tool, kinds) if t} or None


def _intent_from_calls(kind: IntentKind, done: Sequence[Done]) -> Intent:
    """The intent with the fields the expert's answer reads that the calls carry (the sort, the KPI, the level)."""
    fields: dict[str, Any] = {}
    for d in done:
        if d.name == "performance":
            if d.args.get("sort") in Metric.__members__.values():
                fields["metric"] = Metric(d.args["sort"])
            level = d.args.get("level")
            if level in ("keyword", "campaign", "ad_group"):
                fields["entity_kind"] = EntityKind(level)
        elif d.name == "kpi_change" and d.args.get("kpi") in Kpi.__members__.values():
            fields["kpi"] = Kpi(d.args["kpi"])
    return Intent(kind=kind, **fields)


def written_answer(probs: dict[IntentKind, float], done: Sequence[Done], scope: str | None = None) -> str | None:
    """The expert's answer for the most likely intent whose plan starts with a tool the model called and that
    answers from exactly these results; None where no intent fits (the model's own answer stands)."""
    if not done:
        return None
    called = {d.name for d in done}
    if any(d.name == "propose_change" and d.error is None for d in done):
        return None  # a proposal's answer is the graph's
    for kind in sorted(probs, key=lambda k: -probs[k]):
        if probs[kind] < 0.01:
            break
        failed = any(d.error is not None for d in done)  # the expert's question back, whatever the intent
        if kind in REFUSALS or (kind in _NO_ANSWER_WRITER and not failed) or first_tool(kind) not in called:
            continue
        try:
            message = step(_intent_from_calls(kind, done), done, scope)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):  # results of another shape
            continue
        if not message.get("tool_calls") and message.get("content"):
            return str(message["content"])
    return None


def last_user_text(thread: list[dict[str, Any]]) -> str | None:
    return next((str(m.get("content") or "") for m in reversed(thread) if m.get("role") == "user"), None)
