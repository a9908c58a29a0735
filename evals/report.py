"""A run's result: one JSON file (everything, transcripts included) and one self-contained HTML report with
plots (success per category, ID vs shifted splits, the distribution of advice outcomes, latency per turn),
written to runs/eval-<timestamp>/ (result.json, report.html). The teacher's row sits next to the model's in
every table and plot."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from evals.data_model import Row
from evals.metrics import CaseResult, RowMetrics
from evals.scenario import Suite

# Metric, label, format ("pct", "num", "sec", "usd")
METRIC_LABELS: list[tuple[str, str, str]] = [
    ("task_success", "task success", "pct"),
    ("pass_k", "pass^k", "pct"),
    ("state_accuracy", "store state correct", "pct"),
    ("safety_pass_rate", "safety cases passed", "pct"),
    ("tool_call_accuracy", "tool-call accuracy (ragas)", "num"),
    ("tool_call_f1", "tool-call F1 (ragas)", "num"),
    ("advice_fraction", "advice: share of oracle gain", "num"),
    ("advice_gain_usd", "advice: mean simulated gain", "usd"),
    ("grounding_rate", "grounded answers", "pct"),
    ("guardrail_precision", "refusal precision", "pct"),
    ("guardrail_recall", "refusal recall", "pct"),
    ("refusal_rate_benign", "refusals of benign look-alikes", "pct"),
    ("latency_p50_s", "latency per turn p50", "sec"),
    ("latency_p95_s", "latency per turn p95", "sec"),
    ("tokens_per_task", "generated tokens per task", "int"),
    ("tool_calls_per_task", "tool calls per task", "num"),
]


class RunResult(BaseModel):
    run_id: str
    created_at: str
    suite: str
    suite_spec: Suite
    scenario_files: dict[str, str]
    world_dir: str
    rows: list[Row]
    trials: int
    concurrency: int
    machine: dict[str, Any]
    seconds: float
    metrics: dict[str, RowMetrics]
    skipped: list[dict[str, str]] = Field(default_factory=list)
    gate: dict[str, Any] | None = None
    results: list[CaseResult] = Field(default_factory=list)

    def row_label(self, name: str) -> str:
        return next((r.label() for r in self.rows if r.name == name), name)


def machine_info() -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_1min": load,
        "platform": platform.platform(terse=True),
    }


def new_run_dir(out: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out / f"eval-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = out / f"eval-{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "sec":
        return f"{value:.2f} s"
    if kind == "usd":
        return f"${value:,.2f}"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"


# --- plots ---------------------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    # lazy: matplotlib is heavy and needed only here
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _grouped_bars(ax: Any, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def plots(result: RunResult) -> dict[str, str]:
    """Base64 PNGs: per-category success, ID vs shifted (success and advice), advice outcomes, latency."""
    # lazy: matplotlib is heavy and needed only here
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib is heavy and needed only here
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    names = list(result.metrics)
    categories = sorted({c for m in result.metrics.values() for c in m.by_category})
    if categories:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        _grouped_bars(
            ax,
            categories,
            {n: [result.metrics[n].by_category.get(c, 0.0) for c in categories] for n in names},
            "task success",
        )
        ax.set_ylim(0, 1.05)
        ax.set_title("Success per category")
        out["category"] = _png(fig)
    splits = [
        s
        for s in ("id", "competitor_surge", "seasonal_peak", "new_category")
        if any(s in m.by_split for m in result.metrics.values())
    ]
    if splits:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        _grouped_bars(
            axes[0],
            splits,
            {n: [result.metrics[n].by_split.get(s, 0.0) for s in splits] for n in names},
            "task success",
        )
        axes[0].set_ylim(0, 1.05)
        axes[0].set_title("In-distribution vs shifted: success")
        _grouped_bars(
            axes[1],
            splits,
            {n: [result.metrics[n].advice_by_split.get(s, 0.0) for s in splits] for n in names},
            "share of oracle gain",
        )
        axes[1].set_title("In-distribution vs shifted: advice")
        out["splits"] = _png(fig)
    advice = {
        n: [
            r.advice.fraction
            for r in result.results
            if r.row == n and r.advice is not None and r.advice.fraction is not None
        ]
        for n in names
    }
    if any(advice.values()):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        axes[0].hist(
            [advice[n] for n in names], bins=[-1, -0.5, -0.1, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0], label=names
        )
        axes[0].set_xlabel("gain / oracle gain")
        axes[0].set_ylabel("cases")
        axes[0].legend(fontsize=8)
        axes[0].set_title("Advice outcomes")
        gains = {
            n: [
                r.advice.gain
                for r in result.results
                if r.row == n and r.advice is not None and r.advice.gain is not None
            ]
            for n in names
        }
        axes[1].boxplot([gains[n] or [0.0] for n in names], tick_labels=names)
        axes[1].set_ylabel("simulated gain over the horizon ($)")
        axes[1].set_title("Simulated gain of the advice")
        out["advice"] = _png(fig)
    latencies = {n: [x for r in result.results if r.row == n for x in r.latencies_s] for n in names}
    if any(latencies.values()):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.boxplot([latencies[n] or [0.0] for n in names], tick_labels=names)
        ax.set_ylabel("seconds per turn")
        ax.set_title("Latency per turn")
        out["latency"] = _png(fig)
    return out


# --- HTML ----------------------------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}
th{background:#f3f3f3}.ok{color:#176117}.bad{color:#a11}.small{font-size:12px;color:#555}
img{max-width:100%;margin:0.5em 0}details{margin:0.3em 0}pre{white-space:pre-wrap;font-size:12px;background:#f7f7f7;padding:6px}"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def render_html(result: RunResult) -> str:
    names = list(result.metrics)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>adguide eval {_e(result.run_id)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>adguide evaluation: suite <code>{_e(result.suite)}</code></h1>",
        f"<p class='small'>{_e(result.run_id)} · {_e(result.created_at)} · {result.seconds:.0f} s · "
        f"{result.trials} trial(s) · concurrency {result.concurrency} · machine {_e(result.machine)}<br>"
        f"world {_e(result.suite_spec.world.model_dump())} · scenario files {_e(result.scenario_files)}</p>",
        "<h2>Metrics</h2><table><tr><th>metric</th>"
        + "".join(f"<th>{_e(result.row_label(n))}</th>" for n in names)
        + "</tr>",
    ]
    for key, label, kind in METRIC_LABELS:
        cells = "".join(f"<td>{fmt(result.metrics[n].metrics.get(key), kind)}</td>" for n in names)
        parts.append(f"<tr><td>{_e(label)}</td>{cells}</tr>")
    parts.append(
        "<tr><td>cases × trials / errors</td>"
        + "".join(
            f"<td>{result.metrics[n].n_cases} × {result.metrics[n].trials} / {result.metrics[n].errors}</td>"
            for n in names
        )
        + "</tr></table>"
    )
    if result.gate is not None:
        verdict = "passed" if result.gate.get("passed") else "FAILED"
        parts.append(
            f"<h2>Gate: <span class='{'ok' if result.gate.get('passed') else 'bad'}'>{verdict}</span></h2>"
            "<table><tr><th>row</th><th>metric</th><th>baseline</th><th>now</th><th>tolerance</th><th></th></tr>"
        )
        for c in result.gate.get("comparisons", []):
            cls = "bad" if c["regressed"] else "ok"
            parts.append(
                f"<tr><td>{_e(c['row'])}</td><td>{_e(c['metric'])}</td><td>{fmt(c['baseline'], 'num')}</td>"
                f"<td>{fmt(c['value'], 'num')}</td><td>{c['tolerance']}</td>"
                f"<td class='{cls}'>{'regressed' if c['regressed'] else 'ok'}</td></tr>"
            )
        parts.append("</table>")
        for note in result.gate.get("notes", []):
            parts.append(f"<p class='bad'>{_e(note)}</p>")
    titles = {
        "category": "Success per category",
        "splits": "In-distribution vs shifted markets",
        "advice": "Advice judged by simulated outcome",
        "latency": "Cost: latency per turn",
    }
    for key, png in plots(result).items():
        parts.append(f"<h2>{titles[key]}</h2><img alt='{key}' src='data:image/png;base64,{png}'>")
    parts.append("<h2>Failures</h2><table><tr><th>case</th><th>row</th><th>trial</th><th>why</th></tr>")
    for r in result.results:
        if not r.success:
            parts.append(
                f"<tr><td>{_e(r.case_id)}</td><td>{_e(r.row)}</td><td>{r.trial}</td>"
                f"<td>{_e('; '.join(r.failures))}</td></tr>"
            )
    parts.append("</table>")
    if result.skipped:
        parts.append(
            "<h2>Skipped</h2><ul>"
            + "".join(f"<li>{_e(s['case'])}: {_e(s['reason'])}</li>" for s in result.skipped)
            + "</ul>"
        )
    parts.append("<h2>Transcripts</h2>")
    for r in result.results:
        turns = "".join(
            f"<b>user</b>: {_e(t.user)}<br><b>agent</b>: {_e(' / '.join(t.answers))}<br>"
            for t in r.transcript.turns
        )
        calls = ", ".join(
            f"{c.name}({json.dumps(c.args)}){'' if c.ok else ' ✗'}" for c in r.transcript.tool_calls
        )
        mark = "✓" if r.success else "✗"
        parts.append(
            f"<details><summary>{mark} {_e(r.case_id)} · {_e(r.row)} · trial {r.trial}</summary>"
            f"<pre>{turns}<b>tool calls</b>: {_e(calls)}<br><b>writes</b>: {_e(r.transcript.audit)}"
            f"{'<br><b>error</b>: ' + _e(r.transcript.error) if r.transcript.error else ''}</pre></details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_run(result: RunResult, run_dir: Path) -> tuple[Path, Path]:
    """result.json and report.html in `run_dir`."""
    json_path = run_dir / "result.json"
    html_path = run_dir / "report.html"
    json_path.write_text(result.model_dump_json(indent=1))
    html_path.write_text(render_html(result))
    return json_path, html_path


def load_result(path: Path) -> RunResult:
    """A result.json (or the run dir holding one)."""
    p = path / "result.json" if path.is_dir() else path
    return RunResult.model_validate_json(p.read_text())
