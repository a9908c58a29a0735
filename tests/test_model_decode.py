"""Grammar-constrained decoding: every tool's gold call is admitted; whatever the model's scores, the output is
an answer, a decision (only while a proposal waits) or calls that parse and fit their schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import torch

from agent.backends.hermes import parse_tool_calls
from agent.model.decode import generate, grammar_for, make_vocab, matcher, prompt_words
from agent.model.text import CALL_OPEN, CONFIRM, REJECT, compact_call, load_tokenizer, render_calls
from tools.mcp_server import openai_tools

PROMPT = (
    "[account] adv_0001 [user] what should i bid on my bamboo cutting board? or kw_0000123, cmp_00004, "
    "ag_000002, exp_0001_1"
)


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    tok = load_tokenizer()
    vocab = make_vocab(tok)
    schemas = {
        t["function"]["name"]: t["function"]["parameters"]
        for t in openai_tools()
        if t["function"]["name"] != "apply_change"
    }
    ids = [
        tok.token_to_id("[CLS]"),
        *tok.encode(PROMPT, add_special_tokens=False).ids,
        tok.token_to_id("[SEP]"),
    ]
    return {"tok": tok, "vocab": vocab, "schemas": schemas, "ids": ids}


def _accepts(setup: dict[str, Any], grammar: str, text: str) -> bool:
    m = matcher(setup["vocab"], grammar)
    return (
        all(m.consume_token(i) for i in setup["tok"].encode(text, add_special_tokens=False).ids)
        and m.is_accepting()
    )


GOLD = {
    "account_overview": {"last_days": 7},
    "performance": {"level": "keyword", "keyword_id": "bamboo cutting board", "sort": "spend", "limit": 5},
    "search_terms": {"campaign_id": "cmp_00004", "sort": "spend", "limit": 10},
    "find": {"query": "bamboo"},
    "what_if": {"change": "bid", "id": "bamboo cutting board", "value": 2.25},
    "bid_landscape": {"keyword_id": "kw_0000123"},
    "recommend_bid": {"keyword_id": "bamboo cutting board", "goal": "target_acos", "target": 0.25},
    "allocate_budget": {"total_budget": 300, "campaign_ids": ["cmp_00004"]},
    "experiment_uplift": {"experiment_id": "exp_0001_1"},
    "ab_test": {"experiment_id": "exp_0001_1"},
    "kpi_change": {"kpi": "acos", "campaign_id": "cmp_00004"},
    "keyword_ideas": {"ad_group_id": "ag_000002", "limit": 5},
    "negative_ideas": {"limit": 5},
    "propose_change": {
        "action": "add_negatives",
        "id": "ag_000002",
        "keywords": [{"text": "bamboo", "match_type": "phrase"}],
    },
}


def test_every_tools_gold_call_is_admitted(setup: dict[str, Any]) -> None:
    grammar = grammar_for(setup["vocab"], setup["schemas"], setup["ids"], pending=False)
    assert set(GOLD) == set(setup["schemas"]), "add a gold call for every tool"
    for name, args in GOLD.items():
        assert _accepts(setup, grammar, compact_call(name, args, setup["schemas"][name])), name
    assert _accepts(setup, grammar, "The best bid is $1.20.")
    assert not _accepts(
        setup, grammar, compact_call("what_if", {"change": "bid", "id": "garden hose", "value": 2})
    )
    assert not _accepts(setup, grammar, compact_call("no_such_tool", {}))
    assert not _accepts(
        setup, grammar, compact_call("what_if", {"id": "kw_0000123", "value": 2})
    )  # change missing
    assert not _accepts(setup, grammar, CONFIRM)


def test_decisions_only_while_a_proposal_waits(setup: dict[str, Any]) -> None:
    waiting = grammar_for(setup["vocab"], setup["schemas"], setup["ids"], pending=True)
    assert _accepts(setup, waiting, CONFIRM) and _accepts(setup, waiting, REJECT)


def test_without_the_answer_option_only_calls_are_admitted(setup: dict[str, Any]) -> None:
    """What the router asks for when it is sure a turn starts with a call: among the tools it names."""
    narrowed = {"account_overview": setup["schemas"]["account_overview"]}
    grammar = grammar_for(setup["vocab"], narrowed, setup["ids"], pending=False, answer=False)
    assert _accepts(
        setup,
        grammar,
        compact_call("account_overview", GOLD["account_overview"], narrowed["account_overview"]),
    )
    assert not _accepts(setup, grammar, "The best bid is $1.20.")
    assert not _accepts(setup, grammar, compact_call("ab_test", GOLD["ab_test"], setup["schemas"]["ab_test"]))


def test_names_are_copied_as_contiguous_runs_of_the_prompts_words(setup: dict[str, Any]) -> None:
    tok = setup["tok"]
    runs = prompt_words(setup["vocab"], setup["ids"])
    assert any((tok.token_to_id("bamboo"),) in run for run in runs)
    assert not any((tok.token_to_id(";"),) in run for run in runs)
    grammar = grammar_for(setup["vocab"], setup["schemas"], setup["ids"], pending=False)
    call = compact_call("recommend_bid", {"keyword_id": "{}"}, setup["schemas"]["recommend_bid"])
    assert _accepts(setup, grammar, call.replace("{}", "bamboo cutting board"))
    assert _accepts(setup, grammar, call.replace("{}", "cutting board"))
    assert not _accepts(
        setup, grammar, call.replace("{}", "board cutting")
    )  # not in the prompt in this order
    assert not _accepts(setup, grammar, call.replace("{}", "bamboo bamboo"))


class _RandomModel:
    """Scores drawn at random: what an untrained model gives. The grammar alone must keep outputs valid."""

    def __init__(self, vocab_size: int, seed: int, call_bias: int) -> None:
        self.g = torch.Generator().manual_seed(seed)
        self.size = vocab_size
        self.call_bias = call_bias

    def _logits(self) -> torch.Tensor:
        x = torch.randn(1, self.size, generator=self.g) * 3
        x[0, self.call_bias] += 20  # push towards starting a call, so calls get exercised
        return x

    def start(self, ids: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self._logits(), None

    def extend(self, ids: torch.Tensor, cache: None) -> tuple[torch.Tensor, None]:
        return self._logits(), None


def test_random_scores_still_give_well_formed_schema_valid_calls(setup: dict[str, Any]) -> None:
    tok, vocab = setup["tok"], setup["vocab"]
    grammar = grammar_for(vocab, setup["schemas"], setup["ids"], pending=False)
    open_id = tok.token_to_id(CALL_OPEN)
    checked = 0
    for seed in range(60):
        gen = generate(
            _RandomModel(vocab.size, seed, open_id), vocab, grammar, setup["ids"], max_new_tokens=120
        )
        text = tok.decode([i for i in gen.ids if i != vocab.sep], skip_special_tokens=False)
        if not text.startswith(CALL_OPEN) or not text.rstrip().endswith("</tool_call>"):
            continue  # cut off by the token limit: the parser reports it as unfinished
        message = parse_tool_calls(render_calls(text, setup["schemas"]))
        assert message.tool_calls and not message.invalid_tool_calls, text
        for call in message.tool_calls:
            jsonschema.validate(call["args"], setup["schemas"][call["name"]])
            checked += 1
    assert checked >= 25


def test_a_value_the_user_typed_is_copied_not_rewritten(setup: dict[str, Any]) -> None:
    """With figures in the user's message, a bid, budget or total is one of them (ids and years are not
    figures); without any, any positive number."""
    from agent.model.decode import user_numbers

    tok, vocab = setup["tok"], setup["vocab"]
    ids = [
        tok.token_to_id("[CLS]"),
        *tok.encode(
            "[account] adv_0001 [user] what if i bid 3.89 on dumbbells 2026, not kw_0000123",
            add_special_tokens=False,
        ).ids,
        tok.token_to_id("[SEP]"),
    ]
    assert [tok.decode(list(n)).replace(" ", "") for n in user_numbers(vocab, ids)] == ["3.89"]
    what_if = {"what_if": setup["schemas"]["what_if"]}
    grammar = grammar_for(vocab, what_if, ids, pending=False)
    call = {"change": "bid", "id": "dumbbells 2026"}
    assert _accepts(setup, grammar, compact_call("what_if", call | {"value": 3.89}, what_if["what_if"]))
    assert not _accepts(setup, grammar, compact_call("what_if", call | {"value": 3.9}, what_if["what_if"]))
    free = grammar_for(vocab, what_if, setup["ids"], pending=False)  # the test prompt has no figures
    assert _accepts(
        setup,
        free,
        compact_call(
            "what_if", {"change": "bid", "id": "bamboo cutting board", "value": 3.9}, what_if["what_if"]
        ),
    )
