"""Amounts in a seller's words as figures (agent/amounts.py): what the embedded model can copy into a call."""

from __future__ import annotations

import pytest

from agent.amounts import ground_change, ground_total, normalize_amounts


@pytest.mark.parametrize(
    ("said", "written"),
    [
        ("set boho storage bins to a buck fifty", "set boho storage bins to $1.50"),
        ("bid two bucks on adjustable kettlebell", "bid $2 on adjustable kettlebell"),
        ("bidding two dollars and ten cents on it", "bidding $2.10 on it"),
        ("drop my bid by 20 cents", "drop my bid by $0.20"),
        ("at a bid of one dollars and ten cents instead", "at a bid of $1.10 instead"),
        ("drop it to one dollars and five cents", "drop it to $1.05"),
        ("bid 2 bucks 5 on it", "bid $2.05 on it"),
        ("five cents lower", "$0.05 lower"),
        ("try the yoga mat campaign at seventy a day", "try the yoga mat campaign at 70 a day"),
        ("raise the kettlebell budget from 132 to 172", "raise the kettlebell budget to 172"),
        ("from eighty up to one hundred ten daily", "to 110 daily"),
        (
            "take a fifth off whichever campaign has the worst acos",
            "take 20% off whichever campaign has the worst acos",
        ),
        ("keep acos below a quarter", "keep acos below 25%"),
        ("run the towels at two fifty", "run the towels at $2.50"),
        ("raise it to $1,200 a day", "raise it to $1200 a day"),  # a thousands separator, not 1 and 200
        ("I'm comfortable with 0.1k a day there", "I'm comfortable with 100 a day there"),
        ("split 1.5k between my campaigns", "split 1500 between my campaigns"),
        ("budget 2K a day", "budget 2000 a day"),
    ],
)
def test_spelled_out_amounts_become_figures(said, written):
    assert normalize_amounts(said) == written


@pytest.mark.parametrize(
    "text",
    [
        "the one with the worst acos",
        "first campaign first",
        "dumbbells 2026 bid 1.5",
        "sp - generic - 2-pack towels",
        "how are my ads doing?",
        "bids of 1,2 and 3",  # not a thousands separator
        "the 4k tv mount keyword",  # a name: k inside a word
    ],
)
def test_words_that_are_not_amounts_stay(text):
    assert normalize_amounts(text) == text


@pytest.mark.parametrize(
    ("said", "made", "grounded"),
    [
        ("drop my bid on the rug by 20 cents", {"value": 0.2}, {"change_by": -0.2}),
        ("double the budget on bath towels", {"value": 1}, {"relative_change": 1.0}),
        ("double the budget on kettlebell", {"relative_change": -0.1}, {"relative_change": 1.0}),
        ("take a fifth off the bottle warmer campaign", {"relative_change": 0.2}, {"relative_change": -0.2}),
        ("raise the towels campaign by 50 a day", {"value": 50}, {"change_by": 50.0}),
        ("try auto dumbbells at 693 a day", {"value": 693}, {"value": 693}),
        ("set it to one twenty five", {"value": 12.5}, {"value": 1.25}),
        ("set it to 1.25 for the next 7 days", {"value": 1.25}, {"value": 1.25}),
    ],
)
def test_a_proposal_takes_the_amount_the_seller_named(said, made, grounded):
    base = {"action": "set_budget", "id": "x"}
    assert ground_change(base | made, said, set()) == base | grounded


def test_an_acos_target_is_no_change_by_a_share():
    from agent.amounts import target_acos

    said = "get 'premium dumbbells' (exact) under 35.0% acos, pick the bid and put it in"
    assert target_acos(said) == 0.35 and target_acos("keep acos below 25% on it") == 0.25
    assert target_acos("raise the bid by 20%") is None
    assert ground_change({"action": "set_bid", "id": "x", "relative_change": 0.35}, said, set()) is None


def test_a_quoted_names_figures_are_no_amount():
    said = "Please simulate 'leaf blower 2026' (exact) across a range of bids and summarise the results."
    assert (
        ground_change({"change": "bid", "id": "leaf blower 2026 exact", "value": 2026.0}, said, set()) is None
    )
    said = "bid 2 dollars on 'dumbbells 2026' (broad)"
    assert ground_change({"action": "set_bid", "id": "dumbbells 2026", "value": 2026}, said, set()) == {
        "action": "set_bid",
        "id": "dumbbells 2026",
        "value": 2.0,
    }


def test_an_amount_nobody_named_is_not_proposed():
    said = "should i be bidding more or less on grey area rug? just give me the number and line it up"
    assert ground_change({"action": "set_bid", "id": "grey area rug", "value": 0.2}, said, set()) is None
    assert ground_change({"action": "set_bid", "id": "x", "value": 0.82}, "ok set it", {0.82, 3.24}) == {
        "action": "set_bid",
        "id": "x",
        "value": 0.82,
    }  # the bid a tool recommended
    assert ground_change({"action": "pause", "id": "x"}, "pause it", set()) == {"action": "pause", "id": "x"}


@pytest.mark.parametrize(
    ("message", "made", "grounded"),
    [
        (
            "help me split 1650 between campaigns",
            {},
            {"total_budget": 1650.0},
        ),  # the model left the total out
        (
            "I can spend three hundred a day in total, divide it up",
            {"total_budget": 30},
            {"total_budget": 300.0},
        ),
        ("split 1.5k between my campaigns", {"total_budget": 1500}, {"total_budget": 1500}),
        ("how should I split my budget?", {"total_budget": 500}, {}),  # a total nobody named: the current one
        ("split 500 across the 3 campaigns", {}, {}),  # two figures: which is the total is the model's to say
        ("spread my budget over the next 14 days", {}, {}),  # a period is no amount
    ],
)
def test_a_budget_split_takes_the_total_the_seller_named(message, made, grounded):
    assert ground_total(made, message) == grounded
