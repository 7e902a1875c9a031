"""The private Optuna seam (search/optuna_seams.py) against the pinned Optuna: a storage that fails while
``study.optimize`` records a trial's result surfaces as Optuna's internal UnboundLocalError, the database error as
its context, which ``storage_failure`` recognises; any other error is not mistaken for it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc

from prefstudy.search.optuna_seams import TELL_FAILURE, storage_failure


def test_a_storage_failing_during_tell_is_recognised(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/seam.db")
    study = optuna.create_study(storage=storage)
    gone = {"now": False}
    real_set, real_get = storage.set_trial_state_values, storage.get_trial

    def failing(real):  # the database goes away once the objective has run (a server restarting)
        def call(*args, **kwargs):
            if gone["now"]:
                raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("server closed the connection"))
            return real(*args, **kwargs)
        return call

    storage.set_trial_state_values, storage.get_trial = failing(real_set), failing(real_get)

    def objective(trial: optuna.Trial) -> float:
        gone["now"] = True
        return trial.number + 1.0

    with pytest.raises(TELL_FAILURE) as caught:
        study.optimize(objective, n_trials=1)
    cause = storage_failure(caught.value)
    assert isinstance(cause, sqlalchemy.exc.OperationalError), "the pinned Optuna changed how a failed tell surfaces"


def test_other_errors_are_not_storage_failures() -> None:
    try:
        raise UnboundLocalError("a real bug")
    except UnboundLocalError as exc:
        assert storage_failure(exc) is None
    try:
        try:
            raise KeyError("not a database")
        except KeyError:
            raise UnboundLocalError("during handling") from None
    except UnboundLocalError as exc:
        assert storage_failure(exc) is None  # its context is not a SQLAlchemy error
    assert storage_failure(ValueError("x")) is None


def test_a_signal_during_tell_is_recorded_as_interrupted(tmp_path: Path) -> None:
    """SIGTERM landing while Optuna tells the result (CI saw it once): the pinned Optuna raises its internal error with
    the KeyboardInterrupt as context and leaves the trial RUNNING; it is then failed as 'interrupted' and requeued."""
    from prefstudy.search.optuna_seams import fail_as_interrupted, interrupted_tell
    from prefstudy.search.storage import requeue_interrupted

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/seam.db")
    study = optuna.create_study(storage=storage)
    real_set = storage.set_trial_state_values
    armed = {"now": False}

    def interrupted(*args, **kwargs):
        if armed["now"]:
            armed["now"] = False
            raise KeyboardInterrupt("signal 15")
        return real_set(*args, **kwargs)

    storage.set_trial_state_values = interrupted

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker_pid", 4242)
        trial.suggest_float("x", 0.0, 1.0)
        armed["now"] = True
        return 1.0

    with pytest.raises(TELL_FAILURE) as caught:
        study.optimize(objective, n_trials=1)
    assert isinstance(interrupted_tell(caught.value), KeyboardInterrupt)
    assert storage_failure(caught.value) is None
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING
    assert fail_as_interrupted(study, 999) == []  # another worker's trial is not touched
    assert fail_as_interrupted(study, 4242) == [0]
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    assert study.trials[0].user_attrs["fail_reason"] == "interrupted"
    requeue_interrupted(study)
    assert study.trials[-1].state == optuna.trial.TrialState.WAITING
    assert study.trials[-1].system_attrs["fixed_params"] == study.trials[0].params
    assert interrupted_tell(ValueError("x")) is None
