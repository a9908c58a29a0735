"""The phrasing files load, cover every intent with enough patterns, and split into train / held-out families."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.curriculum.phrasings import (
    MIN_PATTERNS,
    Family,
    HeldOutHalf,
    PhrasingError,
    Section,
    heldout_families,
    load_file,
    load_phrasings,
    pattern_half,
    patterns,
)
from agent.intents import IntentKind


def test_every_intent_has_a_valid_phrasing_file() -> None:
    sets = load_phrasings()
    missing = sorted(k.value for k in IntentKind if k not in sets)
    assert not missing, f"no phrasing file for {missing}"
    for kind, ps in sets.items():
        assert sum(len(v) for v in ps.first.values()) >= MIN_PATTERNS, kind


def test_heldout_families_are_two_fixed_and_every_family_is_trained_somewhere() -> None:
    trained: set[Family] = set()
    for kind in IntentKind:
        held = heldout_families(kind)
        assert len(held) == 2
        assert held == heldout_families(kind)  # stable
        trained |= set(Family) - held
    assert trained == set(Family)


def test_train_and_heldout_patterns_are_disjoint() -> None:
    for kind in load_phrasings():
        train = {p.text for _, p in patterns(kind, Section.FIRST, heldout=False)}
        held = {p.text for _, p in patterns(kind, Section.FIRST, heldout=True)}
        assert train and held and not train & held


def test_the_heldout_first_patterns_split_into_two_halves_of_every_intent() -> None:
    """The dev half (read while building) and the gated half (scored, never read) of each intent's held-out first
    messages: both non-empty, apart, together all of them; a half is fixed by the pattern's own words."""
    for kind in load_phrasings():
        held = {p.text for _, p in patterns(kind, Section.FIRST, heldout=True)}
        dev = {p.text for _, p in patterns(kind, Section.FIRST, heldout=True, half=HeldOutHalf.DEV)}
        gated = {p.text for _, p in patterns(kind, Section.FIRST, heldout=True, half=HeldOutHalf.GATED)}
        assert dev and gated and not dev & gated and dev | gated == held, kind
        assert all(
            pattern_half(kind, p) == HeldOutHalf.GATED
            for _, p in patterns(kind, Section.FIRST, heldout=True, half=HeldOutHalf.GATED)
        )
        # the train draw has no halves
        assert patterns(kind, Section.FIRST, heldout=False, half=HeldOutHalf.DEV) == patterns(
            kind, Section.FIRST, heldout=False
        )


def test_a_bad_file_names_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "what_if_bid.yaml"
    bad.write_text("intent: what_if_bid\nfirst:\n  terse: ['what if {campaign} at {value}']\n")
    with pytest.raises(PhrasingError, match="what_if_bid.yaml"):
        load_file(bad)
