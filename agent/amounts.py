"""Amounts in a seller's words, written as figures before the embedded model reads them.

Inverse text normalization, as speech and chat systems do it: "a buck fifty" -> "$1.50", "two dollars and ten
cents" -> "$2.10", "seventy a day" -> "70 a day", "trim it by a fifth" -> "trim it by 20%", "from 132 to 172" -> "to
172". The embedded model copies a bid, budget or total from the figures of the user's message (a small model
rewrites digits badly, agent/model/decode.py), so an amount it cannot see as a figure it cannot copy. Number words
are read by text2num (`alpha2digit`, a well-kept Rust parser); money and fractions are composed here. A lone
"one" stays a word ("the one with the worst acos").
"""

from __future__ import annotations

import re
from typing import Any

from text_to_num import alpha2digit

_FRACTIONS = {"half": "50%", "third": "33%", "quarter": "25%", "fifth": "20%", "tenth": "10%"}
_FRACTION = re.compile(r"\b(?:a|one)\s+(half|third|quarter|fifth|tenth)\b", re.I)
_NUM = r"(\d+(?:\.\d+)?)"


def _cents(dollars: str, cents: str) -> str:
    return f"${dollars}.{int(cents):02d}"  # "5 cents" is .05, "50" is .50


def _thousands(m: re.Match[str]) -> str:
    amount = float(m.group(1)) * 1000
    return f"{amount:.2f}".rstrip("0").rstrip(".")


_RULES: list[tuple[re.Pattern[str], Any]] = [
    # "$1,200" (a thousands separator: not two figures), "1.5k", "0.1k a day" (thousands)
    (re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?![\d,])"), lambda m: m.group(0).replace(",", "")),
    # thousands as an amount: after "$", or before words of money or of splitting ("the 4k tv mount" is a name)
    (re.compile(r"(?<=\$)(\d+(?:\.\d+)?)k\b", re.I), _thousands),
    (
        re.compile(
            r"(?<![\w.$])(\d+(?:\.\d+)?)k\b(?=\s*(?:$|[.,;:!?)]|(?:a|per|/)\s*(?:day|week|month)\b|"
            r"(?:daily|total|in total|budget|dollars?|bucks?|usd|between|across|among|over)\b))",
            re.I,
        ),
        _thousands,
    ),
    # "2 dollars and 30 cents", "2 bucks 50", "a buck fifty", "one dollars and five cents"
    (
        re.compile(r"\b(\d+)\s*(?:dollars?|bucks?)\s*(?:and\s+)?(\d{1,2})(?:\s*cents?)?\b", re.I),
        lambda m: _cents(m.group(1), m.group(2)),
    ),
    (
        re.compile(r"\b(?:a|one)\s+(?:dollars?|bucks?)\s*(?:and\s+)?(\d{1,2})(?:\s*cents?)?\b", re.I),
        lambda m: _cents("1", m.group(1)),
    ),
    (re.compile(r"\b(?:a|one)\s+(?:dollars?|bucks?)\b", re.I), "$1"),
    (re.compile(rf"\b{_NUM}\s*(?:dollars?|bucks?|usd)\b", re.I), r"$\1"),
    (re.compile(r"\b(\d{1,2})\s*cents?\b", re.I), lambda m: _cents("0", m.group(1))),
    (re.compile(r"\b(at|to|of)\s+(\d)\s+(\d{2})\b", re.I), r"\1 $\2.\3"),  # "at 2 50" (two fifty)
    # "from 132 to 172", "from 80 up to 110": the amount to change to
    (re.compile(rf"\bfrom\s+\$?{_NUM}\s+(?:(?:up|down)\s+)?to\s+(\$?){_NUM}", re.I), r"to \2\3"),
]


def normalize_amounts(text: str) -> str:
    """`text` with spelled-out amounts, money and fractions written as figures (see the module docstring)."""
    out = _FRACTION.sub(lambda m: _FRACTIONS[m.group(1).lower()], text)
    out = re.sub(r"\bhalf\b(?=\s+(?:the|its|my|that)\b)", "50% of", out, flags=re.I)
    out = alpha2digit(out, "en", threshold=2)  # "one" and "first" stay words
    for pattern, replacement in _RULES:
        out = pattern.sub(replacement, out)
    out = re.sub(r"\$(\d+)\.(\d)\b", r"$\1.\g<2>0", out)  # "$1.5" -> "$1.50"
    return out


_DOWN = re.compile(r"\b(cut|lower|reduce|drop|trim|decrease|less|down|shave|slash|take|knock|minus)\b", re.I)
_UP = re.compile(r"\b(raise|increase|more|up|bump|add|boost|higher|grow|extra|plus)\b", re.I)


def _sign(text: str, default: float) -> float:
    """-1 for a change down, 1 for up; `default` where the words say both or neither."""
    down, up = _DOWN.search(text) is not None, _UP.search(text) is not None
    return -1.0 if down and not up else 1.0 if up and not down else default


_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent|pct)", re.I)
_FIGURE = re.compile(
    r"(?<![\w.])\$?(\d+(?:\.\d+)?)(?!\s*(?:%|percent|pct|days?|weeks?|months?|x\b)|[\d.]*\w)", re.I
)
_BY_AMOUNT = re.compile(r"\bby\s+\$?(\d+(?:\.\d+)?)(?!\s*(?:%|percent|pct))", re.I)
_TARGET_ACOS = re.compile(
    r"\b(?:(?:under|below|at|to|around|near|of|max|target|keep\w*)\s+)?(\d+(?:\.\d+)?)\s*%\s*"
    r"(?:acos|a\.c\.o\.s)\b|\bacos\s+(?:(?:under|below|at|of|around|near|to|target|<|max)\s+)+"
    r"(\d+(?:\.\d+)?)\s*%",
    re.I,
)


def target_acos(text: str) -> float | None:
    """An ACoS target in an already normalized message ("under 35% acos", "acos below 25%") as a fraction."""
    m = _TARGET_ACOS.search(text)
    return float(m.group(1) or m.group(2)) / 100 if m else None


_TARGET_ROAS = re.compile(
    r"\broas\s+(?:(?:of|at|to|around|near|target|above|over|min|keep\w*|>=?|at least)\s+)*(\d+(?:\.\d+)?)(?![\d.]|\s*(?:days?|weeks?|months?)\b)\s*(x|%)?"
    r"|\b(\d+(?:\.\d+)?)\s*(x|%)?\s+(?:target\s+)?roas\b",
    re.I,
)


def target_roas(text: str) -> float | None:
    """A ROAS target in an already normalized message ("target roas 5", "roas of 4x", "a 400% roas") as a multiple."""
    m = _TARGET_ROAS.search(text)
    if m is None:
        return None
    value, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    roas = float(value) / 100 if unit == "%" else float(value)
    return roas if roas > 0 else None


def relative_change(text: str, sign: float = 1.0) -> float | None:
    """A change by a fraction in an already normalized message: "double" 1.0, "halve" -0.5, "cut it by 20%" -0.2
    (`sign` where the words do not say which way)."""
    if re.search(r"\b(double|twice)\b", text, re.I):
        return 1.0
    if re.search(r"\b(halve|half)\b", text, re.I):
        return -0.5
    m = _PERCENT.search(text)
    if m is None:
        return None
    return _sign(text, sign) * float(m.group(1)) / 100


def figures(text: str) -> list[float]:
    """The amounts an already normalized message names as figures (not percentages, periods or multiples)."""
    return [float(x) for x in _FIGURE.findall(text)]


AMOUNT_ARGS = ("value", "relative_change", "change_by")
# a name the seller put in quotes (group 1): its figures name the thing, not an amount ("simulate 'leaf blower 2026'
# across a range of bids"); the graph reads the name itself, and the match type after it (agent/graph.py _QUOTED)
QUOTED_NAME = re.compile(r"""(?<!\w)['"‘“]([^'"‘’“”]{2,80}?)['"’”](?!\w)""")


def ground_change(args: dict[str, Any], message: str, known: set[float]) -> dict[str, Any] | None:
    """A model's set_bid / set_budget proposal or bid / budget what-if with its amount taken from the user's words:
    a value the message (or `known`: earlier figures, results) holds stays; a change by a fraction ("double it", "a
    fifth less") becomes relative_change, a change by an amount ("20 cents lower") change_by; a lone figure in the
    message is the value. None where the message names no amount at all (the model made one up)."""
    if args.get("action") not in ("set_bid", "set_budget") and args.get("change") not in ("bid", "budget"):
        return args
    # an ACoS target is no change by a share, a quoted name's figures no amount
    text = QUOTED_NAME.sub(" ", _TARGET_ACOS.sub(" ", normalize_amounts(message)))
    rest = {k: v for k, v in args.items() if k not in AMOUNT_ARGS}
    given = next(
        (float(args[k]) for k in ("relative_change", "change_by") if isinstance(args.get(k), int | float)),
        1.0,
    )
    sign = -1.0 if given < 0 else 1.0
    rel, named = relative_change(text, sign), figures(text)
    by = _BY_AMOUNT.search(text)
    if by is not None and rel is None:
        return rest | {"change_by": _sign(text, sign) * float(by.group(1))}
    value = args.get("value")
    if (
        isinstance(value, int | float)
        and any(abs(value - x) < 0.005 for x in (*named, *known))
        and rel is None
    ):
        return args
    if rel is not None:
        return rest | {"relative_change": rel}
    if len(set(named)) == 1:
        return rest | {"value": named[0]}
    if not named and (value is not None or args.get("relative_change") is not None):
        return None  # an amount the message does not name
    return args  # several figures, none the model's: nothing better to offer (or no amount: the tool says so)


def ground_total(args: dict[str, Any], message: str) -> dict[str, Any]:
    """A model's allocate_budget with the daily total the user named: a lone figure in the message is the total
    ("help me split 1650 between campaigns": the model left it out and the current total was split); a total the
    message does not name is dropped (the tool splits the current total). Several figures: as the model made it."""
    named = set(figures(QUOTED_NAME.sub(" ", normalize_amounts(message))))
    total = args.get("total_budget")
    if isinstance(total, int | float) and any(abs(total - x) < 0.005 for x in named):
        return args
    rest = {k: v for k, v in args.items() if k != "total_budget"}
    if len(named) == 1:
        return rest | {"total_budget": named.pop()}
    return rest if not named else args


# a recent period in words, in days
_PERIODS = (
    (r"\b(yesterday|yday|ystrdy|yest)\b", lambda m: 1),
    (r"\b(?:last|past|previous)\s+(\d{1,3})\s+days?\b", lambda m: int(m.group(1))),
    (r"\b(?:last|past|previous)\s+(\d{1,2})\s+weeks?\b", lambda m: 7 * int(m.group(1))),
    (r"\b(?:last|past|this)\s+week\b", lambda m: 7),
    (r"\b(?:last|past|this)\s+month\b", lambda m: 30),
)


PERIOD_WORDS = re.compile("|".join(pattern for pattern, _ in _PERIODS), re.I)


def period_said(text: str) -> int | None:
    """The one period the user named, in days ("budget ran out yday on anything?" -> 1, "the past three days" -> 3);
    None for none, or several (a comparison of two periods)."""
    flat = normalize_amounts(text)
    said = {days(m) for pattern, days in _PERIODS for m in re.finditer(pattern, flat, re.I)}
    return said.pop() if len(said) == 1 and 1 <= min(said) <= 365 else None
