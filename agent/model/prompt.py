"""The embedded model's compact prompt: what it reads instead of a chat template with tool specifications.

    [account] adv_0002
    [prev] <the previous turn's message> [call] <its calls> [result] <what they resolved to> [answer] <its answer>
    [pending] <a proposal waiting for confirmation>
    [user] <this turn's message>
    [call] <a call of this turn> [result] <its compact view> ...

The model learned the tools, so no specification is in its prompt (external models served by vLLM keep the
full specs). A tool result is shown as a compact view: the fields an answer needs, already written the way an
answer writes them ($12.50, 33.7%), the recommended or top rows first, so writing the answer is copying,
never arithmetic; each value carries a reference token ([v3] $12.50) that the answer names instead of
spelling the value out, and the backend puts the value back (one pointer per figure, grounded by construction). Serving (agent/backends/embedded.py) and training (training/examples.py) build prompts
with the same function from the same OpenAI-style messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from agent.amounts import normalize_amounts
from agent.expert import mean, money, pct, signed_money
from agent.model.text import ACCOUNT, ANSWER, CALL, PENDING, PREV, RESULT, USER, VALUE_REFS, compact_call
from tools.mcp_server.outputs import ToolFailure, ToolResultError, failure, payload, read, resolved
from tools.mcp_server.schemas import RecommendBidOut, entity_arguments

MAX_ROWS = 5
# the registry's arguments that name one campaign, ad group, keyword or experiment
ONE_ENTITY_ARGS = entity_arguments(lists=False)
MAX_PREV_ANSWER_WORDS = 70
MAX_USER_WORDS = 120


def _words(text: str, limit: int) -> str:
    words = str(text or "").split()
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


def _named(name: Any, entity_id: Any) -> str:
    return f"'{name}' ({entity_id})" if name and name != entity_id else str(entity_id)


def _profit(block: Any) -> str:
    if not isinstance(block, dict):
        return money(block)
    return (
        f"{signed_money(block.get('mean'))} (range {money(block.get('low'))} to {money(block.get('high'))})"
    )


def _metrics(r: dict[str, Any]) -> str:
    return (
        f"spend {money(r.get('spend'))} ; sales {money(r.get('sales'))} ; {r.get('orders', 0)} orders ; "
        f"acos {pct(r.get('acos'))} ; {r.get('clicks', 0)} clicks ; cpc {money(r.get('cpc'))}"
    )


# --- one view per tool ----------------------------------------------------------------------------------------


def _overview(r: dict[str, Any]) -> str:
    t, p = r["totals"], r["period"]
    capped = sorted(
        (c for c in r.get("campaigns", []) if c.get("budget_capped_days")),
        key=lambda c: -c["budget_capped_days"],
    )
    out = (
        f"period {p['start']} to {p['end']} ; spend {money(t['spend'])} ; sales {money(t['sales'])} ; acos "
        f"{pct(t['acos'])} ; target {pct(r['advertiser'].get('target_acos'))} ; {t['orders']} orders ; "
        f"{t['clicks']} clicks"
    )
    if capped:
        out += " ; capped : " + " | ".join(
            f"{c['name']} ({c['id']}) {c['budget_capped_days']} days at {money(c['daily_budget'])}/day acos {pct(c['acos'])}"
            for c in capped[:3]
        )
    others = [c for c in r.get("campaigns", []) if not c.get("budget_capped_days")]
    if others:
        out += " ; campaigns : " + " | ".join(
            f"{c['name']} ({c['id']}) {money(c['daily_budget'])}/day" for c in others[:4]
        )
    return out


def _performance(r: dict[str, Any]) -> str:
    rows = r.get("rows", [])
    out = f"level {r['level']} ; period {r['period']['start']} to {r['period']['end']} ; total acos {pct(r['totals'].get('acos'))}"
    for x in rows[:MAX_ROWS]:
        extra = (
            f" ; bid {money(x['bid'])}"
            if x.get("bid")
            else (f" ; budget {money(x['daily_budget'])}/day" if x.get("daily_budget") else "")
        )
        out += f" | {_named(x['name'], x['id'])} {_metrics(x)}{extra}"
    return out if rows else out + " ; no rows"


def _worst_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda x: -(x.get("acos") or 0))


def _search_terms(r: dict[str, Any]) -> str:
    rows = r.get("rows", [])
    out = "top terms : " + " | ".join(
        f"'{x['term']}' {money(x['spend'])} {x['orders']} orders" for x in rows[:MAX_ROWS]
    )
    wasted = [x for x in rows if x["orders"] == 0 and x["spend"] > 0]
    if wasted:
        out += " ; no orders : " + " | ".join(f"'{x['term']}' ({money(x['spend'])})" for x in wasted[:3])
    return out if rows else "no terms"


_DRIVER = {
    "impressions": "impressions",
    "ctr": "click-through rate",
    "cvr": "conversion rate",
    "order_value": "order value",
    "cpc": "cost per click",
    "clicks": "clicks",
    "orders": "orders",
}


def _kpi(r: dict[str, Any]) -> str:
    kpi = r["kpi"]
    show: Callable[[Any], str] = (
        pct if kpi == "acos" else money if kpi in ("sales", "spend") else (lambda x: f"{x}")
    )
    drivers = sorted(r.get("contributions", []), key=lambda c: -abs(c.get("value") or 0))
    return f"kpi {kpi} ; before {show(r['before'])} ; after {show(r['after'])} ; drivers : " + " | ".join(
        f"{_DRIVER.get(c['name'], c['name'])} {100 * float(c.get('share') or 0):.0f}%" for c in drivers[:3]
    )


def _change(c: dict[str, Any]) -> str:
    if c.get("field") in ("keyword", "negative"):
        after = c.get("after") or {}
        return f"add {c['field']} '{after.get('text')}' ({after.get('match_type')}) to {_named(c.get('name'), c['id'])}"

    def v(x: Any) -> str:
        return money(x) if isinstance(x, int | float) and not isinstance(x, bool) else str(x)

    return f"{_named(c.get('name'), c['id'])} {str(c.get('field')).replace('_', ' ')} {v(c.get('before'))} -> {v(c.get('after'))}"


def _impact(r: dict[str, Any]) -> str:
    diff = r.get("difference") or {}
    return (
        f"days {r.get('days')} ; profit {_profit(diff.get('incremental_profit'))} ; spend "
        f"{signed_money(mean(diff.get('spend')))} ; sales {signed_money(mean(diff.get('sales')))}"
    )


def _what_if(r: dict[str, Any]) -> str:
    gain = mean((r.get("difference") or {}).get("incremental_profit")) or 0.0
    verdict = "pays off" if gain > 1 else "does not pay off" if gain < -1 else "changes little"
    return f"{_change(r.get('change') or {})} ; {_impact(r)} ; {verdict}"


def _landscape(r: dict[str, Any]) -> str:
    points = r.get("points") or []
    if not points:
        return "no points"
    best = max(points, key=lambda p: mean(p.get("incremental_profit")) or float("-inf"))
    now = next((p for p in points if abs(p["bid"] - r["current_bid"]) < 0.005), None)
    out = (
        f"{_named(r.get('keyword'), r['keyword_id'])} ; days {r['days']} ; best bid {money(best['bid'])} profit "
        f"{money(mean(best['incremental_profit']))} {best['clicks']} clicks acos {pct(best.get('acos'))}"
    )
    if now is not None:
        out += (
            f" ; today {money(now['bid'])} profit {money(mean(now['incremental_profit']))} {now['clicks']} clicks "
            f"acos {pct(now.get('acos'))}"
        )
    return out


def _recommend(r: dict[str, Any]) -> str:
    goal = {
        "target_acos": f"for a {pct(r.get('target'))} acos target",
        "target_roas": "for your roas target",
    }.get(str(r.get("goal")), "for the most incremental profit")
    if not r.get("feasible", True) or not r.get("bid"):
        return f"{_named(r.get('keyword'), r['keyword_id'])} ; {goal} ; no feasible bid ; today {money(r.get('current_bid'))}"
    return (
        f"{_named(r.get('keyword'), r['keyword_id'])} ; {goal} ; best bid {money(r['bid'])} ; now "
        f"{money(r['current_bid'])} ; gain {_profit(r.get('gain'))} ; acos at best {pct((r.get('at_bid') or {}).get('acos'))} ; "
        f"acos now {pct((r.get('at_current') or {}).get('acos'))}"
    )


def _allocate(r: dict[str, Any]) -> str:
    rows = sorted(r.get("campaigns", []), key=lambda c: -float(c.get("budget") or 0))
    moves = sorted(
        (c for c in r.get("campaigns", []) if (c.get("best_gain") or 0) > 1 and c.get("current_budget")),
        key=lambda c: -c["best_gain"],
    )
    out = (
        f"total {money(r['total_budget'])} a day ; days {r['n_days']} ; profit {money(r['objective_value'])} vs "
        f"{money(r['current_value'])} today ; split : "
        + " | ".join(
            f"{c['campaign_id']} {money(c['budget'])} (now {money(c.get('current_budget'))})"
            for c in rows[:5]
        )
    )
    if moves:
        out += " ; best single moves : " + " | ".join(
            f"{c['campaign_id']} to {money(round(c['best_budget']))} a day (now {money(c['current_budget'])}) gain "
            f"{money(c['best_gain'])}"
            for c in moves[:3]
        )
    return out


def _uplift(r: dict[str, Any]) -> str:
    ate = r.get("ate") or {}
    out = (
        f"{r['experiment_id']} ; {r['kind'].replace('_', ' ')} ; {r['n_units']} users ; outcome {r.get('outcome')} ; "
        f"effect {ate.get('estimate')} (95% ci {ate.get('ci_low')} to {ate.get('ci_high')}, p = {ate.get('p_value')}) ; "
        f"{'significant' if ate.get('significant') else 'not significant'}"
    )
    inc = r.get("incrementality")
    if isinstance(inc, dict) and inc.get("incremental_roas") is not None:
        out += f" ; incremental roas {inc.get('incremental_roas')} ; attributed roas {inc.get('attributed_roas')}"
    return out


def _ab(r: dict[str, Any]) -> str:
    lift = r.get("relative_lift") or {}
    return (
        f"{'significant' if r.get('significant') else 'not significant'} ; control {r.get('mean_control')} ; "
        f"treatment {r.get('mean_treatment')} ; lift {pct(lift.get('estimate'))} (95% ci {pct(lift.get('ci_low'))} "
        f"to {pct(lift.get('ci_high'))}, p = {(r.get('difference') or {}).get('p_value')}) ; "
        f"{(r.get('srm') or {}).get('message')}"
    )


def _ideas(r: dict[str, Any]) -> str:
    rows = r.get("suggestions", [])
    return (
        " | ".join(
            f"'{x['text']}' ({x['match_type']}) in {x['ad_group_id']} bid {money(x.get('bid'))}"
            + (
                f" {x['orders']} orders {x['clicks']} clicks acos {pct(x.get('acos'))}"
                if x.get("clicks")
                else ""
            )
            for x in rows[:3]
        )
        or "no ideas"
    )


def _negatives(r: dict[str, Any]) -> str:
    rows = r.get("suggestions", [])
    return (
        " | ".join(
            f"'{x['text']}' in {x['ad_group_id']} {money(x['spend'])} spent {x['orders']} orders "
            f"{x['clicks']} clicks"
            for x in rows[:3]
        )
        or "no negatives"
    )


def _proposal(r: dict[str, Any]) -> str:
    out = "proposed : " + " | ".join(_change(c) for c in r.get("changes", []))
    if isinstance(r.get("impact"), dict):
        out += " ; " + _impact(r["impact"])
    return out


def _find(r: dict[str, Any]) -> str:
    return (
        " | ".join(
            f"{m['kind']} {_named(m['name'], m['id'])} {m.get('detail', '')}" for m in r.get("matches", [])
        )
        or "nothing"
    )


def _error(e: ToolFailure) -> str:
    out = f"error {e.type} on {e.field}"
    if e.candidates:
        out += " ; candidates : " + " | ".join(
            f"{c.kind} {_named(c.name, c.id)} {c.detail.split(',')[0]}" for c in e.candidates
        )
    else:
        out += f" ; {_words(e.message, 30)}"
    return out


VIEWS: dict[str, Callable[[dict[str, Any]], str]] = {
    "account_overview": _overview,
    "performance": _performance,
    "search_terms": _search_terms,
    "kpi_change": _kpi,
    "what_if": _what_if,
    "bid_landscape": _landscape,
    "recommend_bid": _recommend,
    "allocate_budget": _allocate,
    "experiment_uplift": _uplift,
    "ab_test": _ab,
    "keyword_ideas": _ideas,
    "negative_ideas": _negatives,
    "propose_change": _proposal,
    "find": _find,
}


def view(name: str, text: str) -> str:
    """A tool result (its JSON text) as the model reads it."""
    try:
        result = json.loads(text)
    except ValueError:
        return f"{name} : unreadable result"
    if isinstance(result, dict) and (err := failure(result)) is not None:
        return f"{name} : {_error(err)}"
    fn = VIEWS.get(name)
    try:
        body = fn(result) if fn is not None else _words(json.dumps(result), 60)
    except (KeyError, TypeError, ValueError):  # a result of an unexpected shape: its raw start
        body = _words(json.dumps(result), 60)
    return f"{name} : {body}"


def _resolution(name: str, args: dict[str, Any], text: str) -> str:
    """What an earlier turn's call was about: the ids its words named."""
    result = payload(text)
    if result is None:
        return ""
    if (err := failure(result)) is not None:
        return _error(err)
    found = [f"{r.id} = {r.name}" for r in resolved(result)]
    ids = [str(v) for k, v in args.items() if k in ONE_ENTITY_ARGS]
    return " ; ".join(found or ids)


def _ordered_results(calls: list[tuple[str, dict[str, Any], str]]) -> list[tuple[str, dict[str, Any], str]]:
    """Parallel calls of one tool listed best first (recommend_bid: the cut with the largest gain), the order the
    answer and the next call use."""
    if len(calls) > 1 and all(c[0] == "recommend_bid" for c in calls):

        def key(c: tuple[str, dict[str, Any], str]) -> float:
            try:
                r = read(RecommendBidOut, c[2])
            except ToolResultError:
                return 1e10
            cut = r.bid < r.current_bid - 0.005
            return -(mean(r.gain) or -1e9) if cut else 1e9

        return sorted(calls, key=key)
    return calls


def _turns(messages: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    turns: list[list[dict[str, Any]]] = []
    for m in messages:
        if m.get("role") == "system":
            continue
        if m.get("role") == "user":
            turns.append([m])
        elif turns:
            turns[-1].append(m)
    return turns


def _calls_of(turn: list[dict[str, Any]]) -> list[list[tuple[str, dict[str, Any], str]]]:
    """Each assistant message's calls with their results, in order."""
    results = {m.get("tool_call_id"): str(m.get("content") or "") for m in turn if m.get("role") == "tool"}
    rounds = []
    for m in turn:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            rnd = []
            for c in m["tool_calls"]:
                fn = c.get("function") or {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except ValueError:
                    args = {}
                rnd.append(
                    (fn.get("name", ""), args if isinstance(args, dict) else {}, results.get(c.get("id"), ""))
                )
            rounds.append(rnd)
    return rounds


# What a value reference can stand for: a quoted name with its id, a date, an id, an amount of money, a
# percentage, a plain number (the views write each the way an answer writes it).
_UNIT = re.compile(
    r"'[^']{1,80}' \((?:kw|cmp|ag|exp)_[\d_]+\)|\b\d{4}-\d{2}-\d{2}\b|\b(?:kw|cmp|ag|exp)_[\d_]+\b"
    r"|[+-]?\$\d+(?:\.\d+)?|(?<![\w.$])[+-]?\d+(?:\.\d+)?%|(?<![\w.$-])-?\d+(?:\.\d+)?(?![\w%])"
)


def tag_values(text: str, refs: dict[str, str]) -> str:
    """`text` with each value unit preceded by its reference token (new units get the next free one; the same
    value keeps its reference). `refs` maps value -> reference and grows."""

    def one(m: re.Match[str]) -> str:
        unit = m.group(0)
        if unit not in refs:
            if len(refs) >= len(VALUE_REFS):
                return unit
            refs[unit] = VALUE_REFS[len(refs)]
        return f"{refs[unit]} {unit}"

    return _UNIT.sub(one, text)


def refer(answer: str, refs: dict[str, str]) -> str:
    """An answer with the values its prompt shows replaced by their references (how the model writes it)."""
    return _UNIT.sub(lambda m: refs.get(m.group(0), m.group(0)), answer)


def values_in(prompt: str) -> dict[str, str]:
    """The references a prompt's text carries (reference -> value), read back from the prompt itself."""
    return {m.group(1): m.group(2) for m in re.finditer(r"(\[v\d+\]) (" + _UNIT.pattern + ")", prompt)}


def resolve_refs(text: str, values: dict[str, str]) -> str:
    """The model's answer with each reference replaced by the value it stands for (`values`: reference -> value)."""
    return re.sub(r"\[v\d+\]", lambda m: values.get(m.group(0), m.group(0)), text)


def build_prompt_values(
    messages: Sequence[dict[str, Any]], scope: str, pending: dict[str, Any] | None = None
) -> tuple[str, dict[str, str]]:
    """The prompt for the model's next output, from the thread as OpenAI-style messages (the last turn is the
    current one; its tool calls and results so far are shown in full, the turn before it in brief), and the
    value references its current results carry (value -> reference)."""
    turns = _turns(messages)
    parts = [f"{ACCOUNT} {scope}"]
    refs: dict[str, str] = {}
    if len(turns) >= 2:
        prev = turns[-2]
        parts.append(f"{PREV} {_words(normalize_amounts(str(prev[0].get('content') or '')), 50)}")
        for rnd in _calls_of(prev):
            for name, args, text in rnd:
                parts.append(f"{CALL} {compact_call(name, args)} {RESULT} {_resolution(name, args, text)}")
        answer = next(
            (m.get("content") for m in reversed(prev) if m.get("role") == "assistant" and m.get("content")),
            "",
        )
        if answer:
            parts.append(f"{ANSWER} {_words(answer, MAX_PREV_ANSWER_WORDS)}")
    if pending:
        parts.append(f"{PENDING} {_proposal(pending)}")
    if turns:
        current = turns[-1]
        parts.append(
            f"{USER} {_words(normalize_amounts(str(current[0].get('content') or '')), MAX_USER_WORDS)}"
        )
        for rnd in _calls_of(current):
            for name, args, text in _ordered_results(rnd):
                parts.append(
                    f"{CALL} {compact_call(name, args)} {RESULT} {tag_values(view(name, text), refs)}"
                )
    return " ".join(parts), refs


def build_prompt(
    messages: Sequence[dict[str, Any]], scope: str, pending: dict[str, Any] | None = None
) -> str:
    return build_prompt_values(messages, scope, pending)[0]
