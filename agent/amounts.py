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

_FRACTIONS = {"half": "50%", "third": "33%", "quarter": "25%", "fifth": "20%", "tenth": "10%"}
_FRACTION = re.compile(r"\b(?:a|one)\s+(half|third|quarter|fifth|tenth)\b", re.I)
_NUM = r"(\d+(?:\.\d+)?)"
_RULES: list[tuple[re.Pattern[str], str]] = [
    # "2 dollars and 30 cents", "2 bucks 50", "a buck fifty"
    (re.compile(r"\b(\d+)\s*(?:dollars?|bucks?)\s*(?:and\s+)?(\d{1,2})\s*(?:cents?)?\b", re.I),
     r"$\1.\2"),
    (re.compile(r"\b(?:a|one)\s+(?:dollars?|bucks?)\s*(?:and\s+)?(\d{1,2})\s*(?:cents?)?\b", re.I), r"$1.\1"),
    (re.compile(r"\b(?:a|one)\s+(?:dollars?|bucks?)\b", re.I), "$1"),
    (re.compile(rf"\b{_NUM}\s*(?:dollars?|bucks?|usd)\b", re.I), r"$\1"),
    (re.compile(r"\b(\d{1,2})\s*cents?\b", re.I), r"$0.\1"),
    (re.compile(r"\b(at|to|of)\s+(\d)\s+(\d{2})\b", re.I), r"\1 $\2.\3"),  # "at 2 50" (two fifty)
    # "from 132 to 172", "from 80 up to 110": the amount to change to
    (re.compile(rf"\bfrom\s+\$?{_NUM}\s+(?:(?:up|down)\s+)?to\s+(\$?){_NUM}", re.I), r"to \2\3"),
]


def normalize_amounts(text: str) -> str:
    """`text` with spelled-out amounts, money and fractions written as figures (see the module docstring)."""
    from text_to_num import alpha2digit

    out = _FRACTION.sub(lambda m: _FRACTIONS[m.group(1).lower()], text)
    out = re.sub(r"\bhalf\b(?=\s+(?:the|its|my|that)\b)", "50% of", out, flags=re.I)
    out = alpha2digit(out, "en", threshold=2)  # "one" and "first" stay words
    for pattern, replacement in _RULES:
        out = pattern.sub(replacement, out)
    out = re.sub(r"\$(\d+)\.(\d)\b", r"$\1.\g<2>0", out)  # "$1.5" -> "$1.50"
    return out
