"""PNG plots people would rather look at than read: Qini/uplift curves and attribution waterfalls."""

from __future__ import annotations

from pathlib import Path

from tools.uplift.attribution import Attribution
from tools.uplift.metrics import UpliftCurves


def _pyplot():  # type: ignore[no-untyped-def]
    # lazy: matplotlib is heavy and needed only here
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib is heavy and needed only here
    import matplotlib.pyplot as plt

    return plt


def plot_uplift_curves(
    curves: dict[str, UpliftCurves], path: str | Path, *, title: str = "Who responds to the treatment?"
) -> Path:
    """Qini (left) and uplift (right) curves of one or more scorings, with random targeting for reference."""
    plt = _pyplot()
    fig, (ax_q, ax_u) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    first = next(iter(curves.values()))
    x0 = [0.0, *first.fraction]
    ax_q.plot(x0, [0.0, *first.random], color="grey", linestyle="--", label="random targeting")
    for name, c in curves.items():
        x = [0.0, *c.fraction]
        ax_q.plot(x, [0.0, *c.qini], label=f"{name} (Qini coef. {c.qini_coefficient:.3g})", linewidth=2)
        ax_u.plot(x, [0.0, *c.uplift], label=f"{name} (AUUC {c.auuc:.3g})", linewidth=2)
    ax_u.plot(x0, [0.0, *[f * first.uplift[-1] for f in first.fraction]], color="grey", linestyle="--")
    ax_q.set_title("Qini curve")
    ax_u.set_title("Uplift curve")
    for ax in (ax_q, ax_u):
        ax.set_xlabel("share of users targeted (highest predicted effect first)")
        ax.set_ylabel("incremental outcome per user in population")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_waterfall(att: Attribution, path: str | Path, *, title: str | None = None) -> Path:
    """Before -> each contribution (green up, red down) -> after, labelled with values and their size relative to before (in brackets)."""
    plt = _pyplot()
    labels = ["before", *(c.name.replace("_", " ") for c in att.contributions), "after"]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * len(labels)), 4.8), dpi=110)
    fmt = _formatter(att.kpi)
    ax.bar(0, att.before, color="#6b7b8c")
    ax.text(0, att.before, fmt(att.before), ha="center", va="bottom", fontsize=9)
    level = att.before
    for i, c in enumerate(att.contributions, start=1):
        color = "#2e9e5b" if c.value >= 0 else "#d2463c"
        ax.bar(i, c.value, bottom=level, color=color)
        share = f"\n({c.value / att.before:+.1%})" if att.before else ""
        top = max(level, level + c.value)
        ax.text(
            i,
            top,
            f"{'+' if c.value >= 0 else ''}{fmt(c.value)}{share}",
            ha="center",
            va="bottom",
            fontsize=9,
        )
        ax.plot([i - 0.6, i + 0.4], [level, level], color="black", linewidth=0.6)
        level += c.value
    n = len(labels) - 1
    ax.bar(n, att.after, color="#2f5d8a")
    ax.text(n, att.after, fmt(att.after), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20)
    ax.set_ylabel(att.kpi)
    # zoom on the range the bars move through: the change is what matters, not the distance from zero
    levels = [att.before]
    for c in att.contributions:
        levels.append(levels[-1] + c.value)
    lo, hi = min(levels), max(levels)
    span = max(hi - lo, 1e-9 + abs(hi) * 0.01)
    bottom = lo - 0.6 * span if lo - 0.6 * span > 0 or lo < 0 else 0.0
    ax.set_ylim(bottom, hi + 0.25 * span)
    ax.grid(axis="y", alpha=0.3)
    change = f"{'+' if att.change >= 0 else ''}{fmt(att.change)}"
    ax.set_title(title or f"Why {att.kpi} changed: {change} ({att.method})")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _formatter(kpi: str):  # type: ignore[no-untyped-def]
    if kpi == "acos":
        return lambda v: f"{v:.1%}"
    if kpi == "roas":
        return lambda v: f"{v:.2f}"
    return lambda v: f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
