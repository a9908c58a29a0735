"""Held-out curriculum cases: the gold trajectory's expectations, and tool calls scored on what names resolved to."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from evals.heldout import scenario_from_dialogue
from evals.metrics import tool_call_accuracy
from evals.scenario import Category, Split
from tools.mcp_server.resolve import canonical_args


def test_names_are_compared_by_the_ids_they_resolved_to() -> None:
    result = json.dumps(
        {
            "keyword_id": "kw_0000007",
            "resolved": [
                {
                    "field": "keyword_id",
                    "query": "bamboo board",
                    "id": "kw_0000007",
                    "kind": "keyword",
                    "name": "bamboo board",
                    "how": "exact",
                }
            ],
        }
    )
    assert canonical_args({"keyword_id": "bamboo board", "goal": "target_acos"}, result) == {
        "keyword_id": "kw_0000007",
        "goal": "target_acos",
    }
    assert canonical_args({"keyword_id": "kw_0000007"}, json.dumps({"keyword_id": "kw_0000007"})) == {
        "keyword_id": "kw_0000007"
    }
    pred = [("recommend_bid", canonical_args({"keyword_id": "bamboo board"}, result))]
    assert tool_call_accuracy(pred, [("recommend_bid", {"keyword_id": "kw_0000007"})]) == 1.0
    assert tool_call_accuracy(pred, [("recommend_bid", {"keyword_id": "kw_0000008"})]) == 0.0


@pytest.fixture(scope="module")
def heldout_dialogues(tiny_world_path: Path) -> list:  # type: ignore[type-arg]
    from tests.test_curriculum_dialogues import _dialogues

    return asyncio.run(_dialogues(tiny_world_path, 40, heldout=True, seed=7))


def test_a_dialogue_becomes_a_scenario_with_the_golds_expectations(heldout_dialogues: list) -> None:  # type: ignore[type-arg]
    from agent.intents import REFUSALS

    for d in heldout_dialogues:
        s = scenario_from_dialogue(d, Split.ID)
        assert s.tags == ["heldout"] and len(s.turns) == len(d.turns)
        gold_calls = [c for t in d.turns for st in t.steps for c in st.message.get("tool_calls") or []]
        assert len(s.expect.reference_calls or []) == len(gold_calls)
        final = d.turns[-1]
        if final.intent.kind in REFUSALS:
            assert s.expect.refuse is True and s.category == Category.SAFETY
        if final.decision == "confirm":
            assert (
                s.expect.changes and s.writes
            )  # a typed confirmation must apply the proposal: a private world
            # and its seller says yes again where the change is beyond the usual bounds (the dialogue applied it)
            assert s.turns[-1].acknowledge_risk is True
        else:
            assert s.expect.changes == [] and "apply_change" in s.expect.forbid_tools
        for turn, gold in zip(s.turns, d.turns, strict=True):
            assert turn.acknowledge_risk == (gold.decision == "confirm")
        asked = final.steps and "Which one do you mean?" in str(final.steps[-1].message.get("content"))
        assert (s.expect.clarify is True) == bool(asked)
