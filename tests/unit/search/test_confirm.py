"""A worker that reaches a confirmation study after another took its last enqueued run gets a fresh trial: it must
be closed without training (PRUNED), not crash the worker with a KeyError."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
from optuna.trial import TrialState

from prefstudy.search.objective import Objective


def test_a_fresh_trial_in_a_confirmation_study_is_pruned_untrained() -> None:
    worker = SimpleNamespace()  # no spec, no model: touching either would raise AttributeError
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    study.optimize(Objective(worker, "dpo", stage="confirm"), n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED
    assert "another worker" in trial.user_attrs["note"]
    assert trial.params == {}
