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
from prefstudy.search.confirm import confirm_seed
from prefstudy.search.objective import Objective
from prefstudy.search.stage_search import trial_seed
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
    # with p < 1 arms the rules on the training preferences read each beta alone: one beta per method will do
    spec = load_spec(SMOKE, ["drift.betas={dpo: [0.1], ipo: [0.5]}", "drift.preference_p=[1.0, 0.75]",
                             "drift.copies=4"])
    assert spec.drift.betas == {"dpo": (0.1,), "ipo": (0.5,)}
    with pytest.raises(SpecError, match="distinct positive"):
        load_spec(SMOKE, ["drift.betas={dpo: [0.1, 0.1]}", "drift.preference_p=[1.0, 0.75]", "drift.copies=4"])
    with pytest.raises(SpecError, match="unknown method"):
        load_spec(SMOKE, ["drift.betas={kto: [0.1, 0.2, 0.3]}"])


BETAS = "lr_profile.betas={dpo: 0.1, ipo: 0.5}"


def test_the_lr_profile_grid_reaches_past_the_search_range() -> None:
    spec = load_spec(SMOKE)  # learning_rate 1e-4 .. 1e-3, extend [2, 4]: 5e-5 .. 4e-3, 6 points
    lrs = stages.profile_learning_rates(spec)
    assert len(lrs) == 6 and lrs[0] == pytest.approx(5e-5) and lrs[-1] == pytest.approx(4e-3)
    assert lrs[0] < spec.learning_rate.low and lrs[-1] > spec.learning_rate.high
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-3)  # log-spaced
    listed = load_spec(SMOKE, ["lr_profile.learning_rates=[6e-4, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4]"])
    assert stages.profile_learning_rates(listed) == (1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4)
    with pytest.raises(SpecError, match="at least 4"):
        load_spec(SMOKE, ["lr_profile.learning_rates=[1e-4, 2e-4]"])


def test_the_lr_profile_design_tunes_beta_at_the_highest_learning_rates() -> None:
    spec = load_spec(SMOKE, ["lr_profile.retune_points=2", BETAS])  # seeds [1, 2]
    runs = stages.design(spec, "lr-profile", {})
    lrs = stages.profile_learning_rates(spec)
    dpo = runs["dpo"]
    tuned = [r for r in dpo if r["attrs"]["stage_slot"] == 0]
    assert len(tuned) == 12 and {r["params"]["beta"] for r in tuned} == {0.1}
    assert sum(r["attrs"]["stage_capability"] for r in tuned) == 6  # lm-eval/generation: first seed only
    retuned = [r for r in dpo if r["attrs"]["stage_slot"] > 0]
    assert sorted((r["params"]["beta"], r["params"]["learning_rate"]) for r in retuned) == sorted(
        (b, lr) for b in (0.05, 0.3) for lr in lrs[-2:])  # 0.1 / 3 clipped to the range's 0.05; 0.1 * 3
    assert {r["seed"] for r in retuned} == {1} and not any(r["attrs"]["stage_capability"] for r in retuned)
    plain = stages.design(load_spec(SMOKE, ["lr_profile.retune_points=0", BETAS]), "lr-profile", {})["dpo"]
    assert len(plain) == 12 and all(r["attrs"]["stage_slot"] == 0 for r in plain)  # 0: no candidate anywhere
    with pytest.raises(SpecError, match="tuned beta"):
        stages.design(load_spec(SMOKE, ["lr_profile.betas={}"]), "lr-profile", {})
    from_search = stages.tuned_betas(load_spec(SMOKE, ["lr_profile.betas={}"]),
                                     {"dpo": _search([1e-4, 4e-4], [0.5, 0.7]), "ipo": _search([1e-3], [0.9])})
    assert from_search == {"dpo": 0.1, "ipo": 0.1}


def test_lr_profile_enqueue_resumes_and_counts_a_diverged_run_as_done() -> None:
    spec = load_spec(SMOKE, [BETAS])
    storage = optuna.storages.InMemoryStorage()
    created = stages.create(spec, storage, {}, "lr-profile")
    assert {m: todo for m, (_, todo) in created.items()} == {"dpo": 14, "ipo": 14}  # 6 x 2 seeds + 2 re-tuned
    study = created["ipo"][0]
    trial = study.ask()
    trial.set_user_attr("diverged", "non-finite loss: training loss is nan at step 3")
    study.tell(trial, 0.0)  # objective.diverged: COMPLETE, value 0
    again = stages.create(spec, storage, {}, "lr-profile")
    assert again["ipo"][1] == 13 and len(again["ipo"][0].get_trials()) == 14
    assert stages.stage_seed(spec, "lr-profile", 1) != stages.stage_seed(spec, "drift", 1)


def test_a_drift_design_stored_as_points_resumes_with_the_spec_seeds() -> None:
    spec = load_spec(SMOKE, ["drift.learning_rate=null"])
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="smoke/dpo/drift", storage=storage, direction="maximize")
    study.set_user_attr("method", "dpo")
    study.set_user_attr("design", [{"beta": 0.2, "learning_rate": 3e-4}])  # the format before lr-profile
    searches = {"dpo": _search([1e-4], [0.5]), "ipo": _search([1e-3], [0.9])}
    created = stages.create(spec, storage, searches, "drift")
    points = sorted((t.user_attrs["stage_params"]["beta"], t.user_attrs["stage_params"]["learning_rate"],
                     t.user_attrs["stage_seed"])
                    for t in created["dpo"][0].get_trials())
    assert points == [(0.2, 3e-4, 1), (0.2, 3e-4, 2)]
