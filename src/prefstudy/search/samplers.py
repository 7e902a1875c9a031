"""Samplers, pruners and the lm-eval constraint of a spec's search."""

from __future__ import annotations

import numpy as np
import optuna

from prefstudy.spec import StudySpec


def make_sampler(spec: StudySpec, method: str) -> optuna.samplers.BaseSampler:
    sampler = spec.search.sampler
    if sampler.type == "tpe":
        constraints = constraint_of if spec.search.max_lm_eval_drop is not None else None
        return optuna.samplers.TPESampler(
            seed=sampler.seed, n_startup_trials=sampler.n_startup_trials, constraints_func=constraints
        )
    if sampler.type == "random":
        return optuna.samplers.RandomSampler(seed=sampler.seed)
    if sampler.type == "qmc":
        return optuna.samplers.QMCSampler(seed=sampler.seed, scramble=True, warn_independent_sampling=False)
    beta, lr = spec.methods[method].beta, spec.learning_rate
    grid = {
        "beta": np.geomspace(beta.low, beta.high, sampler.grid_points).tolist(),
        "learning_rate": np.geomspace(lr.low, lr.high, sampler.grid_points).tolist(),
    }
    return optuna.samplers.GridSampler(grid, seed=sampler.seed)


def constraint_of(trial: optuna.trial.FrozenTrial) -> list[float]:
    """<= 0 feasible; set by the objective when lm-eval drops below the base by more than allowed."""
    return list(trial.user_attrs.get("constraint", [0.0]))


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    pruner = spec.search.pruner
    if spec.search.objective == "pareto":
        return optuna.pruners.NopPruner()  # pruning is single-objective only
    if pruner.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner.n_startup_trials, n_warmup_steps=pruner.n_warmup_steps
        )
    if pruner.type == "percentile":
        return optuna.pruners.PercentilePruner(
            pruner.percentile, n_startup_trials=pruner.n_startup_trials, n_warmup_steps=pruner.n_warmup_steps
        )
    if pruner.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=spec.evaluation.eval_steps)
    return optuna.pruners.NopPruner()
