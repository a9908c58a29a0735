"""Grammar-constrained decoding for the embedded model: a malformed tool call is impossible, not caught.

The grammar is written in llguidance's Lark dialect from the bound tools' JSON schemas, and llguidance (the
Rust engine vLLM's `guidance` structured-output backend uses) computes the allowed tokens at every step. What
it admits: an answer (free text), a decision (`<confirm>`/`<reject>`, only while a proposal waits), or one or
more calls, each `<tool_call> name : key = value ; ... </tool_call>` with the tool name from the bound tools,
arguments in the schema's order (required ones present, optional ones skippable, none twice), enum values
from the enum, numbers and dates as such, and names (ids, or the seller's words for an entity) copied as a
contiguous run of words from the prompt, where the user's words and every id the thread has shown are.

llguidance works on the bytes of tokens. Every fixed piece of a call (a tool name, a key, "=", an enum value, a
word copied from the prompt) is written in the grammar as its exact token ids (`<[id]>`), so the model can only
write it the way the tokenizer does; only numbers, dates and free text are byte patterns. A token's bytes are
its word with a leading space (a continuation "##xy" is "xy"), which keeps "x" and "##x" apart. No pattern
ever forces a single next byte (llguidance then expects the caller to feed forced tokens it derives by
re-tokenizing bytes, which token-id literals defeat). `agent.model.text` turns tokens back into text.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from agent.model.text import CALL_CLOSE, CALL_OPEN, CONFIRM, REJECT, SPECIAL, USER
from tools.mcp_server.schemas import entity_arguments

MAX_SPAN_WORDS = 12  # words a name-valued argument may copy
USER_NUMBER_FIELDS = frozenset(
    {"value", "total_budget"}
)  # copied from the user's figures when they typed any
# copied from the prompt's words: the registry's entity arguments (ids, or the seller's words for them) and the
# free-text ones
SPAN_FIELDS = entity_arguments() | {"query", "text"}
_HARD = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
_SEPARATORS = {";", "=", "[", "]", "{", "}", ",", "<", ">", "|"}


@dataclass(eq=False)
class Vocab:
    """The tokenizer as llguidance sees it, and each token's bytes (built once per tokenizer)."""

    tok: Any
    ll: Any
    token_bytes: list[bytes]
    continues: list[bool]  # a "##" piece: it continues the word before it
    sep: int
    size: int

    def spaced(self, text: str) -> str:
        """The grammar's view of `text`: its tokens' bytes joined ("what_if")."""
        ids = self.tok.encode(text, add_special_tokens=False).ids
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8", "replace")


class _Wrapper:
    """What llguidance.TokenizerWrapper reads: the token bytes, EOS and the special tokens."""

    def __init__(self, tok: Any, token_bytes: list[bytes], special: list[int], eos: int) -> None:
        self.eos_token_id = eos
        self.bos_token_id = None
        self.tokens = token_bytes
        self.special_token_ids = special
        self._tok = tok

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return list(self._tok.encode(text, add_special_tokens=False).ids)


def make_vocab(tok: Any) -> Vocab:
    # lazy: llguidance is heavy and needed only here
    import llguidance

    vocab = tok.get_vocab()
    inverse = {i: t for t, i in vocab.items()}
    size = tok.get_vocab_size()
    token_bytes: list[bytes] = []
    continues: list[bool] = []
    special: list[int] = []
    for i in range(size):
        t = inverse.get(i, "[UNK]")
        continues.append(t.startswith("##"))
        if (
            t in _HARD
            or t.startswith("[unused")
            or (t.startswith("[") and t.endswith("]") and t not in SPECIAL)
        ):
            token_bytes.append(f"<{t}>".encode())
            special.append(i)
        elif t.startswith("##"):
            token_bytes.append(t[2:].encode())
        else:
            token_bytes.append(f" {t}".encode())
    sep = int(vocab["[SEP]"])
    ll = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Wrapper(tok, token_bytes, special, sep)))
    return Vocab(tok=tok, ll=ll, token_bytes=token_bytes, continues=continues, sep=sep, size=size)


# --- the grammar -------------------------------------------------------------------------------------------------


def _lit(text: str) -> str:
    return json.dumps(text)


def _toks(v: Vocab, text: str) -> str:
    """`text` as its exact tokens (`<[id]>` literals): the model may only write a name, key or enum value the way
    the tokenizer writes it, so what the grammar admits is what the text says."""
    ids = v.tok.encode(text, add_special_tokens=False).ids
    return "(" + " ".join(f"<[{i}]>" for i in ids) + ")"


def _kind(prop: dict[str, Any], key: str) -> str:
    if "enum" in prop:
        return "enum"
    t = prop.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t == "array":
        return "objects" if (prop.get("items") or {}).get("type") == "object" else "strings"
    if t in ("number", "integer", "boolean"):
        return str(t)
    if prop.get("format") == "date":
        return "date"
    return "span" if key in SPAN_FIELDS else "free"


def _int_pattern(lo: int, hi: int | None) -> str:
    """A regex (bytes of the number's tokens: an optional leading space) for the integers lo..hi."""
    # too many to list: fewer digits than the maximum has (10000 -> up to 9999)
    if hi is None or hi - lo > 2000:
        more = 8 if hi is None else max(0, len(str(hi)) - 2)
        first = f"[1-9][0-9]{{0,{more}}}" if lo >= 1 else f"0|[1-9][0-9]{{0,{more}}}"
        return f"/ ?({first})/"
    return "/ ?(" + "|".join(str(n) for n in range(hi, lo - 1, -1)) + ")/"


def _number(v: Vocab, prop: dict[str, Any], rules: dict[str, str], rule_name: str) -> str:
    """A number inside the schema's bounds (minimum/exclusiveMinimum/maximum), up to 4 decimals."""
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    positive = "exclusiveMinimum" in prop and prop["exclusiveMinimum"] >= 0
    high = prop.get("maximum")
    dot, dash = _toks(v, "."), _toks(v, "-")
    # (the maximum's own whole part takes decimals too: a separate branch for it alone would force bytes, which
    # llguidance's masks need forced-token handling for; 100.5 for a maximum of 100 is left to the tool to refuse)
    whole_max = None if high is None else int(high)
    forms = [f"{_int_pattern(1, whole_max)} ({dot} FRACTION)?", f"ZERO {dot} NONZERO_FRACTION"]
    if not positive:
        forms.append("ZERO")
    if low is not None and low < 0:  # e.g. relative_change > -1: "-0.2"
        forms.append(f"{dash} ZERO {dot} NONZERO_FRACTION")
    elif low is None:
        forms.append(f"{dash} {_int_pattern(1, None)} ({dot} FRACTION)?")
    rules[rule_name] = " | ".join(f"({f})" for f in forms)
    return rule_name


def _value(v: Vocab, prop: dict[str, Any], key: str, rules: dict[str, str], rule_name: str) -> str:
    kind = _kind(prop, key)
    if kind == "enum":
        return "(" + " | ".join(_toks(v, str(x)) for x in prop["enum"]) + ")"
    if kind == "number" and key in USER_NUMBER_FIELDS:
        return "usernumber"  # the user's own figures when the message has any (grammar_for)
    if kind == "number":
        return _number(v, prop, rules, rule_name + "_num")
    if kind == "integer":
        return _int_pattern(int(prop.get("minimum", 0)), prop.get("maximum"))
    if kind == "boolean":
        return f"({_toks(v, 'true')} | {_toks(v, 'false')})"
    if kind == "date":
        return "date"
    if kind == "span":
        return "span"
    if kind == "free":
        return "free"
    items = prop.get("items") or {}
    comma = _toks(v, ",")
    if kind == "strings":
        item = _value(v, items, key, rules, rule_name + "_item")
        return f"{_toks(v, '[')} {item} ({comma} {item})* {_toks(v, ']')}"
    # a list of objects: each `{ key = value , ... }` in the item schema's order
    obj = rule_name + "_obj"
    required = set(items.get("required") or [])
    parts = []
    for k, p in (items.get("properties") or {}).items():
        piece = f"{_toks(v, k)} {_toks(v, '=')} {_value(v, p, k, rules, obj + '_' + k)} {comma}"
        parts.append(f"({piece})" + ("" if k in required else "?"))
    rules[obj] = _toks(v, "{") + " " + " ".join(parts) + " " + _toks(v, "}")
    return f"{_toks(v, '[')} {obj} ({comma} {obj})* {_toks(v, ']')}"


@functools.lru_cache(maxsize=64)
def _tool_rules(v: Vocab, schemas_json: str) -> tuple[str, str]:
    """(the alternation of tools, their rules) for a set of tool schemas (cached: the same tools every turn)."""
    schemas: dict[str, dict[str, Any]] = json.loads(schemas_json)
    rules: dict[str, str] = {}
    names = []
    semi, eq = _toks(v, ";"), _toks(v, "=")
    for i, (name, schema) in enumerate(schemas.items()):
        rule = f"t{i}"
        names.append(rule)
        required = set(schema.get("required") or [])
        parts = [f"{_toks(v, name)} {_toks(v, ':')}"]
        for key, prop in (schema.get("properties") or {}).items():
            piece = f"{_toks(v, key)} {eq} {_value(v, prop, key, rules, f'{rule}_{len(parts)}')} {semi}"
            parts.append(f"({piece})" + ("" if key in required else "?"))
        rules[rule] = " ".join(parts)
    body = "\n".join(f"{k}: {r}" for k, r in rules.items())
    return " | ".join(names), body


def prompt_words(v: Vocab, prompt_ids: list[int]) -> list[list[tuple[int, ...]]]:
    """The prompt's runs of words, each word a token sequence (a word-start token and its continuations); a
    separator or a special token ends a run."""
    skip = {v.tok.token_to_id(s) for s in _SEPARATORS} | {v.tok.token_to_id(s) for s in SPECIAL}
    runs: list[list[list[int]]] = [[]]
    for i in prompt_ids:
        if v.token_bytes[i].startswith(b"<[") or i in skip:
            runs.append([])
        elif v.continues[i] and runs[-1]:
            runs[-1][-1].append(i)
        else:
            runs[-1].append([i])
    return [[tuple(w) for w in run] for run in runs if run]


def span_rule(v: Vocab, prompt_ids: list[int]) -> str:
    """A name-valued argument is a contiguous run of up to MAX_SPAN_WORDS prompt words (a copy of the user's
    words, or an id the thread shows), written as a prefix tree of token literals."""
    trie: dict[tuple[int, ...], dict] = {}  # type: ignore[type-arg]
    for run in prompt_words(v, prompt_ids):
        for start in range(len(run)):
            node = trie
            for word in run[start : start + MAX_SPAN_WORDS]:
                node = node.setdefault(word, {})
    if not trie:
        trie = {tuple(v.tok.encode("none", add_special_tokens=False).ids): {}}

    def render(node: dict) -> str:  # type: ignore[type-arg]
        alts = []
        for word, child in node.items():
            literal = " ".join(f"<[{i}]>" for i in word)
            alts.append(f"({literal} {render(child)}?)" if child else f"({literal})")
        return "(" + " | ".join(alts) + ")"

    return render(trie)


def user_numbers(v: Vocab, prompt_ids: list[int]) -> list[tuple[int, ...]]:
    """The figures of this turn's user message ("3.89", "1192", "70"), each as its token ids: a bid, budget or
    total the user typed is copied, not rewritten (a small model writes 3.9 for 3.89, 120 for 1192). Years
    (1900-2099 without decimals) are names ("dumbbells 2026"), not amounts."""
    user, dot = v.tok.token_to_id(USER), v.tok.token_to_id(".")
    starts = [i for i, t in enumerate(prompt_ids) if t == user]
    if not starts:
        return []
    specials = {v.tok.token_to_id(s) for s in SPECIAL} | {v.sep}
    segment: list[int] = []
    for t in prompt_ids[starts[-1] + 1 :]:
        if t in specials:
            break
        segment.append(t)

    def digits(t: int) -> bool:
        return v.token_bytes[t].strip().isdigit()

    found: list[tuple[int, ...]] = []
    joiners = {v.tok.token_to_id("_"), v.tok.token_to_id("-")}  # kw_0000123, exp_0001_1: an id, not a figure
    i = 0
    while i < len(segment):
        if digits(segment[i]) and not v.continues[segment[i]] and not (i and segment[i - 1] in joiners):
            j = i + 1
            while j < len(segment) and v.continues[segment[j]] and digits(segment[j]):
                j += 1
            if (
                j + 1 < len(segment)
                and segment[j] == dot
                and digits(segment[j + 1])
                and not v.continues[segment[j + 1]]
            ):
                j += 2
                while j < len(segment) and v.continues[segment[j]] and digits(segment[j]):
                    j += 1
            number = tuple(segment[i:j])
            text = b"".join(v.token_bytes[t].strip() for t in number).decode()
            year = text.isdigit() and 1900 <= int(text) <= 2099
            if (
                not year
                and not (text.startswith("0") and text.isdigit())
                and float(text) > 0
                and number not in found
            ):
                found.append(number)
            i = j
        else:
            i += 1
    return found


def grammar_for(
    v: Vocab, schemas: dict[str, dict[str, Any]], prompt_ids: list[int], *, pending: bool, answer: bool = True
) -> str:
    """The output grammar; `answer=False` leaves only calls (the router is sure the turn starts with one)."""
    tools, rules = _tool_rules(v, json.dumps(schemas, sort_keys=False))
    start = " | ".join(
        [
            *(["answer"] if answer or not schemas else []),
            "calls",
            *([_toks(v, CONFIRM), _toks(v, REJECT)] if pending else []),
        ]
    )
    dash = _toks(v, "-")
    numbers = user_numbers(v, prompt_ids)
    any_number: dict[str, str] = {}
    fallback = _number(v, {"exclusiveMinimum": 0}, any_number, "anynumber")
    usernumber = (
        " | ".join("(" + " ".join(f"<[{i}]>" for i in n) + ")" for n in numbers) if numbers else fallback
    )
    return f"""%llguidance {{}}
start: {start}
answer: /[^<]+/
calls: call~1..6
call: {_toks(v, CALL_OPEN)} ({tools}) {_toks(v, CALL_CLOSE)}
{rules}
usernumber: {usernumber}
{fallback}: {any_number[fallback]}
span: {span_rule(v, prompt_ids)}
date: YEAR {dash} MONTH {dash} DAY
YEAR: / ?2[0-9]{{3}}/
MONTH: / ?(0[1-9]|1[0-2])/
DAY: / ?(0[1-9]|[12][0-9]|3[01])/
ZERO: / ?0/
FRACTION: / ?[0-9]{{1,4}}/
NONZERO_FRACTION: / ?0{{0,3}}[1-9][0-9]{{0,3}}/
free: FREEWORD~1..{MAX_SPAN_WORDS}
FREEWORD: / ?[^ ;=<\\[\\]{{}},]+/
"""


# --- generation ----------------------------------------------------------------------------------------------


@dataclass
class Generation:
    ids: list[int]
    logprob: float
    model_calls: int


def matcher(v: Vocab, grammar: str) -> Any:
    # lazy: llguidance is heavy and needed only here
    import llguidance

    m = llguidance.LLMatcher(v.ll, llguidance.LLMatcher.grammar_from_lark(grammar))
    if m.is_error():
        raise ValueError(f"the tool schemas give no usable grammar: {m.get_error()}")
    return m


def _allowed(m: Any, size: int) -> torch.Tensor:
    # lazy: numpy is heavy and needed only here
    import numpy as np

    packed = np.frombuffer(m.compute_bitmask(), dtype=np.uint8)
    bits = np.unpackbits(packed, bitorder="little").astype(bool)[:size]
    return torch.from_numpy(np.pad(bits, (0, max(0, size - bits.shape[0]))))


def generate(
    model: Any,
    v: Vocab,
    grammar: str,
    prompt_ids: list[int],
    *,
    max_new_tokens: int = 200,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    deadline: float | None = None,
    banned: list[int] | None = None,
) -> Generation:
    """Decode one output under the grammar (greedy, or sampled at `temperature`); `banned` tokens never (value
    references the prompt does not carry). Tokens the grammar forces (the only one it allows next) are fed to the
    model together, without asking it. (llguidance's own
    compute_ff_tokens re-tokenizes forced bytes, which does not work with the grammar's token-id literals.)"""
    m = matcher(v, grammar)
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", 10**9)
    max_new_tokens = min(max_new_tokens, limit - len(prompt_ids) - 1)
    logits, cache = model.start(torch.tensor([prompt_ids]))
    out: list[int] = []
    total, calls = 0.0, 1
    while len(out) < max_new_tokens:
        if deadline is not None and time.time() >= deadline:
            raise TimeoutError("generation stopped at this turn's time budget")
        mask = _allowed(m, logits.shape[-1])
        if banned:
            mask[banned] = False
        scores = logits[0].float().masked_fill(~mask, float("-inf"))
        logp = torch.log_softmax(scores / temperature if temperature > 0 else scores, dim=-1)
        token = (
            int(torch.multinomial(logp.exp(), 1, generator=generator))
            if temperature > 0
            else int(torch.argmax(scores))
        )
        total += float(logp[token])
        if token == v.sep:
            out.append(token)
            break
        if not m.consume_token(token):
            raise ValueError(f"the grammar refused token {token}: {m.get_error()}")
        feed = [token]
        while len(out) + len(feed) < max_new_tokens and not m.is_stopped():
            nxt = _allowed(m, logits.shape[-1])
            if int(nxt.sum()) != 1 or m.is_accepting():
                break
            forced = int(nxt.nonzero()[0])  # the grammar allows this token only: no need to ask the model
            m.consume_token(forced)
            feed.append(forced)
        out += feed
        if m.is_stopped():
            out.append(v.sep)
            break
        logits, cache = model.extend(torch.tensor([feed]), cache)
        calls += 1
    else:
        out.append(v.sep)  # the token limit cut it off; the parser reports what is unfinished
    return Generation(ids=out, logprob=total if math.isfinite(total) else -1e9, model_calls=calls)
