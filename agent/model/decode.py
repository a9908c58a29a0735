"""Grammar-constrained decoding for the embedded model: a malformed tool call is impossible, not caught.

The grammar is written in llguidance's Lark dialect from the bound tools' JSON schemas, and llguidance (the
Rust engine vLLM's `guidance` structured-output backend uses) computes the allowed tokens at every step. What
it admits: an answer (free text), a decision (`<confirm>`/`<reject>`, only while a proposal waits), or one or
more calls, each `<tool_call> name : key = value ; ... </tool_call>` with the tool name from the bound tools,
arguments in the schema's order (required ones present, optional ones skippable, none twice), enum values
from the enum, numbers and dates as such, and names (ids, or the seller's words for an entity) copied word by
word from the prompt, where the user's words and every id the thread has shown are.

llguidance works on the bytes of tokens; WordPiece drops the spaces around punctuation, so each token's
bytes are its word with a leading space (a continuation "##xy" is "xy"), and the grammar describes that
spaced text (" what _ if :"). `agent.model.text` turns tokens back into exact text afterwards.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from agent.model.text import CALL_CLOSE, CALL_OPEN, CONFIRM, REJECT, SPECIAL

SPAN_FIELDS = frozenset({"id", "keyword_id", "campaign_id", "ad_group_id", "experiment_id", "query", "text",
                         "campaign_ids"})
_HARD = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
_SEPARATORS = {";", "=", "[", "]", "{", "}", ",", "<", ">", "|"}


@dataclass(eq=False)
class Vocab:
    """The tokenizer as llguidance sees it, and each token's bytes (built once per tokenizer)."""

    tok: Any
    ll: Any
    token_bytes: list[bytes]
    sep: int
    size: int

    def spaced(self, text: str) -> str:
        """The grammar's view of `text`: its tokens' bytes joined (" what _ if")."""
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
    import llguidance

    vocab = tok.get_vocab()
    inverse = {i: t for t, i in vocab.items()}
    size = tok.get_vocab_size()
    token_bytes: list[bytes] = []
    special: list[int] = []
    for i in range(size):
        t = inverse.get(i, "[UNK]")
        if t in _HARD or t.startswith("[unused") or (t.startswith("[") and t.endswith("]") and t not in SPECIAL):
            token_bytes.append(f"<{t}>".encode())
            special.append(i)
        elif t.startswith("##"):
            token_bytes.append(t[2:].encode())
        else:
            token_bytes.append(f" {t}".encode())
    sep = int(vocab["[SEP]"])
    ll = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Wrapper(tok, token_bytes, special, sep)))
    return Vocab(tok=tok, ll=ll, token_bytes=token_bytes, sep=sep, size=size)


# --- the grammar -------------------------------------------------------------------------------------------------


def _lit(text: str) -> str:
    return json.dumps(text)


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


def _value(v: Vocab, prop: dict[str, Any], key: str, rules: dict[str, str], rule_name: str) -> str:
    kind = _kind(prop, key)
    if kind == "enum":
        return "(" + " | ".join(_lit(v.spaced(str(x))) for x in prop["enum"]) + ")"
    if kind == "number":
        return "number"
    if kind == "integer":
        return "DIGITS"
    if kind == "boolean":
        return '(" true" | " false")'
    if kind == "date":
        return "DATE"
    if kind == "span":
        return "span"
    if kind == "free":
        return "free"
    items = prop.get("items") or {}
    if kind == "strings":
        item = _value(v, items, key, rules, rule_name + "_item")
        return f'" [" {item} (" ," {item})* " ]"'
    # a list of objects: each `{ key = value , ... }` in the item schema's order
    obj = rule_name + "_obj"
    required = set(items.get("required") or [])
    parts = []
    for k, p in (items.get("properties") or {}).items():
        piece = f"{_lit(v.spaced(k) + ' =')} {_value(v, p, k, rules, obj + '_' + k)} {_lit(' ,')}"
        parts.append(f"({piece})" + ("" if k in required else "?"))
    rules[obj] = _lit(" {") + " " + " ".join(parts) + " " + _lit(" }")
    return f'" [" {obj} (" ," {obj})* " ]"'


@functools.lru_cache(maxsize=64)
def _tool_rules(v: Vocab, schemas_json: str) -> tuple[str, str]:
    """(the alternation of tools, their rules) for a set of tool schemas (cached: the same tools every turn)."""
    schemas: dict[str, dict[str, Any]] = json.loads(schemas_json)
    rules: dict[str, str] = {}
    names = []
    for i, (name, schema) in enumerate(schemas.items()):
        rule = f"t{i}"
        names.append(rule)
        required = set(schema.get("required") or [])
        parts = [_lit(v.spaced(name) + " :")]
        for key, prop in (schema.get("properties") or {}).items():
            piece = f"{_lit(v.spaced(key) + ' =')} {_value(v, prop, key, rules, f'{rule}_{len(parts)}')} {_lit(' ;')}"
            parts.append(f"({piece})" + ("" if key in required else "?"))
        rules[rule] = " ".join(parts)
    body = "\n".join(f"{k}: {r}" for k, r in rules.items())
    return " | ".join(names), body


def prompt_words(v: Vocab, prompt_ids: list[int]) -> list[str]:
    """The prompt's words as the grammar sees them (a word-start token and its continuations), separators out."""
    words: list[bytes] = []
    for i in prompt_ids:
        b = v.token_bytes[i]
        if b.startswith(b"<["):
            continue
        if b.startswith(b" ") or not words:
            words.append(b)
        else:
            words[-1] += b
    out = {w.decode("utf-8", "replace") for w in words}
    return sorted(w for w in out if w.strip() and w.strip() not in _SEPARATORS and not w.strip().startswith("["))


def grammar_for(v: Vocab, schemas: dict[str, dict[str, Any]], prompt_ids: list[int], *, pending: bool) -> str:
    tools, rules = _tool_rules(v, json.dumps(schemas, sort_keys=False))
    words = prompt_words(v, prompt_ids) or [" none"]
    decision = f" | {_lit(' ' + CONFIRM)} | {_lit(' ' + REJECT)}" if pending else ""
    return f"""%llguidance {{}}
start: answer | calls{decision}
answer: /[^<]+/
calls: call+
call: {_lit(' ' + CALL_OPEN)} ({tools}) {_lit(' ' + CALL_CLOSE)}
{rules}
span: SPANWORD+
SPANWORD: {' | '.join(_lit(w) for w in words)}
number: NEG? DIGITS DECIMAL?
NEG: " -"
DIGITS: / [0-9]+/
DECIMAL: / \\. [0-9]+/
DATE: / [0-9]{{4}} - [0-9]{{2}} - [0-9]{{2}}/
free: FREEWORD+
FREEWORD: / [^ ;=<\\[\\]{{}},]+/
"""


# --- generation ----------------------------------------------------------------------------------------------


@dataclass
class Generation:
    ids: list[int]
    logprob: float
    model_calls: int


def matcher(v: Vocab, grammar: str) -> Any:
    import llguidance

    m = llguidance.LLMatcher(v.ll, llguidance.LLMatcher.grammar_from_lark(grammar))
    if m.is_error():
        raise ValueError(f"the tool schemas give no usable grammar: {m.get_error()}")
    return m


def _allowed(m: Any, size: int) -> torch.Tensor:
    import numpy as np

    packed = np.frombuffer(m.compute_bitmask(), dtype=np.uint8)
    bits = np.unpackbits(packed, bitorder="little").astype(bool)[:size]
    return torch.from_numpy(np.pad(bits, (0, max(0, size - bits.shape[0]))))


def generate(model: Any, v: Vocab, grammar: str, prompt_ids: list[int], *, max_new_tokens: int = 200,
             temperature: float = 0.0, generator: torch.Generator | None = None, deadline: float | None = None
             ) -> Generation:
    """Decode one output under the grammar (greedy, or sampled at `temperature`). Tokens the grammar forces are
    fed to the model together, without asking it."""
    m = matcher(v, grammar)
    logits, cache = model.start(torch.tensor([prompt_ids]))
    out: list[int] = []
    total, calls = 0.0, 1
    while len(out) < max_new_tokens:
        if deadline is not None and time.time() >= deadline:
            raise TimeoutError("generation stopped at this turn's time budget")
        mask = _allowed(m, logits.shape[-1])
        scores = logits[0].float().masked_fill(~mask, float("-inf"))
        logp = torch.log_softmax(scores / temperature if temperature > 0 else scores, dim=-1)
        token = int(torch.multinomial(logp.exp(), 1, generator=generator)) if temperature > 0 else int(torch.argmax(scores))
        total += float(logp[token])
        if token == v.sep:
            out.append(token)
            break
        if not m.consume_token(token):
            raise ValueError(f"the grammar refused token {token}: {m.get_error()}")
        feed = [token, *m.compute_ff_tokens()]
        for forced in feed[1:]:
            m.consume_token(forced)
        out += feed
        if m.is_stopped():
            out.append(v.sep)
            break
        logits, cache = model.extend(torch.tensor([feed]), cache)
        calls += 1
    else:
        out.append(v.sep)  # the token limit cut it off; the parser reports what is unfinished
    return Generation(ids=out, logprob=total if math.isfinite(total) else -1e9, model_calls=calls)
