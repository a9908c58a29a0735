"""Output guardrail: grounding, promises and ad policy on its test set; how much room grounding leaves."""

import json
import logging

import pytest

from agent.guardrails.evaluate import _scores, fabrication_pass_rate, load, output_case
from agent.guardrails.output import SAFE_UNGROUNDED, OutputAction, check_output, extract_numbers

DEV = load("output.jsonl")


@pytest.mark.parametrize("row", DEV, ids=[r["answer"][:40] for r in DEV])
def test_dev_case(row):
    _, _, exact, label = output_case(row)
    assert exact, label


def test_heldout_floors():
    scores = _scores("output/holdout", [output_case(r) for r in load("output_holdout.jsonl")])
    assert scores.false_positive_rate == 0.0, scores.mismatches
    assert scores.precision >= 0.9 and scores.recall >= 0.8, scores.mismatches


def test_number_formats():
    got = [
        (m.value, m.percent)
        for m in extract_numbers("Spent $1,234.5, ACoS 12%, CTR 0.12, 1.2k clicks, 2026-06-01")
    ]
    assert got == [(1234.5, False), (12.0, True), (0.12, False), (1200.0, False)]


def test_fabricated_figures_rarely_pass_over_a_big_report():
    rates = fabrication_pass_rate(n=200)
    assert rates["$,.2f"] < 0.05 and rates["$,.0f"] < 0.1 and rates[".1f%"] < 0.2


def test_a_failing_answer_is_logged_and_replaced(caplog):
    with caplog.at_level(logging.WARNING, logger="adguide.guardrails"):
        check = check_output("You made $99,999 yesterday.", ['{"sales": 120.5}'])
    assert check.action == OutputAction.REPLACED and check.text == SAFE_UNGROUNDED
    assert "99,999" in caplog.text


@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "arguments": "arguments": ',
        'Sure. <tool_call>{"name": "performance"',
        "Your ACoS is " + "0" * 60,
    ],
)
def test_broken_generations_are_replaced_not_shown(answer):
    from agent.guardrails.output import SAFE_MALFORMED, IssueKind

    check = check_output(answer, tool_texts=['{"acos": 0.153}'])
    assert check.action == OutputAction.REPLACED and check.text == SAFE_MALFORMED
    assert [i.kind for i in check.issues] == [IssueKind.MALFORMED]


def test_json_like_prose_with_real_figures_still_passes():
    check = check_output(
        "ACoS went from 17.4% to 15.3% (name of the campaign: SP - Brand).",
        tool_texts=['{"before": 0.174, "after": 0.153}'],
    )
    assert check.action == OutputAction.PASS


def test_hostile_user_text_and_deep_or_huge_tool_values_never_break_the_check():
    """A user message is read as text, never as JSON; a walk over a tool value neither recurses past the stack
    nor converts a 4,000-digit integer to float (either failed the turn, and every later one in the thread)."""
    deep = '{"a": ' * 500 + "1" + "}" * 500
    huge = "9" * 3999
    for user in (deep, huge, "[" * 3000, f"set the bid to {huge}"):
        check = check_output("Your ACoS is 17.3%.", ['{"acos": 0.173}'], [user])
        assert check.ok, user[:20]
    deep_tool = [json.loads('{"a": ' * 300 + "1" + "}" * 300), {"n": int(huge)}, [[[[2.5]]]] * 3]
    check = check_output("You spent $2.50.", deep_tool, [])
    assert check.ok
