"""THE trial loop: every stage (search, confirmation, later fixed designs) runs its trials through :func:`run_trials`.

Round robin over methods, one trial at a time, each through ``study.optimize`` with Optuna's own stop rule
(``MaxTrialsCallback`` over finished trials). Several workers may run this loop on one storage: each counts only
FINISHED trials (COMPLETE or PRUNED), so together they overshoot a target by at most (workers - 1). Enqueued trials
(published defaults, interrupted or crashed trials' retries, a fixed design's points) always run, even past the
target. Before leaving, a worker waits for trials still RUNNING elsewhere: if their worker died, Optuna's heartbeat
marks them FAIL after ``workers.grace_period`` and enqueues a retry with the same parameters, which this worker
then runs, so nothing is lost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from prefstudy.search.optuna_seams import TELL_FAILURE, fail_as_interrupted, interrupted_tell, storage_failure
from prefstudy.search.storage import FINISHED, waiting
from prefstudy.training.faults import DiskFull, failure_reason, is_disk_full

#: errors that fail one trial, not the worker (everything else, e.g. KeyboardInterrupt, stops the loop)
TRIAL_ERRORS = (RuntimeError, ValueError, MemoryError, ArithmeticError)

Objective = Callable[[optuna.Trial], float | Sequence[float]]
Callback = Callable[[optuna.Study, FrozenTrial], None]


class FinishedTarget(optuna.study.MaxTrialsCallback):
    """Optuna's stop rule over FINISHED trials (COMPLETE or PRUNED), also asked before a trial starts."""

    def __init__(self, n_trials: int) -> None:
        super().__init__(n_trials, states=FINISHED)
        self.n_trials = n_trials

    def reached(self, study: optuna.Study) -> bool:
        return len(study.get_trials(deepcopy=False, states=FINISHED)) >= self.n_trials


def run_trials(studies: dict[str, optuna.Study], objective_for: Callable[[str], Objective], target: int,
               log: Callable[[str], None], callbacks: list[Callback] | None = None,
               poll: float | None = None) -> dict[str, int]:
    """Run trials until every study holds ``target`` finished trials (0: just the enqueued ones) and none is queued.

    ``poll`` (seconds) is how often a worker with nothing left looks again for trials RUNNING elsewhere (their
    heartbeat may turn them into retries); None leaves at once. A method whose trials keep failing stops after
    ``target`` failures in this run (after its queue when ``target`` is 0: a failure consumes an enqueued run), so a
    broken setting cannot loop forever. Returns the failures per method.
    """
    rule = FinishedTarget(target)
    failures = {method: 0 for method in studies}
    gave_up = {method: False for method in studies}

    def pending(method: str) -> bool:
        study = studies[method]
        return not gave_up[method] and (not rule.reached(study) or waiting(study) > 0)

    while True:
        for study in studies.values():
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial -> FAIL + a WAITING retry
        todo = [m for m in studies if pending(m)]
        if not todo:
            running = sum(len(s.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) for s in studies.values())
            if running and poll is not None and not all(gave_up.values()):
                time.sleep(poll)
                continue
            return failures
        for method in todo:
            study = studies[method]
            before = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
            try:
                study.optimize(objective_for(method), n_trials=1, catch=TRIAL_ERRORS, gc_after_trial=True,
                               callbacks=[rule, *(callbacks or [])])
            except TELL_FAILURE as exc:  # Optuna's tell failed: a storage error (database restarting) or a signal
                interrupt = interrupted_tell(exc)
                if interrupt is not None:  # recorded as an interrupt inside the objective is, then stop like one
                    fail_as_interrupted(study, os.getpid())
                    raise interrupt from None
                cause = storage_failure(exc)
                if cause is None:
                    raise
                raise RuntimeError(f"the storage went away mid-trial ({type(cause).__name__}): this worker stops; "
                                   "its running trial is failed by the heartbeat and retried with the same "
                                   "parameters by any worker") from cause
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                _requeue_after_disk_full(study, before, exc, log)
                raise DiskFull(f"{failure_reason(exc)}: this worker stops; the failed trial is queued again with "
                               "the same parameters. Free space in the run directory (or set runs_dir) and run the "
                               "same command again") from None
            failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if len(failed) > before:
                failures[method] += 1
                gave_up[method] = target > 0 and failures[method] >= target
                log(f"  trial {failed[-1].number} of {study.study_name} FAILED: "
                    f"{failed[-1].user_attrs.get('fail_reason')}")


def _requeue_after_disk_full(study: optuna.Study, before: int, exc: OSError, log: Callable[[str], None]) -> None:
    """The trial a full disk failed gets its reason and a retry with the same parameters (nothing is lost)."""
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if len(failed) <= before:
        return
    trial = failed[-1]
    reason = trial.user_attrs.get("fail_reason") or failure_reason(exc)
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number, "retry_reason": "disk full"})
    log(f"  trial {trial.number} of {study.study_name} FAILED: {reason}; queued again with the same parameters")
