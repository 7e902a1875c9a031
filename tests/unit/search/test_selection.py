"""Choosing the best trial: highest val objective among complete, feasible trials."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from prefstudy.search.selection import best_trial


def _trial(value: float, constraint: float | None = None, state: TrialState = TrialState.COMPLETE):
    attrs = {} if constraint is None else {"constraint": [constraint]}
    return create_trial(
        state=state, value=value if state == TrialState.COMPLETE else None, params={"beta": 0.1},
        distributions={"beta": FloatDistribution(0.01, 1.0)}, user_attrs=attrs,
    )


def test_best_skips_infeasible_and_unfinished_trials() -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(0.70))
    study.add_trial(_trial(0.90, constraint=0.03))  # lm-eval dropped too far: infeasible
    study.add_trial(_trial(0.80, constraint=-0.01))
    study.add_trial(_trial(0.0, state=TrialState.PRUNED))
    best = best_trial(study)
    assert best is not None and best.value == 0.80


def test_ties_go_to_the_earlier_trial_and_empty_gives_none() -> None:
    study = optuna.create_study(direction="maximize")
    assert best_trial(study) is None
    study.add_trial(_trial(0.75))
    study.add_trial(_trial(0.75))
    assert best_trial(study).number == 0
