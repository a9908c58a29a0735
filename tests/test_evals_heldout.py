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


def test_a_curriculum_spec_takes_exactly_one_count() -> None:
    from pydantic import ValidationError

    from evals.scenario import CurriculumSpec

    assert CurriculumSpec(dialogues_per_kind=1, splits=[Split.ID]).dialogues_per_advertiser is None
    for bad in ({}, {"dialogues_per_kind": 1, "dialogues_per_advertiser": 5}):
        with pytest.raises(ValidationError, match="exactly one of dialogues_per_kind"):
            CurriculumSpec(splits=[Split.ID], **bad)


def test_the_per_kind_draw_ends_dialogues_in_every_kind_and_each_kind_draws_alone(
    tiny_world_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kind the account can open with ends at least one dialogue, the draw repeats exactly, and a kind's
    dialogues do not depend on what the other kinds drew (each kind its own random stream)."""
    from agent.curriculum.dialogues import WEIGHTS
    from evals.heldout import _dialogues
    from evals.scenario import CurriculumSpec

    spec = CurriculumSpec(dialogues_per_kind=1, splits=[Split.ID], seed=3)
    first = asyncio.run(_dialogues(tiny_world_path, "adv_0001", spec, Split.ID))
    ending = {d.turns[-1].intent.kind for d in first}
    # a kind may run out of attempts (or need an experiment the account lacks), not more than two
    assert len(set(WEIGHTS) - ending) <= 2
    again = asyncio.run(_dialogues(tiny_world_path, "adv_0001", spec, Split.ID))
    assert [(d.id, [t.user for t in d.turns]) for d in again] == [
        (d.id, [t.user for t in d.turns]) for d in first
    ]
    # the kinds drawn in the opposite order: a kind's first dialogue is the same (where the kind still opens
    # one: another kind's follow-ups may have ended in it first)
    import evals.heldout

    kinds = evals.heldout.dialogue_kinds
    monkeypatch.setattr(evals.heldout, "dialogue_kinds", lambda ctx: list(reversed(kinds(ctx))))
    reversed_draw = asyncio.run(_dialogues(tiny_world_path, "adv_0001", spec, Split.ID))
    firsts = {d.id: [t.user for t in d.turns] for d in first if d.id.endswith("-0")}
    again_firsts = {d.id: [t.user for t in d.turns] for d in reversed_draw if d.id in firsts}
    assert len(again_firsts) >= len(firsts) // 2
    assert again_firsts == {k: firsts[k] for k in again_firsts}
    # the other split's stream: other phrasings
    other = asyncio.run(_dialogues(tiny_world_path, "adv_0001", spec, Split.NEW_CATEGORY))
    assert [t.user for d in other for t in d.turns] != [t.user for d in first for t in d.turns]


def test_the_dev_and_gated_draws_open_with_patterns_of_their_own_half(tiny_world_path: Path) -> None:
    """A suite's `half` keeps its dialogues' first messages to that half of the held-out patterns: the failures
    read on the dev draw never show a pattern the gated draw scores."""
    import re

    from agent.curriculum.phrasings import HeldOutHalf, Section, patterns
    from evals.heldout import _dialogues
    from evals.scenario import CurriculumSpec

    def pattern_of(kind: object, text: str, half: HeldOutHalf) -> bool:
        for _, p in patterns(kind, Section.FIRST, heldout=True, half=half):  # type: ignore[arg-type]
            words = re.split(r"\{[a-z_]+\}", p.text)
            if re.fullmatch(".+?".join(re.escape(w) for w in words), text, re.S):
                return True
        return False

    for half, other in ((HeldOutHalf.GATED, HeldOutHalf.DEV), (HeldOutHalf.DEV, HeldOutHalf.GATED)):
        spec = CurriculumSpec(dialogues_per_kind=1, splits=[Split.ID], seed=3, half=half)
        drawn = asyncio.run(_dialogues(tiny_world_path, "adv_0001", spec, Split.ID))
        firsts = [(d.turns[0].intent.kind, d.turns[0].user) for d in drawn]
        assert len(firsts) > 20
        assert all(pattern_of(kind, text, half) for kind, text in firsts), half
        # and not all of them would fit the other half (the halves differ)
        assert not all(pattern_of(kind, text, other) for kind, text in firsts)
