"""The teacher backend: keyword rules guess the intent of the last user message, the expert policy plans it.

The expert (agent/expert.py) is exact given an intent; this module is only as good as its rules at reading
one, which is the point of having it as an evaluation row: on our own templates it is near perfect, on
sellers' own words it is what rules can do. It reads ids, amounts, percentages and, for names, the words
around a keyword like "on", "for" or "campaign"; a follow-up takes the entity of the turn before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from agent import expert
from agent.guardrails.input import InputCategory, about_advertising, check_input
from agent.intents import EntityKind, Goal, Intent, IntentKind, Kpi, Metric
from agent.router import plain_request
from tools.mcp_server.outputs import resolved

_KW = re.compile(r"\bkw_\d+\b")
_CMP = re.compile(r"\bcmp_\d+\b")
_AG = re.compile(r"\bag_\d+\b")
_EXP = re.compile(r"\bexp_[\d_]+\b")
_ADV = re.compile(r"\badv_\d+\b")
_MONEY = re.compile(
    r"(?:\$\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:dollars|bucks|usd|a day|/day|per day|daily|a click)|"
    r"(?:to|at|=|of|be)\s+\$?(\d+(?:\.\d+)?))",
    re.I,
)
_PCT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent)", re.I)
_FRACTION_WORDS = {"half": 0.5, "a third": 0.33, "a quarter": 0.25, "a fifth": 0.2, "a tenth": 0.1}
_DOWN = re.compile(r"\b(cut|lower|reduce|drop|trim|decrease|less|down|take .* off|shave|slash)\b", re.I)
_OFF_TOPIC = re.compile(
    r"\b(poem|joke|weather|recipe|song|horoscope|lottery|stock tips?|bitcoin|homework|essay|"
    r"translate|movie|football|vacation|girlfriend|boyfriend|wife|husband)\b",
    re.I,
)
_HARMFUL = re.compile(
    r"\b(fake reviews?|click (on )?(my |our )?competitors?'? ads|click fraud|bot clicks|buy reviews|"
    r"mislead(ing)? claims?|fake discount|write (me )?(some |several )?reviews)\b",
    re.I,
)

RULES: list[tuple[IntentKind, re.Pattern[str]]] = [
    (IntentKind.GREETING, re.compile(r"^\W*(hi|hello|hey|what can you do|help)\W*$", re.I)),
    (
        IntentKind.ADD_NEGATIVE,
        re.compile(r"\b(block|negative|exclude|stop showing)\b.*\b(search|term|for|on)\b", re.I),
    ),
    (IntentKind.NEGATIVE_IDEAS, re.compile(r"\bnegatives?\b|\bexclude\b|\bwasted? (spend|search)", re.I)),
    (IntentKind.ADD_KEYWORD, re.compile(r"\b(add|start targeting|bid on the term)\b.*\bkeyword\b", re.I)),
    (
        IntentKind.KEYWORD_IDEAS,
        re.compile(r"\b(new|more|other|additional)\b.{0,15}\bkeywords?\b|keyword ideas", re.I),
    ),
    (IntentKind.AB_TEST, re.compile(r"\b(significant|conclusive|a/b|ab test|winner|p-?value)\b", re.I)),
    (
        IntentKind.EXPERIMENT_EFFECT,
        re.compile(r"\b(experiment|holdout|promo|coupon|incremental|lift|test)\b", re.I),
    ),
    (
        IntentKind.KPI_CHANGE,
        re.compile(r"\bwhy\b.{0,40}\b(acos|sales|orders|clicks|spend|roas|revenue)\b", re.I),
    ),
    (IntentKind.CUT_WORST, re.compile(r"\b(worst|highest) acos\b.*\b(budget|cut|trim|lower|reduce)", re.I)),
    (IntentKind.PAUSE, re.compile(r"\b(pause|stop|kill|turn off|shut off)\b", re.I)),
    (IntentKind.ENABLE, re.compile(r"\b(enable|resume|unpause|reactivate|turn (it )?back on)\b", re.I)),
    (
        IntentKind.APPLY_BEST_BID,
        re.compile(
            r"\b(best|optimal|right|ideal|should)\b.{0,30}\bbid\b.*\b(set it|set that|"
            r"apply it|line it up|put it in|queue)",
            re.I,
        ),
    ),
    (IntentKind.WHAT_IF_BID, re.compile(r"\b(what if|what happens|what would|simulate|try)\b.*\bbid", re.I)),
    (IntentKind.WHAT_IF_BUDGET, re.compile(r"\b(what if|what happens|what would|simulate|try)\b", re.I)),
    (
        IntentKind.BID_LANDSCAPE,
        re.compile(r"\b(landscape|different bids|range of bids|several bids)\b", re.I),
    ),
    (
        IntentKind.BEST_BID,
        re.compile(r"\b(best|optimal|right|ideal|what should i|what do i)\b.{0,15}\bbid", re.I),
    ),
    (IntentKind.ALLOCATE, re.compile(r"\b(split|divide|allocate|spread|distribute)\b", re.I)),
    (
        IntentKind.BUDGET_CAPPED,
        re.compile(r"\b(run(s|ning)? out of budget|capped|budget.limited|out of budget)", re.I),
    ),
    (IntentKind.FIX_BUDGET, re.compile(r"\b(should|recommend|suggest|improve)\b.*\bbudgets?\b", re.I)),
    (IntentKind.FIX_ACOS, re.compile(r"\b(lower|reduce|cut|improve|fix|bring down)\b.*\bacos\b", re.I)),
    (IntentKind.SET_BID, re.compile(r"\bbid\b", re.I)),
    (IntentKind.SET_BUDGET, re.compile(r"\bbudget\b", re.I)),
    (IntentKind.SEARCH_TERMS, re.compile(r"search terms?|queries|searches|what people type", re.I)),
    (IntentKind.WORST_ACOS, re.compile(r"\b(worst|least efficient|highest acos)\b", re.I)),
    (IntentKind.KEYWORDS, re.compile(r"\bkeywords?\b", re.I)),
    (IntentKind.CAMPAIGNS, re.compile(r"\bcampaigns?\b", re.I)),
]
_NEEDS_VALUE = {IntentKind.SET_BID, IntentKind.SET_BUDGET, IntentKind.WHAT_IF_BID, IntentKind.WHAT_IF_BUDGET}


def _value(text: str) -> float | None:
    m = _MONEY.search(text)
    if m is None:
        return None
    return float(next(g for g in m.groups() if g))


def _relative(text: str) -> float | None:
    sign = -1.0 if _DOWN.search(text) else 1.0
    if re.search(r"\bdouble\b", text, re.I):
        return 1.0
    if re.search(r"\bhalve\b", text, re.I):
        return -0.5
    m = _PCT.search(text)
    if m:
        return sign * float(m.group(1)) / 100
    for words, size in _FRACTION_WORDS.items():
        if words in text.lower():
            return sign * size
    return None


def _words_after(text: str, *markers: str) -> str | None:
    """The words after a marker ("bid on X", "the X campaign"), up to a value or a punctuation mark."""
    for marker in markers:
        m = re.search(
            marker + r"\s+(?:my |the |our )?([a-z0-9][\w\s&+'-]{1,60}?)(?=\s+(?:to|at|by|from|for|campaign|"
            r"keyword|bid|budget|is|was|a day|\$)\b|[?.!,;]|$)",
            text,
            re.I,
        )
        if m:
            words = m.group(1).strip()
            if words and words.lower() not in {"it", "this", "that", "them", "my", "the"}:
                return words
    return None


def _previous_entity(messages: Sequence[dict[str, Any]]) -> tuple[str | None, str | None]:
    """The id the turn before resolved its entity to (or named), for follow-ups: (id, kind-ish field)."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    for m in reversed(list(messages[:last_user])):
        if m.get("role") == "tool":
            for r in resolved(m.get("content") or ""):
                return r.id, r.kind.value
        for c in m.get("tool_calls") or []:
            args = json.loads(c["function"]["arguments"])
            for key in ("id", "keyword_id", "campaign_id", "experiment_id"):
                if isinstance(args.get(key), str):
                    return args[key], key
        if m.get("role") == "assistant" and m.get("content"):  # "the worst keyword is ... (kw_0000034)"
            found = re.search(r"\b(kw_\d+|cmp_\d+|ag_\d+|exp_[\d_]+)\b", str(m["content"]))
            if found:
                return found.group(1), None
    return None, None


def parse(messages: Sequence[dict[str, Any]], scope: str | None) -> Intent:
    """The intent of the last user message, by rules (see the module docstring)."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    text = str(messages[last].get("content") or "") if last >= 0 else ""
    q = text.lower()
    others = [a for a in _ADV.findall(text) if a != scope]
    if others:
        return Intent(kind=IntentKind.REFUSE_OTHER_ACCOUNT, other_advertiser=others[0])
    verdict = check_input(text, scope=scope, plain_request=plain_request)
    if not verdict.allowed:
        return Intent(
            kind={
                InputCategory.OFF_TOPIC: IntentKind.REFUSE_OFF_TOPIC,
                InputCategory.CROSS_ACCOUNT: IntentKind.REFUSE_OTHER_ACCOUNT,
                InputCategory.HARMFUL: IntentKind.REFUSE_HARMFUL,
            }.get(verdict.category, IntentKind.REFUSE_INJECTION)
        )
    if _HARMFUL.search(text):
        return Intent(kind=IntentKind.REFUSE_HARMFUL)
    if _OFF_TOPIC.search(text) and not about_advertising(text):
        return Intent(kind=IntentKind.REFUSE_OFF_TOPIC)
    kind = next((k for k, rx in RULES if rx.search(text)), IntentKind.OVERVIEW)
    if (
        kind in _NEEDS_VALUE
        and _value(text) is None
        and _relative(text) is None
        and kind in (IntentKind.SET_BID, IntentKind.SET_BUDGET)
    ):
        kind = IntentKind.BEST_BID if kind == IntentKind.SET_BID else IntentKind.FIX_BUDGET
    fields: dict[str, Any] = {}
    kw, cmp, ag, exp = _KW.findall(text), _CMP.findall(text), _AG.findall(text), _EXP.findall(text)
    prev_id, _ = _previous_entity(messages[: last + 1])
    keyword = kw[0] if kw else _words_after(text, r"\bon", r"\bfor", r"\bkeyword")
    campaign = cmp[0] if cmp else _words_after(text, r"\bthe", r"\bmy", r"\bcampaign")
    if kind in (
        IntentKind.WHAT_IF_BID,
        IntentKind.SET_BID,
        IntentKind.BEST_BID,
        IntentKind.BID_LANDSCAPE,
        IntentKind.APPLY_BEST_BID,
    ):
        fields["keyword"] = keyword or prev_id
    if kind in (IntentKind.WHAT_IF_BUDGET, IntentKind.SET_BUDGET):
        fields["campaign"] = campaign or prev_id
    if kind in (IntentKind.EXPERIMENT_EFFECT, IntentKind.AB_TEST):
        fields["experiment"] = (
            exp[0] if exp else (text if re.search(r"\b(test|experiment|promo|holdout)\b", q) else prev_id)
        )
    if kind in (IntentKind.PAUSE, IntentKind.ENABLE):
        entity = (
            (kw or cmp or [None])[0] or _words_after(text, r"\b(?:pause|stop|kill|enable|resume)") or prev_id
        )
        fields |= {"entity": entity, "entity_kind": EntityKind.KEYWORD if kw else EntityKind.CAMPAIGN}
    if kind in (IntentKind.ADD_NEGATIVE, IntentKind.ADD_KEYWORD):
        term = re.search(r"['\"]([^'\"]+)['\"]", text)
        fields["term"] = term.group(1) if term else _words_after(text, r"\bfor", r"\bblock")
        fields["ad_group"] = (ag[0] if ag else _words_after(text, r"\bin")) or prev_id
    if kind in (IntentKind.KEYWORD_IDEAS, IntentKind.NEGATIVE_IDEAS) and ag:
        fields["ad_group"] = ag[0]
    if kind in _NEEDS_VALUE or kind == IntentKind.CUT_WORST:
        value, rel = _value(text), _relative(text)
        fields |= (
            {"value": value} if value is not None and kind != IntentKind.CUT_WORST else {"relative": rel}
        )
    if kind == IntentKind.CUT_WORST and fields.get("relative") is None:
        fields["relative"] = -0.2
    if kind == IntentKind.KPI_CHANGE:
        fields["kpi"] = next(
            (Kpi(k) for k in ("acos", "roas", "sales", "orders", "clicks", "spend") if k in q), Kpi.SALES
        )
    if kind in (IntentKind.CAMPAIGNS, IntentKind.KEYWORDS):
        fields["metric"] = next((Metric(m) for m in ("sales", "orders", "clicks", "acos") if m in q), None)
    if kind == IntentKind.BEST_BID and "acos" in q and (m := _PCT.search(text)):
        fields |= {"goal": Goal.TARGET_ACOS, "target": float(m.group(1)) / 100}
    if kind == IntentKind.ALLOCATE:
        fields["total"] = _value(text)
    if (days := re.search(r"\b(?:last|past)\s+(\d+)\s+days\b", q)) is not None:
        fields["last_days"] = int(days.group(1))
    elif re.search(r"\b(last|this|past) week\b", q):
        fields["last_days"] = 7
    try:
        return Intent(kind=kind, **{k: v for k, v in fields.items() if v is not None})
    except ValueError:
        return Intent(kind=IntentKind.OVERVIEW)


def decide(messages: Sequence[dict[str, Any]], scope: str | None = None) -> dict[str, Any]:
    """The next assistant message: the expert's step for the parsed intent, given this turn's results."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    if last < 0:
        return expert.say(expert.CAPABILITIES)
    return expert.step(parse(messages, scope), expert.turn_done(messages), scope)


class TeacherChatModel(BaseChatModel):
    advertiser_id: str | None = None

    @property
    def _llm_type(self) -> str:
        return "adguide-teacher"

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        thread = list(convert_to_openai_messages(messages))
        # The system prompt names the advertiser of this conversation; a model shared by many agents (the evals,
        # the server's pool) must not answer with the advertiser it was built for.
        scope = next((m for m in _ADV.findall(str(messages[0].content))), None) or self.advertiser_id
        decided = decide(thread, scope)
        calls = [
            {
                "name": c["function"]["name"],
                "args": json.loads(c["function"]["arguments"]),
                "id": c["id"],
                "type": "tool_call",
            }
            for c in decided.get("tool_calls") or []
        ]
        return ChatResult(
            generations=[
                ChatGeneration(message=AIMessage(content=decided.get("content") or "", tool_calls=calls))
            ]
        )
