"""Amounts in a seller's words as figures (agent/amounts.py): what the embedded model can copy into a call."""

from __future__ import annotations

import pytest

from agent.amounts import normalize_amounts


@pytest.mark.parametrize(("said", "written"), [
    ("set boho storage bins to a buck fifty", "set boho storage bins to $1.50"),
    ("bid two bucks on adjustable kettlebell", "bid $2 on adjustable kettlebell"),
    ("bidding two dollars and ten cents on it", "bidding $2.10 on it"),
    ("drop my bid by 20 cents", "drop my bid by $0.20"),
    ("at a bid of one dollars and ten cents instead", "at a bid of $1.10 instead"),
    ("try the yoga mat campaign at seventy a day", "try the yoga mat campaign at 70 a day"),
    ("raise the kettlebell budget from 132 to 172", "raise the kettlebell budget to 172"),
    ("from eighty up to one hundred ten daily", "to 110 daily"),
    ("take a fifth off whichever campaign has the worst acos", "take 20% off whichever campaign has the worst acos"),
    ("keep acos below a quarter", "keep acos below 25%"),
    ("run the towels at two fifty", "run the towels at $2.50"),
])
def test_spelled_out_amounts_become_figures(said, written):
    assert normalize_amounts(said) == written


@pytest.mark.parametrize("text", [
    "the one with the worst acos", "first campaign first", "dumbbells 2026 bid 1.5", "sp - generic - 2-pack towels",
    "how are my ads doing?",
])
def test_words_that_are_not_amounts_stay(text):
    assert normalize_amounts(text) == text
