"""The expert policy: given a turn's intent (agent/intents.py), the next tool call(s) or the answer.

It never reads the user's words: the intent says what is asked and names the entities in the user's own
words (the tools resolve them), so the same policy writes the curriculum's dialogues, drives the teacher chat
backend (after its keyword rules have guessed the intent) and gives the evals their reference trajectories.
Every figure in an answer is copied from a tool result of the turn; a change is only ever proposed (the
user confirms in the graph); a name the tools find ambiguous ends in a question back listing the candidates.

    step(intent, done, scope) -> an OpenAI-style assistant message: tool_calls, or content (the answer)
    await run(intent, call_tool, scope) -> the messages of one turn (calls, results, answer)

Plans that compare candidates (lower ACoS, budget moves) pick the change with the most simulated
incremental profit, the advertiser's objective, whatever merely correlated in the history.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from agent.intents import EntityKind, Intent, IntentKind
from tools.mcp_server.outputs import ToolFailure, failure, payload, read, resolved, try_read
from tools.mcp_server.schemas import (  # the tool contract: every output model, the engines' included
    AbResult,
    Attribution,
    BudgetAllocation,
    Candidate,
    Impact,
    KeywordRecommendations,
    LandscapeOut,
    Metrics,
    NegativeSuggestions,
    OverviewOut,
    PerformanceOut,
    ProposeOut,
    Range,
    RecommendBidOut,
    SearchTermsOut,
    UpliftOut,
    WhatIfOut,
)

BID_CANDIDATES = 4  # top keywords by spend whose best bids the expert simulates and compares
MIN_GAIN = 1.0  # dollars of simulated incremental profit below which a change is not worth proposing
MIN_BID = 0.05  # the marketplace's reserve price
MAX_ROWS = 3  # rows an answer lists

CallTool = Callable[[str, dict[str, Any]], Awaitable[str]]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Done:
    """A tool call of this turn and its result as the tool's JSON object ({"error": {...}} when it failed).

    The plans read a result through its tool's output model (`output`, tools/mcp_server/outputs.py): a result that
    is not the tool's output raises ToolResultError (a ValueError), which the router reads as "this plan does not
    fit these calls". The failure is typed (ToolFailure)."""

    name: str
    args: dict[str, Any]
    result: dict[str, Any]

    @property
    def error(self) -> dict[str, Any] | None:
        return self.result.get("error") if isinstance(self.result, dict) and "error" in self.result else None

    @property
    def failure(self) -> ToolFailure | None:
        return failure(self.result) if isinstance(self.result, dict) else None

    def output(self, model: type[M]) -> M:
        """The result as the tool's output model (ToolResultError where it is not one)."""
        return read(model, self.result)


def _result(text: str | None) -> dict[str, Any]:
    """A result's JSON object (outputs.payload); text that is not one reads as a failed call."""
    parsed = payload(text or "")
    if parsed is None:
        return {"error": {"type": "BadResult", "message": str(text)[:200]}}
    return parsed


# --- formatting (every figure copied from a result) ------------------------------------------------------


def _days(n: Any) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _missing(x: Any) -> bool:
    """No figure to show: null, or a NaN or infinity (a result writes those as null; outputs.read reads NaN)."""
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def money(x: Any) -> str:
    if _missing(x):
        return "n/a"
    return f"-${-float(x):.2f}" if float(x) < 0 else f"${float(x):.2f}"


def signed_money(x: Any) -> str:
    return "n/a" if _missing(x) else ("+" if float(x) >= 0 else "") + money(x)


def pct(x: Any) -> str:
    return "n/a" if _missing(x) else f"{100 * float(x):.1f}%"


def mean(x: Any) -> float | None:
    """The mean of a Range (or of a {mean, low, high} block), or the number itself; None where there is none."""
    if isinstance(x, Range):
        x = x.mean
    elif isinstance(x, Mapping):
        x = x.get("mean")
    return float(x) if isinstance(x, int | float) and not _missing(x) else None


def span(x: Range | None) -> str:
    """'$7.76 (range -$16.74 to $31.31)' from a Range."""
    if x is None:
        return money(x)
    return f"{money(x.mean)} (range {money(x.low)} to {money(x.high)})"


def _metrics(row: Metrics) -> str:
    return f"spend {money(row.spend)}, sales {money(row.sales)}, {row.orders} orders, ACoS {pct(row.acos)}"


def _named(name: Any, entity_id: Any) -> str:
    return f"'{name}' ({entity_id})" if name and name != entity_id else str(entity_id)


def _value(x: Any) -> str:
    return money(x) if isinstance(x, int | float) and not isinstance(x, bool) else str(x)


def impact_profit(result: WhatIfOut | Impact | None) -> float | None:
    """Mean simulated incremental profit of a change (a what_if result or a proposal's impact)."""
    return None if result is None else mean(result.difference.get("incremental_profit"))


def impact_text(impact: WhatIfOut | Impact | Mapping[str, Any] | None) -> str:
    """The simulated impact in words; a Mapping is a proposal's impact as the tool wrote it (the CLI's event)."""
    if isinstance(impact, Mapping):
        impact = try_read(Impact, impact)
    if impact is None:
        return "No simulation is available for this change."
    diff = impact.difference
    profit = diff.get("incremental_profit")
    parts = [
        f"incremental profit {signed_money(mean(profit))} "
        f"(range {money(profit.low if profit else None)} to "
        f"{money(profit.high if profit else None)})"
    ]
    parts += [
        f"{key} {signed_money(mean(diff.get(key)))}"
        for key in ("spend", "sales")
        if mean(diff.get(key)) is not None
    ]
    days = impact.days
    return (
        (
            f"Simulated over the next {days} days against no change: "
            if days
            else "Simulated against no change: "
        )
        + ", ".join(parts)
        + "."
    )


# --- messages --------------------------------------------------------------------------------------------


def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return calls([(name, arguments)])


def calls(items: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One assistant message with one or more tool calls (they run in the same round)."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{uuid.uuid4().hex[:8]}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for name, args in items
        ],
    }


def say(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def turn_done(messages: Sequence[dict[str, Any]]) -> list[Done]:
    """This turn's calls (after the last user message) with their parsed results, from OpenAI-style messages;
    a result that is not JSON reads as an error, arguments that are not JSON as none."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    done: list[Done] = []
    for m in messages[last_user + 1 :]:
        for c in m.get("tool_calls") or []:
            try:
                args = json.loads(c["function"]["arguments"] or "{}")
            except ValueError:
                args = {}
            calls[c.get("id") or ""] = (c["function"]["name"], args if isinstance(args, dict) else {})
        if m.get("role") == "tool" and m.get("tool_call_id") in calls:
            name, args = calls[m["tool_call_id"]]
            done.append(Done(name, args, _result(m.get("content"))))
    return done


def previous_change(messages: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """ "Ok do that" with no proposal waiting: the change the previous turn simulated (what_if) or recommended
    (recommend_bid), as a proposal call; None when that turn did neither (or recommends no change)."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
    before = max((i for i, m in enumerate(messages[:last_user]) if m.get("role") == "user"), default=-1)
    if before < 0:
        return None
    for d in reversed(turn_done(messages[:last_user])):
        if d.error is not None:
            continue
        if d.name == "what_if" and (sim := try_read(WhatIfOut, d.result)) is not None:
            c = sim.change
            action = {"bid": "set_bid", "daily_budget": "set_budget"}.get(c.field)
            if action and c.id and isinstance(c.after, int | float):
                return call(
                    "propose_change", {"action": action, "id": c.id, "value": round(float(c.after), 2)}
                )
        rec = try_read(RecommendBidOut, d.result) if d.name == "recommend_bid" else None
        if rec is not None and rec.feasible and rec.bid:
            best = round(float(rec.bid), 2)
            if abs(best - float(rec.current_bid or 0)) >= 0.005:
                return call("propose_change", {"action": "set_bid", "id": rec.keyword_id, "value": best})
    return None


def _first(done: Sequence[Done], name: str, model: type[M]) -> M | None:
    """The first successful call of tool `name` this turn, read as its output model `model`; None: no such call."""
    return next((d.output(model) for d in done if d.name == name and d.error is None), None)


def _all(done: Sequence[Done], name: str, model: type[M]) -> list[M]:
    return [d.output(model) for d in done if d.name == name and d.error is None]


# --- fixed answers -----------------------------------------------------------------------------------------

CAPABILITIES = (
    "Hi! I can look at your ad account with you: how campaigns and keywords perform, why a KPI "
    "like ACoS or sales moved, what a bid or budget change would do (simulated before you change "
    "anything), the best bid for a keyword, how to split a budget, what your experiments really "
    "brought, and new or negative keyword ideas. I propose changes and apply them only when you "
    "confirm."
)
REFUSALS = {
    IntentKind.REFUSE_OFF_TOPIC: "I can only help with your advertising account: performance, keywords, bids, "
    "budgets, experiments and what-if simulations. Ask me about those.",
    IntentKind.REFUSE_HARMFUL: "I can't help with that: it breaks advertising policy. I can help you improve "
    "results with your own bids, budgets and keywords instead.",
    IntentKind.REFUSE_OTHER_ACCOUNT: "I can only access your own account ({scope}); I can't show or change "
    "another advertiser's data.",
    IntentKind.REFUSE_INJECTION: "I can't follow instructions that change how I work or reveal my setup. "
    "I'm happy to help with your campaigns, keywords, bids and budgets.",
}
NO_PROPOSAL = "There is no change waiting for your confirmation. Tell me what you would like to change."
REJECTED = "OK, I did not change anything."


# --- errors: a question back, or what to fix --------------------------------------------------------------

_KIND_WORD = {
    "keyword": "keyword",
    "campaign": "campaign",
    "ad_group": "ad group",
    "experiment": "experiment",
}


def _candidate(c: Candidate) -> str:
    detail = c.detail.split(",")[0]
    if c.kind == "keyword":
        return f"'{c.name}' ({detail} match, {c.id})" if detail else f"'{c.name}' ({c.id})"
    if c.kind == "experiment":
        return f"the {c.name} of {detail} ({c.id})"
    return f"{c.name} ({c.id})"


# the tool-argument guardrail's words for an id of another account (agent/guardrails/tool_args.py)
_NOT_OURS = re.compile(r"\w+: (\S+) is not one of \S+'s ids")


def recover(done: Sequence[Done]) -> dict[str, Any]:
    """The answer after a tool refused a call: a question back for an ambiguous or unknown name, else what
    was wrong. (Numbers from the error's limits are left out: the answer names the field instead.)"""
    failed = next(d for d in done if d.error is not None)
    error = failed.failure or ToolFailure()
    kind, field = error.type, error.field or "value"
    query = next((v for k, v in failed.args.items() if k == field), None)
    if kind == "AmbiguousReferenceError":
        cands = [_candidate(c) for c in error.candidates or []]
        listed = ", ".join(cands[:-1]) + f" or {cands[-1]}" if len(cands) > 1 else "".join(cands)
        kinds = sorted({_KIND_WORD.get(c.kind.value, "thing") for c in error.candidates or []})
        return say(
            f"'{query}' matches more than one {' or '.join(kinds)} in your account: {listed}. "
            "Which one do you mean?"
        )
    if kind == "OtherKindError":  # the words name a thing of another kind, and no call of that kind fits
        cands = [_candidate(c) for c in error.candidates or []]
        listed = ", ".join(cands[:-1]) + f" or {cands[-1]}" if len(cands) > 1 else "".join(cands)
        return say(f"'{query}' is {listed} in your account. What would you like to change about it?")
    if kind == "NoMatchError" and (none := re.search(r"the account has no (\w[\w ]*?)s?$", error.message)):
        return say(
            f"Your account has no {none.group(1).replace('_', ' ')}s yet, so there is nothing to match '{query}' to."
        )
    if kind == "NoMatchError":
        return say(
            f"I couldn't find anything in your account matching '{query}'. Could you give me its exact "
            "name, or ask me to list your campaigns or keywords?"
        )
    if kind in ("UnknownIdError", "ScopeError"):
        return say(f"{query} is not in your account, so I can't use it. Could you check the name or id?")
    if not kind and (foreign := _NOT_OURS.search(error.message)):  # the graph's scope check refused the call
        return say(
            f"{foreign.group(1)} is not in your account, so I can't use it. Could you check the name or id?"
        )
    if kind == "InvalidInputError":
        return say(
            f"I couldn't do that: the {field.replace('_', ' ')} you asked for isn't allowed "
            f"({error.message.split(':')[0].split('(')[0].strip()}). Give me another "
            "value and I'll check it first."
        )
    tool = failed.name.replace("_", " ")
    if kind:
        return say(f"I couldn't do that: the {tool} tool refused it ({kind}).")
    said = _trimmed(error.message)  # an error without a class (a client's, a guardrail's): its own words
    if said:
        return say(f"I couldn't do that: the {tool} tool refused it ({said}).")
    return say(
        f"I couldn't do that: the {tool} tool refused it without saying why. Could you ask it another way?"
    )


def _trimmed(message: str, limit: int = 120) -> str:
    """An error message's first line, cut at a word to `limit` characters, without a closing full stop."""
    line = " ".join(message.strip().splitlines()[:1]).strip().rstrip(".")
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."


# --- plans ---------------------------------------------------------------------------------------------------


def _period(intent: Intent) -> dict[str, Any]:
    return {"last_days": intent.last_days} if intent.last_days else {}


def _overview(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "account_overview", OverviewOut)
    if r is None:
        return call("account_overview", _period(intent))
    t, p = r.totals, r.period
    target = r.advertiser.target_acos
    text = (
        f"From {p.start} to {p.end} you spent {money(t.spend)} on ads for {money(t.sales)} of "
        f"ad-attributed sales: ACoS {pct(t.acos)}"
        + (f" against your {pct(target)} target" if target else "")
        + f", {t.orders} orders from {t.clicks} clicks."
    )
    capped = [c for c in r.campaigns if c.budget_capped_days]
    if capped:
        c = max(capped, key=lambda c: c.budget_capped_days)
        text += (
            f" {c.name} ({c.id}) ran out of budget on {_days(c.budget_capped_days)} at "
            f"{money(c.daily_budget)}/day."
        )
    return say(text)


def _table(intent: Intent, done: Sequence[Done], level: str) -> dict[str, Any]:
    r = _first(done, "performance", PerformanceOut)
    sort = intent.metric.value if intent.metric else "spend"
    if r is None:
        args: dict[str, Any] = {"level": level, "sort": sort, "limit": 5}
        if intent.campaign and level == "keyword":
            args["campaign_id"] = intent.campaign
        return call("performance", args | _period(intent))
    rows = r.rows
    if not rows:
        return say(f"No {level} had activity from {r.period.start} to {r.period.end}.")
    label = {"acos": "ACoS"}.get(sort, sort)
    lines = [f"Your {level}s by {label}, {r.period.start} to {r.period.end}:"]
    lines += [f"- {_named(x.name, x.id)}: {_metrics(x)}" for x in rows[:MAX_ROWS]]
    if len(rows) > 1:  # the table answers "which", the totals "how much in all"
        scope = " in that campaign" if intent.campaign and level == "keyword" else ""
        lines.append(f"All {level}s{scope} together: {_metrics(r.totals)}.")
    return say("\n".join(lines))


def _entity_performance(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "performance", PerformanceOut)
    kind = intent.entity_kind or EntityKind.CAMPAIGN
    if r is None:
        field = {EntityKind.KEYWORD: "keyword_id", EntityKind.AD_GROUP: "ad_group_id"}.get(
            kind, "campaign_id"
        )
        level = {EntityKind.KEYWORD: "keyword", EntityKind.AD_GROUP: "ad_group"}.get(kind, "campaign")
        return call("performance", {"level": level, field: intent.entity} | _period(intent))
    rows = r.rows
    p = r.period
    if not rows:
        return say(f"It had no activity from {p.start} to {p.end}.")
    x = rows[0]
    extra = (
        f", bid {money(x.bid)}"
        if x.bid
        else (f", budget {money(x.daily_budget)}/day" if x.daily_budget else "")
    )
    return say(
        f"{_named(x.name, x.id)} from {p.start} to {p.end}: {_metrics(x)}, {x.clicks} clicks "
        f"at CPC {money(x.cpc)}{extra}."
    )


def _worst_acos(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "performance", PerformanceOut)
    if r is None:
        return call("performance", {"level": "keyword", "sort": "acos", "limit": 5} | _period(intent))
    rows = [(x, x.acos) for x in r.rows if x.acos is not None and x.spend > 0]
    if not rows:
        return say("None of your keywords had both spend and sales in that period, so ACoS is not defined.")
    w, _ = max(rows, key=lambda pair: pair[1])
    return say(
        f"Your least efficient keyword is {_named(w.name, w.id)}: {_metrics(w)} at a bid of "
        f"{money(w.bid)}, against {pct(r.totals.acos)} for the account."
    )


def _budget_capped(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "account_overview", OverviewOut)
    if r is None:
        return call("account_overview", _period(intent))
    capped = sorted((c for c in r.campaigns if c.budget_capped_days), key=lambda c: -c.budget_capped_days)
    if not capped:
        return say("None of your campaigns ran out of budget in that period.")
    return say(
        "; ".join(
            f"{c.name} ({c.id}) hit its {money(c.daily_budget)} budget on "
            f"{_days(c.budget_capped_days)} (ACoS {pct(c.acos)})"
            for c in capped[:MAX_ROWS]
        )
        + "."
    )


def _search_terms(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "search_terms", SearchTermsOut)
    if r is None:
        args: dict[str, Any] = {"sort": "spend", "limit": 10}
        for slot, field in (
            ("keyword", "keyword_id"),
            ("campaign", "campaign_id"),
            ("ad_group", "ad_group_id"),
        ):
            if getattr(intent, slot):
                args[field] = getattr(intent, slot)
        return call("search_terms", args | _period(intent))
    rows = r.rows
    if not rows:
        return say("No search terms matched your keywords in that period.")
    text = (
        "Top search terms by spend: "
        + "; ".join(f"'{x.term}' {money(x.spend)}, {x.orders} orders" for x in rows[:MAX_ROWS])
        + "."
    )
    wasted = [x for x in rows if x.orders == 0 and x.spend > 0]
    if wasted:
        text += (
            " Spent without an order (candidates for negatives): "
            + ", ".join(f"'{x.term}' ({money(x.spend)})" for x in wasted[:MAX_ROWS])
            + "."
        )
    return say(text)


_DRIVER = {
    "impressions": "impressions",
    "ctr": "click-through rate",
    "cvr": "conversion rate",
    "order_value": "order value",
    "cpc": "cost per click",
    "clicks": "clicks",
    "orders": "orders",
}


def _kpi_change(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "kpi_change", Attribution)
    if r is None:
        args: dict[str, Any] = {"kpi": (intent.kpi.value if intent.kpi else "sales")}
        if intent.campaign:
            args["campaign_id"] = intent.campaign
        return call("kpi_change", args)
    kpi = r.kpi

    def show(x: float) -> str:
        if kpi == "acos":
            return pct(x)
        if kpi in ("sales", "spend"):
            return money(x)
        return "n/a" if _missing(x) else f"{x}"

    label = {"acos": "ACoS", "roas": "ROAS"}.get(kpi, kpi)
    text = (
        f"Your {label} went from {show(r.before)} to {show(r.after)} (the last 7 days against the 7 before)."
    )
    drivers = sorted(r.contributions, key=lambda c: -abs(_figure(c.value)))
    if drivers:
        top = drivers[0]
        text += (
            f" The biggest driver is {_DRIVER.get(top.name, top.name.replace('_', ' '))}, "
            f"{100 * _figure(top.share):.0f}% of the change"
        )
        if len(drivers) > 1:
            nxt = drivers[1]
            text += f", then {_DRIVER.get(nxt.name, nxt.name.replace('_', ' '))} ({100 * _figure(nxt.share):.0f}%)"
        text += "."
    return say(text)


def _figure(x: float | None) -> float:
    """A figure, 0 where there is none (null, NaN)."""
    return 0.0 if x is None or _missing(x) else float(x)


def _change_args(intent: Intent) -> dict[str, Any]:
    if intent.relative is not None:
        return {"relative_change": intent.relative}
    return {"value": intent.value}


def market_basis(result: WhatIfOut | RecommendBidOut | LandscapeOut | Impact) -> str:
    """What the simulation stood on, in words and without figures (the tool's `market` field): the advice is
    only as good as the market model learned from the data it names."""
    market = result.market or ""
    if "platform view" in market:
        return " (Simulated on a market estimated from your reports and the platform's auction logs.)"
    if "seller view" in market:
        return " (Simulated on a market estimated from your own reports.)"
    return ""


def _what_if(intent: Intent, done: Sequence[Done], change: str) -> dict[str, Any]:
    r = _first(done, "what_if", WhatIfOut)
    if r is None:
        entity = intent.keyword if change == "bid" else intent.campaign
        return call("what_if", {"change": change, "id": entity} | _change_args(intent))
    c = r.change
    field = "bid" if c.field == "bid" else "daily budget"
    gain = impact_profit(r) or 0.0
    verdict = "pays off" if gain > MIN_GAIN else "does not pay off" if gain < -MIN_GAIN else "changes little"
    return say(
        f"Setting the {field} of {_named(c.name, c.id)} from {money(c.before)} to "
        f"{money(c.after)}: {impact_text(r)} By incremental profit the change {verdict}."
        f"{market_basis(r)}"
    )


def _landscape(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "bid_landscape", LandscapeOut)
    if r is None:
        return call("bid_landscape", {"keyword_id": intent.keyword})
    points = r.points
    if not points:
        return say("The simulator has no bids to show for this keyword.")
    best = max(points, key=lambda p: mean(p.incremental_profit) or float("-inf"))
    now = next((p for p in points if abs(p.bid - r.current_bid) < 0.005), None)
    text = (
        f"For {_named(r.keyword, r.keyword_id)} over {r.days} days, incremental profit peaks at a bid "
        f"of {money(best.bid)}: {money(mean(best.incremental_profit))}, {best.clicks} clicks, ACoS "
        f"{pct(best.acos)}."
    )
    if now is not None:
        text += (
            f" At today's {money(now.bid)}: {money(mean(now.incremental_profit))}, {now.clicks} clicks, "
            f"ACoS {pct(now.acos)}."
        )
    return say(text)


def _best_bid(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "recommend_bid", RecommendBidOut)
    if r is None:
        args: dict[str, Any] = {"keyword_id": intent.keyword}
        if intent.goal is not None and intent.goal.value != "max_incremental_profit":
            args["goal"] = intent.goal.value
        if intent.target is not None:
            args["target"] = intent.target
        return call("recommend_bid", args)
    name = _named(r.keyword, r.keyword_id)
    if not r.feasible or not r.bid:
        return say(
            f"No bid on {name} meets that goal in the simulator ({r.note}). Today's bid is "
            f"{money(r.current_bid)}."
        )
    at_bid, gain = r.at_bid, r.gain
    goal = {
        "target_acos": f"for a {pct(r.target)} ACoS target",
        "target_roas": "for your ROAS target",
    }.get(r.goal.value, "for the most incremental profit")
    text = (
        f"The best bid on {name} {goal} is {money(r.bid)} (now {money(r.current_bid)}). Over the next "
        f"14 days its campaign's incremental profit changes by {span(gain)}, at ACoS {pct(at_bid.acos)}."
        if gain is not None
        else f"The best bid on {name} {goal} is {money(r.bid)} (now {money(r.current_bid)}), at ACoS "
        f"{pct(at_bid.acos)}."
    )
    return say(text + market_basis(r))


def _apply_best_bid(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    """The keyword's best bid (as best_bid), proposed as a change: it waits for the user's confirmation."""
    r = _first(done, "recommend_bid", RecommendBidOut)
    if r is None or not r.feasible or not r.bid:
        return _best_bid(intent, done)  # the call, or why no bid meets the goal
    best, now = round(float(r.bid), 2), float(r.current_bid)
    if abs(best - now) < 0.005:
        return _best_bid(intent, done)  # already there: the recommendation says so, nothing to change
    proposal = _first(done, "propose_change", ProposeOut)
    if proposal is None:
        return call("propose_change", {"action": "set_bid", "id": r.keyword_id, "value": best})
    lead = str(_best_bid(intent, done)["content"])
    return say(proposal_text(proposal, lead))


def _allocate(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "allocate_budget", BudgetAllocation)
    if r is None:
        return call("allocate_budget", {"total_budget": intent.total} if intent.total else {})
    rows = sorted(r.campaigns, key=lambda c: -_figure(c.budget))
    lines = [f"To spread {money(r.total_budget)} a day for the most incremental profit over {r.n_days} days:"]
    lines += [f"- {c.campaign_id}: {money(c.budget)} a day (now {money(c.current_budget)})" for c in rows[:5]]
    lines.append(
        f"Expected incremental profit {money(r.objective_value)}, against {money(r.current_value)} "
        "with today's budgets."
    )
    return say("\n".join(lines))


def _experiment_effect(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "experiment_uplift", UpliftOut)
    if r is None:
        return call("experiment_uplift", {"experiment_id": intent.experiment})
    ate = r.ate
    unit = "purchase probability" if r.outcome == "purchase" else "revenue per user"
    text = (
        f"In {r.experiment_id} ({r.kind.replace('_', ' ')}, {r.n_units} users) the treatment changed "
        f"{unit} by {_shown(ate.estimate)} (95% CI {_shown(ate.ci_low)} to {_shown(ate.ci_high)}, p = "
        f"{_shown(ate.p_value)}): {'a real effect' if ate.significant else 'not distinguishable from zero'}."
    )
    inc = r.incrementality
    if inc is not None:
        i_roas, a_roas = inc.incremental_roas, inc.attributed_roas
        text += (
            f" Incremental ROAS is {_shown(i_roas.estimate)} ({round(100 * i_roas.level)}% CI "
            f"{_shown(i_roas.ci_low)} to {_shown(i_roas.ci_high)}) against an attributed ROAS of "
            f"{_shown(a_roas.estimate)}: part of the attributed sales would have happened anyway."
        )
    return say(text)


def _shown(x: float) -> str:
    """A figure as the tool wrote it ('None' where it wrote null: NaN or infinity)."""
    return "None" if _missing(x) else f"{x}"


def _ab_test(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    d = next((d for d in done if d.name == "ab_test" and d.error is None), None)
    if d is None:
        return call("ab_test", {"experiment_id": intent.experiment})
    r = d.output(AbResult)
    lift = r.relative_lift
    named = next((x.id for x in resolved(d.result)), None) or d.args.get("experiment_id")
    lead = f"{named}: " if isinstance(named, str) and named.startswith("exp_") else ""
    return say(
        f"{lead}{'Significant' if r.significant else 'Not significant'}: control {_shown(r.mean_control)} vs "
        f"treatment {_shown(r.mean_treatment)}, a lift of {pct(lift.estimate if lift else None)} (95% CI "
        f"{pct(lift.ci_low if lift else None)} to {pct(lift.ci_high if lift else None)}, p = "
        f"{_shown(r.difference.p_value)}). {r.srm.message.capitalize()}."
    )


def _keyword_ideas(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "keyword_ideas", KeywordRecommendations)
    if r is None:
        return call(
            "keyword_ideas", {"limit": 5} | ({"ad_group_id": intent.ad_group} if intent.ad_group else {})
        )
    rows = r.suggestions
    if not rows:
        return say("I found no new keywords worth adding right now.")
    lines = ["Keywords worth adding:"]
    lines += [
        f"- '{x.text}' ({x.match_type}) in {x.ad_group_id} at a bid of {money(x.bid)}"
        + (
            f": {x.orders} orders from {x.clicks} clicks as a search term, ACoS {pct(x.acos)}"
            if x.clicks
            else ""
        )
        for x in rows[:MAX_ROWS]
    ]
    return say("\n".join(lines) + "\nI can propose adding them if you want.")


def _negative_ideas(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    r = _first(done, "negative_ideas", NegativeSuggestions)
    if r is None:
        return call(
            "negative_ideas", {"limit": 5} | ({"ad_group_id": intent.ad_group} if intent.ad_group else {})
        )
    rows = r.suggestions
    if not rows:
        return say("I found no search terms worth excluding: the ones you pay for convert about as expected.")
    lines = ["Search terms to add as negative keywords:"]
    lines += [
        f"- '{x.text}' in {x.ad_group_id}: {money(x.spend)} spent, {x.orders} orders from {x.clicks} clicks"
        for x in rows[:MAX_ROWS]
    ]
    return say("\n".join(lines) + "\nI can propose adding them as negatives if you want.")


def proposal_text(result: ProposeOut, lead: str = "") -> str:
    changes = "; ".join(
        f"{_named(c.name, c.id)}: {c.field.replace('_', ' ')} {_value(c.before)} -> {_value(c.after)}"
        if c.field not in ("keyword", "negative")
        else f"add {c.field} '{c.after.get('text')}' ({c.after.get('match_type')}) to {_named(c.name, c.id)}"
        for c in result.changes
    )
    impact = f" {impact_text(result.impact)}" if result.impact is not None else ""
    return (
        (lead + " ") if lead else ""
    ) + f"Proposed: {changes}.{impact} Nothing has changed yet: confirm to apply it, or cancel."


def _propose(
    action: str, intent: Intent, done: Sequence[Done], entity: str | None, **extra: Any
) -> dict[str, Any]:
    r = _first(done, "propose_change", ProposeOut)
    if r is None:
        return call("propose_change", {"action": action, "id": entity, **extra})
    return say(proposal_text(r))


def _set_bid(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    return _propose("set_bid", intent, done, intent.keyword, **_change_args(intent))


def _set_budget(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    return _propose("set_budget", intent, done, intent.campaign, **_change_args(intent))


def _status(action: str) -> Callable[[Intent, Sequence[Done]], dict[str, Any]]:
    def plan(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
        return _propose(action, intent, done, intent.entity or intent.keyword or intent.campaign)

    return plan


def _add(action: str, match_type: str) -> Callable[[Intent, Sequence[Done]], dict[str, Any]]:
    def plan(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
        kw: dict[str, Any] = {"text": intent.term, "match_type": match_type}
        if action == "add_keywords" and intent.value is not None:
            kw["bid"] = intent.value
        return _propose(action, intent, done, intent.ad_group, keywords=[kw])

    return plan


def _fix_budget(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    """Optimize every campaign's budget on the simulator (allocate_budget: each campaign's best budget alone
    and its gain) and propose the move that earns the most incremental profit: a cut when cutting earns more."""
    overview = _first(done, "account_overview", OverviewOut)
    if overview is None:
        return call("account_overview", {})
    alloc = _first(done, "allocate_budget", BudgetAllocation)
    if alloc is None:
        return call("allocate_budget", {})
    names = {c.id: c.name for c in overview.campaigns}
    capped = {c.id: c for c in overview.campaigns if c.budget_capped_days}
    moves = [
        (c, c.current_budget, c.best_gain)
        for c in alloc.campaigns
        if c.current_budget
        and c.best_gain is not None
        and _figure(c.best_gain) > MIN_GAIN
        and abs(round(c.best_budget) - c.current_budget) >= 1
    ]
    held = [(c, c.point_best_gain) for c in alloc.campaigns if c.held_for_uncertainty and c.point_best_gain]
    # a move the point estimate likes that does not hold up over the market model's draws (it gains nothing on
    # average, or with decision=safe its range includes a loss): said as such
    if not moves and held:
        top, top_gain = max(held, key=lambda pair: pair[1])
        return say(
            f"I would keep your budgets for now: the best-looking move, {_named(names.get(top.campaign_id), top.campaign_id)} "
            f"at {money(top.point_best_budget)} a day (now {money(top.current_budget)}), adds "
            f"{money(top_gain)} of incremental profit on the estimate, but it does not hold up over the markets "
            "your history leaves possible, so changing it is a gamble."
        )
    if not moves:
        return say(
            "I would keep your budgets: the simulator finds no campaign whose budget, raised or cut, would "
            "add incremental profit."
        )
    best, best_now, best_gain = max(moves, key=lambda move: move[2])
    cid, now, gain = best.campaign_id, float(best_now), float(best_gain)
    name, new_budget = _named(names.get(cid), cid), float(round(best.best_budget))
    if new_budget < 1:
        lead = (
            f"{name} loses money at every budget the simulator tried: pausing it adds {money(gain)} of "
            "incremental profit over the simulated days, more than any other budget move."
        )
        action: dict[str, Any] = {"action": "pause", "id": cid}
    elif new_budget > now:
        lead = (
            f"{name}"
            + (f" ran out of budget on {_days(capped[cid].budget_capped_days)} and" if cid in capped else "")
            + f" earns the most with more budget: at {money(new_budget)} a day (now {money(now)}) the simulator "
            f"adds {money(gain)} of incremental profit over the simulated days."
        )
        action = {"action": "set_budget", "id": cid, "value": new_budget}
    else:
        lead = (
            f"No raise pays as much as cutting {name} from {money(now)} to {money(new_budget)} a day: the "
            f"simulator adds {money(gain)} of incremental profit over the simulated days."
        )
        action = {"action": "set_budget", "id": cid, "value": new_budget}
    proposal = _first(done, "propose_change", ProposeOut)
    if proposal is None:
        return call("propose_change", action)
    return say(proposal_text(proposal, lead))


def _fix_acos(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    """The keywords the money goes to -> the best bid of each of the top few (recommend_bid, inside its
    campaign's shared budget) -> propose the cut that adds the most incremental profit. The worst-ACoS keyword
    is not the target: a high ACoS says a keyword is inefficient, not that cutting it pays."""
    perf = _first(done, "performance", PerformanceOut)
    if perf is None:
        return call("performance", {"level": "keyword", "sort": "spend", "limit": 5})
    rows = [x for x in perf.rows if x.bid and x.spend > 0]
    if not rows:
        return say("None of your keywords spent in that period, so there is no bid to lower.")
    recs = _all(done, "recommend_bid", RecommendBidOut)
    if not recs:
        return calls([("recommend_bid", {"keyword_id": x.id}) for x in rows[:BID_CANDIDATES]])
    cuts = [
        x
        for x in recs
        if x.gain is not None
        and (mean(x.gain) or 0) > MIN_GAIN
        and float(x.bid) < float(x.current_bid) - 0.005
    ]
    if not cuts:
        return say(
            "I would keep your bids: for your top keywords by spend ("
            + ", ".join(f"{_named(x.keyword, x.keyword_id)} at {money(x.current_bid)}" for x in recs)
            + ") the simulator finds no lower bid that adds incremental profit."
        )
    best = max(cuts, key=lambda x: mean(x.gain) or 0.0)
    kid, name = best.keyword_id, _named(best.keyword, best.keyword_id)
    new_bid = round(float(best.bid), 2)
    at_bid, at_now = best.at_bid, best.at_current
    if new_bid < MIN_BID:
        action: dict[str, Any] = {"action": "pause", "id": kid}
        lead = (
            f"Of your top keywords by spend, {name} is where cutting pays most: no bid on it adds incremental "
            f"profit (pausing it: {span(best.gain)})."
        )
    else:
        action = {"action": "set_bid", "id": kid, "value": new_bid}
        lead = (
            f"Of your top keywords by spend, lowering {name} pays most: the best bid is {money(new_bid)} (now "
            f"{money(best.current_bid)}), ACoS {pct(at_now.acos if at_now else None)} -> {pct(at_bid.acos)}, and "
            f"its campaign's incremental profit changes by {span(best.gain)}."
        )
    proposal = _first(done, "propose_change", ProposeOut)
    if proposal is None:
        return call("propose_change", action)
    return say(proposal_text(proposal, lead))


def _cut_worst(intent: Intent, done: Sequence[Done]) -> dict[str, Any]:
    """Change the budget of whichever campaign has the worst ACoS by the size the user named."""
    perf = _first(done, "performance", PerformanceOut)
    if perf is None:
        return call("performance", {"level": "campaign", "sort": "acos", "limit": 5} | _period(intent))
    rows = [(x, x.acos) for x in perf.rows if x.acos is not None and (x.daily_budget or 0) > 0]
    if not rows:
        return say("None of your campaigns had both spend and sales, so none has a worst ACoS.")
    worst, worst_acos = max(rows, key=lambda pair: pair[1])
    proposal = _first(done, "propose_change", ProposeOut)
    if proposal is None:
        return call(
            "propose_change", {"action": "set_budget", "id": worst.id, "relative_change": intent.relative}
        )
    return say(
        proposal_text(proposal, f"{_named(worst.name, worst.id)} has the worst ACoS, {pct(worst_acos)}.")
    )


PLANS: dict[IntentKind, Callable[[Intent, Sequence[Done]], dict[str, Any]]] = {
    IntentKind.OVERVIEW: _overview,
    IntentKind.CAMPAIGNS: lambda i, d: _table(i, d, "campaign"),
    IntentKind.KEYWORDS: lambda i, d: _table(i, d, "keyword"),
    IntentKind.ENTITY_PERFORMANCE: _entity_performance,
    IntentKind.WORST_ACOS: _worst_acos,
    IntentKind.BUDGET_CAPPED: _budget_capped,
    IntentKind.SEARCH_TERMS: _search_terms,
    IntentKind.KPI_CHANGE: _kpi_change,
    IntentKind.WHAT_IF_BID: lambda i, d: _what_if(i, d, "bid"),
    IntentKind.WHAT_IF_BUDGET: lambda i, d: _what_if(i, d, "budget"),
    IntentKind.BID_LANDSCAPE: _landscape,
    IntentKind.BEST_BID: _best_bid,
    IntentKind.APPLY_BEST_BID: _apply_best_bid,
    IntentKind.ALLOCATE: _allocate,
    IntentKind.FIX_ACOS: _fix_acos,
    IntentKind.FIX_BUDGET: _fix_budget,
    IntentKind.CUT_WORST: _cut_worst,
    IntentKind.EXPERIMENT_EFFECT: _experiment_effect,
    IntentKind.AB_TEST: _ab_test,
    IntentKind.KEYWORD_IDEAS: _keyword_ideas,
    IntentKind.NEGATIVE_IDEAS: _negative_ideas,
    IntentKind.SET_BID: _set_bid,
    IntentKind.SET_BUDGET: _set_budget,
    IntentKind.PAUSE: _status("pause"),
    IntentKind.ENABLE: _status("enable"),
    IntentKind.ADD_NEGATIVE: _add("add_negatives", "phrase"),
    IntentKind.ADD_KEYWORD: _add("add_keywords", "exact"),
}


def step(intent: Intent, done: Sequence[Done], scope: str | None = None) -> dict[str, Any]:
    """The next assistant message of a turn whose meaning is `intent`, given this turn's calls so far."""
    if any(d.error is not None for d in done):
        return recover(done)
    if intent.kind == IntentKind.GREETING:
        return say(CAPABILITIES)
    if intent.kind in REFUSALS:
        return say(REFUSALS[intent.kind].format(scope=scope or "the one you are signed in to"))
    if intent.kind == IntentKind.REJECT:
        return say(REJECTED)
    if intent.kind in (IntentKind.CONFIRM, IntentKind.CHOOSE):
        return say(NO_PROPOSAL)  # a confirmation is the graph's (it resumes the proposal); a choice re-asks
    return PLANS[intent.kind](intent, done)


async def run(
    intent: Intent, call_tool: CallTool, scope: str | None = None, max_steps: int = 6
) -> list[dict[str, Any]]:
    """One turn: the expert's calls (run through `call_tool`, which returns the result's JSON text), their
    results and the answer, as OpenAI-style messages."""
    added: list[dict[str, Any]] = []
    done: list[Done] = []
    for _ in range(max_steps):
        message = step(intent, done, scope)
        added.append(message)
        if not message.get("tool_calls"):
            return added
        for c in message["tool_calls"]:
            args = json.loads(c["function"]["arguments"])
            text = await call_tool(c["function"]["name"], args)
            added.append({"role": "tool", "tool_call_id": c["id"], "content": text})
            done.append(Done(c["function"]["name"], args, _result(text)))
    added.append(say("I could not finish this within my step limit; please ask a narrower question."))
    return added
