"""Slot renderers: an entity or a value as a seller would write it, several ways.

Each renderer returns (text, style); styles are split into train and held-out sets (`HELDOUT_STYLES`), like
the phrasing families, so an evaluation can measure numbers and names written in ways no training dialogue
used. Entity mentions are the seller's words (a keyword's text, a campaign's distinctive words, a product, an
experiment by kind and month), sometimes the id; the tools resolve them, so the gold call carries exactly the
words the message used.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np

Rng = np.random.Generator

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]

# Styles no training dialogue uses (the held-out suite draws only these where it can).
HELDOUT_STYLES = frozenset(
    {
        "money_and_cents",
        "money_k",
        "pct_fraction_word_of",
        "acos_decimal_pct",
        "exp_ordinal",
        "kw_quoted_match",
        "camp_full_lower",
    }
)


def number_words(n: int) -> str:
    """0..999 in words: 75 -> 'seventy five', 120 -> 'one hundred twenty'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))


def _choose(rng: Rng, options: list[tuple[str, str]], heldout: bool) -> tuple[str, str]:
    """A (text, style) option: train styles only, or held-out styles where any apply (else train ones)."""
    pool = [o for o in options if (o[1] in HELDOUT_STYLES) == heldout] or [
        o for o in options if o[1] not in HELDOUT_STYLES
    ]
    return pool[int(rng.integers(len(pool)))]


def money(value: float, rng: Rng, heldout: bool = False) -> tuple[str, str]:
    """An amount as a seller types it: 2.25, $2.25, 2.25 dollars, two twenty five, a buck fifty, 75 bucks."""
    dollars, cents = int(value), int(round((value - int(value)) * 100))
    if cents == 100:
        dollars, cents = dollars + 1, 0
    digits = f"{value:.2f}" if cents else f"{dollars}"
    options = [
        (digits, "money_digits"),
        (f"${digits}", "money_dollar_sign"),
        (f"{digits} dollars", "money_word_dollars"),
    ]
    if cents and cents % 10 == 0:
        options.append((f"{value:.1f}", "money_one_decimal"))
    if dollars < 1000 and cents == 0:
        options += [(f"{number_words(dollars)} dollars", "money_words"), (f"{dollars} bucks", "money_bucks")]
        if dollars >= 1000 or dollars % 100 == 0 and dollars >= 100:
            options.append((f"{dollars // 1000 if dollars >= 1000 else dollars / 1000:g}k", "money_k"))
    if 0 < dollars < 20 and cents:
        c = number_words(cents) if cents >= 10 else f"oh {number_words(cents)}"
        options += [
            (f"{number_words(dollars)} {c}", "money_spoken"),
            (f"{number_words(dollars)} dollars and {number_words(cents)} cents", "money_and_cents"),
        ]
        if dollars == 1:
            options.append((f"a buck {number_words(cents)}", "money_buck"))
    if dollars == 0 and cents:
        options += [(f"{cents} cents", "money_cents"), (f"{number_words(cents)} cents", "money_cents_words")]
    return _choose(rng, options, heldout)


# relative sizes a seller names, with their fraction
FRACTIONS: list[tuple[float, list[tuple[str, str]]]] = [
    (
        0.1,
        [
            ("10%", "pct_digits"),
            ("10 percent", "pct_word"),
            ("a tenth", "pct_fraction_word"),
            ("ten percent", "pct_spelled"),
            ("one tenth", "pct_fraction_word_of"),
        ],
    ),
    (0.15, [("15%", "pct_digits"), ("15 percent", "pct_word"), ("fifteen percent", "pct_spelled")]),
    (
        0.2,
        [
            ("20%", "pct_digits"),
            ("20 percent", "pct_word"),
            ("a fifth", "pct_fraction_word"),
            ("twenty percent", "pct_spelled"),
            ("one fifth", "pct_fraction_word_of"),
        ],
    ),
    (
        0.25,
        [
            ("25%", "pct_digits"),
            ("25 percent", "pct_word"),
            ("a quarter", "pct_fraction_word"),
            ("twenty five percent", "pct_spelled"),
            ("one quarter", "pct_fraction_word_of"),
        ],
    ),
    (0.3, [("30%", "pct_digits"), ("30 percent", "pct_word"), ("thirty percent", "pct_spelled")]),
    (
        0.5,
        [
            ("50%", "pct_digits"),
            ("half", "pct_fraction_word"),
            ("50 percent", "pct_word"),
            ("fifty percent", "pct_spelled"),
            ("one half", "pct_fraction_word_of"),
        ],
    ),
]


def fraction(rng: Rng, heldout: bool = False, *, upto: float = 1.0) -> tuple[float, str, str]:
    """(fraction, text, style) of a relative change's size."""
    sizes = [f for f in FRACTIONS if f[0] <= upto]
    size, options = sizes[int(rng.integers(len(sizes)))]
    text, style = _choose(rng, options, heldout)
    return size, text, style


def target_acos(rng: Rng, heldout: bool = False) -> tuple[float, str, str]:
    value = float(rng.choice([0.15, 0.2, 0.25, 0.3, 0.35, 0.4]))
    n = int(round(value * 100))
    options = [
        (f"{n}%", "acos_pct"),
        (f"{n} percent", "acos_word"),
        (f"{value:.2f}", "acos_decimal"),
        (f"{number_words(n)} percent", "acos_spelled"),
        (f"{n}", "acos_bare"),
        (f"{value:g}%".replace(f"{value:g}", f"{n}.0"), "acos_decimal_pct"),
    ]
    if value == 0.25:
        options.append(("a quarter", "acos_fraction"))
    if value == 0.2:
        options.append(("a fifth", "acos_fraction"))
    text, style = _choose(rng, options, heldout)
    return value, text, style


def target_roas(rng: Rng, heldout: bool = False) -> tuple[float, str, str]:
    value = float(rng.choice([2.0, 3.0, 4.0, 5.0, 6.0]))
    n = int(value)
    options = [
        (f"{n}", "roas_bare"),
        (f"{n}x", "roas_x"),
        (f"{n * 100}%", "roas_pct"),
        (number_words(n), "roas_words"),
    ]
    text, style = _choose(rng, options, heldout)
    return value, text, style


KPI_WORDS: dict[str, list[str]] = {
    "acos": ["acos", "ACoS", "ACOS", "advertising cost of sales"],
    "sales": ["sales", "revenue", "ad sales", "sales numbers"],
    "orders": ["orders", "conversions", "units sold", "order count"],
    "clicks": ["clicks", "traffic", "click volume"],
    "spend": ["spend", "ad spend", "costs", "spending"],
    "roas": ["roas", "ROAS", "return on ad spend"],
}
METRIC_WORDS: dict[str, list[str]] = {
    "spend": ["spend", "spending", "cost"],
    "sales": ["sales", "revenue"],
    "orders": ["orders", "conversions"],
    "clicks": ["clicks"],
    "impressions": ["impressions", "views"],
    "acos": ["acos", "ACoS"],
}
PERIODS: list[tuple[int, list[str]]] = [
    (7, ["last week", "the past week", "the last 7 days", "the past seven days"]),
    (14, ["the past 14 days", "the last two weeks", "the past fortnight"]),
    (30, ["the last 30 days", "the past month", "the last month"]),
    (3, ["the last 3 days", "the past three days"]),
]


# --- entity mentions -----------------------------------------------------------------------------------------


def _case(text: str, rng: Rng) -> str:
    r = rng.random()
    return text.title() if r < 0.12 else text.upper() if r < 0.15 else text


def typo(text: str, rng: Rng) -> str:
    """One slip of the keyboard in a word longer than four letters (drop, double or swap a letter)."""
    words = text.split()
    long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not long:
        return text
    i = long[int(rng.integers(len(long)))]
    w = words[i]
    j = int(rng.integers(1, len(w) - 1))
    kind = rng.integers(3)
    words[i] = (
        w[:j] + w[j + 1 :]
        if kind == 0
        else w[:j] + w[j] + w[j:]
        if kind == 1
        else w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    )
    return " ".join(words)


def keyword_mention(
    kw: dict[str, Any], rng: Rng, heldout: bool = False, *, allow_id: bool = True
) -> tuple[str, str]:
    text = kw["text"]
    options = [
        (_case(text, rng), "kw_text"),
        (text, "kw_text_plain"),
        (f"{text} {kw['match_type']}", "kw_text_match"),
        (f"'{text}' ({kw['match_type']})", "kw_quoted_match"),
    ]
    if allow_id:
        options.append((kw["id"], "kw_id"))
    weights = np.array([4.0, 4.0, 1.0, 1.0, 1.0][: len(options)])
    pool = [(o, w) for o, w in zip(options, weights, strict=True) if (o[1] in HELDOUT_STYLES) == heldout] or [
        (o, w) for o, w in zip(options, weights, strict=True) if o[1] not in HELDOUT_STYLES
    ]
    p = np.array([w for _, w in pool])
    return pool[int(rng.choice(len(pool), p=p / p.sum()))][0]


def campaign_words(name: str) -> str:
    """A campaign's distinctive words: 'SP - Generic - Bottle Warmer' -> 'bottle warmer'."""
    parts = [p.strip() for p in re.split(r"\s[-|/:]\s", name) if p.strip()]
    kept = [p for p in parts if p.lower() not in {"sp", "sponsored products", "generic", "manual"}]
    return " ".join(kept).lower() if kept else name.lower()


def campaign_mention(
    c: dict[str, Any], rng: Rng, heldout: bool = False, *, allow_id: bool = True
) -> tuple[str, str]:
    words = campaign_words(c["name"])
    options = [
        (words, "camp_words"),
        (_case(words, rng), "camp_words_case"),
        (c["name"], "camp_full"),
        (c["name"].lower(), "camp_full_lower"),
    ]
    if allow_id:
        options.append((c["id"], "camp_id"))
    return _choose(rng, options, heldout)


def ad_group_mention(g: dict[str, Any], rng: Rng, heldout: bool = False) -> tuple[str, str]:
    name = g["name"]
    parts = [p.strip() for p in name.split("+")]
    options = [(name.lower(), "ag_lower"), (name, "ag_name"), (g["id"], "ag_id")]
    if len(parts) > 1:
        options.append((f"{parts[0].lower()} and {parts[1].lower()}", "ag_and"))
    return _choose(rng, options, heldout)


_KIND_WORDS = {
    "promotion": [
        "promotion test",
        "coupon test",
        "discount test",
        "promo",
        "promo experiment",
        "price promotion",
    ],
    "ad_exposure": [
        "ads holdout",
        "holdout test",
        "incrementality test",
        "ad holdout experiment",
        "ghost ads test",
    ],
}
_SEASON = {
    3: "spring",
    4: "spring",
    5: "spring",
    6: "summer",
    7: "summer",
    8: "summer",
    9: "fall",
    10: "fall",
    11: "fall",
    12: "winter",
    1: "winter",
    2: "winter",
}


def experiment_mention(
    e: dict[str, Any], siblings: list[dict[str, Any]], rng: Rng, heldout: bool = False
) -> tuple[str, str]:
    """By kind and month ('the coupon test from July'), by season, by order, or by id."""
    start = dt.date.fromisoformat(str(e["start"]))
    kind = str(rng.choice(_KIND_WORDS.get(e["kind"], ["test"])))
    month = start.strftime("%B")
    options = [
        (f"the {kind} from {month}", "exp_month"),
        (f"my {month} {kind}", "exp_month_first"),
        (f"the {_SEASON[start.month]} {kind}", "exp_season"),
        (e["id"], "exp_id"),
    ]
    same_kind = sorted((s for s in siblings if s["kind"] == e["kind"]), key=lambda s: str(s["start"]))
    if same_kind and same_kind[-1]["id"] == e["id"]:
        options.append((f"the latest {kind}", "exp_ordinal"))
    if len(same_kind) == 1:
        options.append((f"the {kind}", "exp_kind_only"))
    return _choose(rng, options, heldout)


# Store names for another advertiser, made up here and unlike the generated marketplace's own brands (an
# evaluation on a world names rivals the training never saw). Only the sentence says "someone else's data".
_STORE_HEADS = [
    "Maple",
    "Harbor",
    "Quill",
    "Juniper",
    "Atlas",
    "Copper",
    "Willow",
    "Summit",
    "Fable",
    "Ember",
    "Marble",
    "Pioneer",
    "Coral",
    "Aspen",
    "Falcon",
    "Meadow",
    "Crest",
    "Birch",
    "Tidal",
    "Vista",
]
_STORE_TAILS = [
    "Goods",
    "Living",
    "Supply",
    "Kitchen",
    "Outfitters",
    "& Co",
    "Direct",
    "Brands",
    "Essentials",
    "Depot",
    "Collective",
    "Trading",
]


def other_account_mention(own_id: str, rng: Rng, heldout: bool = False) -> tuple[str, str, str]:
    """Another advertiser, as a seller names it: its id, its store name, or its brand in lower case.
    Returns (value, text, style); the value is the id where one was written, else the name."""
    own = int(own_id.rsplit("_", 1)[-1]) if own_id.rsplit("_", 1)[-1].isdigit() else 0
    other = f"adv_{(own + int(rng.integers(1, 50))) % 9999:04d}"
    store = f"{rng.choice(_STORE_HEADS)} {rng.choice(_STORE_TAILS)}"
    brand = str(rng.choice(_STORE_HEADS)) + str(rng.choice(["ly", "ora", "ix", "ella", "io", "wise"]))
    options = [
        (other, "rival_id"),
        (store, "rival_store"),
        (brand, "rival_brand"),
        (brand.lower(), "rival_brand_lower"),
    ]
    text, style = _choose(rng, options, heldout)
    return (other if style == "rival_id" else text), text, style
