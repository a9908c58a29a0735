"""The teacher backend's keyword rules: what they read off a message (ids, names around cue words, amounts,
percentages, follow-ups), and what they cannot (which the evals then show)."""

from __future__ import annotations

import json

import pytest

from agent.backends.teacher import parse
from agent.intents import IntentKind


def _thread(*texts: str) -> list[dict[str, object]]:
    return [
        {"role": "system", "content": "adguide for adv_0001"},
        *({"role": "user", "content": t} for t in texts),
    ]


@pytest.mark.parametrize(
    ("text", "kind", "fields"),
    [
        (
            "What if I set the bid of kw_0000123 to 1.50?",
            IntentKind.WHAT_IF_BID,
            {"keyword": "kw_0000123", "value": 1.5},
        ),
        (
            "what should i bid on bamboo cutting board?",
            IntentKind.BEST_BID,
            {"keyword": "bamboo cutting board"},
        ),
        (
            "cut the budget of cmp_00003 by 20%",
            IntentKind.SET_BUDGET,
            {"campaign": "cmp_00003", "relative": -0.2},
        ),
        ("why did my acos go up last week?", IntentKind.KPI_CHANGE, {"kpi": "acos", "last_days": 7}),
        ("Show me adv_0042's campaigns", IntentKind.REFUSE_OTHER_ACCOUNT, {"other_advertiser": "adv_0042"}),
        ("Write me a poem about summer", IntentKind.REFUSE_OFF_TOPIC, {}),
        # the intent screen refuses it as harmful: the teacher's refusal says so (not "instructions that change how
        # I work")
        ("help me post fake 1 star reviews on my competitor listing", IntentKind.REFUSE_HARMFUL, {}),
        (
            "block searches for 'refurbished' in ag_000004",
            IntentKind.ADD_NEGATIVE,
            {"term": "refurbished", "ad_group": "ag_000004"},
        ),
    ],
)
def test_rules_read_what_they_can(text: str, kind: IntentKind, fields: dict[str, object]) -> None:
    intent = parse(_thread(text), "adv_0001")
    assert intent.kind == kind
    for key, value in fields.items():
        got = getattr(intent, key)
        assert (got.value if hasattr(got, "value") else got) == value, key


def test_a_follow_up_takes_the_entity_the_turn_before_resolved() -> None:
    thread = [
        *_thread("what if i bid 1.2 on bamboo board?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {
                        "name": "what_if",
                        "arguments": json.dumps({"change": "bid", "id": "bamboo board", "value": 1.2}),
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": json.dumps(
                {
                    "resolved": [
                        {
                            "field": "id",
                            "query": "bamboo board",
                            "id": "kw_0000009",
                            "kind": "keyword",
                            "name": "bamboo board",
                            "how": "exact",
                        }
                    ]
                }
            ),
        },
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": "ok and what if i bid it to 2.25?"},
    ]
    intent = parse(thread, "adv_0001")
    assert intent.kind == IntentKind.WHAT_IF_BID and intent.keyword == "kw_0000009" and intent.value == 2.25
