"""The drift stage's design: its beta grids, its learning rate from the search, its seeds, and an enqueue that
resumes without redoing or duplicating runs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from support import SMOKE

from prefstudy.search import stages
from prefstudy.search.objective import Objective, confirm_seed, trial_seed
from prefstudy.spec import SpecError, load_spec


def _search(lrs: list[float], values: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", storage=optuna.storages.InMemoryStorage())
    for lr, value in zip(lrs, values, strict=True):
        study.add_trial(optuna.trial.create_trial(
            params={"beta": 0.1, "learning_rate": lr}, value=value,
            distributions={"beta": optuna.distributions.FloatDistribution(0.01, 1, log=True),
                           "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)}))
    return study


def test_the_beta_grid_spans_each_method_range_log_spaced() -> None:
    spec = load_spec(SMOKE)  # dpo 0.05 .. 0.5, ipo 0.1 .. 2.0
    assert stages.drift_betas(spec, "dpo") == pytest.approx((0.05, math.sqrt(0.05 * 0.5), 0.5), rel=1e-3)
    assert stages.drift_betas(spec, "ipo") == pytest.approx((0.1, math.sqrt(0.2), 2.0), rel=1e-3)
    listed = load_spec(SMOKE, ["drift.betas={dpo: [0.3, 0.1, 0.2]}"])
    assert stages.drift_betas(listed, "dpo") == (0.1, 0.2, 0.3)
    assert stages.drift_steps(spec) == 12  # 3 x the smoke search's 4 steps


def test_the_learning_rate_is_the_geometric_mean_of_the_best_trials() -> None:
    spec = load_spec(SMOKE, ["drift.learning_rate=null"])
    searches = {"dpo": _search([1e-4, 4e-4], [0.5, 0.7]), "ipo": _search([1e-3, 9e-3], [0.9, 0.6])}
    lr, source = stages.drift_learning_rate(spec, searches)
    assert lr == pytest.approx(math.sqrt(4e-4 * 1e-3), rel=1e-3)  # best: dpo 4e-4 (0.7), ipo 1e-3 (0.9)
    assert "dpo" in source and "ipo" in source
    with pytest.raises(SpecError, match="run the search first"):
        stages.drift_learning_rate(spec, {"dpo": searches["dpo"]})
    assert stages.drift_learning_rate(load_spec(SMOKE), {})[0] == 5e-4  # the spec's own wins


def test_stage_seeds_are_disjoint_from_search_and_confirmation_seeds() -> None:
    spec = load_spec(SMOKE)
    drift = {stages.stage_seed(spec, "drift", s) for s in range(100)}
    assert len(drift) == 100
    assert not drift & {trial_seed(spec, n) for n in range(1000)}
    assert not drift & {confirm_seed(spec, s) for s in range(1000)}


def test_enqueue_then_resume_adds_only_what_is_missing() -> None:
    spec = load_spec(SMOKE)
    storage = optuna.storages.InMemoryStorage()
    created = stages.create(spec, storage, {}, "drift")
    assert {m: todo for m, (_, todo) in created.items()} == {"dpo": 6, "ipo": 6}  # 3 betas x 2 seeds
    study = created["dpo"][0]
    assert study.study_name == "smoke/dpo/drift" and study.user_attrs["stage"] == "drift"
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted((t.user_attrs["stage_params"]["beta"], t.user_attrs["stage_seed"]) for t in waiting)[:2] == [
        (0.05, 1), (0.05, 2)]
    again = stages.create(spec, storage, {}, "drift")  # nothing ran: the queue is already complete
    assert len(again["dpo"][0].get_trials()) == 6 and again["dpo"][1] == 6
    trial = study.ask()  # one run finishes
    study.tell(trial, 0.5)
    finished = stages.create(spec, storage, {}, "drift")
    assert finished["dpo"][1] == 5 and len(finished["dpo"][0].get_trials()) == 6


def test_a_fresh_trial_in_a_stage_study_is_pruned_untrained() -> None:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    study.optimize(Objective(SimpleNamespace(), "ipo", stage="drift"), n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED and "drift" in trial.user_attrs["note"]


def test_the_spec_refuses_a_design_without_a_slope() -> None:
    with pytest.raises(SpecError, match="at least 2 distinct"):
        load_spec(SMOKE, ["drift.seeds=[1]"])
    with pytest.raises(SpecError, match="at least 3 distinct"):
        load_spec(SMOKE, ["drift.betas={dpo: [0.1, 0.2]}"])
    with pytest.raises(SpecError, match="unknown method"):
        load_spec(SMOKE, ["drift.betas={kto: [0.1, 0.2, 0.3]}"])
