"""Every private Optuna seam, in one file (Optuna is pinned in the lock; tests/unit/search/test_optuna_seams.py
checks it against the installed version).

- :func:`storage_failure`: when the storage goes away while ``study.optimize`` tells a trial's result (a database
  restarting), Optuna 5.0's ``_run_trial`` raises ``UnboundLocalError`` from its ``finally`` block, the database
  error as its context. That internal error is recognised here, and only here.
- :func:`interrupted_tell` and :func:`fail_as_interrupted`: a SIGINT/SIGTERM that lands while Optuna tells a
  trial's result surfaces the same way, the ``KeyboardInterrupt`` as its context, and the trial stays RUNNING (the
  write was rolled back). It is recorded here as an interrupt inside the objective would be: FAIL with
  ``fail_reason`` 'interrupted', so the next run re-runs its parameters first.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

#: what ``study.optimize`` raises when the storage fails while it records a trial's result
TELL_FAILURE = UnboundLocalError


def storage_failure(exc: BaseException) -> BaseException | None:
    """The storage's own error behind ``exc`` (a :data:`TELL_FAILURE` raised by Optuna), or None when ``exc`` is
    something else (a real programming error, to be raised as it is)."""
    cause = exc.__context__
    if not isinstance(exc, TELL_FAILURE) or cause is None or "sqlalchemy" not in type(cause).__module__:
        return None
    return cause


def interrupted_tell(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt behind ``exc`` when a signal landed while Optuna told a trial's result; None otherwise."""
    cause = exc.__context__
    return cause if isinstance(exc, TELL_FAILURE) and isinstance(cause, KeyboardInterrupt) else None


def fail_as_interrupted(study: optuna.Study, worker_pid: int) -> list[int]:
    """Every trial this worker (``worker_pid``) left RUNNING becomes FAIL with ``fail_reason`` 'interrupted' (the
    storage is written through ``study._storage``, Optuna's private handle); their numbers."""
    done = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker_pid") == worker_pid:
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", "interrupted")
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            done.append(trial.number)
    return done
