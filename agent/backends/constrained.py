"""Constrained tool calls for the in-process backend, with llguidance (the Rust grammar engine vLLM's
`guidance` structured-outputs backend uses) over the project's byte-level BPE tokenizer.

The policy is the OpenAI backend's: a call that breaks its schema (unknown tool, JSON that did not parse, an
id the advertiser does not own, a wrong type) is decoded again from its `<tool_call>` under a regex built by
`agent.backends.openai.arguments_regex` from the schema (the advertiser's own ids as enums), so even an
untrained model can only name a bound tool and one of those ids, in valid JSON. Calls that already fit their
schema keep what the model wrote (optional arguments included, which the regex leaves out).
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from agent.backends.openai import arguments_regex

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"


def call_regex(schemas: dict[str, dict[str, Any]]) -> str:
    """The JSON body of one hermes call to any of `schemas`' tools: name and arguments decided together."""
    if not schemas:
        raise ValueError("constrained decoding needs at least one tool schema")
    options = [
        r'\{"name": "' + re.escape(name) + r'", "arguments": ' + arguments_regex(schema) + r"\}"
        for name, schema in schemas.items()
    ]
    return "(" + "|".join(options) + ")"


def breaks_schema(call: dict[str, Any] | None, schemas: dict[str, dict[str, Any]]) -> bool:
    """True when `call` (a parsed {"name", "args"}, or None for one that did not parse) does not fit its schema."""
    if call is None or call.get("name") not in schemas:
        return True
    try:
        jsonschema.validate(call.get("args"), schemas[call["name"]])
    except (jsonschema.ValidationError, jsonschema.SchemaError):
        return True
    return False


class GrammarLogitsProcessor:
    """A transformers logits processor that lets through only the tokens the grammar allows next.

    Built per generation: it consumes each sampled token into its matcher, so it is stateful."""

    def __init__(self, matcher: Any, prompt_len: int) -> None:
        self.matcher = matcher
        self.prompt_len = prompt_len

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        # lazy: numpy is heavy and needed only here
        import numpy as np

        # lazy: torch is heavy and needed only here
        import torch

        if input_ids.shape[1] > self.prompt_len:
            self.matcher.consume_token(int(input_ids[0, -1]))
        if self.matcher.is_error():
            raise ValueError(f"constrained decoding failed: {self.matcher.get_error()}")
        packed = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(packed, bitorder="little").astype(bool)
        vocab = scores.shape[-1]
        mask = np.zeros(vocab, dtype=bool)
        mask[: min(vocab, allowed.shape[0])] = allowed[:vocab]
        return scores.masked_fill(~torch.from_numpy(mask).to(scores.device), float("-inf"))


def ll_tokenizer(hf_tokenizer: Any) -> Any:
    """llguidance's view of the tokenizer (about a second to build: cache it with the model)."""
    # lazy: llguidance is heavy and needed only here
    import llguidance.hf

    return llguidance.hf.from_tokenizer(hf_tokenizer)


def decode_call(
    model: Any,
    hf_tokenizer: Any,
    lltok: Any,
    prefix: str,
    schemas: dict[str, dict[str, Any]],
    max_new_tokens: int,
) -> tuple[dict[str, Any], int]:
    """Greedy-decode one call's JSON body after `prefix` (which ends with `<tool_call>\\n`) under the schemas.
    Returns the parsed {"name", "arguments"} and the number of tokens generated."""
    # lazy: llguidance is heavy and needed only here
    import llguidance

    # lazy: transformers is heavy and needed only here
    from transformers import LogitsProcessorList

    matcher = llguidance.LLMatcher(lltok, llguidance.LLMatcher.grammar_from_regex(call_regex(schemas)))
    if matcher.is_error():
        raise ValueError(f"tool schemas give no usable grammar: {matcher.get_error()}")
    inputs = hf_tokenizer(prefix, return_tensors="pt", add_special_tokens=False)
    n_prefix = int(inputs["input_ids"].shape[1])
    out = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        logits_processor=LogitsProcessorList([GrammarLogitsProcessor(matcher, n_prefix)]),
        eos_token_id=hf_tokenizer.eos_token_id,
    )
    new = out[0, n_prefix:]
    body = hf_tokenizer.decode(new, skip_special_tokens=True).strip()
    try:
        parsed = json.loads(body)
    except ValueError as exc:  # the token limit cut the call off before the grammar closed it
        raise ValueError(
            f"constrained call did not finish within {max_new_tokens} tokens: {body[:80]!r}"
        ) from exc
    return parsed, int(new.shape[0])
