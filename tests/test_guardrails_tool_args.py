"""Tool-argument guardrail: schema, scope and policy bounds on its test set."""

import json

import pytest

from agent.guardrails.evaluate import DATA, load, tool_args_case
from agent.guardrails.tool_args import (
    Policy,
    ProposedChange,
    Scope,
    Verdict,
    approval,
    check_changes,
    check_tool_args,
)
from tools.mcp_server.schemas import TOOLS, Approval

FIXTURE = json.loads((DATA / "tool_fixture.json").read_text())
ROWS = load("tool_args.jsonl")


@pytest.mark.parametrize(
    "row", ROWS, ids=[str(r.get("tool") or r["change"]["field"]) + f"-{i}" for i, r in enumerate(ROWS)]
)
def test_case(row):
    _, _, exact, label = tool_args_case(row, FIXTURE)
    assert exact, label


def test_unknown_ids_pass_when_the_scope_lists_none():
    scope = Scope(advertiser_id="adv_0001")
    assert (
        check_tool_args(
            "simulate_bid_change", {"keyword_id": "kw_42", "bid": 1.0}, schema=None, scope=scope
        ).verdict
        == Verdict.OK
    )
    assert (
        check_tool_args("summary", {"advertiser_id": "adv_0002"}, schema=None, scope=scope).verdict
        == Verdict.REJECT
    )


def test_read_only_scope_refuses_proposals():
    scope = Scope(advertiser_id="adv_0001", allow_writes=False)
    check = check_tool_args(
        "propose_bid_change", {"keyword_id": "kw_1", "bid": 1.0}, schema=None, scope=scope
    )
    assert check.verdict == Verdict.REJECT and "read-only" in check.message


def test_strictest_verdict_over_a_proposal_and_configurable_bounds():
    rows = [
        ProposedChange(entity_id="kw_1", field="bid", before=1.0, after=1.2),
        ProposedChange(entity_id="kw_2", field="bid", before=1.0, after=2.0),
    ]
    assert check_changes(rows).verdict == Verdict.CONFIRM_EXTRA
    assert check_changes(rows, Policy(max_bid_change=1.5)).verdict == Verdict.OK
    rows.append(ProposedChange(entity_id="kw_3", field="bid", before=1.0, after=0.01))
    check = check_changes(rows)
    assert check.verdict == Verdict.REJECT and "kw_3" in check.message


def test_the_guardrail_reads_approval_from_the_registry():
    """Which tools apply and which propose comes from each ToolSpec's `approval`, not a list of names here."""
    for spec in TOOLS:
        assert approval(spec.name) == spec.approval
        check = check_tool_args(
            spec.name, {}, schema=None, scope=Scope(advertiser_id="adv_0001", allow_writes=False)
        )
        refused = check.verdict == Verdict.REJECT
        assert refused == (spec.approval != Approval.NONE), (spec.name, check.message)
    # a tool another server adds, outside the registry: its name's prefix stands in for the hint
    assert approval("apply_coupon") == Approval.APPLY and approval("propose_coupon") == Approval.PROPOSE
    assert approval("coupon_report") == Approval.NONE
