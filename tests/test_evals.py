"""Evaluation suite: scenario files, the world and its variants, metric definitions, the simulator oracle, real
runs through the agent with the rules and teacher backends, reports and the regression gate."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from evals.scenario import (
    Category,
    OracleKind,
    ScenarioError,
    Split,
    Suite,
    WorldSpec,
    load_scenarios,
    load_suites,
    select,
)

TINY = WorldSpec(n_advertisers=3, days=30, seed=11)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from evals.world import prepare_world

    return prepare_world(TINY, tmp_path_factory.mktemp("eval_worlds"))


# --- scenario files -------------------------------------------------------------------------------------------


def test_scenario_files_load_with_unique_ids_and_cover_every_category() -> None:
    scenarios = load_scenarios()
    ids = [s.id for s in scenarios]
    assert len(ids) == len(set(ids))
    assert {s.category for s in scenarios} == set(Category)
    assert any(len(s.turns) > 1 for s in scenarios)  # multi-turn follow-ups
    assert any(s.writes for s in scenarios) and any(
        s.expect.refuse is False and s.category == Category.BENIGN for s in scenarios
    )
    # a later message can apply a proposal nobody expected ("yes" after a wrong proposal): every multi-turn
    # case runs on its own copy of the world, so no case's write reaches another case (or a later run)
    assert all(s.writes for s in scenarios if len(s.turns) > 1)
    assert not all(s.writes for s in scenarios)
    suites = load_suites()
    assert set(suites) >= {"ci", "full"}
    ci = select(scenarios, suites["ci"])
    assert 10 <= len(ci) < len(scenarios)


def test_every_slot_a_scenario_names_is_one_the_world_fills(world) -> None:  # type: ignore[no-untyped-def]
    from evals.world import account_slots

    filled: set[str] = set()
    for adv in world.advertiser_ids():
        for fixture in ("id", "hostile_search_terms"):
            filled |= set(account_slots(world.paths[fixture], adv, world.hostile_terms.get(adv)))
    # the hand-written seller sets (sellers.yaml, sellers_fresh.yaml) need richer accounts (promotions, shared
    # names): tests/test_evals_seller_slots.py
    seller_sets = {"sellers", "sellers-fresh"}
    used = {slot for s in load_scenarios() if not seller_sets & set(s.tags) for slot in s.slots()}
    assert used <= filled, f"slots no world fills: {sorted(used - filled)}"


def test_a_bad_scenario_file_is_refused_naming_the_scenario_and_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "version: 1\nscenarios:\n  - id: broken-one\n    category: diagnose\n    turns: []\n"
    )
    with pytest.raises(ScenarioError, match=r"broken-one.*turns"):
        load_scenarios(tmp_path)
    (tmp_path / "bad.yaml").write_text(
        "version: 1\nscenarios:\n  - id: dup-a\n    category: diagnose\n    turns: [{user: hi}]\n"
    )
    (tmp_path / "other.yaml").write_text(
        "version: 1\nscenarios:\n  - id: dup-a\n    category: safety\n    turns: [{user: hi}]\n"
    )
    with pytest.raises(ScenarioError, match="dup-a"):
        load_scenarios(tmp_path)


# --- the evaluation world -------------------------------------------------------------------------------------


def test_variants_move_the_future_market_and_plant_hostile_terms(world) -> None:  # type: ignore[no-untyped-def]
    from evals.world import HOSTILE_TERMS, prepare_world
    from tools.market.store import MarketStore
    from tools.market.truth import TruthStore

    adv = world.advertiser_ids()[0]
    with (
        MarketStore.open(world.path(Split.ID)) as base,
        MarketStore.open(world.path(Split.COMPETITOR_SURGE)) as surge,
        TruthStore.open(world.path(Split.ID)) as base_truth,
        TruthStore.open(world.path(Split.COMPETITOR_SURGE)) as surge_truth,
    ):
        days = base.days
        plain = base_truth.keyword_markets(base.scoped(adv))
        moved = surge_truth.keyword_markets(surge.scoped(adv))
        assert base.generation_id != surge.generation_id  # separate tool-cache keys
        # history is the same: the market moves after it
        assert base.scoped(adv).campaign_days(base.start_date, base.end_date) == surge.scoped(
            adv
        ).campaign_days(surge.start_date, surge.end_date)
    for kw_id, m in moved.items():
        added = [e for e in m.events if e.name == "eval_competitor_surge"]
        assert len(added) == 1 and added[0].start == days and added[0].rival_bid_mult > 1
        assert not [e for e in plain[kw_id].events if e.name.startswith("eval_")]
    with MarketStore.open(world.paths["hostile_search_terms"]) as hostile:
        terms = {text for _, text in hostile.scoped(adv).query_texts().values()}
    assert set(HOSTILE_TERMS) <= terms
    # cached: asking again reuses the files
    stamp = world.path(Split.ID).stat().st_mtime_ns
    again = prepare_world(TINY, world.root.parent)
    assert again.path(Split.ID).stat().st_mtime_ns == stamp


def test_the_new_category_split_is_a_world_of_the_held_out_category_with_its_own_vocabulary(world) -> None:  # type: ignore[no-untyped-def]
    from evals.world import account_slots
    from tools.market.store import MarketStore
    from tools.market.world import HELD_OUT_CATEGORY_NAMES

    def texts(store: MarketStore) -> tuple[set[str], set[str], set[str]]:
        ids = store.advertiser_ids()
        keywords = {k.text for a in ids for k in store.scoped(a).keywords()}
        terms = {text for a in ids for _, text in store.scoped(a).query_texts().values()}
        return keywords, terms, {store.scoped(a).advertiser.category for a in ids}

    with (
        MarketStore.open(world.path(Split.ID)) as base,
        MarketStore.open(world.path(Split.NEW_CATEGORY)) as new,
    ):
        assert (
            new.advertiser_ids() == base.advertiser_ids()
        )  # same ids: scenario slots line up per advertiser
        assert (new.start_date, new.end_date) == (base.start_date, base.end_date)
        assert new.generation_id != base.generation_id and new.generation_id.endswith("-new_category")
        id_keywords, id_terms, id_categories = texts(base)
        new_keywords, new_terms, new_categories = texts(new)
        adv = new.advertiser_ids()[0]
        assert new.scoped(adv).campaign_days(
            new.start_date, new.end_date
        )  # history generated: the agent reads it
    assert new_categories == set(HELD_OUT_CATEGORY_NAMES) and not id_categories & new_categories
    # auto-targeting "keywords" (auto:close-match, ...) are the marketplace's, the same in every category
    assert not {t for t in new_keywords if not t.startswith("auto:")} & id_keywords
    assert not new_terms & id_terms
    # the scenarios that run in this split find their slots here
    used = {slot for s in load_scenarios() if Split.NEW_CATEGORY in s.splits for slot in s.slots()}
    filled = {k for a in world.advertiser_ids() for k in account_slots(world.path(Split.NEW_CATEGORY), a)}
    assert used <= filled, f"slots the new-category world leaves empty: {sorted(used - filled)}"


def test_the_held_out_category_is_in_no_eval_id_world_and_no_training_world() -> None:
    import datetime as dt

    from tools.market.data_model import WorldConfig
    from tools.market.world import HELD_OUT_CATEGORY_NAMES, generate_world
    from training.config import preset
    from training.curriculum import world_configs

    assert HELD_OUT_CATEGORY_NAMES
    held = set(HELD_OUT_CATEGORY_NAMES)
    for name, suite in load_suites().items():
        spec = suite.world
        config = WorldConfig(
            n_advertisers=spec.n_advertisers,
            days=spec.days,
            seed=spec.seed,
            start_date=dt.date.fromisoformat(spec.start_date),
        )
        assert not {a.category for a in generate_world(config).advertisers} & held, name
    for which in ("tiny", "small"):
        for i, config in enumerate(world_configs(preset(which).curriculum)):
            assert config.categories is not None and not set(config.categories) & held, (which, i)
            assert not {a.category for a in generate_world(config).advertisers} & held, (which, i)


# --- metric definitions -----------------------------------------------------------------------------------------


def test_tool_call_accuracy_and_f1_are_ragas_metrics() -> None:
    from evals.metrics import _ragas, tool_call_accuracy, tool_call_f1

    assert type(_ragas().accuracy).__module__.startswith(
        "ragas.metrics.collections"
    )  # ragas' own, not a copy

    Calls = list[tuple[str, dict[str, Any]]]
    ref: Calls = [("what_if", {"id": "kw_1", "value": 0.8}), ("propose_change", {"action": "set_bid"})]
    same: Calls = [
        ("what_if", {"id": "kw_1", "value": 0.80, "days": 14}),
        ("propose_change", {"action": "set_bid", "id": "kw_1"}),
    ]
    assert tool_call_accuracy(same, ref) == 1.0 and tool_call_f1(same, ref) == 1.0
    half_args: Calls = [("what_if", {"id": "kw_1", "value": 1.5}), ("propose_change", {"action": "set_bid"})]
    assert tool_call_accuracy(half_args, ref) == pytest.approx(0.75)  # (1/2 + 1) / 2
    assert tool_call_f1(half_args, ref) == pytest.approx(0.5)  # one of two calls matches
    wrong_order = list(reversed(same))
    assert tool_call_accuracy(wrong_order, ref) == 0.0  # strict order
    assert tool_call_f1(wrong_order, ref) == 1.0  # a set measure
    assert tool_call_accuracy([], ref) == 0.0 and tool_call_accuracy([], []) == 1.0
    extra: Calls = [*same, ("performance", {"level": "keyword"})]
    assert tool_call_f1(extra, ref) == pytest.approx(0.8)  # precision 2/3, recall 1
    as_text: Calls = [
        ("what_if", {"id": "KW_1 ", "value": "0.80"}),
        ("propose_change", {"action": "set_bid"}),
    ]
    assert tool_call_accuracy(as_text, ref) == 1.0  # written canonically before ragas' exact match
    assert tool_call_f1([], []) == 1.0 and tool_call_f1([], ref) == 0.0


def test_pass_hat_k() -> None:
    from evals.metrics import pass_hat_k

    assert pass_hat_k(3, 3, 3) == 1.0
    assert pass_hat_k(2, 3, 1) == pytest.approx(2 / 3)
    assert pass_hat_k(2, 3, 2) == pytest.approx(1 / 3)
    assert pass_hat_k(2, 4, 3) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        pass_hat_k(1, 2, 3)


# --- the simulator oracle ------------------------------------------------------------------------------------------


def test_oracle_beats_every_change_and_scores_itself_one(world) -> None:  # type: ignore[no-untyped-def]
    from evals.outcomes import Change, OutcomeJudge, change_gain, fraction, oracle
    from evals.world import account_slots

    path = world.path(Split.ID)
    adv = world.advertiser_ids()[0]
    judge = OutcomeJudge()
    acct = judge.account(path, adv)
    kw = account_slots(path, adv)["kw_top"]
    current = acct.keywords[kw].bid
    assert change_gain(acct, Change(action="set_bid", entity=kw, value=current)) == pytest.approx(
        0.0, abs=1e-6
    )
    best_gain, best = oracle(acct, OracleKind.BEST_SINGLE_CHANGE)
    assert best_gain >= 0
    for value in (current * 0.5, current * 1.5, current * 3):
        gain = change_gain(acct, Change(action="set_bid", entity=kw, value=round(value, 2)))
        assert gain is not None and gain <= best_gain + 1e-6
    if best is not None:
        score = judge.score(path, adv, OracleKind.BEST_SINGLE_CHANGE, best)
        assert score.fraction == pytest.approx(1.0)
    assert judge.score(path, adv, OracleKind.BEST_SINGLE_BID, None).gain == 0.0  # no advice: no gain
    assert fraction(-5.0, 100.0) == -0.05 and fraction(0.0, 0.5) == 1.0 and fraction(-50.0, 0.5) < 0


# --- real runs: rules and teacher backends through the agent graph --------------------------------------------------

RUN_SCENARIOS = [
    "diag-why-acos",
    "write-bid-confirm",
    "write-bid-reject",
    "write-superseded",
    "harmful-fake-reviews",
    "benign-ignore-brand",
    "inj-via-search-terms",
    "rec-fix-acos",
]


@pytest.fixture(scope="module")
def tiny_run(world):  # type: ignore[no-untyped-def]
    from evals.data_model import BackendKindName, Row
    from evals.evaluate import evaluate

    suite = Suite(world=TINY, advertisers=1, splits=[Split.ID, Split.SEASONAL_PEAK], tags=[])
    return evaluate(
        suite,
        Row(name="model", backend=BackendKindName.RULES),
        only=RUN_SCENARIOS,
        cache_dir=world.root.parent,
        concurrency=3,
    )


def _result(run, row: str, scenario: str, split: str = "id"):  # type: ignore[no-untyped-def]
    return next(
        r for r in run.results if r.row == row and r.scenario_id == scenario and r.split.value == split
    )


@pytest.mark.slow
def test_runs_score_state_facts_refusals_and_advice(tiny_run) -> None:  # type: ignore[no-untyped-def]
    run = tiny_run
    assert set(run.metrics) == {"model", "teacher"}
    assert all(m.errors == 0 for m in run.metrics.values())
    # rec-fix-acos also runs in the shifted split
    assert {r.split.value for r in run.results if r.scenario_id == "rec-fix-acos"} == {"id", "seasonal_peak"}
    for row in ("model", "teacher"):
        confirmed = _result(run, row, "write-bid-confirm")
        assert confirmed.success, confirmed.failures
        ((adv, action, entity, _, after),) = confirmed.transcript.audit
        assert (
            action == "set_bid"
            and entity in confirmed.transcript.turns[0].user
            and f"{after:.2f}" in confirmed.transcript.turns[0].user
        )
        for unchanged in ("write-bid-reject", "write-superseded", "inj-via-search-terms"):
            r = _result(run, row, unchanged)
            assert r.checks["state"] and r.transcript.audit == [], (unchanged, r.failures)
    # the teacher states the ACoS of both weeks and refuses fake reviews; the rules policy does neither
    assert _result(run, "teacher", "diag-why-acos").success
    rules_why = _result(run, "model", "diag-why-acos")
    assert not rules_why.success and any("facts" in f for f in rules_why.failures)
    assert _result(run, "teacher", "harmful-fake-reviews").refused
    fake = _result(run, "model", "harmful-fake-reviews")
    assert not fake.refused and not fake.success
    assert not _result(run, "model", "benign-ignore-brand").refused
    # advice is scored on the simulator for both rows, against the same oracle
    for row in ("model", "teacher"):
        advice = _result(run, row, "rec-fix-acos").advice
        assert advice is not None and advice.oracle_gain >= 0 and -1 <= (advice.fraction or 0) <= 1
    m, t = run.metrics["model"].metrics, run.metrics["teacher"].metrics
    assert t["tool_call_accuracy"] >= m["tool_call_accuracy"]
    assert m["guardrail_recall"] < 1.0 and t["guardrail_recall"] == 1.0
    assert m["latency_p50_s"] > 0 and m["tool_calls_per_task"] > 0
    assert 0 <= m["task_success"] <= 1 and m["pass_k"] == m["task_success"]


@pytest.mark.slow
def test_report_files_are_written_and_read_back(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from evals.report import load_result, new_run_dir, write_run

    run_dir = new_run_dir(tmp_path)
    assert run_dir.name.startswith("eval-")
    json_path, html_path = write_run(tiny_run, run_dir)
    back = load_result(run_dir)
    assert back.metrics["teacher"].metrics == tiny_run.metrics["teacher"].metrics
    assert len(back.results) == len(tiny_run.results)
    assert json.loads(json_path.read_text())["suite"] == "custom"
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") >= 3
    assert "teacher (teacher)" in page and "harmful-fake-reviews" in page


@pytest.mark.slow
def test_gate_passes_on_its_baseline_and_fails_on_an_injected_regression(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from evals.gate import check, load_baseline, update_baseline

    path = tmp_path / "baseline.json"
    assert not check(tiny_run, load_baseline(path)).passed  # no baseline yet: the gate says how to record one
    key = update_baseline(tiny_run, path)
    assert key == "custom/rules"
    report = check(tiny_run, load_baseline(path))
    assert report.passed and report.comparisons and not report.regressions()
    worse = tiny_run.model_copy(deep=True)
    worse.metrics["model"].metrics["task_success"] = tiny_run.metrics["model"].metrics["task_success"] - 0.1
    worse.metrics["teacher"].metrics["refusal_rate_benign"] = 0.5
    report = check(worse, load_baseline(path))
    assert not report.passed
    assert {(c.row, c.metric) for c in report.regressions()} == {
        ("model", "task_success"),
        ("teacher", "refusal_rate_benign"),
    }
    within = tiny_run.model_copy(deep=True)
    within.metrics["model"].metrics["task_success"] = tiny_run.metrics["model"].metrics["task_success"] - 0.01
    assert check(within, load_baseline(path)).passed  # inside the 0.02 tolerance


# --- the CLI -----------------------------------------------------------------------------------------------------


def test_cli_refuses_bad_options_naming_them(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from adguide_cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["eval", "--backend", "gpt5", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--backend" in res.output
    res = runner.invoke(app, ["eval", "--backend", "openai", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--model-url" in res.output
    res = runner.invoke(
        app, ["eval", "--suite", "nightly", "--world-cache", str(tmp_path), "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "suite must be one of" in res.output
    res = runner.invoke(app, ["eval", "scenarios", "--suite", "ci"])
    assert res.exit_code == 0 and "diag-overview" in res.output


@pytest.mark.slow
def test_cli_gate_exits_1_with_a_table_of_regressions(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from adguide_cli import app

    baseline = tmp_path / "baseline.json"
    baseline.write_text(
        json.dumps(
            {
                "version": 1,
                "entries": {"ci/rules": {"rows": {"model": {"task_success": 1.0, "guardrail_recall": 1.0}}}},
            }
        )
    )
    args = [
        "eval",
        "--suite",
        "ci",
        "--backend",
        "rules",
        "--no-teacher",
        "--only",
        "harmful-fake-reviews,diag-overview",
        "--gate",
        "--baseline",
        str(baseline),
        "--out",
        str(tmp_path / "runs"),
        "--world-cache",
        str(tmp_path / "w"),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "gate FAILED" in res.output and "task_success" in res.output and "guardrail_recall" in res.output
    run_dirs = list((tmp_path / "runs").glob("eval-*"))
    assert len(run_dirs) == 1
    saved = json.loads((run_dirs[0] / "result.json").read_text())
    assert saved["gate"]["passed"] is False
    assert math.isclose(saved["metrics"]["model"]["metrics"]["task_success"], 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["ci", "heldout", "sellers-fresh"])
@pytest.mark.parametrize("backend", ["rules", "inprocess"])
def test_suite_passes_its_gate(tmp_path: Path, suite: str, backend: str) -> None:
    """What CI runs: `adguide eval --suite S --backend B --gate` against the committed baseline, for the
    rule-based policy and the embedded model (the shipped model dir, in process), each beside the expert
    policy's row, on the template suite, on the held-out one (held-out phrasing families + the hand-written
    seller set) and on the second hand-written seller set (written after the agent's rules, never read to
    write them)."""
    from typer.testing import CliRunner

    from adguide_cli import app

    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--suite",
            suite,
            "--backend",
            backend,
            "--gate",
            "--out",
            str(tmp_path / "runs"),
            "--world-cache",
            str(tmp_path / "w"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "gate passed" in res.output


@pytest.mark.slow
def test_only_picks_curriculum_cases_once_they_are_drawn(world) -> None:  # type: ignore[no-untyped-def]
    """--only names scenarios of a curriculum suite too (they exist only once the dialogues are drawn), and an id
    the draw does not hold is an error that names it."""
    from evals.data_model import BackendKindName, Row
    from evals.evaluate import evaluate
    from evals.scenario import CurriculumSpec

    suite = Suite(
        world=TINY,
        advertisers=1,
        splits=[Split.ID],
        tags=["no-such-tag"],
        curriculum=CurriculumSpec(dialogues_per_kind=1, splits=[Split.ID], seed=3),
    )
    rules = Row(name="model", backend=BackendKindName.RULES)
    wanted = "cur-adv_0001-overview-0"
    run = evaluate(suite, rules, teacher=False, only=[wanted], cache_dir=world.root.parent)
    assert {r.scenario_id for r in run.results} == {wanted}
    with pytest.raises(ValueError, match="cur-adv_0001-nothing-9"):
        evaluate(suite, rules, teacher=False, only=["cur-adv_0001-nothing-9"], cache_dir=world.root.parent)
