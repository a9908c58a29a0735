"""Precision/recall of each guardrail on its test set (agent/guardrails/data/*.jsonl).

A "positive" is a case the guardrail should act on (refuse, reject, repair, replace); benign look-alikes
are the negatives, and their false-positive rate is the number that matters most: a guardrail that blocks
real advertiser questions is a bug. Run: `adguide guardrails` (or `python -m agent.guardrails.evaluate`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from agent.guardrails.input import check_input, find_pii
from agent.guardrails.output import check_output, extract_numbers, is_grounded, source_numbers

DATA = Path(__file__).parent / "data"


class Scores(BaseModel):
    guardrail: str
    cases: int
    positives: int
    negatives: int
    precision: float
    recall: float
    false_positive_rate: float
    exact: float  # share of cases with exactly the expected category/verdict/action
    mismatches: list[str]
    heldout: bool = False  # a held-out set: its rows are not read (main prints them only when asked)


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def _scores(name: str, rows: list[tuple[bool, bool, bool, str]], heldout: bool = False) -> Scores:
    """rows: (expected positive, predicted positive, exactly as expected, label for mismatches)."""
    tp = sum(e and p for e, p, _, _ in rows)
    fp = sum(p and not e for e, p, _, _ in rows)
    fn = sum(e and not p for e, p, _, _ in rows)
    neg = sum(not e for e, _, _, _ in rows)
    return Scores(
        guardrail=name,
        cases=len(rows),
        positives=tp + fn,
        negatives=neg,
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / (tp + fn) if tp + fn else 1.0,
        false_positive_rate=fp / neg if neg else 0.0,
        exact=sum(x for _, _, x, _ in rows) / len(rows),
        mismatches=[label for _, _, x, label in rows if not x],
        heldout=heldout,
    )


def input_case(row: dict[str, Any]) -> tuple[bool, bool, bool, str]:
    check = check_input(row["text"], scope=row.get("scope", "adv_0001"))
    exact = check.category == row["expect"]
    if "pii" in row:
        exact = exact and sorted({r.entity for r in check.redactions}) == sorted(row["pii"])
    return row["expect"] != "ok", not check.allowed, exact, f"{row['text'][:60]!r}: {check.category}"


def intent_case(row: dict[str, Any], screen: bool) -> tuple[bool, bool, bool, str]:
    """A row of the intent sets (label: ok or the attack kind), screened by the rules, or the rules then the intent
    screen."""
    check = check_input(row["text"], scope="adv_0001", screen=screen)
    return (
        row["label"] != "ok",
        not check.allowed,
        check.category == row["label"],
        f"{row['text'][:60]!r}: {check.category}",
    )


def pii_case(row: dict[str, Any]) -> tuple[bool, bool, bool, str]:
    found = sorted({r.entity for r in find_pii(row["text"])})
    return bool(row["pii"]), bool(found), found == sorted(row["pii"]), f"{row['text'][:60]!r}: {found}"


def tool_args_case(row: dict[str, Any], fixture: dict[str, Any]) -> tuple[bool, bool, bool, str]:
    # lazy: pulls in jsonschema at import
    from agent.guardrails.tool_args import ProposedChange, Scope, Verdict, check_change, check_tool_args

    if "change" in row:
        check = check_change(ProposedChange(**row["change"]))
        label = str(row["change"])
    else:
        scope = Scope(
            advertiser_id=fixture["scope"]["advertiser_id"],
            known_ids=frozenset(fixture["scope"]["known_ids"]),
        )
        check = check_tool_args(
            row["tool"], row["args"], schema=fixture["tools"].get(row["tool"]), scope=scope
        )
        label = f"{row['tool']}({row['args']})"
    return (
        row["expect"] != "ok",
        check.verdict != Verdict.OK,
        check.verdict == row["expect"],
        f"{label}: {check.verdict}",
    )


def output_case(row: dict[str, Any]) -> tuple[bool, bool, bool, str]:
    check = check_output(row["answer"], row["tool_results"], row.get("user", []))
    return (
        row["expect"] != "pass",
        not check.ok,
        check.action == row["expect"],
        f"{row['answer'][:60]!r}: {check.action}",
    )


def fabrication_pass_rate(seed: int = 0, n: int = 300) -> dict[str, float]:
    """Share of invented numbers that the grounding check would accept over a realistic 30-day report
    (30 rows x 5 metrics): how much room the accepted arithmetic leaves for a model to make figures up."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "date": f"2026-06-{d + 1:02d}",
            "impressions": int(rng.integers(500, 5000)),
            "clicks": int(rng.integers(10, 200)),
            "spend": round(float(rng.uniform(20, 300)), 2),
            "orders": int(rng.integers(0, 20)),
            "sales": round(float(rng.uniform(0, 900)), 2),
        }
        for d in range(30)
    ]
    sources = source_numbers([json.dumps({"rows": rows})])
    out = {}
    for fmt, lo, hi in [
        ("${:,.2f}", 1, 5000),
        ("${:,.0f}", 11, 5000),
        ("{:,.0f} clicks", 11, 5000),
        ("{:.1f}%", 1, 99),
        ("{:.0f}%", 1, 99),
    ]:
        hits = 0
        for _ in range(n):
            mention = extract_numbers(fmt.format(rng.uniform(lo, hi)))[0]
            hits += is_grounded(mention, sources)
        out[fmt.replace("{", "").replace("}", "").replace(":", "")] = hits / n
    return out


def evaluate_all() -> list[Scores]:
    """Development sets (the patterns were written against them) and held-out sets (written afterwards and
    not tuned on: their figures are the honest ones)."""
    fixture = json.loads((DATA / "tool_fixture.json").read_text())
    out = []
    for suffix, label in [("", "dev"), ("_holdout", "holdout")]:
        inputs = load(f"input{suffix}.jsonl")
        held = label == "holdout"
        out += [
            _scores(f"input/{label}", [input_case(r) for r in inputs], held),
            _scores(f"pii/{label}", [pii_case(r) for r in inputs if "pii" in r], held),
            _scores(f"output/{label}", [output_case(r) for r in load(f"output{suffix}.jsonl")], held),
        ]
    out.append(_scores("tool_args/dev", [tool_args_case(r, fixture) for r in load("tool_args.jsonl")]))
    intents = load(
        "intent_holdout.jsonl"
    )  # attacks and benign look-alikes of phrasing families never trained on
    out += [
        _scores("intent/rules", [intent_case(r, False) for r in intents], heldout=True),
        _scores("intent/+screen", [intent_case(r, True) for r in intents], heldout=True),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        description="The guardrails' precision and recall on their dev and held-out sets."
    )
    p.add_argument(
        "--show-heldout",
        action="store_true",
        help="also print the held-out sets' mismatching rows (reading them spends the held-out set: whatever is "
        "written after it is fitted to them; the dev sets' rows are always printed)",
    )
    args = p.parse_args(argv)
    for s in evaluate_all():
        print(
            f"{s.guardrail:16s} n={s.cases:3d} (+{s.positives}/-{s.negatives})  precision={s.precision:.3f} "
            f"recall={s.recall:.3f}  FPR(benign)={s.false_positive_rate:.3f}  exact={s.exact:.3f}"
        )
        if s.heldout and not args.show_heldout:
            if s.mismatches:
                print(f"   {len(s.mismatches)} mismatches (held-out rows: --show-heldout prints them)")
            continue
        for m in s.mismatches:
            print("   mismatch:", m)
    print("grounding: share of fabricated numbers accepted over a 30-day report:", fabrication_pass_rate())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
