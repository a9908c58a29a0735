"""The embedded model's text: WordPiece tokens back to exact text, and the compact call form to hermes JSON."""

from __future__ import annotations

import json

import pytest

from agent.backends.hermes import parse_tool_calls
from agent.model.text import (
    CALL_OPEN,
    SPECIAL,
    clean_spacing,
    compact_call,
    compact_call_to_json,
    load_tokenizer,
    recase,
    render_calls,
)


@pytest.fixture(scope="module")
def tok():  # type: ignore[no-untyped-def]
    return load_tokenizer()


def _round_trip(tok, text: str) -> str:  # type: ignore[no-untyped-def]
    return tok.decode(tok.encode(text, add_special_tokens=False).ids, skip_special_tokens=False)


@pytest.mark.parametrize(
    "args",
    [
        {"change": "bid", "id": "kw_0000123", "value": 2.25},
        {"change": "budget", "id": "sp - generic - yoga mat", "relative_change": -0.2, "days": 7},
        {
            "action": "add_negatives",
            "id": "ag_000004",
            "keywords": [{"text": "refurbished", "match_type": "phrase"}],
        },
        {"campaign_ids": ["cmp_00001", "cmp_00003"], "total_budget": 300},
        {"start": "2026-07-01", "end": "2026-07-30", "level": "keyword"},
        {},
    ],
)
def test_a_compact_call_decodes_to_the_same_arguments(tok, args) -> None:  # type: ignore[no-untyped-def]
    text = render_calls(_round_trip(tok, compact_call("some_tool", args)))
    message = parse_tool_calls(text)
    assert message.tool_calls[0]["name"] == "some_tool"
    assert message.tool_calls[0]["args"] == args


def test_special_tokens_are_single_tokens(tok) -> None:  # type: ignore[no-untyped-def]
    for s in SPECIAL:
        assert len(tok.encode(s, add_special_tokens=False).ids) == 1, s


def test_answers_get_their_spacing_and_casing_back(tok) -> None:  # type: ignore[no-untyped-def]
    answer = (
        "Setting the bid of 'a5 label maker' (kw_0000025) from $0.57 to $0.48: incremental profit +$12.00 "
        "(range -$50.48 to $160.20), ACoS 33.7% on 2026-07-24. It's SP - Generic - Label Maker's call."
    )
    back = recase(clean_spacing(_round_trip(tok, answer)), ["SP - Generic - Label Maker"])
    assert back == answer


def test_an_unfinished_call_is_left_for_the_parser_to_report(tok) -> None:  # type: ignore[no-untyped-def]
    text = render_calls(_round_trip(tok, f"{CALL_OPEN} what_if : change = bid ; id = kw"))
    message = parse_tool_calls(text)
    assert not message.tool_calls and message.invalid_tool_calls


def test_compact_json_reads_nested_lists() -> None:
    parsed = compact_call_to_json(
        "propose _ change : keywords = [ { text = a b , match _ type = exact , } ] ;"
    )
    assert parsed == {
        "name": "propose_change",
        "arguments": {"keywords": [{"text": "a b", "match_type": "exact"}]},
    }
    assert json.dumps(parsed)
