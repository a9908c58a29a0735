"""evals: the agent measured the way its users would judge it (state and outcome, not wording).

    adguide eval [--suite ci|full|heldout|sellers|curriculum] [--backend rules|teacher|inprocess|openai] [--model-url URL] [--gate] [--trials k]

Public API:
    evals.data_model: BackendKindName, Row, Case, Transcript (the records every module reads)
    evals.evaluate.evaluate(suite, Row(name="model", backend=...), teacher=True, trials=None, concurrency=4,
                            only=None, cache_dir=None) -> RunResult
    evals.report.write_run(result, new_run_dir(Path("runs"))) -> (result.json, report.html); load_result(path)
    evals.gate.check(result, load_baseline()) -> GateReport; update_baseline(result)
    evals.metrics.tool_call_accuracy / tool_call_f1 (ragas), pass_hat_k, score_case, row_metrics
    evals.outcomes.OutcomeJudge().score(world_path, advertiser, OracleKind, Change) -> AdviceScore
    evals.world.prepare_world(WorldSpec, cache_dir) -> EvalWorld (splits and fixtures as world files)
    evals.scenario.load_scenarios() / load_suites()   (evals/scenarios/*.yaml)

Nothing imports evals/ but the training card (which scores candidates with it); evals drives agent/ and reads tools/ (engines, stores) to label outcomes.
"""
