"""The search stage: each method's study ``<name>/<method>`` topped up to ``search.n_trials`` finished trials, its
sampler suggesting (beta, learning_rate) in the method's ranges, its pruner stopping weak trials at eval points.
After it, each method's chosen trial (best on val) is scored once on test and OOD (``search.chosen``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

from prefstudy.core.console import log
from prefstudy.core.secrets import redact
from prefstudy.search.stage import Queue, Request, Stage, StudyContext, TrialPlan
from prefstudy.search.storage import counts, finished, waiting
from prefstudy.spec import StudySpec

if TYPE_CHECKING:
    from prefstudy.search.worker import Worker


def trial_seed(spec: StudySpec, number: int) -> int:
    return spec.seed * 100_003 + number


def sampling_kind(trial: optuna.Trial, spec: StudySpec) -> str:
    """How the trial's parameters were chosen: 'enqueued' (published defaults, resumed interrupts), 'random'
    (non-adaptive: random/qmc/grid samplers and TPE's random start-up trials) or 'adaptive' (TPE proper)."""
    attrs = trial.user_attrs
    if "enqueued" in attrs or "requeued_from" in attrs:
        return "enqueued"
    sampler = spec.search.sampler
    if sampler.type != "tpe":
        return "random"
    earlier = [
        t for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                   optuna.trial.TrialState.PRUNED))
        if t.number < trial.number
    ]
    return "random" if len(earlier) < sampler.n_startup_trials else "adaptive"


def suggest(trial: optuna.Trial, spec: StudySpec, method: str) -> dict[str, float]:
    """(beta, learning_rate) from the method's beta range and the shared learning-rate range (an enqueued trial gets
    its enqueued values back)."""
    beta, lr = spec.methods[method].beta, spec.learning_rate
    return {
        "beta": trial.suggest_float("beta", beta.low, beta.high, log=beta.log),
        "learning_rate": trial.suggest_float("learning_rate", lr.low, lr.high, log=lr.log),
    }


class SearchStage(Stage):
    name = "search"
    title = "search"
    label = "trials"

    def selected(self, spec: StudySpec, request: Request) -> bool:
        return True  # every other stage reads the search's trials: it is topped up first

    def target(self, spec: StudySpec) -> int:
        return spec.search.n_trials

    def queued(self, ctx: StudyContext) -> Queue:
        target = ctx.spec.search.n_trials
        todo = {m: max(waiting(s), target - finished(s), 0) for m, s in ctx.searches.items()}  # queued ones run too
        running = any(counts(s)["running"] for s in ctx.searches.values())  # a dead worker's trial is retried
        return Queue(dict(ctx.searches), todo, sum(todo.values()), any(todo.values()) or running)

    def enqueue(self, ctx: StudyContext) -> Queue:
        queue = self.queued(ctx)  # the studies and their published defaults were created by pipeline.prepare
        log(f"study '{ctx.spec.name}': storage {redact(ctx.storage_url)}; trials to run per method: {queue.todo}")
        return queue

    def plan(self, trial: optuna.Trial, method: str, worker: Worker) -> TrialPlan:
        spec = worker.spec
        return TrialPlan(
            params=suggest(trial, spec, method), seed=trial_seed(spec, trial.number), folder=method,
            sampling=sampling_kind(trial, spec),
            prunable=spec.search.objective != "pareto",  # Optuna prunes single-objective studies only
            with_lm_eval=bool(spec.evaluation.lm_eval.tasks),
        )

    def callbacks(self, spec: StudySpec) -> list[Any]:
        if spec.training.save_adapter == "best":
            from prefstudy.search.worker import keep_best_adapter

            return [keep_best_adapter]
        return []

    def after(self, ctx: StudyContext) -> None:
        """Test and OOD for each method's chosen trial that lacks them; the model loads only when there is one."""
        from prefstudy.search.chosen import needs_scoring, score_chosen

        if needs_scoring(ctx.spec, ctx.searches):
            score_chosen(ctx.worker(), ctx.searches)
