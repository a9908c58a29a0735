"""The turn's typed events (agent/events.py): the SSE wire contract they keep, parsing with clear errors, the
ordering promise and the one summary of a turn the agent, server and evals share."""

import json

import pytest
from pydantic import ValidationError

from agent import events as ev

# The fields each event had on the wire before the union: clients (the web chat page) read them. Fields may be
# added to an event, never renamed or removed.
LEGACY_WIRE = {
    "token": {"text"},
    "tool_call": {"name", "args"},
    "tool_result": {"name", "ok", "text"},
    "confirmation": {"token", "action", "changes", "impact", "note", "expires_at", "extra_confirmation"},
    "extra_confirmation": {"token", "reasons", "question"},
    "guardrail": {"stage", "action", "detail"},
    "final": {"text"},
    "error": {"code", "message"},
    "done": {"thread_id", "stop_reason", "seconds"},
}

SAMPLES = [
    ev.Token(text="Fro"),
    ev.ToolCall(name="search_terms", args={"limit": 10}, call_id="call_1"),
    ev.ToolResult(name="search_terms", ok=True, text='{"rows": []}', call_id="call_1"),
    ev.Guardrail(stage="output", action="repaired", detail="ungrounded_number: 12.5"),
    ev.Confirmation(
        token="tok_1",
        action="set_bid",
        changes=[{"id": "kw_1", "field": "bid", "before": 1.0, "after": 1.2}],
        impact=None,
        note="Nothing changed yet.",
        expires_at=1.7e9,
        extra_confirmation=[],
    ),
    ev.ExtraConfirmation(token="tok_1", reasons=["bid x3"], question="Confirm again?"),
    ev.Final(text="From search_terms: ..."),
    ev.Error(code="turn_failed", message="try again"),
    ev.Done(thread_id="th_1", stop_reason="", seconds=0.42),
]


def test_every_event_type_keeps_its_wire_fields():
    assert {e.type for e in SAMPLES} == set(LEGACY_WIRE)
    for event in SAMPLES:
        wire = event.wire()
        assert wire["type"] == event.type and LEGACY_WIRE[event.type] <= set(wire), (event.type, set(wire))
        # the wire form is plain JSON and reads back as the same typed event
        assert ev.parse(json.loads(json.dumps(wire))) == event
        assert ev.parse(json.dumps(wire)) == event


def test_old_payloads_without_the_added_fields_still_parse():
    """Events saved before call_id (a checkpointed interrupt, a recorded transcript) read back."""
    assert ev.parse({"type": "tool_call", "name": "performance", "args": {}}).call_id == ""
    assert (
        ev.parse_proposal(
            {
                "type": "confirmation",
                "token": "t",
                "action": "set_bid",
                "changes": [],
                "impact": None,
                "note": None,
                "expires_at": 1.0,
                "extra_confirmation": [],
            }
        ).type
        == "confirmation"
    )
    assert (
        ev.Guardrail.model_validate({"stage": "input", "action": "refused", "detail": "x"}).type
        == "guardrail"
    )


def test_bad_events_are_clear_errors():
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        ev.parse({"type": "tokn", "text": "x"})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ev.parse({"type": "final", "txt": "x"})
    with pytest.raises(ValidationError, match="ok"):
        ev.ToolResult(name="x", ok="maybe", text="")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="confirmation"):
        ev.parse_proposal({"type": "final", "text": "x"})


def test_the_order_promise_is_checked():
    guard, final, done = SAMPLES[3], SAMPLES[6], SAMPLES[8]
    ev.check_order([SAMPLES[1], guard, final, done])
    with pytest.raises(ValueError, match="guardrail event after the final answer"):
        ev.check_order([final, guard])
    with pytest.raises(ValueError, match="`done` is not the last"):
        ev.check_order([done, final])


def test_a_turn_summary_reads_the_events():
    summary = ev.TurnSummary.of(SAMPLES)
    assert (
        summary.text == "From search_terms: ..." and summary.done is not None and summary.done.seconds == 0.42
    )
    assert isinstance(summary.confirmation, ev.ExtraConfirmation)  # the last proposal the turn stopped at
    assert [g.action for g in summary.guardrail_events] == ["repaired"]
    assert [c.name for c in summary.tool_calls] == ["search_terms"]
    assert [e.code for e in summary.errors] == ["turn_failed"]
