"""The embedded backend: the project's own model (MiniLM as a prefix LM, agent/model/) in process.

It reads the compact prompt (agent/model/prompt.py: no tool specifications, compact result views), decodes
under the grammar of the bound tools (agent/model/decode.py: a malformed call cannot be written), and turns
its tokens back into text: a call into the hermes `<tool_call>{json}</tool_call>` that the one shared parser
(agent/backends/hermes.py) reads, an answer into cased text with exact numbers. `decide` reads a typed reply to
a pending proposal ("yep go ahead") as confirm, reject or neither.

One generation at a time per loaded model (a lock); torch runs one thread (two contend on a shared 2-core
machine); the turn's deadline stops waiting and generating.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

from agent.backends.hermes import parse_tool_calls, to_openai_messages
from agent.expert import step, turn_done
from agent.guardrails.input import own_id_as_account
from agent.intents import Goal, Intent, IntentKind, Kpi
from agent.model.text import (
    CALL_OPEN,
    CONFIRM,
    REJECT,
    VALUE_REFS,
    clean_spacing,
    load_tokenizer,
    recase,
    render_calls,
)
from agent.replies import vetoed
from tools.mcp_server.schemas import Approval, approval_of

MAX_PROMPT_TOKENS = 440  # of the model's 512 positions; the rest is for the output
_SCOPE = re.compile(r"\badv_\d+\b")


def own_account_words(thread: list[dict[str, Any]], scope: str) -> list[dict[str, Any]]:
    """The thread with the seller's own advertiser id in their messages said as "my account" (own_id_as_account)."""
    return [
        {**m, "content": own_id_as_account(m["content"], scope)}
        if m.get("role") == "user" and isinstance(m.get("content"), str)
        else m
        for m in thread
    ]


def is_embedded_dir(path: Path | str) -> bool:
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("model_type") == "adguide_prefix_lm"
    except (OSError, ValueError):
        return False


def _names(thread: list[dict[str, Any]]) -> list[str]:
    """Names the thread's tool results spell (to put their casing back on an uncased answer)."""
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("name", "keyword", "text", "term") and isinstance(v, str):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for m in thread:
        if m.get("role") == "tool":
            try:
                walk(json.loads(m.get("content") or ""))
            except ValueError:
                continue
    return found


PLAN_CALL = (
    "plan_"  # the id prefix of calls an expert plan made (agent/router.py), then the plan's intent and "."
)


def _plan_message(planned: dict[str, Any], prompt_tokens: int = 0) -> AIMessage:
    """The expert plan's message as the graph's (its calls marked as the plan's, with its intent); the model wrote
    nothing."""
    mark = PLAN_CALL + str(planned.get("intent", "")) + "."
    return AIMessage(
        content=planned.get("content") or "",
        tool_calls=[
            {
                "name": c["function"]["name"],
                "args": json.loads(c["function"]["arguments"]),
                "id": mark + c["id"],
                "type": "tool_call",
            }
            for c in planned.get("tool_calls") or []
        ],
        usage_metadata={"input_tokens": prompt_tokens, "output_tokens": 0, "total_tokens": prompt_tokens},
    )


def _plan(thread: list[dict[str, Any]]) -> str | None:
    """The intent of the expert plan this turn's calls belong to ("" where it is not named); None: no plan (the
    model goes on)."""
    last_user = max((i for i, m in enumerate(thread) if m.get("role") == "user"), default=len(thread))
    ids = [str(c.get("id", "")) for m in thread[last_user + 1 :] for c in m.get("tool_calls") or []]
    return next((i[len(PLAN_CALL) :].split(".", 1)[0] for i in ids if i.startswith(PLAN_CALL)), None)


# a proposal's action and its twin: where the router is sure of the twin's write intent and the model wrote the
# other ("keeps matching 'x', wrong audience" is a negative, not a new keyword), the router's stands
_TWIN_ACTIONS = {  # the model's action -> (its twin, the twin's intent)
    "add_keywords": ("add_negatives", "add_negative"),
    "add_negatives": ("add_keywords", "add_keyword"),
    "pause": ("enable", "enable"),
    "enable": ("pause", "pause"),
    "set_bid": ("set_budget", "set_budget"),
    "set_budget": ("set_bid", "set_bid"),
}
ACTION_SURE = 0.5


# the words that name each sort key of the performance and search-term reports
_METRIC_WORDS = {
    "spend": r"spend\w*|spent|cost(s|ing)?|pricie(r|st)|expensive",
    "sales": r"sales|sell\w*|sold|revenue",
    "orders": r"orders?|ordered|purchases?|conversions?",
    "clicks": r"clicks?|clicked",
    "impressions": r"impressions?|views",
    "acos": r"acos|efficien\w*|inefficien\w*",
}


# the tools that read a period (their input is a Period), and the periods sellers name
_RANKING = r"most|least|highest|lowest|top|biggest|smallest|best|worst|fewest|by|sort\w*|rank\w*"


def metric_said(text: str) -> str | None:
    """The one sort key the user ranks by ("which keywords spend the most?", "top terms by clicks" -> spend,
    clicks): a measure's word within three words of a ranking word ("what do people type when they click my ads"
    ranks by nothing). None for none or several."""
    near = r"\W+(?:\w+\W+){0,2}"
    said = [
        m
        for m, words in _METRIC_WORDS.items()
        if re.search(rf"\b({words}){near}({_RANKING})\b|\b({_RANKING}){near}({words})\b", text, re.I)
    ]
    return said[0] if len(said) == 1 else None


_KPI_WORDS = {
    Kpi.ROAS: r"roas|return on (?:ad )?spend",
    Kpi.ACOS: r"acos|cost of sales",
    Kpi.SPEND: r"spend\w*|spent|cost(?:s|ing)?",
    Kpi.SALES: r"sales|sell\w*|sold|revenue",
    Kpi.ORDERS: r"orders?|ordered|purchases?|conversions?",
    Kpi.CLICKS: r"clicks?|clicked|traffic",
}


def kpi_said(text: str) -> Kpi | None:
    """The one KPI the message names ("why is acos up" -> acos; "return on ad spend" is ROAS, not spend); None for
    none or several."""
    rest, said = text, []
    for kpi, words in _KPI_WORDS.items():  # ROAS first: its words hold "spend"
        rest, n = re.subn(rf"\b(?:{words})\b", " ", rest, flags=re.I)
        said += [kpi] * bool(n)
    return said[0] if len(said) == 1 else None


def _grounded(
    message: AIMessage, thread: list[dict[str, Any]], scope: str, probs: dict[Any, float] | None = None
) -> AIMessage:
    """The model's proposals and what-ifs with the amount the user named (agent/amounts.py ground_change). Where the
    user named none and the model made one up: a proposed bid goes to the expert's best-bid plan (its proposal is
    the recommended bid, for the ACoS target the user named if any), a budget gets the budget-advice plan where the
    router reads that as at least as likely as setting a budget, else a question back; a what-if takes the previous what-if's change ("the same
    for X") or, with none, becomes a look at the thing's numbers. A number nobody said is never simulated or
    proposed. A proposal's action is its twin's where the router is sure of the twin (_TWIN_ACTIONS). A bid
    recommendation without a goal takes the ACoS or ROAS target the user named."""
    # lazy: pulls in text_to_num at import (through agent.amounts)
    from agent.amounts import (
        AMOUNT_ARGS,
        figures,
        ground_change,
        ground_total,
        normalize_amounts,
        period_said,
        target_acos,
        target_roas,
    )

    # lazy: pulls in numpy at import
    from agent.guardrails.output import number_leaves

    # lazy: pulls in numpy, rapidfuzz at import
    from agent.router import PERIOD_TOOLS, last_user_text, plan_choice

    text = last_user_text(thread) or ""
    flat = normalize_amounts(text)  # the user's message with amounts in words as figures
    said: set[float] = set()
    results: set[float] = set()
    last_what_if: dict[str, Any] = {}
    for m in thread[: max((i for i, m in enumerate(thread) if m.get("role") == "user"), default=0)]:
        if m.get("role") == "tool":
            try:
                results |= set(number_leaves(json.loads(m.get("content") or "")))
            except ValueError:
                continue
        elif m.get("role") == "user":
            said |= set(figures(normalize_amounts(str(m.get("content") or ""))))
        for c in m.get("tool_calls") or []:
            if c["function"]["name"] == "what_if":
                last_what_if = json.loads(c["function"]["arguments"] or "{}")
    calls = []
    for c in message.tool_calls:
        name, made = c["name"], dict(c["args"])
        twin, wants = _TWIN_ACTIONS.get(str(made.get("action")), ("", ""))
        if name == "propose_change" and twin and probs and probs.get(IntentKind(wants), 0.0) >= ACTION_SURE:
            made["action"] = twin
        chosen = plan_choice(probs, turn_done(thread), name) if probs and name == "propose_change" else None
        if chosen and chosen.get("action") == made.get("action"):  # which campaign: the plan's, from results
            made["id"] = chosen["id"]
        if name == "recommend_bid" and made.get("goal") in (None, "max_incremental_profit"):
            # the target the user named is the goal
            if (acos := target_acos(flat)) is not None:
                made |= {"goal": "target_acos", "target": acos}
            elif (roas := target_roas(flat)) is not None:
                made |= {"goal": "target_roas", "target": roas}
        sort = metric_said(text) if "sort" in made else None
        if sort is not None:  # the report sorted by what the user asked about (the model sorted by ACoS)
            made["sort"] = sort
        args: dict[str, Any] | None = made
        if name in ("propose_change", "what_if"):
            args = ground_change(made, text, said | results if name == "propose_change" else said)
        elif name == "allocate_budget":
            args = ground_total(made, text)
        if args is None and name == "what_if":
            same = {k: v for k, v in last_what_if.items() if k in AMOUNT_ARGS}
            if same and last_what_if.get("change") == c["args"].get("change"):
                args = {k: v for k, v in c["args"].items() if k not in AMOUNT_ARGS} | same
            else:
                bid = c["args"].get("change") == "bid"
                name, args = (
                    "performance",
                    {
                        "level": "keyword" if bid else "campaign",
                        "keyword_id" if bid else "campaign_id": c["args"].get("id"),
                    },
                )
        days = period_said(text) if name in PERIOD_TOOLS else None
        if args is not None and days is not None and "start" not in args and "end" not in args:
            args["last_days"] = days  # the period the user named (also where a what-if became a report of it)
        if args is None and c["args"].get("action") == "set_bid":
            target = target_acos(flat)
            planned = step(
                Intent(
                    kind=IntentKind.APPLY_BEST_BID,
                    keyword=str(c["args"].get("id")),
                    target=target,
                    goal=Goal.TARGET_ACOS if target else None,
                ),
                [],
                scope,
            )
            return _plan_message({**planned, "intent": IntentKind.APPLY_BEST_BID.value})
        if (
            args is None
            and probs
            and probs.get(IntentKind.FIX_BUDGET, 0.0) >= probs.get(IntentKind.SET_BUDGET, 0.0)
        ):
            planned = step(
                Intent(kind=IntentKind.FIX_BUDGET), [], scope
            )  # budget advice: find the change first
            return _plan_message({**planned, "intent": IntentKind.FIX_BUDGET.value})
        if args is None:  # (no figure in the question: the output guardrail would take any out)
            return AIMessage(
                content="What daily budget should that campaign get? Tell me an amount or a change "
                "by a share of today's, and I'll simulate it before anything changes."
            )
        calls.append({**c, "name": name, "args": args})
    return AIMessage(content=message.content, tool_calls=calls)


DECISION_SURE = 0.6  # the router's probability of confirm (or reject) that decides a reply by itself
DECISION_DOUBT = 0.25  # a model's "confirm" is dropped when the router gives "reject" this much ...
DECISION_MASS = 0.5  # the router's confirm + reject above which a reply with a word of no is read as a no
DECISION_AGREE = 0.25  # ... or "confirm" less than this (a question about something else is no yes)


def reply_decision(
    said: Literal["confirm", "reject"] | None, probs: dict[Any, float], vetoed: bool = False
) -> Literal["confirm", "reject"] | None:
    """A reply to a waiting proposal, from what the model said of it (`said`), the router's reading (`probs`) and
    whether it holds a word of no (`vetoed`, agent/replies.py)."""
    yes, no = probs.get(IntentKind.CONFIRM, 0.0), probs.get(IntentKind.REJECT, 0.0)
    if (
        vetoed
    ):  # never a yes; a no where the router reads a reply to the proposal at all ("I decline this change
        # for now": yes 0.55, no 0.12), else a new request ("no wait, make it 2.50 instead": set a bid 0.86)
        return "reject" if said == "reject" or yes + no >= DECISION_MASS else None
    if max(yes, no) >= DECISION_SURE:  # the router read a plain yes or no
        return "confirm" if yes > no else "reject"
    # a no the router reads in doubt, and nothing but a yes more likely ("that looks worse than I hoped, so no,
    # don't do it"): turned down, which applies nothing (read as a new message, the model refused it)
    if no >= DECISION_DOUBT and no >= max(p for k, p in probs.items() if k != IntentKind.CONFIRM):
        return "reject"
    if said == "confirm" and (no >= DECISION_DOUBT or yes < DECISION_AGREE):  # never apply a change on a
        return None  # reply that may be a no, or that the router does not read as a yes
    request = max(
        (p for k, p in probs.items() if k not in (IntentKind.CONFIRM, IntentKind.REJECT)), default=0.0
    )
    # a new request the model read as a no ("most profitable bid, 'x' (exact)": best bid 0.82): the user moved on;
    # the proposal is dropped all the same, and the request is answered
    if said == "reject" and request >= DECISION_SURE:
        return None
    return said


def first_step_grammar(
    schemas: dict[str, dict[str, Any]], probs: dict[IntentKind, float]
) -> tuple[dict[str, dict[str, Any]], bool]:
    """What the grammar offers on a turn's first step, from the router's reading (tool retrieval, as TinyAgent's):
    only the tools its likely intents start with and no direct answer (first_step_tools), and of the proposal tool
    only the changes it is sure of (first_step_actions; an action list that would leave none stays whole).
    Returns the schemas and whether a direct answer is allowed."""
    # lazy: pulls in numpy, rapidfuzz at import
    from agent.router import first_step_actions, first_step_tools

    narrowed = first_step_tools(probs)
    answer = not (narrowed and narrowed <= schemas.keys())
    out = {n: s for n, s in schemas.items() if answer or n in (narrowed or ())}
    actions = first_step_actions(probs)
    for name, schema in out.items():
        action = (schema.get("properties") or {}).get("action") or {}
        kept = [a for a in action.get("enum") or [] if actions and a in actions]
        if approval_of(name) == Approval.PROPOSE and kept:
            out[name] = {**schema, "properties": {**schema["properties"], "action": {**action, "enum": kept}}}
    return out, answer


class EmbeddedChatModel(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    accepts_deadline: ClassVar[bool] = True
    model_dir: str
    max_new_tokens: int = 200
    threads: int = 1
    advertiser_id: str | None = None
    argument_schemas: dict[str, dict[str, Any]] | None = None  # set by Agent; ids as enums are not used here
    route_tools: bool = (
        True  # the intent router narrows a turn's first step to the likely tools (agent/router.py)
    )
    write_answers: bool = (
        True  # answers written from the results by the expert's answer for the routed intent
    )
    _model: Any = PrivateAttr(default=None)
    _router: Any = PrivateAttr(default=None)
    _tok: Any = PrivateAttr(default=None)
    _vocab: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_dir(cls, model_dir: Path | str, **kw: Any) -> EmbeddedChatModel:
        path = Path(model_dir)
        missing = [f for f in ("config.json", "tokenizer.json") if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(f"model dir {path} is incomplete (missing {', '.join(missing)})")
        return cls(model_dir=str(path), **kw)

    @property
    def _llm_type(self) -> str:
        return "adguide-embedded"

    def load(self) -> None:
        """Load once, even when several conversations start at the same moment (the evals run cases in
        threads): the model is published last, so a caller that sees it also sees the tokenizer and vocab."""
        if self._model is not None:
            return
        with self._lock:  # the generation lock: nothing generates before the model is loaded
            if self._model is not None:
                return
            # lazy: pulls in torch at import
            import torch

            # lazy: pulls in torch at import
            from agent.model.decode import make_vocab

            # lazy: pulls in torch, transformers at import
            from agent.model.network import AdguideForPrefixLM

            # lazy: pulls in numpy, rapidfuzz at import
            from agent.router import IntentRouter

            torch.set_num_threads(self.threads)
            self._router = IntentRouter.load(self.model_dir)  # None for a model dir without one: no routing
            self._tok = load_tokenizer(self.model_dir)
            self._vocab = make_vocab(self._tok)
            self._model = AdguideForPrefixLM.from_pretrained(self.model_dir, dtype=torch.float32).eval()

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Runnable:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    # --- prompts ----------------------------------------------------------------------------------------------

    def _scope(self, messages: list[BaseMessage]) -> str:
        """The conversation's advertiser, from its system prompt: one loaded model serves many agents (the
        evals, the server's pool), so the advertiser it was built for is only the fallback."""
        system = next((m for m in messages if isinstance(m, SystemMessage)), None)
        found = _SCOPE.search(str(system.content)) if system is not None else None
        return found.group(0) if found else self.advertiser_id or "adv_unknown"

    def prompt_ids(
        self, thread: list[dict[str, Any]], scope: str, pending: dict[str, Any] | None = None
    ) -> tuple[list[int], dict[str, str]]:
        """[CLS] prompt [SEP] (the earlier turn left out when the prompt would not fit), and what each value
        reference in it stands for (reference -> value)."""
        # lazy: pulls in text_to_num at import (through agent.amounts)
        from agent.model.prompt import build_prompt_values

        self.load()
        cls, sep = self._tok.token_to_id("[CLS]"), self._tok.token_to_id("[SEP]")
        for keep_prev in (True, False):
            visible = (
                thread
                if keep_prev
                else thread[max(i for i, m in enumerate(thread) if m.get("role") == "user") :]
            )
            text, refs = build_prompt_values(visible, scope, pending)
            ids = self._tok.encode(text, add_special_tokens=False).ids
            values = {ref: value for value, ref in refs.items()}
            if len(ids) <= MAX_PROMPT_TOKENS:
                return [cls, *ids, sep], values
        return [cls, *ids[:MAX_PROMPT_TOKENS], sep], values

    # --- generation -------------------------------------------------------------------------------------------

    def _decode(
        self,
        prompt: list[int],
        schemas: dict[str, dict[str, Any]],
        *,
        pending: bool,
        temperature: float = 0.0,
        generator: Any = None,
        deadline: float | None = None,
        answer: bool = True,
        limit: int | None = None,
    ) -> tuple[str, int]:
        # lazy: pulls in torch at import
        from agent.model.decode import generate, grammar_for

        grammar = grammar_for(self._vocab, schemas, prompt, pending=pending, answer=answer)
        present = set(prompt)
        refs = [self._tok.token_to_id(r) for r in VALUE_REFS]
        banned = [i for i in refs if i is not None and i not in present]  # only references the prompt carries
        wait = -1.0 if deadline is None else max(0.0, deadline - time.time())
        if not self._lock.acquire(timeout=wait):
            raise TimeoutError("the model stayed busy with other conversations past this turn's time budget")
        try:
            gen = generate(
                self._model,
                self._vocab,
                grammar,
                prompt,
                max_new_tokens=limit or self.max_new_tokens,
                temperature=temperature,
                generator=generator,
                deadline=deadline,
                banned=banned,
            )
        finally:
            self._lock.release()
        ids = [i for i in gen.ids if i != self._vocab.sep]
        return self._tok.decode(ids, skip_special_tokens=False), len(gen.ids)

    def text_message(
        self,
        decoded: str,
        thread: list[dict[str, Any]],
        values: dict[str, str] | None = None,
        schemas: dict[str, dict[str, Any]] | None = None,
    ) -> AIMessage:
        """The decoded output as the graph's message: calls parsed by the shared hermes parser, or an answer with
        spacing and casing back and each value reference replaced by the value it stands for."""
        # lazy: pulls in text_to_num at import (through agent.amounts)
        from agent.model.prompt import resolve_refs

        if decoded.lstrip().startswith(CALL_OPEN):
            return parse_tool_calls(render_calls(decoded, schemas))
        text = recase(clean_spacing(decoded), _names(thread))
        return AIMessage(content=resolve_refs(text, values or {}))

    def run(
        self,
        messages: list[BaseMessage],
        tools: list[dict[str, Any]] | None,
        *,
        deadline: float | None = None,
        temperature: float = 0.0,
        generator: Any = None,
    ) -> AIMessage:
        self.load()
        scope = self._scope(messages)
        thread = own_account_words(to_openai_messages(messages), scope)
        schemas = {
            t["function"]["name"]: t["function"].get("parameters") or {"type": "object", "properties": {}}
            for t in tools or []
        }
        prompt, values = self.prompt_ids(thread, scope)
        probs = self._route(thread)
        plan = _plan(thread)
        if probs is not None and self.write_answers and plan is not None:
            # lazy: pulls in numpy, rapidfuzz at import
            from agent.router import next_step

            started = IntentKind(plan) if plan in IntentKind.__members__.values() else None
            planned = next_step(
                probs, turn_done(thread), scope, planning=True, plan=started
            )  # the plan goes on
            if planned is not None:
                return _plan_message(planned, len(prompt))
        if probs is not None and self.route_tools and thread and thread[-1].get("role") == "user":
            # lazy: pulls in numpy, rapidfuzz at import
            from agent.router import switched_call

            switched = switched_call(thread)
            if switched is not None:  # "what about X?": the previous turn's call, for X
                call = {"name": switched[0], "args": switched[1], "id": f"call_{uuid.uuid4().hex[:10]}"}
                return AIMessage(
                    content="",
                    tool_calls=[{**call, "type": "tool_call"}],
                    usage_metadata={
                        "input_tokens": len(prompt),
                        "output_tokens": 0,
                        "total_tokens": len(prompt),
                    },
                )
        if probs is not None and self.write_answers and thread and thread[-1].get("role") == "user":
            # lazy: pulls in numpy, rapidfuzz at import
            from agent.router import planned_start

            start = planned_start(probs, scope, thread)  # slot-less advice or "do that": the expert starts
            if start is not None:
                return _plan_message(start, len(prompt))
        answer = True
        if probs is not None and self.route_tools and thread and thread[-1].get("role") == "user":
            schemas, answer = first_step_grammar(schemas, probs)
        if probs is not None and self.write_answers and thread and thread[-1].get("role") == "tool":
            # lazy: pulls in text_to_num at import
            from agent.amounts import period_said

            # lazy: pulls in numpy, rapidfuzz at import
            from agent.router import account_plan_after_no_match, last_user_text

            text = last_user_text(thread) or ""
            account = account_plan_after_no_match(
                probs, turn_done(thread), period_said(text), scope, kpi_said(text)
            )
            if account is not None:  # the words the model looked up name nothing: the account's question
                return _plan_message(account, len(prompt))
        if (
            probs is not None
            and self.write_answers
            and answer
            and temperature == 0
            and thread
            and thread[-1].get("role") == "tool"
        ):
            written = self._answer_instead(prompt, schemas, probs, thread, scope, deadline)
            if written is not None:
                return written

        def decoded(tools: dict[str, dict[str, Any]], answer: bool) -> tuple[AIMessage, int]:
            """A decoding under the grammar of `tools` (an answer allowed or not): the message, its tokens."""
            out, n = self._decode(
                prompt,
                tools,
                pending=False,
                temperature=temperature,
                generator=generator,
                deadline=deadline,
                answer=answer,
            )
            return self.text_message(out, thread, values, tools), n

        def must_call(tools: dict[str, dict[str, Any]]) -> tuple[AIMessage, int]:
            """A second decoding that must call one of `tools` (the message, its tokens)."""
            return decoded(tools, answer=False)

        message, n_out = decoded(schemas, answer)

        if (
            probs is not None
            and self.route_tools
            and answer
            and not message.tool_calls
            and thread
            and thread[-1].get("role") == "user"
        ):
            # lazy: pulls in numpy, rapidfuzz at import
            from agent.router import refusal_kind, tools_instead_of_refusal

            refused_as = refusal_kind(str(message.content))
            instead = tools_instead_of_refusal(probs, refused_as) if refused_as is not None else None
            if instead and instead <= schemas.keys():  # a refusal of what the router reads as a plain request
                message, more = must_call({n: s for n, s in schemas.items() if n in instead})
                n_out += more
        if (
            probs is not None
            and self.route_tools
            and message.tool_calls
            and thread
            and thread[-1].get("role") == "user"
        ):
            # lazy: pulls in numpy, rapidfuzz at import
            from agent.router import router_tool_instead

            tool = router_tool_instead(probs, [dict(c) for c in message.tool_calls])
            if (
                tool is not None and tool in schemas
            ):  # the router is sure of another tool: the model's words for it
                again, more = must_call({tool: schemas[tool]})
                n_out += more
                if again.tool_calls:
                    message = again
        if probs is not None and self.write_answers and not message.tool_calls:
            # lazy: pulls in numpy, rapidfuzz at import
            from agent.router import model_next_tool, next_step, report_of_calls

            done = turn_done(thread)
            tool = model_next_tool(probs, done)
            # the plan's next call takes the user's words: the model's
            if tool is not None and tool in schemas:
                message, more = must_call({tool: schemas[tool]})
                n_out += more
            if not message.tool_calls:
                planned = next_step(probs, done, scope)
                if planned is None and "?" not in str(message.content):  # a question back stays the model's
                    planned = report_of_calls(done, scope)
                if planned is not None:
                    message = _plan_message(planned)
        if (
            probs is not None
            and self.write_answers
            and message.tool_calls
            and thread
            and thread[-1].get("role") == "user"
        ):
            # lazy: pulls in text_to_num at import
            from agent.amounts import period_said

            # lazy: pulls in numpy, rapidfuzz at import
            from agent.router import account_plan_instead, last_user_text

            text = last_user_text(thread) or ""
            calls = [dict(c) for c in message.tool_calls]
            account = account_plan_instead(probs, calls, text, period_said(text), scope, kpi_said(text))
            if account is not None:  # an account-level question, not the thing of an earlier turn
                message = _plan_message(account)
        if message.tool_calls and not str(message.tool_calls[0].get("id", "")).startswith(PLAN_CALL):
            message = _grounded(message, thread, scope, probs)
        message.usage_metadata = {
            "input_tokens": len(prompt),
            "output_tokens": n_out,
            "total_tokens": len(prompt) + n_out,
        }
        return message

    def _answer_instead(
        self,
        prompt: list[int],
        schemas: dict[str, dict[str, Any]],
        probs: dict[Any, float],
        thread: list[dict[str, Any]],
        scope: str,
        deadline: float | None,
    ) -> AIMessage | None:
        """After tool results: where the model's first token starts an answer (not another call) and the expert
        writes that answer from the results (agent/router.py next_step), the expert's answer, without decoding the
        model's whole answer only to replace it. None: decode as usual."""
        # lazy: pulls in numpy, rapidfuzz at import
        from agent.router import model_next_tool, next_step

        done = turn_done(thread)
        if model_next_tool(probs, done) is not None:
            return None
        head, _ = self._decode(prompt, schemas, pending=False, deadline=deadline, limit=1)
        if head.lstrip().startswith(CALL_OPEN):
            return None
        planned = next_step(probs, done, scope)
        if planned is None:
            return None
        message = _plan_message(planned, len(prompt))
        message.usage_metadata = {
            "input_tokens": len(prompt),
            "output_tokens": 1,
            "total_tokens": len(prompt) + 1,
        }
        return message

    def plain_request(self, text: str) -> bool:
        """Whether this model's intent router reads a user message as an ordinary request of the account (the
        input guardrail's second look at what its intent screen would refuse); False without a router."""
        self.load()
        return self._router is not None and bool(self._router.plain_request(text))

    def _route(self, thread: list[dict[str, Any]]) -> dict[Any, float] | None:
        """The router's intent probabilities for the turn's user message (None without a router)."""
        # lazy: pulls in numpy, rapidfuzz at import
        from agent.router import routed_text

        text = routed_text(thread)  # a "what about X?" turn has the previous message's intent
        if self._router is None or not text or not (self.route_tools or self.write_answers):
            return None
        return self._router.predict([text])[0]  # type: ignore[no-any-return]

    def decide(
        self, messages: list[BaseMessage], pending: dict[str, Any], reply: str
    ) -> Literal["confirm", "reject"] | None:
        """A typed reply to a waiting proposal: confirm, reject, or None (the user moved on)."""
        self.load()
        thread = [*to_openai_messages(messages), {"role": "user", "content": reply}]
        prompt, _ = self.prompt_ids(thread, self._scope(messages), pending)
        decoded, _ = self._decode(prompt, {}, pending=True)
        head = decoded.strip()
        said: Literal["confirm", "reject"] | None = (
            "confirm" if head.startswith(CONFIRM) else "reject" if head.startswith(REJECT) else None
        )
        probs = self._route([{"role": "user", "content": reply}])

        return said if probs is None else reply_decision(said, probs, vetoed(reply))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self.run(messages, kwargs.get("tools"), deadline=kwargs.get("deadline"))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The answer arrives whole (its spacing and casing are set once it is complete), calls as one chunk."""
        message = self.run(messages, kwargs.get("tools"), deadline=kwargs.get("deadline"))
        chunk = ChatGenerationChunk(
            message=AIMessageChunk(
                content=message.content,
                usage_metadata=message.usage_metadata,
                tool_call_chunks=[
                    {
                        "name": c["name"],
                        "args": json.dumps(c["args"]),
                        "id": c["id"],
                        "index": i,
                        "type": "tool_call_chunk",
                    }
                    for i, c in enumerate(message.tool_calls)
                ],
            )
        )
        if run_manager and message.content:
            run_manager.on_llm_new_token(str(message.content), chunk=chunk)
        yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)
