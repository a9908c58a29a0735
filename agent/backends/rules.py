"""A deterministic rule-based policy as a LangChain chat model: the "rules" backend.

It is a real, selectable backend (`--backend rules`), not a test double: it needs no model weights, runs
instantly, and every figure it states is copied from a tool result, so it exercises the graph's paths
(tool calls, proposals and confirmations, grounding) end to end. It reads the user's last message, picks
one tool from the MCP tool set (`account_overview`, `performance`, `search_terms`, `propose_change`), and
once the result is back, writes a short answer quoting it. The training engineer's expert policy
(agent/expert.py, behind the "teacher" backend) is the stronger rule-based policy; this one stays small on purpose.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from tools.mcp_server.outputs import Raw, failure, payload, try_read
from tools.mcp_server.schemas import OverviewOut, PerformanceOut, SearchTermRow, SearchTermsOut

_ID = {
    "keyword": re.compile(r"\bkw_\d+\b"),
    "campaign": re.compile(r"\bcmp_\d+\b"),
    "ad_group": re.compile(r"\bag_\d+\b"),
}
_MONEY = re.compile(r"(?:\bto\b|=|\bat\b)\s*\$?\s*(\d+(?:\.\d+)?)")
_PERCENT = re.compile(r"\bby\s+(\d+(?:\.\d+)?)\s*%")


def _money(x: Any) -> str:
    return "n/a" if x is None else f"${float(x):,.2f}"


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def tool_text(message: ToolMessage) -> str:
    """The text of a tool result (MCP results arrive as content blocks)."""
    content = message.content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def plan_call(question: str, available: set[str]) -> tuple[str, dict[str, Any]] | None:
    """The one tool call a question needs (name, arguments), or None to answer without tools."""
    q = question.lower()
    ids = {kind: rx.findall(question) for kind, rx in _ID.items()}
    value = _MONEY.search(q)
    if "propose_change" in available:
        if ids["keyword"] and "bid" in q and value:
            return "propose_change", {
                "action": "set_bid",
                "id": ids["keyword"][0],
                "value": float(value.group(1)),
            }
        if ids["campaign"] and "budget" in q and value:
            return "propose_change", {
                "action": "set_budget",
                "id": ids["campaign"][0],
                "value": float(value.group(1)),
            }
        target = (ids["keyword"] or ids["campaign"] or [None])[0]
        if target and re.search(r"\b(pause|stop)\b", q):
            return "propose_change", {"action": "pause", "id": target}
        if target and re.search(r"\b(enable|resume|unpause|restart)\b", q):
            return "propose_change", {"action": "enable", "id": target}
    if "performance" in available and ids["keyword"] and "bid" in q and _PERCENT.search(q):
        return "performance", {"level": "keyword", "limit": 100}  # the current bid first, then a proposal
    sort = next((s for s in ("acos", "sales", "orders", "clicks", "impressions") if s in q), "spend")
    if "search_terms" in available and re.search(r"search terms?|queries|negative", q):
        return "search_terms", {"sort": sort, "limit": 10}
    if "performance" in available and re.search(r"\bkeywords?\b|\bbids?\b", q):
        args: dict[str, Any] = {"level": "keyword", "sort": sort, "limit": 10}
        if ids["campaign"]:
            args["campaign_id"] = ids["campaign"][0]
        return "performance", args
    if "performance" in available and re.search(r"\bcampaigns?\b|\bbudgets?\b|cmp_", q):
        return "performance", {"level": "campaign", "sort": sort, "limit": 10}
    if "account_overview" in available:
        return "account_overview", {}
    return None


def follow_up(
    question: str, name: str, result: Raw, available: set[str]
) -> tuple[str, dict[str, Any]] | None:
    """A second call that depends on the first result (a relative bid change needs the current bid)."""
    q = question.lower()
    pct = _PERCENT.search(q)
    ids = _ID["keyword"].findall(question)
    if (
        name != "performance"
        or not pct
        or not ids
        or "propose_change" not in available
        or (table := try_read(PerformanceOut, result)) is None
    ):
        return None
    row = next((r for r in table.rows if r.id == ids[0]), None)
    if not row or row.bid is None:
        return None
    sign = -1.0 if re.search(r"\b(lower|decrease|cut|reduce)\b", q) else 1.0
    new_bid = round(float(row.bid) * (1 + sign * float(pct.group(1)) / 100), 2)
    return "propose_change", {"action": "set_bid", "id": ids[0], "value": new_bid}


def describe(name: str, result: Raw) -> str:
    """A short answer that quotes a tool result (every figure copied, so the grounding check passes)."""
    if payload(result) is None:
        return "I got a result I could not read. Could you rephrase the question?"
    if (err := failure(result)) is not None:
        return f"I couldn't get that: {err.message}."
    if name == "account_overview" and (overview := try_read(OverviewOut, result)) is not None:
        t, p = overview.totals, overview.period
        lines = [
            f"From {p.start} to {p.end} you spent {_money(t.spend)} for {_money(t.sales)} of "
            f"ad-attributed sales (ACoS {_pct(t.acos)}, {t.orders} orders from {t.clicks} clicks)."
        ]
        for c in overview.campaigns[:5]:
            capped = f"; budget ran out on {c.budget_capped_days} days" if c.budget_capped_days else ""
            lines.append(
                f"- {c.name} ({c.id}): spend {_money(c.spend)}, sales {_money(c.sales)}, "
                f"ACoS {_pct(c.acos)}, budget {_money(c.daily_budget)}/day{capped}"
            )
        return "\n".join(lines)
    table: PerformanceOut | SearchTermsOut | None = (
        try_read(SearchTermsOut, result) if name == "search_terms" else try_read(PerformanceOut, result)
    )
    if name in ("performance", "search_terms") and table is not None:
        if not table.rows:
            return "There is no activity to report for that selection and period."
        lines = [f"Totals: spend {_money(table.totals.spend)}, sales {_money(table.totals.sales)}."]
        for r in table.rows[:5]:
            label = f"'{r.term}'" if isinstance(r, SearchTermRow) else f"{r.name} ({r.id})"
            bid = f", bid {_money(r.bid)}" if not isinstance(r, SearchTermRow) and r.bid is not None else ""
            lines.append(
                f"- {label}: spend {_money(r.spend)}, sales {_money(r.sales)}, "
                f"{r.orders} orders, ACoS {_pct(r.acos)}{bid}"
            )
        if isinstance(table, SearchTermsOut):
            wasted = [r for r in table.rows if r.orders == 0 and r.spend > 0]
            if wasted:
                lines.append(
                    "Terms with spend and no orders are candidates for negative keywords: "
                    + ", ".join(f"'{r.term}'" for r in wasted[:3])
                    + "."
                )
        return "\n".join(lines)
    return "Done."


class RulesChatModel(BaseChatModel):
    """A deterministic policy behind LangChain's chat-model interface (tool calling included)."""

    @property
    def _llm_type(self) -> str:
        return "adguide-rules"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Runnable:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        available = {t["function"]["name"] for t in kwargs.get("tools", [])}
        message = self.decide(messages, available)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def decide(self, messages: list[BaseMessage], available: set[str]) -> AIMessage:
        last_user = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
        if last_user < 0:
            return AIMessage(content="Ask me about your campaigns, keywords, bids or budgets.")
        question = str(messages[last_user].content)
        results = [m for m in messages[last_user + 1 :] if isinstance(m, ToolMessage)]
        calls = {
            c["id"]: c["name"]
            for m in messages[last_user + 1 :]
            if isinstance(m, AIMessage)
            for c in m.tool_calls
        }
        if not results:
            call = plan_call(question, available)
            if call is None:
                return AIMessage(
                    content="I can answer questions about your account once my tools are available."
                )
            return _call(*call)
        last = results[-1]
        name = calls.get(last.tool_call_id, last.name or "")
        text = tool_text(last)
        if len(results) == 1 and (nxt := follow_up(question, name, text, available)):
            return _call(*nxt)
        return AIMessage(content=describe(name, text))


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:10]}", "type": "tool_call"}],
    )
