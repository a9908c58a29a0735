"""Output guardrails: what an answer must pass before the user sees it.

- Grounding: every number in the answer must appear in a tool result of this thread (or in the user's own
  words, or the arguments the agent passed to a tool), or follow from two related numbers by one arithmetic
  step (sum, difference, ratio, percent change; "related": in the same small JSON object, or per-key totals,
  means, minima and maxima of one list). Arbitrary pairs are not allowed: over a 30-day report almost any
  integer is a difference of two numbers, and the check would ground everything. Matching respects the precision shown: "$1,234.5"
  matches 1234.4567, "23.4%" matches 0.2344. Small counts (0-10), list markers, dates and time windows
  ("last 30 days") are not claims about the data and are exempt.
- No promises of outcomes ("guaranteed", "will double your sales"): hedged in place.
- No advice that breaks ad policy (fake reviews, clicking rivals' ads, discriminatory targeting, ...):
  the answer is replaced by a safe one.

`check_output` returns the text to show: unchanged, repaired (promises hedged, sentences with unsupported
figures dropped) or replaced by a safe answer. Every non-pass is logged on "adguide.guardrails".
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

log = logging.getLogger("adguide.guardrails")

FREE_INTEGER_MAX = 10


class IssueKind(StrEnum):
    UNGROUNDED_NUMBER = "ungrounded_number"
    PROMISE = "promise"
    POLICY = "policy"
    MALFORMED = "malformed"


class OutputAction(StrEnum):
    PASS = "pass"
    REPAIRED = "repaired"
    REPLACED = "replaced"


class OutputIssue(BaseModel):
    kind: IssueKind
    detail: str


class OutputCheck(BaseModel):
    action: OutputAction
    text: str
    issues: list[OutputIssue] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.action == OutputAction.PASS


# --- numbers -----------------------------------------------------------------------------------------

_MONTHS = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_EXEMPT = [
    re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?\b"),  # ISO dates/times
    re.compile(rf"\b{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b", re.IGNORECASE),
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS}(?:\s+\d{{4}})?\b", re.IGNORECASE),
    re.compile(
        r"\b(?:last|past|next|previous|over|for|within|in)\s+(?:the\s+)?\d{1,3}\s+(?:days?|weeks?|months?)\b",
        re.IGNORECASE,
    ),
    re.compile(r"\b\d{1,3}(?:-day|-week|-month)\b", re.IGNORECASE),
    re.compile(r"\b(?:19|20)\d{2}\b(?![.,]\d)"),  # years
    re.compile(r"(?m)^\s*\d{1,2}[.)]\s"),  # list markers
    re.compile(r"\b[A-Za-z]+_[A-Za-z0-9_]*\d[A-Za-z0-9_]*\b"),  # ids: kw_0000012, cmp_00003
    re.compile(
        r"\b\d{1,3}\s*%\s+(?:confidence|credible|prediction)?\s*interval", re.IGNORECASE
    ),  # "90% interval"
]
# A number as written: optional sign and currency, digits with thousands separators, decimals, a k/m
# suffix or a percent sign.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+−])?\s?(?P<cur>[$€£])?\s?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<suffix>\s?(?:%|percent\b|pp\b|[kKmM]\b|x\b|×))?"
)
# "5–19%": the percent sign of the second number applies to the first as well.
_RANGE_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:–|-|to)\s*\d+(?:\.\d+)?\s*%")


class NumberMention(BaseModel):
    raw: str
    value: float
    tolerance: float  # half a unit of the last digit shown, in the same scale as value
    percent: bool = False
    start: int = 0


def _blank(text: str, pattern: re.Pattern[str]) -> str:
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def extract_numbers(text: str) -> list[NumberMention]:
    """Numbers stated in an answer, with the precision they are shown at (exempt spans removed)."""
    clean = text
    for pattern in _EXEMPT:
        clean = _blank(clean, pattern)
    range_percent_starts = {m.start(1) for m in _RANGE_PERCENT.finditer(clean)}
    out: list[NumberMention] = []
    for m in _NUMBER.finditer(clean):
        num = m.group("num")
        value = float(num.replace(",", ""))
        decimals = len(num.split(".")[1]) if "." in num else 0
        tolerance = 0.5 * 10.0**-decimals
        suffix = (m.group("suffix") or "").strip().lower()
        percent = suffix in ("%", "percent", "pp") or m.start("num") in range_percent_starts
        if suffix == "k":
            value, tolerance = value * 1e3, tolerance * 1e3
        elif suffix == "m":
            value, tolerance = value * 1e6, tolerance * 1e6
        if m.group("sign") in ("-", "−"):
            value = -value
        if not percent and not m.group("cur") and decimals == 0 and abs(value) <= FREE_INTEGER_MAX:
            continue  # small counts: "3 keywords", "top 5"
        out.append(
            NumberMention(
                raw=m.group(0).strip(), value=value, tolerance=tolerance, percent=percent, start=m.start()
            )
        )
    return out


# Arithmetic the check accepts is typed by what the numbers are, not any pair of numbers: over a 30-day report
# almost any integer or percent is *some* difference or ratio of two numbers, and the check would ground
# everything. Accepted: KPI ratios of one row (ACoS = spend/sales, CPC, CTR, CVR, AOV, ROAS), before/after
# pairs of one metric (difference, ratio, percent change), and per-key totals/means/min/max of a list
# (with the KPI ratios of the totals and, for short lists, consecutive changes).
_ROLES = {
    "spend": re.compile(r"spend|cost", re.IGNORECASE),
    "sales": re.compile(r"sales|revenue", re.IGNORECASE),
    "clicks": re.compile(r"clicks", re.IGNORECASE),
    "impressions": re.compile(r"impressions", re.IGNORECASE),
    "orders": re.compile(r"orders|conversions|purchases", re.IGNORECASE),
}
_KPI_RATIOS = [
    ("spend", "sales"),
    ("sales", "spend"),
    ("spend", "clicks"),
    ("clicks", "impressions"),
    ("orders", "clicks"),
    ("sales", "orders"),
    ("spend", "orders"),
]
_PAIR_TOKENS = re.compile(
    r"(^|_)(before|after|current|proposed|new|old|baseline|base|scenario|treatment|control|prev|previous|"
    r"last|this|from|to|then|now|pre|post)(_|$)",
    re.IGNORECASE,
)
SHORT_LIST = 8


MAX_DEPTH = 32  # nesting a walk follows: tool results are a few levels deep; deeper is hostile input


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):  # a 4,000-digit integer is an int, but no float (math.isfinite would raise)
        return abs(v) < 1e300
    return isinstance(v, float) and math.isfinite(v)


def number_leaves(value: Any) -> list[float]:
    """Every finite number in a parsed JSON value, in order (a walk with its own stack: a value nested
    thousands deep neither overflows Python's stack nor costs more than its size)."""
    out: list[float] = []
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if _is_number(v):
            out.append(float(v))
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list | tuple):
            stack.extend(reversed(v))
    return out


def _role(key: str) -> str | None:
    return next((role for role, rx in _ROLES.items() if rx.search(key)), None)


def _pair_ops(a: float, b: float) -> list[float]:
    """b -> a: difference, ratio, percent change (both directions)."""
    out = [a - b, b - a, a + b]
    if b:
        out += [a / b, a / b - 1]
    if a:
        out += [b / a, b / a - 1]
    return out


def _kpis(numbers: dict[str, float]) -> list[float]:
    by_role: dict[str, list[float]] = {}
    for k, v in numbers.items():
        if role := _role(k):
            by_role.setdefault(role, []).append(v)
    out = []
    for num, den in _KPI_RATIOS:
        out += [n / d for n in by_role.get(num, []) for d in by_role.get(den, []) if d]
    return out


def _derived(value: Any, out: list[float], in_long_list: bool = False, depth: int = 0) -> None:
    if depth > MAX_DEPTH:  # the arithmetic of a structure this deep is no answer's source
        return
    if isinstance(value, dict):
        numbers = {k: float(v) for k, v in value.items() if _is_number(v)}
        if not in_long_list:  # per-row KPIs of a 30-day report would ground most percents
            out += _kpis(numbers)
        stems: dict[str, list[float]] = {}
        for k, v in numbers.items():  # bid_before / bid_after, current_budget / proposed_budget
            stem = _PAIR_TOKENS.sub("_", k).strip("_").lower()
            if stem != k.lower():
                stems.setdefault(stem, []).append(v)
        subs = {k: v for k, v in value.items() if isinstance(v, dict)}  # {"before": {...}, "after": {...}}
        if len(subs) >= 2:
            for key in {k for d in subs.values() for k, v in d.items() if _is_number(v)}:
                stems.setdefault(f"sub:{key}", []).extend(
                    float(d[key]) for d in subs.values() if _is_number(d.get(key))
                )
        ranges = [
            v for k, v in value.items() if isinstance(v, list) and len(v) == 2 and all(map(_is_number, v))
        ]
        # an interval [lo, hi]: its width, its ends vs the estimate
        for vals in list(stems.values()) + ranges:
            for i, a in enumerate(vals):
                for b in vals[i + 1 :]:
                    out += _pair_ops(a, b)
        for v in value.values():
            _derived(v, out, depth=depth + 1)
    elif isinstance(value, list):
        series = [float(v) for v in value if _is_number(v)]
        if series:
            out += [sum(series), sum(series) / len(series)]
            if len(series) <= SHORT_LIST:
                for a, b in zip(series, series[1:], strict=False):
                    out += _pair_ops(b, a)
        rows = [v for v in value if isinstance(v, dict)]
        if len(rows) > 1:
            keys = {k for r in rows for k, v in r.items() if _is_number(v)}
            totals: dict[str, float] = {}
            for k in keys:
                col = [float(r[k]) for r in rows if _is_number(r.get(k))]
                totals[k] = sum(col)
                out += [sum(col), sum(col) / len(col), min(col), max(col)]
                if len(col) <= SHORT_LIST:
                    for a, b in zip(col, col[1:], strict=False):
                        out += _pair_ops(b, a)
            out += _kpis(totals)
        for v in value:
            _derived(v, out, in_long_list=len(value) > SHORT_LIST, depth=depth + 1)


def _text_numbers(text: str) -> list[float]:
    return [float(m.group("num").replace(",", "")) for m in _NUMBER.finditer(text)]


def _parse(source: Any) -> Any:
    if isinstance(source, str):
        try:
            return json.loads(source)
        except (ValueError, TypeError, RecursionError):  # RecursionError: "[[[[..." thousands deep
            return _text_numbers(source)
    return source


def _finite(values: list[float]) -> np.ndarray:
    arr = np.array(values, dtype=np.float64)
    return np.unique(arr[np.isfinite(arr)])


@functools.lru_cache(maxsize=512)
def _text_sources(text: str) -> tuple[np.ndarray, np.ndarray]:
    """One tool result's (or tool call's) own numbers and its one-step arithmetic, each sorted and unique. Cached
    by the text: a thread's earlier results come back to every later turn's check, which then costs what its new
    results cost, not what the whole thread's do (over a 12-turn thread it grew from 6 to 40 ms; now 10-15 ms)."""
    return _sources_of(_parse(text))


def _sources_of(parsed: Any) -> tuple[np.ndarray, np.ndarray]:
    derived: list[float] = []
    _derived(parsed, derived)
    return _finite(number_leaves(parsed)), _finite(derived)


def source_numbers(tool_texts: Iterable[Any], user_texts: Iterable[str] = ()) -> np.ndarray:
    """Numbers an answer may state: every number in the tool results and tool arguments (JSON or text) and in
    the user's messages, plus the typed one-step arithmetic above, plus the difference between a number the
    user stated and one a tool returned ("6.6 points below your 25% target"); sorted, unique. Fractions also
    count as percents (0.184 grounds "18.4%")."""

    def with_percents(arr: np.ndarray) -> np.ndarray:
        return np.unique(np.concatenate([arr, arr[np.abs(arr) <= 1.5] * 100]))

    direct: list[np.ndarray] = [np.empty(0)]
    derived: list[np.ndarray] = [np.empty(0)]
    for source in tool_texts:
        d, a = _text_sources(source) if isinstance(source, str) else _sources_of(source)
        direct.append(d)
        derived.append(a)
    # A user's message is text, never parsed as JSON: '{"a": {"a": ...' 500 deep or a 4,000-digit number pasted
    # into the chat must not fail this turn and every later one (the check reads the last two messages).
    user = with_percents(_finite([v for t in user_texts for v in _text_numbers(t)]))
    tool = with_percents(np.unique(np.concatenate(direct)))  # unique first: a thread repeats its results
    cross = np.abs(user[:, None] - tool[None, :]).ravel() if user.size and tool.size else np.array([])
    arr = np.concatenate([tool, with_percents(np.unique(np.concatenate(derived))), user, cross])
    return np.unique(np.concatenate([arr, -arr]))


def _near(sorted_values: np.ndarray, target: float, tolerance: float) -> bool:
    if sorted_values.size == 0:
        return False
    i = int(np.searchsorted(sorted_values, target))
    lo, hi = max(0, i - 1), min(sorted_values.size, i + 1)
    best = float(np.min(np.abs(sorted_values[lo:hi] - target)))
    return best <= tolerance + 1e-9 * max(1.0, abs(target))


def is_grounded(mention: NumberMention, sources: np.ndarray) -> bool:
    candidates = [(mention.value, mention.tolerance)]
    if mention.percent:
        candidates.append((mention.value / 100, mention.tolerance / 100))
    return any(_near(sources, v, tol) for v, tol in candidates)


# --- promises and policy -----------------------------------------------------------------------------

_OUTCOMES = (
    r"(sales|revenue|profits?|orders|conversions|roas|return|traffic|clicks|impressions|rank(ing)?|results|"
    r"performance|growth|business)"
)
_GAIN_VERBS = (
    r"(double|triple|quadruple|skyrocket|explode|boost|increase|grow|improve|raise|lift|maximi[sz]e)"
)
_NEGATED = re.compile(
    r"\b(no|not|never|cannot|can't|can ?not|isn't|aren't|without|nothing|don't|do not)\b[^.!?]{0,25}$",
    re.IGNORECASE,
)

_PROMISES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bguarantee[sd]?\s+to\b", re.IGNORECASE), "expected to"),
    (re.compile(r"\b(is|are|it's)\s+guaranteed\b", re.IGNORECASE), r"\1 expected"),
    (re.compile(r"\bguaranteed\b", re.IGNORECASE), "expected"),
    (re.compile(r"\b(I|we)\s+(can\s+)?(guarantee|promise)\b", re.IGNORECASE), r"\1 expect"),
    (
        re.compile(rf"\bwill\s+(definitely|certainly|surely|absolutely)\s+{_GAIN_VERBS}\b", re.IGNORECASE),
        r"would likely \2",
    ),
    (
        re.compile(rf"\bwill\s+{_GAIN_VERBS}\s+(your\s+)?{_OUTCOMES}\b", re.IGNORECASE),
        r"would likely \1 \2\3",
    ),
    (re.compile(rf"\b{_OUTCOMES}\s+will\s+{_GAIN_VERBS}\b", re.IGNORECASE), r"\1 would likely \3"),
    (re.compile(r"\brisk[- ]free\b", re.IGNORECASE), "lower-risk"),
    (re.compile(r"\b(100\s?%|completely|totally)\s+(sure|certain)\b", re.IGNORECASE), "fairly confident"),
    (re.compile(r"\b(can't|cannot|can not)\s+(lose|fail|go wrong)\b", re.IGNORECASE), "carries limited risk"),
    (re.compile(r"\bsure\s+thing\b", re.IGNORECASE), "reasonable bet"),
]

_POLICY: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"\b(buy|purchase|post|write|get|generate|use|add|create|solicit)\b[^.!?]{0,25}\b(fake|paid|incentivi[sz]ed|bogus)\s+"
            r"(reviews?|ratings?|clicks?|orders?)\b",
            re.IGNORECASE,
        ),
        "fake or paid reviews, ratings or clicks",
    ),
    (
        re.compile(
            r"\b(click|clicking)\s+(on\s+)?(your\s+)?(competitors?|rivals?)'?s?'?\s+ads\b", re.IGNORECASE
        ),
        "clicking competitors' ads (click fraud)",
    ),
    (re.compile(r"\b(click|clicking)\s+(on\s+)?your\s+own\s+ads\b", re.IGNORECASE), "clicking your own ads"),
    (
        re.compile(
            r"\b(bots?|click farms?|scripts?)\s+(to|that)\s+(click|generate|inflate|drain)", re.IGNORECASE
        ),
        "automated clicks",
    ),
    (
        re.compile(
            r"\b(drain|exhaust|burn through)\s+(your\s+)?(competitors?|rivals?)'?s?'?\s+budgets?\b",
            re.IGNORECASE,
        ),
        "draining competitors' budgets",
    ),
    (re.compile(r"\bcloak(ing)?\b", re.IGNORECASE), "cloaking"),
    (
        re.compile(
            r"\b(exclude|target|excluding|targeting)\b[^.!?]{0,30}\b(by|based on|people of( a)?)\s+(race|religion|"
            r"ethnicity|sexual orientation|disability|national origin)",
            re.IGNORECASE,
        ),
        "discriminatory targeting",
    ),
    (
        re.compile(
            r"\b(use|put|include|insert)\s+(a\s+|your\s+)?(competitors?|rivals?)'?s?'?\s+(trademark|brand name|"
            r"logo)s?\s+in\s+(your\s+)?(ad|title|headline|copy)",
            re.IGNORECASE,
        ),
        "using competitors' trademarks in ad copy",
    ),
    (
        re.compile(
            r"\b(claim|say|write|advertise)\b[^.!?]{0,30}\b(cures?|FDA[- ]approved|clinically proven)\b",
            re.IGNORECASE,
        ),
        "unsupported health claims",
    ),
    (
        re.compile(
            r"\b(misleading|fake|false)\s+(discounts?|prices?|claims?|strike-?through prices?)\b"
            r"(?![^.!?]{0,30}\b(violate|against|not allowed|prohibited))",
            re.IGNORECASE,
        ),
        "misleading prices or claims",
    ),
]

SAFE_UNGROUNDED = (
    "I couldn't check the figures for that answer against your data, so I won't quote them. "
    "Ask me to pull the report or run a simulation and I'll answer with numbers from your account."
)
SAFE_POLICY = (
    "I can't recommend that: it would break the marketplace's advertising policy ({what}). "
    "I can help with compliant levers instead: bids, budgets, keywords, negative keywords and experiments."
)


def _policy_hits(text: str) -> list[str]:
    hits = []
    for pattern, what in _POLICY:
        for m in pattern.finditer(text):
            before = text[max(0, m.start() - 60) : m.start()]
            sentence_start = max(before.rfind("."), before.rfind("!"), before.rfind("?"))
            if _NEGATED.search(before[sentence_start + 1 :]):
                continue  # "never buy fake reviews", "don't click your competitors' ads"
            hits.append(what)
            break
    return hits


def _hedge_promises(text: str) -> tuple[str, list[str]]:
    found: list[str] = []

    def sub_one(pattern: re.Pattern[str], repl: str, text: str) -> str:
        def replace(m: re.Match[str]) -> str:
            before = text[max(0, m.start() - 40) : m.start()]
            sentence_start = max(before.rfind("."), before.rfind("!"), before.rfind("?"))
            if _NEGATED.search(before[sentence_start + 1 :]):
                return m.group(0)  # "nothing is guaranteed", "I can't promise"
            found.append(m.group(0))
            return m.expand(repl)

        return pattern.sub(replace, text)

    for pattern, repl in _PROMISES:
        text = sub_one(pattern, repl, text)
    return text, found


def _split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans; a decimal point is not a sentence end ("$1.25 per click")."""
    spans = []
    start = 0
    for m in re.finditer(r"(?<!\d)[.!?]+(?=\s|$)|[.!?]+(?=\s+[A-Z])|\n", text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


# Tool-call syntax (hermes markers, a JSON call) or a run of one repeated digit: a broken generation, not an answer.
_MALFORMED = re.compile(r'</?tool_(?:call|response)>|\{\s*"name"\s*:|"arguments"\s*:|(\d)\1{11,}')
SAFE_MALFORMED = (
    "I could not put together a reliable answer to that just now. Please try again, or ask about one "
    "campaign or keyword at a time."
)


def check_output(answer: str, tool_texts: Iterable[Any], user_texts: Iterable[str] = ()) -> OutputCheck:
    """Check (and repair) one answer. `tool_texts`: this thread's tool results and tool-call arguments
    (JSON strings or objects); `user_texts`: the user's messages of this thread."""
    issues: list[OutputIssue] = []
    if hit := _MALFORMED.search(answer):
        # A model that failed to finish a tool call must not show the user half a JSON call as its answer.
        issues = [OutputIssue(kind=IssueKind.MALFORMED, detail=hit.group(0)[:40])]
        log.warning("output guardrail replaced a malformed answer: %r", hit.group(0)[:40])
        return OutputCheck(action=OutputAction.REPLACED, text=SAFE_MALFORMED, issues=issues)
    policy = _policy_hits(answer)
    if policy:
        issues = [OutputIssue(kind=IssueKind.POLICY, detail=p) for p in policy]
        result = OutputCheck(
            action=OutputAction.REPLACED, text=SAFE_POLICY.format(what=", ".join(policy)), issues=issues
        )
        log.warning("output guardrail replaced an answer: %s", [i.detail for i in issues])
        return result

    text, promises = _hedge_promises(answer)
    issues += [OutputIssue(kind=IssueKind.PROMISE, detail=p) for p in promises]

    source_values = source_numbers(tool_texts, user_texts)
    kept: list[str] = []
    dropped = 0
    for start, end in _split_sentences(text):
        sentence = text[start:end]
        bad = [m for m in extract_numbers(sentence) if not is_grounded(m, source_values)]
        if bad:
            issues += [OutputIssue(kind=IssueKind.UNGROUNDED_NUMBER, detail=m.raw) for m in bad]
            dropped += 1
        else:
            kept.append(sentence)

    if not issues:
        return OutputCheck(action=OutputAction.PASS, text=answer)
    if dropped:
        remaining = "".join(kept).strip()
        if len(re.sub(r"\W", "", remaining)) < 20:
            result = OutputCheck(action=OutputAction.REPLACED, text=SAFE_UNGROUNDED, issues=issues)
            log.warning("output guardrail replaced an answer: %s", [i.detail for i in issues])
            return result
        text = remaining + "\n\n(I left out figures I could not verify against your data.)"
    log.info("output guardrail repaired an answer: %s", [i.detail for i in issues])
    return OutputCheck(action=OutputAction.REPAIRED, text=text, issues=issues)
