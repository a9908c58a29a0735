"""Proactive mode: given an advertiser (no question), a short ranked list of guidance items.

Each item says what to change, why, the expected incremental impact with its interval and a confidence,
and carries the tool results it rests on. Candidates come from the optimizers (recommend_bid on the
keywords that spend most, allocate_budget across campaigns) and the negative-keyword tool; every bid or
budget candidate is then simulated against the status quo (what_if, common random numbers) and ranked by
expected incremental profit. Everything goes through the same MCP session and guardrails as a chat turn:
the rendered text is checked for grounding, and each item's `propose` arguments are what the chat's
propose/confirm flow takes to apply it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from agent import tracing
from agent.guardrails.output import check_output
from agent.tool_call import run_tool
from tools.mcp_server.outputs import failure, payload, try_read
from tools.mcp_server.schemas import (
    BudgetAllocation,
    NegativeSuggestions,
    PerformanceOut,
    RecommendBidOut,
    WhatIfOut,
)

M = TypeVar("M", bound=BaseModel)

TOP_KEYWORDS = 5
MIN_RELATIVE_CHANGE = 0.10


class Confidence(StrEnum):
    HIGH = "high"  # the whole interval is a gain
    MEDIUM = "medium"  # a gain on average, the interval includes a loss
    LOW = "low"


class Impact(BaseModel):
    metric: str = "incremental_profit"
    mean: float
    low: float | None = None
    high: float | None = None
    days: int | None = None
    basis: str = Field(description="simulation (what_if) or history (past spend)")


class GuidanceItem(BaseModel):
    rank: int = 0
    title: str
    why: str
    impact: Impact
    confidence: Confidence
    propose: dict[str, Any] = Field(description="propose_change arguments that make this change")
    evidence: list[dict[str, Any]] = Field(description="the tool calls and results this item rests on")

    def text(self) -> str:
        i = self.impact
        span = f" (range {_usd(i.low)} to {_usd(i.high)})" if i.low is not None and i.high is not None else ""
        when = f" over {i.days} days" if i.days else ""
        return (
            f"{self.rank}. {self.title}. {self.why} Expected {i.metric.replace('_', ' ')}{when}: "
            f"{_usd(i.mean)}{span}, from {i.basis}; confidence {self.confidence.value}."
        )


class GuidanceReport(BaseModel):
    advertiser_id: str
    items: list[GuidanceItem]
    grounded: bool = Field(description="the rendered text passed the output guardrail's grounding check")
    notes: list[str] = Field(default_factory=list, description="candidates skipped and why")

    def text(self) -> str:
        if not self.items:
            return "I found no change worth making right now: the simulations show no expected gain."
        return "\n".join(item.text() for item in self.items)


def _usd(x: float) -> str:
    return f"-${abs(x):,.2f}" if x < 0 else f"${x:,.2f}"


def _confidence(low: float | None, mean: float) -> Confidence:
    if low is not None and low > 0:
        return Confidence.HIGH
    return Confidence.MEDIUM if mean > 0 else Confidence.LOW


async def guide(agent: Any, thread_id: str, max_items: int = 5) -> GuidanceReport:
    """Run the proactive analysis for the agent's advertiser over its MCP session (one traced run: its tool calls
    nest under it)."""
    with tracing.turn(thread_id, agent.config.advertiser_id, kind="guide") as span:
        report = await _guide(agent, max_items)
        if span is not None:
            span.set_attributes(
                {"adguide.guide.items": len(report.items), "adguide.guide.grounded": report.grounded}
            )
    return report


async def _guide(agent: Any, max_items: int) -> GuidanceReport:
    ctx = agent.context
    calls: list[dict[str, Any]] = []

    async def call(name: str, args: dict[str, Any], model: type[M]) -> M | None:
        """The tool's output as its model; None where the tool is missing, failed or answered out of shape.
        The raw result is kept as evidence (and for the grounding check)."""
        if name not in ctx.tools:
            return None
        text = await run_tool(ctx, name, args)
        result = payload(text)
        if result is None:
            return None
        calls.append({"tool": name, "args": args, "result": result})
        return None if failure(result) else try_read(model, result)

    items: list[GuidanceItem] = []
    notes: list[str] = []

    async def simulate(
        change: str,
        entity: str,
        value: float,
        title: str,
        why: str,
        evidence: list[dict[str, Any]],
        propose: dict[str, Any],
    ) -> None:
        sim = await call("what_if", {"change": change, "id": entity, "value": value}, WhatIfOut)
        diff = sim.difference.get("incremental_profit") if sim else None
        if sim is None or diff is None:
            notes.append(f"{entity}: the simulation failed")
            return
        if diff.mean <= 0:
            notes.append(f"{entity}: no expected gain in simulation")
            return
        items.append(
            GuidanceItem(
                title=title,
                why=why,
                confidence=_confidence(diff.low, diff.mean),
                propose=propose,
                impact=Impact(
                    mean=diff.mean, low=diff.low, high=diff.high, days=sim.days, basis="simulation"
                ),
                evidence=[*evidence, calls[-1]],
            )
        )

    top = await call(
        "performance", {"level": "keyword", "sort": "spend", "limit": TOP_KEYWORDS}, PerformanceOut
    )
    for row in top.rows if top else []:
        if row.status != "enabled" or row.bid is None:
            continue
        rec = await call("recommend_bid", {"keyword_id": row.id}, RecommendBidOut)
        if not rec or not rec.feasible or not rec.current_bid:
            continue
        if abs(rec.bid / rec.current_bid - 1) < MIN_RELATIVE_CHANGE:
            continue
        verb = "Raise" if rec.bid > rec.current_bid else "Lower"
        await simulate(
            "bid",
            row.id,
            rec.bid,
            f"{verb} the bid on '{row.name}' ({row.id}) from ${rec.current_bid:.2f} to ${rec.bid:.2f}",
            "The bid optimizer finds this bid maximizes incremental profit.",
            [calls[-1]],
            {"action": "set_bid", "id": row.id, "value": rec.bid},
        )

    alloc = await call("allocate_budget", {}, BudgetAllocation)
    for camp in alloc.campaigns if alloc else []:
        new, cur = camp.budget or 0.0, camp.current_budget or 0.0
        if new <= 0 or cur <= 0 or abs(new / cur - 1) < MIN_RELATIVE_CHANGE:
            continue
        await simulate(
            "budget",
            camp.campaign_id,
            new,
            f"Set the daily budget of {camp.campaign_id} from ${cur:.2f} to ${new:.2f}",
            f"The budget allocator's split across campaigns puts it there (limit: {camp.limit.value}).",
            [calls[-1]],
            {"action": "set_budget", "id": camp.campaign_id, "value": new},
        )

    negatives = await call("negative_ideas", {}, NegativeSuggestions)
    for s in negatives.suggestions[:3] if negatives else []:
        saved, lost = float(s.spend), float(s.sales)
        if saved <= 0 or lost > 0:
            continue
        items.append(
            GuidanceItem(
                title=f"Add '{s.text}' as a negative keyword in {s.ad_group_id}",
                why=f"It cost ${saved:,.2f} with {s.orders} orders from {s.clicks} clicks.",
                confidence=Confidence.HIGH if s.p_below >= 0.95 else Confidence.MEDIUM,
                impact=Impact(mean=saved, basis="history (spend it cost over the report period)"),
                propose={
                    "action": "add_negatives",
                    "id": s.ad_group_id,
                    "keywords": [{"text": s.text, "match_type": s.match_type.value}],
                },
                evidence=[calls[-1]],
            )
        )

    order = {Confidence.HIGH: 0, Confidence.MEDIUM: 1, Confidence.LOW: 2}
    items.sort(key=lambda it: (order[it.confidence], -it.impact.mean))
    items = items[:max_items]
    for rank, item in enumerate(items, 1):
        item.rank = rank
    report = GuidanceReport(advertiser_id=agent.config.advertiser_id, items=items, grounded=True, notes=notes)
    check = check_output(
        report.text(), [json.dumps(c["result"]) for c in calls] + [json.dumps(c["args"]) for c in calls]
    )
    report.grounded = check.ok
    if not check.ok:
        report.notes.append("grounding check: " + "; ".join(i.detail for i in check.issues))
    return report


async def guidance_bulksheet(report: GuidanceReport, store: Path | str | None, workdir: Path) -> Any:
    """The changes a guidance report proposes, as the Sponsored Products bulksheet that makes them in the console
    (tools/mcp_server/bulksheet.py: each item's proposal is applied to a scratch copy of the store under `workdir`,
    the store itself is never written). An item whose proposal fails is left out, in the notes."""
    # lazy: pulls in numpy, sqlalchemy at import
    from tools.mcp_server.bulksheet import proposals_bulksheet

    proposals = [(f"item {item.rank} ({item.title})", item.propose) for item in report.items]
    return await proposals_bulksheet(store, report.advertiser_id, proposals, workdir)
