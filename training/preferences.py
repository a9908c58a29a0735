"""The preference stage: the SFT model's own samples, judged by outcome, for a rejection-sampling fine-tune and DPO.

For each of `n_prompts` train-family steps (a call, an answer or a typed decision), the SFT model writes
`samples` outputs at `temperature`, each under the decoding grammar. A judge scores each by what it does:

- a call is run through the real tools on the dialogue's own world; it is right when it does what the expert's
  call did (the same tool with the same arguments once names are resolved to ids), and a proposal is also right
  when its simulated incremental profit is at least the expert's (another change that earns as much is as good);
- an answer is right when every figure in it comes from the turn's tool results (the output guardrail's
  grounding check) and it states the figures the expert's answer stated;
- a decision is right when it is the user's (confirm / reject).

Correct samples train a rejection-sampling fine-tune; prompts with both correct and wrong samples give DPO pairs
(chosen: a correct sample; rejected: a wrong one), all from the model's own outputs.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.curriculum.dialogues import Dialogue
from agent.guardrails.output import check_output
from agent.model.prompt import values_in
from agent.model.text import CONFIRM, REJECT
from evals.heldout import key_facts
from tools.mcp_server.outputs import try_read
from tools.mcp_server.resolve import canonical_args
from tools.mcp_server.schemas import ProposeOut
from training.examples import Example, examples

Progress = Callable[[str, int, int], None]


class Judged(BaseModel):
    output: str
    correct: bool
    why: str = ""


class PromptSamples(BaseModel):
    dialogue_id: str
    kind: str
    intent: str
    prompt: str
    gold: str
    samples: list[Judged]


class Pair(BaseModel):
    prompt: str
    chosen: str
    rejected: str
    kind: str


def _canonical_value(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, list):
        return [_canonical_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical_value(v) for k, v in sorted(value.items())}
    return value


def canonical_call(name: str, args: dict[str, Any], result_text: str) -> tuple[str, str]:
    """(tool, its arguments with names replaced by the ids they resolved to, numbers to the cent) as a key."""
    return name, json.dumps(_canonical_value(canonical_args(args, result_text)), sort_keys=True)


def _profit(result_text: str) -> float | None:
    """A proposal's mean simulated incremental profit; None for a failed call or one without a simulation."""
    proposal = try_read(ProposeOut, result_text)
    if proposal is None or proposal.impact is None:
        return None
    profit = proposal.impact.difference.get("incremental_profit")
    return None if profit is None else profit.mean


class Judge:
    """Runs calls on the dialogues' worlds (memoised MCP sessions) and scores samples against the gold step."""

    def __init__(self, worlds: dict[str, Path]) -> None:
        self.worlds = worlds  # world name (the dialogue id's prefix) -> world.sqlite
        self._sessions: dict[tuple[str, str], Any] = {}
        self._memo: dict[tuple[str, str, str, str], str] = {}
        self._stack: Any = None

    async def __aenter__(self) -> Judge:
        self._stack = AsyncExitStack()
        await self._stack.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            await self._stack.__aexit__(None, None, None)

    async def call(self, world: str, advertiser: str, name: str, args: dict[str, Any]) -> str:
        # lazy: pulls in mcp, pydantic_settings, starlette at import
        from tools.mcp_server import connect_in_memory

        # lazy: pulls in pydantic_settings at import
        from tools.mcp_server.cache import ToolCache

        key = (world, advertiser, name, json.dumps(args, sort_keys=True))
        if key in self._memo:
            return self._memo[key]
        if (world, advertiser) not in self._sessions:
            self._sessions[(world, advertiser)] = await self._stack.enter_async_context(
                connect_in_memory(
                    self.worlds[world], advertiser, cache=ToolCache(enabled=False), actor="judge"
                )
            )
        result = await self._sessions[(world, advertiser)].call_tool(name, args)
        self._memo[key] = "".join(getattr(b, "text", "") for b in result.content)
        return self._memo[key]

    async def judge(
        self,
        example: Example,
        gold_calls: list[tuple[str, dict[str, Any], str]],
        tool_texts: list[str],
        user_texts: list[str],
        world: str,
        advertiser: str,
        output: str,
        message: Any,
    ) -> Judged:
        if example.kind == "decision":
            ok = output.strip() == example.output.strip()
            return Judged(output=output, correct=ok, why="" if ok else "wrong decision")
        if example.kind == "call":
            if not message.tool_calls:
                return Judged(output=output, correct=False, why="no call")
            mine = []
            for c in message.tool_calls:
                mine.append((c["name"], c["args"], await self.call(world, advertiser, c["name"], c["args"])))
            want = {canonical_call(n, a, r) for n, a, r in gold_calls}
            got = {canonical_call(n, a, r) for n, a, r in mine}
            if got == want:
                return Judged(output=output, correct=True)
            gold_gain = [_profit(r) for n, _, r in gold_calls if n == "propose_change"]
            my_gain = [_profit(r) for n, _, r in mine if n == "propose_change"]
            if (
                gold_gain
                and my_gain
                and gold_gain[0] is not None
                and my_gain[0] is not None
                and my_gain[0] >= gold_gain[0] - 1.0
            ):
                return Judged(output=output, correct=True, why="another change, as profitable")
            return Judged(output=output, correct=False, why=f"calls {sorted(got)} != {sorted(want)}")
        # lazy: pulls in scipy at import
        from evals.metrics import number_found

        if message.tool_calls:
            return Judged(output=output, correct=False, why="a call instead of the answer")
        text = str(message.content)
        check = check_output(text, tool_texts, user_texts)
        if any(i.kind.value == "ungrounded_number" for i in check.issues):
            return Judged(output=output, correct=False, why="ungrounded figure")
        missing = [
            f.number
            for f in key_facts(example_answer(example))
            if f.number is not None and not number_found(float(f.number), f.percent, f.rel_tol, text)
        ]
        return Judged(output=output, correct=not missing, why=f"missing {missing}" if missing else "")


def example_answer(example: Example) -> str:
    return example.output


def _steps(
    d: Dialogue,
) -> dict[tuple[int, int], tuple[list[tuple[str, dict[str, Any], str]], list[str], list[str]]]:
    """Per (turn, step): the gold calls of that step with results, and the turn's tool texts / user texts so far."""
    out = {}
    for t, turn in enumerate(d.turns):
        texts: list[str] = []
        for s, step in enumerate(turn.steps):
            calls = [
                (c["function"]["name"], json.loads(c["function"]["arguments"]), r)
                for c, r in zip(step.message.get("tool_calls") or [], step.results, strict=False)
            ]
            out[(t, s)] = (calls, list(texts), [turn.user])
            texts += step.results
    return out


async def sample_and_judge(
    model_dir: Path,
    dialogues: list[Dialogue],
    worlds: dict[str, Path],
    n_prompts: int,
    samples: int,
    temperature: float,
    seed: int,
    schemas: dict[str, dict[str, Any]],
    progress: Progress | None = None,
) -> list[PromptSamples]:
    # lazy: torch is heavy and needed only here
    import torch

    # lazy: langchain_core is heavy and needed only here
    from langchain_core.messages import AIMessage

    # lazy: pulls in jsonschema, langchain_core, pydantic_settings at import
    from agent.backends.embedded import MAX_PROMPT_TOKENS, EmbeddedChatModel

    say = progress or (lambda *_: None)
    model = EmbeddedChatModel.from_dir(model_dir)
    model.load()
    rng = random.Random(seed)
    pool = [(d, e) for d in dialogues for e in examples(d, schemas)]
    rng.shuffle(pool)
    generator = torch.Generator().manual_seed(seed)
    out: list[PromptSamples] = []
    async with Judge(worlds) as judge:
        for d, e in pool:
            if len(out) >= n_prompts:
                break
            ids = model._tok.encode(e.prompt, add_special_tokens=False).ids
            if len(ids) > MAX_PROMPT_TOKENS:  # what SFT leaves out too (serving shortens such a thread first)
                continue
            world = d.id.rsplit("-", 2)[0]
            steps = _steps(d)
            gold_calls, tool_texts, user_texts = steps.get((e.turn, e.step), ([], [], [e.prompt]))
            prompt = [model._tok.token_to_id("[CLS]"), *ids, model._tok.token_to_id("[SEP]")]
            judged = []
            for _ in range(samples):
                decoded, _ = model._decode(
                    prompt,
                    schemas if e.kind != "decision" else {},
                    pending="[pending]" in e.prompt,
                    temperature=temperature,
                    generator=generator,
                )
                if decoded.strip().startswith((CONFIRM, REJECT)):
                    message = AIMessage(content=decoded.strip())
                else:
                    message = model.text_message(
                        decoded,
                        [{"role": "tool", "content": t} for t in tool_texts],
                        values_in(e.prompt),
                        schemas,
                    )
                judged.append(
                    await judge.judge(
                        e, gold_calls, tool_texts, user_texts, world, d.advertiser_id, decoded, message
                    )
                )
            out.append(
                PromptSamples(
                    dialogue_id=d.id,
                    kind=e.kind,
                    intent=e.intent,
                    prompt=e.prompt,
                    gold=e.output,
                    samples=judged,
                )
            )
            say("sampling the SFT model", len(out), n_prompts)
    return out


def pairs_and_rft(
    records: list[PromptSamples], seed: int, gold_when_none_right: bool = False
) -> tuple[list[Pair], list[Example]]:
    """DPO pairs (a correct and a wrong sample of the same prompt) and the correct samples as SFT examples."""
    rng = random.Random(seed)
    pairs, rft = [], []
    for r in records:
        good = list(dict.fromkeys(s.output for s in r.samples if s.correct))
        bad = list(dict.fromkeys(s.output for s in r.samples if not s.correct))
        if not good and gold_when_none_right:
            good = [r.gold]
        for g in good:
            rft.append(
                Example(
                    dialogue_id=r.dialogue_id,
                    turn=0,
                    step=0,
                    kind=r.kind,
                    intent=r.intent,
                    prompt=r.prompt,
                    output=g,
                )
            )
        if good and bad:
            pairs.append(
                Pair(prompt=r.prompt, chosen=rng.choice(good), rejected=rng.choice(bad), kind=r.kind)
            )
    return pairs, rft


def summary(records: list[PromptSamples], pairs: list[Pair]) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = {}
    for r in records:
        by_kind.setdefault(r.kind, []).extend(float(s.correct) for s in r.samples)
    return {
        "prompts": len(records),
        "samples": sum(len(r.samples) for r in records),
        "correct_rate": {k: round(sum(v) / len(v), 3) for k, v in by_kind.items()},
        "pairs": len(pairs),
    }


def run(
    model_dir: Path,
    dialogues: list[Dialogue],
    worlds: dict[str, Path],
    cfg: Any,
    seed: int,
    schemas: dict[str, dict[str, Any]],
    progress: Progress | None = None,
) -> list[PromptSamples]:
    return asyncio.run(
        sample_and_judge(
            model_dir, dialogues, worlds, cfg.n_prompts, cfg.samples, cfg.temperature, seed, schemas, progress
        )
    )
