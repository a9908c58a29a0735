"""Typos mended before the intent router reads a message ("quick sumary pls" -> "quick summary pls").

The router's encoder splits a misspelt word into pieces it has no meaning for: "sumary" reads as "sum" + "ary",
and the message's likeliest intent fell from overview 0.73 to 0.34. A word is mended only where that is safe: it is
long (MIN_LEN letters), neither a word the sellers' phrasings use nor a whole word of the encoder's vocabulary
(so product and brand names the encoder knows stay), and exactly one edit (a letter dropped, added, changed or two
swapped) from a word of the phrasings; of several such words, the one the phrasings use most. Quoted text (a search
term, a keyword as the seller typed it) is never touched. Only the router reads the mended text: the model, the
tools and the stored thread keep the seller's own words.

Texting shorthand the phrasings never use is spelled out ("y is acos up" -> "why is acos up": the encoder reads a
lone "y" as the letter, and the router was 0.33 sure of a kpi change instead of 0.76); shorthand the phrasings do
use ("pls", "wat", "u") the router has learned, and it stays.

The vocabulary is the words of the curriculum's train phrasing families (never the held-out ones, so the held-out
evaluation measures mending of words it was not built from).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

MIN_LEN = 5  # shorter words have too many neighbours one edit away ("rn", "yday", "acos" stay as typed)
_WORD = re.compile(r"\bb4\b|[A-Za-z]+")
# common texting shorthand and its words (only those the train phrasings never use are spelled out: `shorthand`)
SHORTHAND = {
    "y": "why",
    "u": "you",
    "ur": "your",
    "r": "are",
    "bc": "because",
    "cuz": "because",
    "rn": "right now",
    "idk": "I don't know",
    "lemme": "let me",
    "wanna": "want to",
    "gonna": "going to",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "wat": "what",
    "abt": "about",
    "b4": "before",
}
_QUOTED = re.compile(r"(\"[^\"]*\"|'[^']*'|“[^”]*”)")


@lru_cache(maxsize=1)
def vocabulary() -> Counter[str]:
    """Lower-case words of the train phrasing families, with how often they occur."""
    # lazy: pulls in yaml and pydantic at import (agent.router imports this module)
    from agent.curriculum.phrasings import Section, load_phrasings, patterns

    counts: Counter[str] = Counter()
    for intent in load_phrasings():
        for section in Section:
            for _, pattern in patterns(intent, section, heldout=False):
                text = re.sub(r"\{[^}]*\}", " ", pattern.text)  # slots are not words
                counts.update(w.lower() for w in _WORD.findall(text))
    return counts


@lru_cache(maxsize=1)
def _encoder_words() -> frozenset[str]:
    """Whole words of the router encoder's WordPiece vocabulary (empty where the encoder is not installed)."""
    try:
        # lazy: pulls in pydantic_settings at import; optional (the encoder may be missing)
        from tools.keywords.embeddings import model_path

        vocab = (model_path() / "vocab.txt").read_text(encoding="utf-8").split("\n")
    except (ImportError, OSError, RuntimeError):  # RuntimeError: the model package is missing
        return frozenset()
    return frozenset(w for w in vocab if w.isalpha() and w.islower())


@lru_cache(maxsize=1)
def _spelled_out() -> dict[str, str]:
    """The SHORTHAND the train phrasings never use (the router has not learned it), and its words."""
    counts = vocabulary()
    return {short: words for short, words in SHORTHAND.items() if not counts[short]}


@lru_cache(maxsize=4096)
def mend_word(word: str) -> str:
    """The phrasings' word one edit from `word`, shorthand the router never saw spelled out, or `word` itself (see
    the module docstring)."""
    low = word.lower()
    if low in _spelled_out():
        return _spelled_out()[low]
    counts = vocabulary()
    if len(low) < MIN_LEN or low in counts or low in _encoder_words():
        return word
    # lazy: pulls in rapidfuzz at import
    from rapidfuzz import process
    from rapidfuzz.distance import DamerauLevenshtein

    near = process.extract(
        low,
        [w for w in counts if len(w) >= MIN_LEN and abs(len(w) - len(low)) <= 1],
        scorer=DamerauLevenshtein.distance,
        score_cutoff=1,
        limit=None,
    )
    if not near:
        return word
    return max(near, key=lambda m: (counts[m[0]], m[0]))[0]


def mend(text: str) -> str:
    """`text` with its unquoted misspelt words mended (see the module docstring)."""
    parts = _QUOTED.split(text)
    return "".join(
        part if i % 2 else _WORD.sub(lambda m: mend_word(m.group(0)), part) for i, part in enumerate(parts)
    )
