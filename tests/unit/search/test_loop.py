"""THE trial loop (search.loop.run_trials) on in-memory studies with a fake objective: targets, queues, failures,
round robin, and the per-trial progress line."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from prefstudy.search.loop import FinishedTarget, run_trials
from prefstudy.search.progress import Progress

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _studies() -> dict[str, optuna.Study]:
    return {m: optuna.create_study(study_name=m, direction="maximize",
                                   sampler=optuna.samplers.RandomSampler(seed=0)) for m in ("dpo", "ipo")}


def _objective(order: list[str], fail: set[str] = frozenset(), prune: bool = False):  # type: ignore[assignment]
    def make(method: str):
        def objective(trial: optuna.Trial) -> float:
            order.append(method)
            x = trial.suggest_float("beta", 0.1, 1.0)
            if method in fail:
                raise RuntimeError("broken setting")
            if prune and trial.number % 2:
                raise optuna.TrialPruned()
            return x
        return objective
    return make


def _states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in study.trials]


def test_round_robin_to_the_target_of_finished_trials() -> None:
    studies, order = _studies(), []
    failures = run_trials(studies, _objective(order, prune=True), 3, lambda _: None)
    assert failures == {"dpo": 0, "ipo": 0}
    assert order == ["dpo", "ipo"] * 3  # alternating: a stopped run leaves both methods equally far
    for study in studies.values():
        assert len(study.trials) == 3 and TrialState.PRUNED in _states(study)  # pruned trials count as finished


def test_a_second_run_adds_nothing_and_enqueued_trials_run_past_the_target() -> None:
    studies, order = _studies(), []
    run_trials(studies, _objective(order), 2, lambda _: None)
    studies["ipo"].enqueue_trial({"beta": 0.5})
    order.clear()
    run_trials(studies, _objective(order), 2, lambda _: None)
    assert order == ["ipo"]
    assert studies["ipo"].trials[-1].params == {"beta": 0.5} and len(studies["dpo"].trials) == 2


def test_target_zero_runs_only_the_queue_and_a_failure_consumes_its_run() -> None:
    studies, order = _studies(), []
    for beta in (0.2, 0.3):
        studies["dpo"].enqueue_trial({"beta": beta})
    studies["ipo"].enqueue_trial({"beta": 0.4})
    failures = run_trials(studies, _objective(order, fail={"ipo"}), 0, lambda _: None)
    assert failures == {"dpo": 0, "ipo": 1}
    assert _states(studies["dpo"]) == [TrialState.COMPLETE] * 2 and _states(studies["ipo"]) == [TrialState.FAIL]


def test_a_method_that_keeps_failing_stops_after_target_failures() -> None:
    studies, order, lines = _studies(), [], []
    failures = run_trials(studies, _objective(order, fail={"dpo"}), 3, lines.append)
    assert failures == {"dpo": 3, "ipo": 0}
    assert order.count("dpo") == 3 and len(studies["ipo"].trials) == 3
    assert sum("of dpo FAILED" in line for line in lines) == 3


def test_the_stop_rule_is_optunas_over_finished_trials() -> None:
    rule = FinishedTarget(2)
    assert isinstance(rule, optuna.study.MaxTrialsCallback)
    study = _studies()["dpo"]
    study.optimize(lambda t: t.suggest_float("beta", 0.1, 1.0), n_trials=5, callbacks=[rule])
    assert len(study.trials) == 2 and rule.reached(study)  # Optuna stopped the study itself


def test_progress_prints_one_line_per_finished_trial_with_an_eta() -> None:
    studies, lines = _studies(), []
    run_trials(studies, _objective([], prune=True), 2, lambda _: None, [Progress(4, "accuracy", lines.append)])
    assert len(lines) == 4
    assert lines[0].startswith("[dpo trial 0] COMPLETE val accuracy ") and "1/4 trials of this run" in lines[0]
    assert "ETA" in lines[0] and "ETA" not in lines[-1]  # nothing left after the last one
    assert "PRUNED" in lines[2] and "4/4" in lines[3]


def test_progress_counts_every_workers_trials_in_the_shared_studies() -> None:
    """Two workers share the run's studies: a trial another worker finished counts too, so the count and the ETA
    are the run's; trials finished before the callback was made do not count."""
    studies, lines = _studies(), []
    studies["ipo"].optimize(lambda t: t.suggest_float("beta", 0.1, 1.0), n_trials=1)  # before this run
    progress = Progress(6, "accuracy", lines.append, studies=list(studies.values()))
    studies["ipo"].optimize(lambda t: t.suggest_float("beta", 0.1, 1.0), n_trials=2)  # the other worker's two
    studies["dpo"].optimize(lambda t: t.suggest_float("beta", 0.1, 1.0), n_trials=1, callbacks=[progress])
    assert "3/6 trials of this run" in lines[0] and "ETA" in lines[0]
    studies["dpo"].optimize(lambda t: t.suggest_float("beta", 0.1, 1.0), n_trials=3, callbacks=[progress])
    assert "6/6 trials of this run" in lines[-1] and "ETA" not in lines[-1]


def test_a_full_disk_fails_the_trial_with_its_reason_queues_it_again_and_stops_the_worker() -> None:
    """ENOSPC while a trial writes its run directory: that trial is FAIL with 'disk full ...', a retry with the same
    parameters waits in the queue, and the worker stops (DiskFull) instead of failing trial after trial."""
    import errno

    import pytest

    from prefstudy.training.faults import DiskFull, failure_reason

    studies = _studies()
    calls: list[int] = []

    def make(method: str):
        def objective(trial: optuna.Trial) -> float:
            calls.append(trial.number)
            trial.suggest_float("beta", 0.1, 1.0)
            error = OSError(errno.ENOSPC, "No space left on device", "/runs/x/curves.jsonl")
            trial.set_user_attr("fail_reason", failure_reason(error))  # as Objective does before the trial closes
            raise error
        return objective

    with pytest.raises(DiskFull, match="disk full .*No space left on device.*curves.jsonl.*this worker stops"):
        run_trials(studies, make, 3, lambda line: None)
    assert len(calls) == 1  # no spinning: one trial, then the worker stopped
    study = studies["dpo"]
    failed, queued = study.trials
    assert failed.state == TrialState.FAIL and queued.state == TrialState.WAITING
    assert failed.user_attrs["fail_reason"] == "disk full (No space left on device) writing /runs/x/curves.jsonl"
    assert queued.system_attrs["fixed_params"] == failed.params and queued.user_attrs["retry_of"] == failed.number
