"""Tool-argument guardrails: every tool call the model makes is checked before it runs.

Three layers:
- schema: the arguments must validate against the tool's JSON schema (derived from the MCP tool's pydantic
  input model, so there is one definition of each schema);
- scope: the caller's advertiser id comes from auth/config (`Scope`), never from the model; any id the model
  names must belong to that advertiser, and the apply tools are never the model's to call (only the graph
  applies a proposal, after the user confirms). Which tools apply and which propose is the registry's
  `approval` hint (tools/mcp_server/schemas.py); a name outside the registry is judged by its prefix;
- policy bounds on proposed changes (`check_change`): a bid change beyond ±50% or a budget above a cap needs
  an extra, explicit confirmation; a bid below the reserve price is refused outright.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

import jsonschema
from pydantic import BaseModel, Field

from tools.mcp_server.schemas import Approval, approval_of

ID_PATTERN = re.compile(r"^(adv|cmp|ag|kw|prd|exp|nkw)_[A-Za-z0-9]+$")
BID_FIELDS = frozenset({"bid", "new_bid", "max_bid", "default_bid"})
BUDGET_FIELDS = frozenset({"budget", "daily_budget", "new_budget", "total_budget"})
APPLY_PREFIXES = ("apply_",)  # for names outside the registry (a tool another server adds): its approval
PROPOSE_PREFIXES = ("propose_",)


def approval(name: str) -> Approval:
    """The registry's approval hint for a tool; by name prefix for a tool it does not hold."""
    known = approval_of(name)
    if known is not None:
        return known
    if name.startswith(APPLY_PREFIXES):
        return Approval.APPLY
    return Approval.PROPOSE if name.startswith(PROPOSE_PREFIXES) else Approval.NONE


class Verdict(StrEnum):
    OK = "ok"
    REJECT = "reject"  # do not run; the model gets the message as the tool's result
    CONFIRM_EXTRA = "confirm_extra"  # allowed only with an extra, explicit confirmation from the user


class Policy(BaseModel):
    max_bid_change: float = Field(
        default=0.5, gt=0, description="relative bid change that needs extra confirmation"
    )
    max_budget_change: float = Field(
        default=0.5, gt=0, description="relative budget change needing extra confirmation"
    )
    budget_cap: float = Field(
        default=1000.0, gt=0, description="daily budget above which extra confirmation is needed"
    )
    min_bid: float = Field(
        default=0.05, ge=0, description="marketplace reserve price; bids below are refused"
    )
    max_bid: float = Field(default=100.0, gt=0)


class Scope(BaseModel):
    """Who the caller is. Set by the server's auth or the CLI's config; the model cannot change it."""

    advertiser_id: str
    known_ids: frozenset[str] | None = Field(
        default=None, description="ids this advertiser owns, when known; None skips the membership check"
    )
    allow_writes: bool = True


class ToolArgCheck(BaseModel):
    verdict: Verdict
    issues: list[str] = Field(default_factory=list)

    @property
    def message(self) -> str:
        return "; ".join(self.issues)


class ProposedChange(BaseModel):
    """One field of one entity a proposal would change (what the propose tools return as a diff)."""

    entity_id: str
    field: str  # "bid" | "daily_budget" | "status" | ...
    before: float | str | None = None
    after: float | str | None = None
    reserve: float | None = None  # the keyword's reserve price when the proposal reports it


def _walk_strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _walk_strings(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list | tuple):
        return [x for i, v in enumerate(value) for x in _walk_strings(v, f"{path}[{i}]")]
    return []


def _walk_numbers(value: Any, key: str = "") -> list[tuple[str, float]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [(key, float(value))]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _walk_numbers(v, str(k))]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _walk_numbers(v, key)]
    return []


def check_tool_args(
    name: str, args: Any, *, schema: dict[str, Any] | None, scope: Scope, policy: Policy | None = None
) -> ToolArgCheck:
    """Schema, scope and hard bounds for one tool call, before it runs."""
    policy = policy or Policy()
    needs = approval(name)
    if needs == Approval.APPLY:
        return ToolArgCheck(
            verdict=Verdict.REJECT,
            issues=[f"{name} can only run after the user confirms a proposal; call the propose tool instead"],
        )
    if not isinstance(args, dict):
        return ToolArgCheck(verdict=Verdict.REJECT, issues=[f"arguments of {name} must be a JSON object"])
    issues: list[str] = []
    if schema:
        validator = jsonschema.Draft202012Validator(schema)
        for err in sorted(validator.iter_errors(args), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in err.path) or "arguments"
            issues.append(f"{where}: {err.message}")
    for path, value in _walk_strings(args):
        if not ID_PATTERN.match(value):
            continue
        if value.startswith("adv_"):
            if value != scope.advertiser_id:
                issues.append(f"{path}: {value} is not your account ({scope.advertiser_id})")
        elif scope.known_ids is not None and value not in scope.known_ids:
            issues.append(f"{path}: {value} is not one of {scope.advertiser_id}'s ids")
    for key, number in _walk_numbers(args):
        if key in BID_FIELDS and not policy.min_bid <= number <= policy.max_bid:
            issues.append(
                f"{key} must be >= {policy.min_bid} (the reserve) and <= {policy.max_bid} (got {number:g})"
            )
        if key in BUDGET_FIELDS and number <= 0:
            issues.append(f"{key} must be > 0 (got {number:g})")
    if needs == Approval.PROPOSE and not scope.allow_writes:
        issues.append("this session is read-only: changes cannot be proposed")
    return ToolArgCheck(verdict=Verdict.REJECT if issues else Verdict.OK, issues=issues)


def check_change(change: ProposedChange, policy: Policy | None = None) -> ToolArgCheck:
    """Policy bounds on one proposed change (a proposal's diff row)."""
    policy = policy or Policy()
    if not isinstance(change.after, int | float):
        return ToolArgCheck(verdict=Verdict.OK)  # status changes, new keywords: confirmed like any proposal
    after = float(change.after)
    before = float(change.before) if isinstance(change.before, int | float) else None
    field = change.field
    if field in BID_FIELDS:
        reserve = max(policy.min_bid, change.reserve or 0.0)
        if after < reserve:
            return ToolArgCheck(
                verdict=Verdict.REJECT,
                issues=[f"{change.entity_id}: a bid of {after:g} is below the reserve price {reserve:g}"],
            )
        if before and abs(after / before - 1) > policy.max_bid_change + 1e-9:
            return ToolArgCheck(
                verdict=Verdict.CONFIRM_EXTRA,
                issues=[
                    f"{change.entity_id}: bid {before:g} → {after:g} is a {100 * (after / before - 1):+.0f}% change "
                    f"(beyond ±{100 * policy.max_bid_change:.0f}%)"
                ],
            )
    if field in BUDGET_FIELDS:
        if after <= 0:
            return ToolArgCheck(verdict=Verdict.REJECT, issues=[f"{change.entity_id}: a budget must be > 0"])
        issues = []
        if after > policy.budget_cap:
            issues.append(
                f"{change.entity_id}: daily budget {after:g} is above the cap {policy.budget_cap:g}"
            )
        if before and abs(after / before - 1) > policy.max_budget_change + 1e-9:
            issues.append(
                f"{change.entity_id}: budget {before:g} → {after:g} is a {100 * (after / before - 1):+.0f}% change "
                f"(beyond ±{100 * policy.max_budget_change:.0f}%)"
            )
        if issues:
            return ToolArgCheck(verdict=Verdict.CONFIRM_EXTRA, issues=issues)
    return ToolArgCheck(verdict=Verdict.OK)


def check_changes(changes: list[ProposedChange], policy: Policy | None = None) -> ToolArgCheck:
    """The strictest verdict over a proposal's rows (reject > extra confirmation > ok)."""
    checks = [check_change(c, policy) for c in changes]
    order = [Verdict.REJECT, Verdict.CONFIRM_EXTRA]
    for verdict in order:
        hits = [c for c in checks if c.verdict == verdict]
        if hits:
            return ToolArgCheck(verdict=verdict, issues=[i for c in hits for i in c.issues])
    return ToolArgCheck(verdict=Verdict.OK)
