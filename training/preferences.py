"""Stage 4: preference pairs labelled by the simulator, no human in the loop.

For each sampled training task, the SFT model writes several candidate trajectories (temperature sampling)
against real MCP tools on a private copy of the world; the teacher's trajectory joins them as one more
candidate (`include_teacher`). Each is scored (training/scoring.py: simulated outcome vs the oracle,
safety, grounding, tool calls). The best candidate is paired with every candidate that scores at least
`min_margin` lower, at their first differing assistant turn: the pair's prompt is the task plus the
shared prefix, chosen/rejected are the two different next assistant turns, and the margin is the score
gap of the whole trajectories (credit goes to the first decision that differed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from training.config import PreferenceStageConfig
from training.data import DialogueRecord, TaskKind
from training.rollout import isolated_world, mcp_caller, rollout
from training.scoring import Score, prompt_of, score, teacher_completion


class Candidate(BaseModel):
    source: str  # "sft" | "teacher"
    added: list[dict[str, Any]]
    score: Score


class PreferencePair(BaseModel):
    task_id: str
    kind: TaskKind
    prompt: list[dict[str, Any]]
    chosen: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    tools: str  # JSON string (Arrow-safe)
    margin: float
    chosen_score: float
    rejected_score: float
    chosen_source: str


def _same_turn(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def key(m: dict[str, Any]) -> Any:
        calls = [(c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls") or []]
        return m.get("role"), (m.get("content") or "").strip(), calls

    return bool(key(a) == key(b))


def pair_at_divergence(
    record: DialogueRecord, chosen: Candidate, rejected: Candidate
) -> PreferencePair | None:
    """Cut both trajectories at their first differing assistant turn; None if they never differ there."""
    i = 0
    while i < min(len(chosen.added), len(rejected.added)) and _same_turn(chosen.added[i], rejected.added[i]):
        i += 1
    if i >= len(chosen.added) or i >= len(rejected.added):
        return None
    a, b = chosen.added[i], rejected.added[i]
    if a.get("role") != "assistant" or b.get("role") != "assistant":
        return None  # same calls, different tool results: not the policy's decision
    return PreferencePair(
        task_id=record.id,
        kind=record.kind,
        prompt=[_plain(m) for m in prompt_of(record) + chosen.added[:i]],
        chosen=[_plain(a)],
        rejected=[_plain(b)],
        tools=json.dumps(record.tools),
        margin=round(chosen.score.total - rejected.score.total, 4),
        chosen_score=chosen.score.total,
        rejected_score=rejected.score.total,
        chosen_source=chosen.source,
    )


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """Contract-E message with uniform keys (Arrow-safe), invalid calls rendered as they were written."""
    if message.get("raw"):
        return {"role": "assistant", "content": message["raw"], "tool_calls": [], "tool_call_id": ""}
    calls = []
    for c in message.get("tool_calls") or []:
        calls.append({"id": c["id"], "type": "function", "function": dict(c["function"])})
    return {
        "role": message["role"],
        "content": message.get("content") or "",
        "tool_calls": calls,
        "tool_call_id": message.get("tool_call_id") or "",
    }


def pairs_for(record: DialogueRecord, candidates: list[Candidate], min_margin: float) -> list[PreferencePair]:
    ranked = sorted(candidates, key=lambda c: c.score.total, reverse=True)
    best = ranked[0]
    pairs: list[PreferencePair] = []
    seen: set[str] = set()
    for other in ranked[1:]:
        if best.score.total - other.score.total < min_margin or best.score.total == other.score.total:
            continue
        pair = pair_at_divergence(record, best, other)
        if pair is None:
            continue
        key = json.dumps(pair.rejected, sort_keys=True) + json.dumps(pair.prompt[-1], sort_keys=True)
        if key not in seen:
            seen.add(key)
            pairs.append(pair)
    return pairs


async def sample_candidates(
    model: Any,
    tokenizer: Any,
    record: DialogueRecord,
    world_path: Path,
    cfg: PreferenceStageConfig,
    seed: int,
) -> list[Candidate]:
    from tools.mcp_server import Scope, connect_in_memory

    candidates = []
    if cfg.include_teacher:
        added = teacher_completion(record)
        candidates.append(Candidate(source="teacher", added=added, score=score(record, added)))
    for k in range(cfg.candidates_per_prompt):
        with isolated_world(world_path) as world:
            async with connect_in_memory(world, Scope.advertiser(record.advertiser_id)) as session:
                added = await rollout(
                    model, tokenizer, prompt_of(record), record.tools, mcp_caller(session),
                    max_steps=cfg.max_steps_per_rollout, max_new_tokens=cfg.max_new_tokens,
                    temperature=cfg.temperature, seed=seed * 100 + k,
                )
        candidates.append(Candidate(source="sft", added=added, score=score(record, added)))
    return candidates


def pick_prompts(records: list[DialogueRecord], n: int, seed: int) -> list[DialogueRecord]:
    """n tasks spread over the task kinds (round-robin over kinds, shuffled within each)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    by_kind: dict[TaskKind, list[DialogueRecord]] = {}
    for record in records:
        by_kind.setdefault(record.kind, []).append(record)
    queues = [list(rng.permutation(len(v))) for v in by_kind.values()]
    lists = list(by_kind.values())
    picked: list[DialogueRecord] = []
    while len(picked) < n and any(queues):
        for queue, items in zip(queues, lists, strict=True):
            if queue and len(picked) < n:
                picked.append(items[int(queue.pop())])
    return picked


def build_preferences(
    model: Any,
    tokenizer: Any,
    records: list[DialogueRecord],
    world_path: Path,
    cfg: PreferenceStageConfig,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[PreferencePair], list[dict[str, Any]]]:
    """Pairs, and one stats row per task (candidate scores) for the metrics log and the card."""
    tasks = pick_prompts(records, cfg.n_prompts, seed)
    pairs: list[PreferencePair] = []
    stats: list[dict[str, Any]] = []

    async def run_all() -> None:
        for i, record in enumerate(tasks):
            candidates = await sample_candidates(model, tokenizer, record, world_path, cfg, seed + i)
            new = pairs_for(record, candidates, cfg.min_margin)
            pairs.extend(new)
            sft = [c.score for c in candidates if c.source == "sft"]
            stats.append({
                "task_id": record.id, "kind": record.kind.value, "pairs": len(new),
                "sft_totals": [s.total for s in sft], "sft_success": sum(s.success for s in sft),
                "teacher_total": next((c.score.total for c in candidates if c.source == "teacher"), None),
            })
            if progress:
                progress(i + 1, len(tasks))

    asyncio.run(run_all())
    return pairs, stats


def write_pairs(pairs: list[PreferencePair], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(p.model_dump_json() + "\n" for p in pairs))
    tmp.replace(path)


def read_pairs(path: Path) -> list[PreferencePair]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `adguide train preferences`")
    pairs = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                pairs.append(PreferencePair.model_validate_json(line))
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: not a preference pair: {str(err).splitlines()[0]}") from None
    return pairs
