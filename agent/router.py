"""The intent router: which intents a seller's message likely means, from the pretrained sentence encoder
(all-MiniLM-L6-v2, tools/keywords/embeddings.py) fine-tuned with a linear head on the curriculum's train phrasings
(training/router.py writes the head into the model dir as `intent_router.json`, the tuned encoder layers as
`intent_router.safetensors`; a router without the second file reads the package's encoder as it ships).

The embedded model uses it in two places, both optional and both measured (README, evaluation):
- **Tool retrieval** (as TinyAgent's tool RAG): on the first step of a turn, when the router is confident and
  every likely intent starts with a tool call, the decoding grammar offers only the tools those intents start
  with and no direct answer. A likely refusal, greeting or reply to the agent leaves the grammar whole.
- **Written answers and plans carried on**: when the model ends a turn whose calls succeeded, the answer is written
  from the tool results by the expert's answer for the most likely intent whose plan matches the calls the model
  made (every figure copied from a result); the model's own text is kept where no such intent exists. Where that
  intent is advice whose plan goes on from the results (find the change that earns most, propose it), the plan's
  next calls are made instead, and the plan runs to its proposal.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from agent.encoder import TunedEncoder
from agent.expert import REFUSALS as REFUSAL_TEXTS
from agent.expert import Done, previous_change, step
from agent.intents import REFUSALS, WRITE_INTENTS, EntityKind, Intent, IntentKind, Kpi, Metric
from agent.spelling import mend
from tools.mcp_server.resolve import ANY_ID
from tools.mcp_server.schemas import Approval, approval_of

ROUTER_FILE = "intent_router.json"
TUNED_FILE = (
    "intent_router.safetensors"  # the encoder's top layers, fine-tuned with the head (training/router.py)
)
CONFIDENT_MASS = 0.9  # the likely intents: the fewest whose probabilities add up to this ...
MAX_LIKELY = 4  # ... and at most this many
OPEN_MASS = (
    0.15  # intents answered without tools (refusals, greetings, replies) this likely together: no restriction
)
_NO_ANSWER_WRITER = WRITE_INTENTS | {
    IntentKind.FIX_ACOS,
    IntentKind.FIX_BUDGET,
    IntentKind.APPLY_BEST_BID,
}  # proposals


class IntentRouter(BaseModel):
    classes: list[str] = Field(description="IntentKind values, in the order of the rows of coef")
    coef: list[list[float]]
    intercept: list[float]
    summary: dict[str, Any] = Field(default_factory=dict, description="how it was trained and what it scored")
    tuned_layers: int = Field(
        0,
        ge=0,
        le=6,
        description="how many of the encoder's top layers were fine-tuned "
        "(their weights in TUNED_FILE); 0: the encoder as shipped",
    )
    _encoder: Any = PrivateAttr(default=None)

    @classmethod
    def load(cls, model_dir: Path | str) -> IntentRouter | None:
        path = Path(model_dir) / ROUTER_FILE
        if not path.is_file():
            return None
        router = cls.model_validate_json(path.read_text())
        if router.tuned_layers:
            router._encoder = TunedEncoder.load(Path(model_dir) / TUNED_FILE)
        return router

    def plain_request(self, text: str) -> bool:
        """Whether this router reads `text` as an ordinary request of the account (reads_plain_request)."""
        return reads_plain_request(self.predict([text])[0])

    def predict(self, texts: Sequence[str]) -> list[dict[IntentKind, float]]:
        texts = [mend(t) for t in texts]  # typos cost the encoder the word's meaning (agent/spelling.py)
        if self._encoder is not None:
            x = self._encoder.encode(list(texts))
        else:
            # lazy: pulls in pydantic_settings at import
            from tools.keywords.embeddings import default_embedder

            x = default_embedder().encode(list(texts))
        logits = x @ np.asarray(self.coef, dtype=np.float32).T + np.asarray(self.intercept, dtype=np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        kinds = [IntentKind(c) for c in self.classes]
        return [dict(zip(kinds, map(float, row), strict=True)) for row in p]


@functools.cache
def first_tool(kind: IntentKind) -> str | None:
    """The tool the expert's plan for `kind` calls first (None: it answers without tools)."""
    call = _first_call(kind)
    return call[0] if call else None


def first_action(kind: IntentKind) -> str | None:
    """The change the expert's plan for `kind` proposes first (its first call a proposal), else None."""
    call = _first_call(kind)
    proposes = call is not None and approval_of(call[0]) == Approval.PROPOSE
    return str(call[1]["action"]) if call and proposes and "action" in call[1] else None


@functools.cache
def _first_call(kind: IntentKind) -> tuple[str, dict[str, Any]] | None:
    """The expert's first call for `kind` (name, arguments), on placeholder slots."""
    placeholder = Intent(
        kind=kind,
        keyword="x",
        campaign="x",
        ad_group="x",
        experiment="x",
        entity="x",
        entity_kind=EntityKind.KEYWORD,
        value=1.0,
        total=100.0,
        term="x",
    )
    message = step(placeholder, [])
    calls = message.get("tool_calls") or []
    if not calls:
        return None
    function = calls[0]["function"]
    args = function.get("arguments") or {}
    return str(function["name"]), json.loads(args) if isinstance(args, str) else dict(args)


def likely(probs: dict[IntentKind, float]) -> list[IntentKind]:
    ranked = sorted(probs, key=lambda k: -probs[k])
    out: list[IntentKind] = []
    mass = 0.0
    for kind in ranked[:MAX_LIKELY]:
        out.append(kind)
        mass += probs[kind]
        if mass >= CONFIDENT_MASS:
            return out
    return []  # not confident


def first_step_actions(probs: dict[IntentKind, float]) -> set[str] | None:
    """The changes a first proposal may make, or None for any: where the router's likely intents are all changes
    the expert proposes at once (set a bid, set a budget, pause ...), their actions. "set 'pruning shears gift'
    (broad) to two bucks a click" is set_bid 0.93 to the router; the model, reading a campaign from the turn
    before, proposed that campaign's budget at $2."""
    kinds = likely(probs)
    actions = {first_action(k) for k in kinds}
    return {a for a in actions if a} if kinds and None not in actions else None


def first_step_tools(probs: dict[IntentKind, float]) -> set[str] | None:
    """The tools the first step of a turn may call (and no direct answer), or None for no restriction: the
    likely intents among those that start with a call, unless the intents answered without one (a refusal,
    a greeting, a reply to the agent) together reach OPEN_MASS."""
    open_mass = sum(p for k, p in probs.items() if first_tool(k) is None)
    if open_mass >= OPEN_MASS:
        return None
    kinds = likely({k: p / (1 - open_mass) for k, p in probs.items() if first_tool(k) is not None})
    return {t for t in map(first_tool, kinds) if t} or None


# The router reads a request for another account's data this likely (its likeliest intent): the expert refuses,
# whatever the model would decode. The model learned other accounts by their ids only ("what's <store name> bidding
# on their ads?" it answers); the other refusals it learned in the words the router did, and the router alone reads
# some benign policy questions ("someone left fake reviews on my listing, how do I report them?") as harmful.
REFUSE_SURE = 0.6
REFUSAL_DOUBT = (
    0.12  # the router's total refusal probability below which a refusal by the model gets a second look
)


def reads_plain_request(probs: dict[IntentKind, float]) -> bool:
    """Whether the router reads a message as an ordinary request of the account: its refusals together under
    REFUSAL_DOUBT and an intent that starts with a tool likelier than them (the input guardrail's second look at
    what its intent screen would refuse, agent/guardrails/input.py)."""
    refusals = sum(p for k, p in probs.items() if k in REFUSALS)
    request = max((p for k, p in probs.items() if first_tool(k) is not None), default=0.0)
    return refusals < REFUSAL_DOUBT and request > refusals


@functools.cache
def shipped_router() -> IntentRouter | None:
    """The router of the shipped model dir (agent/configuration.py default_model_dir); None where none ships."""
    # lazy: the configuration reads the environment; a router is loaded only where one is asked for
    from agent.configuration import default_model_dir

    model_dir = default_model_dir()
    return IntentRouter.load(model_dir) if model_dir is not None else None


def plain_request(text: str) -> bool:
    """reads_plain_request by the shipped router: the input guardrail's second look for a backend without its
    own router (rules, teacher, a served model); False where no router ships."""
    router = shipped_router()
    return router is not None and router.plain_request(text)


def refusal_kind(text: str) -> IntentKind | None:
    """Which of the expert's refusals an answer is (the embedded model learned them word for word), whole or a
    sentence of one ("I can't show or change another advertiser's data." is the second half of one); None: none."""
    flat = " ".join(text.split()).lower()
    return next(
        (
            kind
            for kind, t in REFUSAL_TEXTS.items()
            if flat and (t.lower().startswith(flat[:30]) or (len(flat) >= 20 and flat in t.lower()))
        ),
        None,
    )


def tools_instead_of_refusal(
    probs: dict[IntentKind, float], refused_as: IntentKind | None = None
) -> set[str] | None:
    """When the model refused a message the router reads as an ordinary request, the tools of the likely tool
    intents, for a second decoding that must call one; None to let the refusal stand. An ordinary request: refusals
    together under REFUSAL_DOUBT, or, where the model's refusal gives its reason (`refused_as`: another account, off
    topic ...), that reason under REFUSAL_DOUBT and all refusals under twice it ("my email is ... which campaign
    spends the most?" refused as another account's data, which the router reads at 0.10); and a tool intent at least
    a third as likely as the likeliest answer without tools."""
    refusals = sum(p for k, p in probs.items() if k in REFUSALS)
    reason_doubted = (
        refused_as is not None and probs.get(refused_as, 0.0) < REFUSAL_DOUBT and refusals < 2 * REFUSAL_DOUBT
    )
    if refusals >= REFUSAL_DOUBT and not reason_doubted:
        return None
    tool_intents = {k: p for k, p in probs.items() if first_tool(k) is not None}
    if (
        not tool_intents
        or max(tool_intents.values())
        < max((p for k, p in probs.items() if k not in tool_intents), default=0.0) / 3
    ):
        return None
    total = sum(tool_intents.values())
    kinds = (
        likely({k: p / total for k, p in tool_intents.items()})
        or sorted(tool_intents, key=lambda k: -probs[k])[:2]
    )
    return {t for t in map(first_tool, kinds) if t} or None


def _intent_from_calls(kind: IntentKind, done: Sequence[Done]) -> Intent:
    """The intent with the fields the expert's answer reads that the calls carry (the sort, the KPI, the level)."""
    fields: dict[str, Any] = {}
    for d in done:
        if d.name == "performance":
            if d.args.get("sort") in Metric.__members__.values():
                fields["metric"] = Metric(d.args["sort"])
            level = d.args.get("level")
            if level in ("keyword", "campaign", "ad_group"):
                fields["entity_kind"] = EntityKind(level)
        elif d.name == "kpi_change" and d.args.get("kpi") in Kpi.__members__.values():
            fields["kpi"] = Kpi(d.args["kpi"])
    return Intent(kind=kind, **fields)


def _fits(kind: IntentKind, done: Sequence[Done]) -> bool:
    """Whether the calls made are the ones the intent's answer speaks about: one thing's numbers only from a call
    that named the thing (not the top row of a table), a table of campaigns or keywords only from rows of that level,
    the least efficient keyword only from keyword rows sorted by ACoS."""
    perf = [d.args for d in done if d.name == "performance"]
    if kind == IntentKind.ENTITY_PERFORMANCE:
        return any(a.get(f) for a in perf for f in ("keyword_id", "campaign_id", "ad_group_id"))
    if kind in (IntentKind.CAMPAIGNS, IntentKind.KEYWORDS):
        return any(
            a.get("level") == ("campaign" if kind == IntentKind.CAMPAIGNS else "keyword") for a in perf
        )
    if kind == IntentKind.WORST_ACOS:
        return any(a.get("level", "keyword") == "keyword" and a.get("sort") == "acos" for a in perf)
    return True


# plans the expert finishes after the model's start (their later arguments all come from results)
CONTINUED = frozenset({IntentKind.FIX_ACOS, IntentKind.FIX_BUDGET, IntentKind.APPLY_BEST_BID})


CONTINUE_SURE = 0.5  # a plan is carried on for the router's most likely intent, or one more likely than not
# advice without slots (nothing of the user's words goes into any call): the router's most likely intent starts
# the expert's plan itself, so the model cannot start it with a stray call
SLOTLESS_PLANS = frozenset({IntentKind.FIX_ACOS, IntentKind.FIX_BUDGET})
# plans whose first call takes none of the user's words (cut_worst: find the worst campaign): the expert starts them
# where the router is sure (the model proposed a cut of "the least efficient campaign" with id "efficient")
SLOTLESS_STARTS = frozenset({IntentKind.CUT_WORST})


def _likeliest(probs: dict[IntentKind, float]) -> IntentKind | None:
    return max(probs, key=lambda k: probs[k], default=None)


def _sure(probs: dict[IntentKind, float], kind: IntentKind) -> bool:
    return probs[kind] >= CONTINUE_SURE or kind == _likeliest(probs)


def planned_start(
    probs: dict[IntentKind, float], scope: str | None = None, thread: Sequence[dict[str, Any]] = ()
) -> dict[str, Any] | None:
    """The first call of the expert's plan when the router's most likely intent is slot-less advice (SLOTLESS_PLANS),
    or, for a plain yes with no proposal waiting ("ok do that"), the proposal of the change the previous turn
    simulated or recommended (where there is none, the expert's "no change is waiting"); the expert's refusal where
    the router is sure the message asks for another account's data (REFUSE_SURE); None otherwise (the model starts
    the turn). The message names its plan (`intent`)."""
    kind = _likeliest(probs)
    if kind == IntentKind.REFUSE_OTHER_ACCOUNT and probs[kind] >= REFUSE_SURE:
        return {**step(Intent(kind=kind), [], scope), "intent": kind.value}
    if kind == IntentKind.CONFIRM:
        message = previous_change(thread)
        if message is None and probs[kind] >= CONTINUE_SURE:  # a yes with nothing to do: say so, don't guess
            return {**step(Intent(kind=kind), [], scope), "intent": kind.value}
    elif kind in SLOTLESS_PLANS or (kind in SLOTLESS_STARTS and probs[kind] >= CONTINUE_SURE):
        message = step(Intent(kind=kind), [], scope)
    else:
        return None
    return {**message, "intent": kind.value} if message and message.get("tool_calls") else None


# account-level questions: a call the model aims at one thing the message does not name (carried over from an earlier
# turn: "how did we do yday" after a keyword table was answered with that keyword's numbers) gives way to the plan
ACCOUNT_PLANS = frozenset({IntentKind.OVERVIEW, IntentKind.BUDGET_CAPPED, IntentKind.KPI_CHANGE})
_ACCOUNT_TOOLS = frozenset(filter(None, map(first_tool, ACCOUNT_PLANS)))
ONE_THING_ARGS = ("keyword_id", "campaign_id", "ad_group_id", "id")  # the arguments that name one thing
# words that point back at a thing of an earlier turn ("how did it do yesterday?"): that thing stays the subject
BACK_REFERENCE = re.compile(
    r"\b(it|its|it's|itself|them|their|same|(?:that|this|those|these) (?:one|ones|keyword|keywords|campaign|"
    r"campaigns|ad group|term|terms|product|test))\b",
    re.I,
)


def carried_over(call_args: dict[str, Any], text: str) -> bool:
    """Whether a call names one thing the user's message does not: by an id it does not hold, or by words none of
    which it holds (the model took the thing from the thread, or made the name up)."""
    lowered = text.lower()
    values = [v.strip() for k in ONE_THING_ARGS if isinstance(v := call_args.get(k), str) and v.strip()]

    def named(value: str) -> bool:
        if ANY_ID.match(value):  # the tools' own id shape
            return value in text
        return any(w in lowered for w in re.findall(r"[a-z0-9]{3,}", value.lower()))

    return bool(values) and not any(named(v) for v in values)


def account_plan_instead(
    probs: dict[IntentKind, float],
    calls: Sequence[dict[str, Any]],
    text: str,
    last_days: int | None,
    scope: str | None,
    kpi: Kpi | None = None,
) -> dict[str, Any] | None:
    """The expert's first call for an account-level question the router is sure of (ACCOUNT_PLANS, CONTINUE_SURE)
    where the model's first call names a thing carried over from the thread and the message does not point back at
    it (BACK_REFERENCE); None otherwise. `kpi`: the one the message names (a kpi change of sales where none)."""
    kind = _likeliest(probs)
    if kind not in ACCOUNT_PLANS or probs[kind] < CONTINUE_SURE or not calls or BACK_REFERENCE.search(text):
        return None
    if not any(carried_over(dict(c.get("args") or {}), text) for c in calls):
        return None
    message = step(Intent(kind=kind, last_days=last_days, kpi=kpi), [], scope)
    return {**message, "intent": kind.value} if message.get("tool_calls") else None


def _no_match(d: Done) -> bool:
    return d.failure is not None and d.failure.type == "NoMatchError"


def account_plan_after_no_match(
    probs: dict[IntentKind, float],
    done: Sequence[Done],
    last_days: int | None,
    scope: str | None,
    kpi: Kpi | None = None,
) -> dict[str, Any] | None:
    """The expert's first call for the account-level question the router reads likeliest (ACCOUNT_PLANS) where the
    model took words of the message for a name and the account has nothing by that name ("big picture. spend,
    sales, acos. go": performance of 'big picture'): the words named no thing, so the question is the account's,
    not a question back. None where a call did anything else or the plan's own tool already ran."""
    kind = _likeliest(probs)
    if kind not in ACCOUNT_PLANS or not done or first_tool(kind) in {d.name for d in done}:
        return None
    if not all(map(_no_match, done)):
        return None
    message = step(Intent(kind=kind, last_days=last_days, kpi=kpi), [], scope)
    return {**message, "intent": kind.value} if message.get("tool_calls") else None


def next_step(
    probs: dict[IntentKind, float],
    done: Sequence[Done],
    scope: str | None = None,
    *,
    planning: bool = False,
    plan: IntentKind | None = None,
) -> dict[str, Any] | None:
    """When the model ends a turn whose calls ran: the expert's next message for the most likely intent whose plan
    starts with a tool the model called. That is the answer written from exactly these results (every figure
    copied from a result), or, for the advice intents whose plans go on from the results (CONTINUED: find the
    change that earns most, propose it), the plan's next calls, whose arguments all come from results. None where
    no intent fits (the model's own answer stands) or the turn made a proposal (its answer is the graph's).
    A plan is carried on only for the router's most likely intent or one at least CONTINUE_SURE likely; once carried
    on (`planning`: this turn holds the plan's own calls), only such a plan goes on, to its end: `plan`, the one
    that started, where it is known. The message names its intent (`intent`)."""
    if any(d.error is None and d.name in _ACCOUNT_TOOLS for d in done):  # an account plan answers: the words
        done = [
            d for d in done if not _no_match(d)
        ]  # that named nothing were taken for the account (see above)
    if not done:
        return None
    called = {d.name for d in done}
    if any(d.name == "propose_change" and d.error is None for d in done):
        return None
    failed = any(d.error is not None for d in done)  # the expert's question back, whatever the intent
    if planning and plan is not None:
        probs = {plan: 1.0}
    for kind in sorted(probs, key=lambda k: -probs[k]):
        if probs[kind] < 0.01:
            break
        if (
            kind in REFUSALS
            or (kind in _NO_ANSWER_WRITER - CONTINUED and not failed)
            or first_tool(kind) not in called
        ):
            continue
        if (kind not in CONTINUED) if planning else (kind in CONTINUED and not _sure(probs, kind)):
            continue
        if not _fits(kind, done):
            continue
        try:
            message = step(_intent_from_calls(kind, done), done, scope)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):  # results of another shape
            continue
        if (message.get("tool_calls") and kind in CONTINUED and not failed) or (
            not message.get("tool_calls") and message.get("content")
        ):
            return {**message, "intent": kind.value}
    return None


# Intents that only ask, and that sellers do not word like a change (what-ifs, bid landscapes, best bids and the
# ideas for keywords and negatives they do: "sp - generic - dumbbells daily budget $55" reads as a what-if).
ASKS_ONLY = frozenset(
    {
        IntentKind.OVERVIEW,
        IntentKind.CAMPAIGNS,
        IntentKind.KEYWORDS,
        IntentKind.SEARCH_TERMS,
        IntentKind.KPI_CHANGE,
        IntentKind.WORST_ACOS,
        IntentKind.BUDGET_CAPPED,
        IntentKind.EXPERIMENT_EFFECT,
        IntentKind.AB_TEST,
    }
)


def router_tool_instead(probs: dict[IntentKind, float], calls: Sequence[dict[str, Any]]) -> str | None:
    """The first tool of the intent the router is sure of (its likeliest, CONTINUE_SURE likely) where the model's
    first step called neither it nor `find` (the model looks a name up first): a second decoding that must call it
    keeps the model's reading of the user's words (the thing, the amount) and the router's of what is asked
    ("which campaing runs out of budget the most?": budget_capped 0.56, and the model listed campaigns by ACoS).
    A proposal stands (it waits for the user's yes) unless the router is sure of an intent that only asks
    (ASKS_ONLY: "should I declare a winner in the latest ads holdout yet", ab_test 0.70, was proposed as a pause).
    None: the model's calls stand."""
    kind = _likeliest(probs)
    if kind is None or probs[kind] < CONTINUE_SURE or not calls:
        return None
    tool = first_tool(kind)
    called = {str(c.get("name")) for c in calls}
    kept = {"find"} if kind in ASKS_ONLY else {"find", "propose_change"}
    return None if tool is None or tool in called or called & kept else tool


# Intents whose answer reports what a call returned, the most specific first (one thing's numbers before a table).
REPORTS = (
    IntentKind.ENTITY_PERFORMANCE,
    IntentKind.WORST_ACOS,
    IntentKind.KEYWORDS,
    IntentKind.CAMPAIGNS,
    IntentKind.OVERVIEW,
    IntentKind.SEARCH_TERMS,
    IntentKind.KPI_CHANGE,
    IntentKind.WHAT_IF_BID,
    IntentKind.WHAT_IF_BUDGET,
    IntentKind.BID_LANDSCAPE,
    IntentKind.BEST_BID,
    IntentKind.ALLOCATE,
    IntentKind.EXPERIMENT_EFFECT,
    IntentKind.AB_TEST,
    IntentKind.KEYWORD_IDEAS,
    IntentKind.NEGATIVE_IDEAS,
)


def report_of_calls(done: Sequence[Done], scope: str | None = None) -> dict[str, Any] | None:
    """The expert's report of the turn's results where no intent the router reads fits the calls the model made
    (next_step found none): the model's own text copies figures and names from the results, and binds them wrongly
    (a keyword's ACoS beside another's name passes the grounding check, every figure being in some result). None
    where a call failed or proposed (those answers are the expert's question back, or the graph's)."""
    if any(d.error is not None for d in done):  # next_step itself declines an empty turn and a proposal
        return None
    return next_step({k: 1.0 - i / 100 for i, k in enumerate(REPORTS)}, done, scope)


# plans whose next call takes the user's words (cut_worst: the size of the cut), so the model writes it
MODEL_CONTINUED = frozenset({IntentKind.CUT_WORST})


def plan_choice(probs: dict[IntentKind, float], done: Sequence[Done], name: str) -> dict[str, Any] | None:
    """The arguments of the call `name` that the plan of the router's most likely intent makes next from these
    results, where that plan takes the user's words (MODEL_CONTINUED): the model writes the size of a cut, the plan
    says which campaign is the worst (the model copied another row's id). None where the plan makes no such call."""
    kind = _likeliest(probs)
    if kind not in MODEL_CONTINUED or not done or any(d.error is not None for d in done):
        return None
    try:
        message = step(Intent(kind=kind, relative=-0.1), done)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
    calls = [c["function"] for c in message.get("tool_calls") or []]
    return json.loads(calls[0]["arguments"]) if calls and calls[0]["name"] == name else None


def model_next_tool(probs: dict[IntentKind, float], done: Sequence[Done]) -> str | None:
    """When the model ends a turn early: the tool the plan of the router's most likely intent calls next, for a
    second decoding that must call it, where that call takes the user's own words (MODEL_CONTINUED)."""
    kind = _likeliest(probs)
    if (
        kind not in MODEL_CONTINUED
        or not done
        or first_tool(kind) not in {d.name for d in done}
        or any(d.error is not None or d.name == "propose_change" for d in done)
    ):
        return None
    placeholder = Intent(
        kind=kind, relative=-0.1
    )  # the slots this plan's next call takes from the user's words
    try:
        message = step(placeholder, done)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
    calls = message.get("tool_calls") or []
    return str(calls[0]["function"]["name"]) if calls else None


def written_answer(
    probs: dict[IntentKind, float], done: Sequence[Done], scope: str | None = None
) -> str | None:
    """next_step's answer, where it is one (None where it is a call or nothing fits)."""
    message = next_step(probs, done, scope)
    return str(message["content"]) if message and not message.get("tool_calls") else None


def last_user_text(thread: list[dict[str, Any]]) -> str | None:
    return next((str(m.get("content") or "") for m in reversed(thread) if m.get("role") == "user"), None)


# "what about 'cheap kettlebell' (broad)?", "and the yoga mat campaign?", "same for bath towels": a later turn that
# names only another thing; what it asks is what the previous turn asked (the curriculum's `switch` turns)
SWITCH = re.compile(
    r"^\s*(?:(?:ok(?:ay)?|so|and|now|cool|thanks)[,\s]+)*"
    r"(?:(?:what|how)\s+about|and(?:\s+for)?|(?:the\s+)?same\s+(?:for|with)|(?:now\s+)?do\s+the\s+same\s+(?:for|with))\s+"
    r"(?P<name>[^?!\n]{2,80}?)\s*[?!.]*\s*$",
    re.I,
)
# words no name of a thing holds: an amount, a period, a pronoun, a question or comparison ("and at 2.25?", "what
# about last week?", "and how did it do?", "and compared to X?") is another kind of follow-up
_NOT_A_NAME = re.compile(
    r"\d|\$|\b(yesterday|yday|today|week|weeks|month|months|days?|it|its|that|this|them|those|these|compared|vs|"
    r"versus|than|why|how|what|when|is|was|are|did|does|do|can|could|should|would|will|i|me|you)\b",
    re.I,
)
_SWITCH_QUOTED = re.compile(
    r"""['"‘“](?P<name>[^'"‘’“”]{2,80})['"’”]\s*(?:\(?\s*(?P<match>exact|phrase|broad)\b\)?)?""", re.I
)
# the tools whose question stays the same for another thing (a proposal is never repeated for one)
SWITCHABLE = frozenset(
    {
        "performance",
        "recommend_bid",
        "what_if",
        "bid_landscape",
        "search_terms",
        "keyword_ideas",
        "negative_ideas",
        "kpi_change",
        "experiment_effect",
        "ab_test",
    }
)
_SWITCH_ARGS = ("keyword_id", "campaign_id", "ad_group_id", "id", "experiment_id")


def switched_to(text: str) -> str | None:
    """The thing a "what about X?" turn names (a quoted name with the match type written after it), or None where
    the message is not such a turn."""
    m = SWITCH.match(text)
    if m is None:
        return None
    name = m.group("name").strip()
    if quoted := _SWITCH_QUOTED.fullmatch(name):
        return " ".join(filter(None, [quoted.group("name").strip(), (quoted.group("match") or "").lower()]))
    if ANY_ID.match(name):
        return name if not name.startswith("adv_") else None
    if _NOT_A_NAME.search(name):
        return None
    return re.sub(r"^(?:the|my|our)\s+", "", name, flags=re.I)


def _previous_turn_calls(thread: Sequence[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The previous turn's calls, in order, as (tool, arguments); calls whose arguments are not JSON are skipped."""
    users = [i for i, m in enumerate(thread) if m.get("role") == "user"]
    for m in thread[users[-2] + 1 : users[-1]] if len(users) >= 2 else []:
        for c in m.get("tool_calls") or []:
            try:
                yield c["function"]["name"], json.loads(c["function"].get("arguments") or "{}")
            except ValueError:
                continue


def _previous_turn_call(thread: Sequence[dict[str, Any]]) -> tuple[str, dict[str, Any], str] | None:
    """The previous turn's first call that named one thing with a SWITCHABLE tool: (tool, arguments, the field)."""
    for name, args in _previous_turn_calls(thread):
        fields = [f for f in _SWITCH_ARGS if isinstance(args.get(f), str)]
        if name in SWITCHABLE and len(fields) == 1:
            return name, args, fields[0]
    return None


# the tools that report over a period, and what a "what about <period>?" turn may hold besides the period
PERIOD_TOOLS = frozenset(
    {"account_overview", "performance", "search_terms", "keyword_ideas", "negative_ideas"}
)
_PERIOD_FILLER = re.compile(r"\b(?:just|only|for|over|in|during|the|then)\b", re.I)


def _period_switch(thread: Sequence[dict[str, Any]], text: str) -> tuple[str, dict[str, Any]] | None:
    """For a turn that names only another period ("what about just last week?", "and for the past 14 days?"): the
    previous turn's first report over that period (the router read one after a keyword table as an account
    overview, 0.87); None otherwise."""
    # lazy: pulls in text_to_num at import
    from agent.amounts import PERIOD_WORDS, period_said

    m = SWITCH.match(text)
    days = period_said(m.group("name")) if m is not None else None
    if (
        m is None
        or days is None
        or _PERIOD_FILLER.sub(" ", PERIOD_WORDS.sub(" ", m.group("name"))).strip(" ,.?!")
    ):
        return None  # no period, or something named besides it
    for name, args in _previous_turn_calls(thread):
        if name in PERIOD_TOOLS:
            kept = {k: v for k, v in args.items() if k not in ("start", "end", "last_days")}
            return name, kept | {"last_days": days}
    return None


def switched_call(thread: Sequence[dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """For a "what about X?" turn: the previous turn's call (its goal, period, amount) for X instead of the thing it
    named, or over the period X where X is one (_period_switch); None where the turn is not such a follow-up or the
    previous turn named no one thing."""
    text = last_user_text(list(thread))
    if text and (over := _period_switch(thread, text)) is not None:
        return over
    thing = switched_to(text) if text else None
    previous = _previous_turn_call(thread) if thing else None
    if thing is None or previous is None:
        return None
    name, args, field = previous
    return name, {**args, field: thing}


def routed_text(thread: Sequence[dict[str, Any]]) -> str | None:
    """The user message whose intent the turn has: the previous one for a "what about X?" turn that repeats a call
    (switched_call), else the last."""
    users = [str(m.get("content") or "") for m in thread if m.get("role") == "user"]
    if len(users) >= 2 and switched_call(thread) is not None:
        return users[-2]
    return users[-1] if users else None
