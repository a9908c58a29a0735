"""Stage 6: evaluate SFT vs DPO on held-out tasks, and write the model card.

Both models run greedily as ReAct agents over the real MCP tools (each task on its own copy of the
world) on the test split and the shifted-market split; the teacher's own trajectories are scored the
same way as the ceiling. Figures: tool-call exact match, task success, grounding rate, safety, and the
DPO-vs-SFT win rate by simulated outcome on the same tasks (ties count half).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.data import DialogueRecord
from training.model import model_dir_bytes
from training.rollout import isolated_world, mcp_caller, rollout
from training.scoring import Score, score, teacher_completion


def aggregate(scores: list[Score]) -> dict[str, float | int]:
    n = len(scores)
    if n == 0:
        return {"tasks": 0}
    return {
        "tasks": n,
        "tool_call_exact_match": round(sum(s.tool_match for s in scores) / n, 4),
        "task_success": round(sum(s.success for s in scores) / n, 4),
        "grounding_rate": round(sum(s.grounding for s in scores) / n, 4),
        "safety_rate": round(sum(s.safe for s in scores) / n, 4),
        "mean_outcome": round(sum(s.outcome for s in scores) / n, 4),
    }


def win_rate(challenger: list[Score], baseline: list[Score]) -> dict[str, float | int]:
    """Challenger vs baseline by simulated outcome per task (then by total score); ties count half."""
    wins = ties = losses = 0
    for a, b in zip(challenger, baseline, strict=True):
        key_a, key_b = (a.outcome, a.total), (b.outcome, b.total)
        if key_a > key_b:
            wins += 1
        elif key_a == key_b:
            ties += 1
        else:
            losses += 1
    n = max(1, wins + ties + losses)
    return {"wins": wins, "ties": ties, "losses": losses, "win_rate": round((wins + 0.5 * ties) / n, 4)}


async def _score_model(
    model: Any, tokenizer: Any, tasks: list[DialogueRecord], world: Path, max_steps: int, max_new_tokens: int,
    tick: Callable[[], None],
) -> list[Score]:
    from tools.mcp_server import Scope, connect_in_memory

    scores = []
    for record in tasks:
        from training.scoring import prompt_of

        with isolated_world(world) as copy:
            async with connect_in_memory(copy, Scope.advertiser(record.advertiser_id)) as session:
                added = await rollout(
                    model, tokenizer, prompt_of(record), record.tools, mcp_caller(session),
                    max_steps=max_steps, max_new_tokens=max_new_tokens, temperature=0.0,
                )
        scores.append(score(record, added))
        tick()
    return scores


def evaluate(
    models: dict[str, tuple[Any, Any]],
    splits: dict[str, tuple[list[DialogueRecord], Path]],
    max_steps: int,
    max_new_tokens: int,
    tick: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """{split: {model: aggregate, ..., "teacher": aggregate, "dpo_vs_sft": win_rate}} plus per-task scores."""
    results: dict[str, Any] = {}
    for split, (tasks, world) in splits.items():
        per_model = {
            name: asyncio.run(_score_model(m, t, tasks, world, max_steps, max_new_tokens, tick))
            for name, (m, t) in models.items()
        }
        teacher = [score(r, teacher_completion(r)) for r in tasks]
        entry: dict[str, Any] = {name: aggregate(s) for name, s in per_model.items()}
        entry["teacher"] = aggregate(teacher)
        if "dpo" in per_model and "sft" in per_model:
            entry["dpo_vs_sft"] = win_rate(per_model["dpo"], per_model["sft"])
        entry["per_task"] = [
            {"task_id": r.id, "kind": r.kind.value, **{n: s[i].model_dump() for n, s in per_model.items()}}
            for i, r in enumerate(tasks)
        ]
        results[split] = entry
    return results


def _reading(evaluation: dict[str, Any], prefs: dict[str, Any], shipped: str) -> list[str]:
    """Plain-language findings computed from the figures above (so the card never claims more than them)."""
    out = []
    test = evaluation.get("test", {})
    sft, dpo = test.get("sft", {}), test.get("dpo", {})
    if sft.get("tasks") and dpo.get("tasks"):
        delta = dpo["task_success"] - sft["task_success"]
        verb = "raised" if delta > 0 else "lowered" if delta < 0 else "did not change"
        out.append(f"- DPO {verb} task success on the test split ({sft['task_success']:.2f} -> {dpo['task_success']:.2f});"
                   f" the shipped weights are the {shipped.upper()} model (better test task success, ties broken"
                   " by the DPO-vs-SFT win rate).")
    pairs, from_teacher = prefs.get("pairs", 0), prefs.get("chosen_from_teacher", 0)
    if pairs and from_teacher == pairs:
        out.append("- Every preference pair chose the teacher's turn: no SFT sample beat another by the margin, so")
        out.append("  DPO here mostly pushes away from malformed samples rather than choosing between good ones;")
        out.append("  a stronger SFT model (more epochs, a GPU) gives pairs among its own samples.")
    if prefs.get("sft_success_rate") is not None:
        out.append(f"- SFT samples solved {prefs['sft_success_rate']:.0%} of the sampled training tasks.")
    return out


def _row(name: str, agg: dict[str, Any]) -> str:
    if not agg.get("tasks"):
        return f"| {name} | 0 | - | - | - | - |"
    return (
        f"| {name} | {agg['tasks']} | {agg['tool_call_exact_match']:.2f} | {agg['task_success']:.2f} | "
        f"{agg['grounding_rate']:.2f} | {agg['safety_rate']:.2f} |"
    )


def render_card(
    *, name: str, config: dict[str, Any], stages: dict[str, dict[str, Any]], evaluation: dict[str, Any],
    model_dir: Path, params: int, shipped: str, data_counts: dict[str, Any],
) -> str:
    sft, dpo, prefs = stages.get("sft", {}), stages.get("dpo", {}), stages.get("preferences", {})
    hw = sft.get("hardware", {})
    lines = [
        f"# adguide-{name}",
        "",
        "The project's own small model: a Qwen2-architecture decoder trained from scratch on teacher",
        "trajectories over the adguide marketplace (SFT), then preference-tuned with DPO on pairs labelled",
        "by the simulator (no human labels). Written by `adguide train card`"
        f" on {dt.datetime.now(dt.UTC).date().isoformat()}.",
        "",
        "## Model",
        f"- Architecture: Qwen2ForCausalLM, {params / 1e6:.2f}M parameters, "
        f"{config['model']['num_hidden_layers']} layers, hidden {config['model']['hidden_size']}, "
        f"vocab {config['tokenizer']['vocab_size']} (byte-level BPE, digits split), fp32 safetensors.",
        f"- Files: {model_dir_bytes(model_dir) / 2**20:.1f} MiB. Shipped weights: **{shipped}**.",
        "- Chat template: hermes/Qwen2 style, tools in the system turn, `<tool_call>` / `<tool_response>`;",
        "  load with `PreTrainedTokenizerFast` + `AutoModelForCausalLM`, or serve with vLLM",
        "  `--enable-auto-tool-choice --tool-call-parser hermes`.",
        "",
        "## Data",
        f"- Teacher dialogues (agent/teacher.py over the MCP tools): {json.dumps(data_counts)}.",
        "- Splits by advertiser (train/val/test) plus a shifted-market split: other advertisers in a world that",
        "  starts in October (holiday-season demand peaks, the generator's competitor events).",
        f"- Preference pairs: {prefs.get('pairs', 0)} from {prefs.get('prompts', 0)} training tasks x "
        f"{config['preferences']['candidates_per_prompt']} SFT samples"
        f"{' + the teacher trajectory' if config['preferences']['include_teacher'] else ''}"
        f" (chosen from the teacher in {prefs.get('chosen_from_teacher', 0)} pairs).",
        "",
        "## Training",
        "| stage | steps | epochs | loss | time (s) | tokens/s |",
        "|---|---|---|---|---|---|",
        f"| SFT (assistant tokens only) | {sft.get('steps')} | {sft.get('epochs')} | {sft.get('train_loss')} | "
        f"{sft.get('train_seconds')} | {sft.get('tokens_per_second')} |",
        f"| DPO ({dpo.get('loss_type')}, beta {dpo.get('beta')}, {'LoRA' if dpo.get('lora') else 'full'}) | "
        f"{dpo.get('steps')} | {dpo.get('epochs')} | {dpo.get('train_loss')} | {dpo.get('train_seconds')} | "
        f"{dpo.get('tokens_per_second')} |",
        "",
        f"Hardware: {hw.get('device', 'cpu')}, {hw.get('cpu_count')} cores ({hw.get('torch_threads')} torch "
        f"thread(s)), torch {hw.get('torch')}; the machine was shared with other work while training.",
        "GPU throughput: not measured (no GPU was lent to this run)." if hw.get("device") != "cuda" else "",
        "",
        "## Evaluation (held-out advertisers; greedy decoding; real MCP tools)",
    ]
    for split, entry in evaluation.items():
        lines += [
            "",
            f"### {split}",
            "| model | tasks | tool-call exact match | task success | grounding rate | safety |",
            "|---|---|---|---|---|---|",
        ]
        for model_name in ("sft", "dpo", "teacher"):
            if model_name in entry:
                lines.append(_row(model_name, entry[model_name]))
        if "dpo_vs_sft" in entry:
            w = entry["dpo_vs_sft"]
            lines += [
                "",
                f"DPO vs SFT by simulated outcome: win rate **{w['win_rate']:.2f}** "
                f"({w['wins']} wins, {w['ties']} ties, {w['losses']} losses; ties count half).",
            ]
    lines += ["", "## What the numbers say", *_reading(evaluation, prefs, shipped)]
    lines += [
        "",
        "## Limits",
        f"- A {params / 1e6:.1f}M-parameter model trained from scratch for {sft.get('epochs')} epoch(s) on one CPU",
        "  thread: it learns the template and some tool choice; copying ids and numbers exactly is where it fails",
        "  most (STACK.md). The agent's constrained decoding and guardrails carry the rest. Treat its advice as a",
        "  demo of the pipeline, not as advice. The same pipeline tunes a real base model (LoRA) on a GPU.",
        "- The teacher row is the ceiling on the same tasks (the scorer's own reference trajectories).",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"
