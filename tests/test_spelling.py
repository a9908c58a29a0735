"""Typos mended before the router reads a message (agent/spelling.py)."""

from __future__ import annotations

import pytest

from agent.spelling import MIN_LEN, mend, mend_word, vocabulary


def test_a_misspelt_word_one_edit_from_a_phrasing_word_is_mended():
    assert "summary" in vocabulary() and "budget" in vocabulary()
    assert mend("quick sumary pls") == "quick summary pls"  # a letter dropped
    assert mend("what is my buget") == "what is my budget"
    assert mend("Sumary please") == "summary please"


def test_names_quotes_short_words_and_known_words_stay_as_typed():
    assert mend("is 'sumary boards' (exact) selling?") == "is 'sumary boards' (exact) selling?"  # quoted
    assert mend_word("yday") == "yday" and mend_word("ctr") == "ctr"  # under MIN_LEN letters
    assert len("yday") < MIN_LEN
    assert mend_word("zenware") == "zenware"  # nothing one edit away: a brand stays
    assert mend_word("budge") == "budge"  # an English word the encoder knows is not a typo of "budget"
    assert mend("bid 1.50 on kw_0000012") == "bid 1.50 on kw_0000012"


def test_shorthand_the_router_never_saw_is_spelled_out_and_shorthand_it_learned_stays():
    from agent.spelling import SHORTHAND, _spelled_out

    assert mend("y is acos up") == "why is acos up"
    assert mend("lemme check it bc idk") == "let me check it because I don't know"
    assert mend("so 'y not' cuz") == "so 'y not' because"  # quoted text stays
    learned = {s for s in SHORTHAND if vocabulary()[s]}
    assert {"pls", "wat"} <= learned and not learned & _spelled_out().keys()
    assert mend("wat r my kws pls") == "wat r my kws pls"  # the router learned these from the phrasings


@pytest.mark.parametrize(
    ("typed", "meant", "intent"),
    [
        ("quick sumary pls", "quick summary pls", "overview"),  # a typo
        ("y is acos up", "why is acos up", "kpi_change"),  # shorthand the router never saw
    ],
)
def test_the_router_reads_a_message_as_typed_as_it_reads_the_words_meant(typed, meant, intent):
    from agent.configuration import default_model_dir
    from agent.intents import IntentKind
    from agent.router import IntentRouter

    model_dir = default_model_dir()
    assert model_dir is not None
    router = IntentRouter.load(model_dir)
    assert router is not None
    as_typed, as_meant = router.predict([typed, meant])
    assert as_typed == as_meant
    assert max(as_typed, key=lambda k: as_typed[k]) == IntentKind(intent)
