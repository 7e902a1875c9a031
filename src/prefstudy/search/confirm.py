"""Confirmation stage: re-train the top-k configurations of each method with fresh seeds.

One Optuna study per method, ``<name>/<method>/confirm``. Every (source trial, seed) combination is one enqueued
trial carrying ``source_trial`` and ``confirm_seed`` user attributes; running again tops up whatever is missing
(interrupted, failed or never started), so the stage resumes like the search. Runs are never pruned and land in
``runs/<name>/<method>/confirm/trial-NNNN/`` with the same files as search trials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial

from prefstudy.core.console import log
from prefstudy.search.selection import ranked_trials
from prefstudy.search.stage import Queue, Request, Shape, Stage, StudyContext, TrialPlan, queue_of
from prefstudy.search.stage_search import suggest
from prefstudy.search.storage import top_up, waiting
from prefstudy.spec import SpecError, StudySpec

if TYPE_CHECKING:
    from prefstudy.search.worker import Worker


def study_name(spec: StudySpec, method: str) -> str:
    return f"{spec.study_name(method)}/confirm"


def confirm_seed(spec: StudySpec, seed: int) -> int:
    """The training seed of a confirmation run: disjoint from every search trial's seed (< 1e6 per spec seed)."""
    return 1_000_000_007 + spec.seed * 1_000 + seed


def top_configs(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The k complete, feasible search trials with the highest val objective (ties: the earlier trial)."""
    return ranked_trials(study)[:k]


def check_configured(spec: StudySpec) -> None:
    if spec.confirm.top_k < 1 or not spec.confirm.seeds:
        raise SpecError("confirmation needs confirm.top_k >= 1 and at least one seed in confirm.seeds "
                        "(e.g. confirm.top_k=1 'confirm.seeds=[1,2]')")


def load(spec: StudySpec, storage: optuna.storages.BaseStorage,
         searches: dict[str, optuna.Study]) -> dict[str, tuple[optuna.Study, int]]:
    """The confirmation studies as they are (for worker processes: their parent enqueued the runs)."""
    out = {}
    for method in searches:
        try:
            study = optuna.load_study(study_name=study_name(spec, method), storage=storage,
                                      pruner=optuna.pruners.NopPruner())
        except KeyError:
            continue
        out[method] = (study, waiting(study))
    return out


def create(spec: StudySpec, storage: optuna.storages.BaseStorage,
           searches: dict[str, optuna.Study]) -> dict[str, tuple[optuna.Study, int]]:
    """Create/load each method's confirmation study and enqueue the missing runs; returns (study, runs to do)."""
    out = {}
    for method, search in searches.items():
        study = optuna.create_study(
            study_name=study_name(spec, method), storage=storage, direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=spec.seed), pruner=optuna.pruners.NopPruner(),
            load_if_exists=True,
        )
        if "method" not in study.user_attrs:
            study.set_user_attr("method", method)
            study.set_user_attr("stage", "confirm")
            study.set_user_attr("spec_fingerprint", spec.fingerprint())
        runs = [((source.number, seed), dict(source.params),
                 {"source_trial": source.number, "confirm_seed": seed, "source_value": float(source.values[0])})
                for source in top_configs(search, spec.confirm.top_k) for seed in spec.confirm.seeds]
        todo = top_up(study, runs, lambda t: (t.user_attrs.get("source_trial"), t.user_attrs.get("confirm_seed")))
        out[method] = (study, todo)
    return out


class ConfirmStage(Stage):
    """``--confirm`` (or ``confirm.auto``): the top-k configurations re-trained to the end with fresh seeds, held-out
    splits scored at the last step only; lm-eval on the first ``confirm.lm_eval_seeds`` seeds."""

    name = "confirm"
    title = "confirmation"
    label = "confirmation runs"
    run_attr = "confirm_seed"

    def selected(self, spec: StudySpec, request: Request) -> bool:
        return request.confirm or spec.confirm.auto

    def check(self, spec: StudySpec) -> None:
        check_configured(spec)

    def enqueue(self, ctx: StudyContext) -> Queue:
        queue = queue_of(create(ctx.spec, ctx.storage, ctx.searches))
        log(f"confirmation: top {ctx.spec.confirm.top_k} configuration(s) x seeds {list(ctx.spec.confirm.seeds)}; "
            f"runs to do per method: {queue.todo}")
        return queue

    def queued(self, ctx: StudyContext) -> Queue:
        return queue_of(load(ctx.spec, ctx.storage, ctx.searches))

    def plan(self, trial: optuna.Trial, method: str, worker: Worker) -> TrialPlan:
        spec, seed = worker.spec, int(trial.user_attrs["confirm_seed"])
        lm_eval_seeds = spec.confirm.seeds[: spec.confirm.lm_eval_seeds]
        return TrialPlan(
            params=suggest(trial, spec, method), seed=confirm_seed(spec, seed), folder=f"{method}/{self.name}",
            sampling=self.name, with_lm_eval=bool(spec.evaluation.lm_eval.tasks) and seed in lm_eval_seeds,
            shape=self.shape(worker, True, {}),
        )

    def shape(self, worker: Worker, capability: bool, design: Mapping[str, Any]) -> Shape:
        return Shape(final_only=True)  # nothing to prune: the search already recorded the dynamics
