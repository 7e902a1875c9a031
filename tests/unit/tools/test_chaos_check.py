"""The chaos soak's "nothing lost" check (benchmarks/chaos._check) on hand-built trials: a failed trial counts as
carried forward when a finished trial retried it (Optuna's ``retry_history``, the disk-full ``retry_of``) or has its
parameters; otherwise it is lost."""

from __future__ import annotations

import argparse

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from benchmarks.chaos import Soak, _check

optuna.logging.set_verbosity(optuna.logging.WARNING)
BETA = {"beta": FloatDistribution(0.01, 1.0, log=True)}
BOTH = {**BETA, "learning_rate": FloatDistribution(1e-5, 1e-2, log=True)}


def _args() -> argparse.Namespace:
    return argparse.Namespace(workers=2, trials=1, seed=0, min_kills=0)


def _soak() -> Soak:
    soak = Soak(_args())
    soak.restarts = 1
    return soak


def _lost(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, list[str]]:
    study = optuna.create_study(study_name="chaos/dpo", direction="maximize")
    for t in trials:
        study.add_trial(t)
    out = _check(None, {"dpo": study}, _soak(), _args())
    return out["trials_lost"], [p for p in out["problems"] if "failed" in p]


def _finished(params: dict[str, float], **system: object) -> optuna.trial.FrozenTrial:
    dists = {k: BOTH[k] for k in params}
    return create_trial(state=TrialState.PRUNED, params=params, distributions=dists, system_attrs=dict(system),
                        intermediate_values={1: 0.5})


def test_a_kill_before_the_parameters_were_suggested_is_carried_by_its_retry() -> None:
    # trial 0 was killed after beta was suggested and before the learning rate: its retry sampled the rest
    failed = create_trial(state=TrialState.FAIL, params={"beta": 0.1}, distributions=BETA)
    retry = _finished({"beta": 0.1, "learning_rate": 1e-3}, failed_trial=0, retry_history=[0])
    assert _lost([failed, retry]) == (0, [])
    bare = create_trial(state=TrialState.FAIL)  # killed before any parameter: the retry has all new ones
    assert _lost([bare, _finished({"beta": 0.3, "learning_rate": 2e-4}, failed_trial=0, retry_history=[0])]) == (0, [])


def test_a_chain_of_retries_carries_every_link_and_the_disk_full_retry_counts() -> None:
    p = {"beta": 0.2, "learning_rate": 5e-4}
    first = create_trial(state=TrialState.FAIL, params={"beta": 0.2}, distributions=BETA)
    second = create_trial(state=TrialState.FAIL, params=p, distributions=BOTH,
                          system_attrs={"failed_trial": 0, "retry_history": [0]})
    third = create_trial(state=TrialState.FAIL, params=p, distributions=BOTH, user_attrs={"fail_reason": "disk full"})
    done = create_trial(state=TrialState.COMPLETE, value=0.6, params={"beta": 0.9, "learning_rate": 1e-4},
                        distributions=BOTH, user_attrs={"retry_of": 2},
                        system_attrs={"failed_trial": 0, "retry_history": [0, 1]})
    lost, problems = _lost([first, second, third, done])
    assert lost == 0, problems


def test_a_failed_trial_nobody_retried_is_lost_and_named() -> None:
    failed = create_trial(state=TrialState.FAIL, params={"beta": 0.1, "learning_rate": 1e-3}, distributions=BOTH)
    other = _finished({"beta": 0.5, "learning_rate": 1e-4})
    lost, problems = _lost([failed, other])
    assert lost == 1 and "trial 0" in problems[0] and "'beta': 0.1" in problems[0]
    # the same parameters finished elsewhere (an enqueued rerun): not lost
    assert _lost([failed, _finished({"beta": 0.1, "learning_rate": 1e-3})])[0] == 0
