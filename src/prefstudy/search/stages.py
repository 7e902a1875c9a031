"""Fixed-design stages (``--stage drift``): a grid of enqueued points per method, run through THE trial loop.

One Optuna study per method and stage, ``<name>/<method>/<stage>``, beside the search and the confirmation. Every
(design point, seed) is one enqueued trial carrying ``stage_params`` and ``stage_seed``; running again tops up what
is missing (interrupted, failed or never started), so a stage resumes like the search and works with ``--workers``.
Runs are never pruned, skip lm-eval and land in ``runs/<name>/<method>/<stage>/trial-NNNN/`` with the usual files,
plus ``pairs.jsonl``: the per-pair values of the stage's fixed val pairs at every eval point (what the claim's
clustered intervals resample; ``evaluation.drift``).

``drift`` (claim (a)): one learning rate for both methods (``drift.learning_rate``, default the geometric mean of the
methods' best search trials' learning rates), ``drift.grid_points`` betas per method log-spaced across its search
range (or ``drift.betas``), each run ``drift.steps_factor`` times a search trial's steps, ``drift.seeds``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from prefstudy.core.rundir import append_jsonl
from prefstudy.search.selection import ranked_trials
from prefstudy.search.storage import waiting
from prefstudy.spec import SpecError, StudySpec

STAGES = ("drift",)


def study_name(spec: StudySpec, method: str, stage: str) -> str:
    return f"{spec.study_name(method)}/{stage}"


def stage_seed(spec: StudySpec, stage: str, seed: int) -> int:
    """A stage run's training seed: disjoint from search (< 1e6 per spec seed) and confirmation seeds."""
    return 2_000_000_011 + STAGES.index(stage) * 10_000_000 + spec.seed * 1_000 + seed


def search_steps(spec: StudySpec, n_train: int | None = None) -> int:
    """A search trial's optimizer steps (training.trainer.total_steps)."""
    from prefstudy.training.trainer import total_steps

    return total_steps(spec.training, n_train or 1)


def drift_steps(spec: StudySpec, n_train: int | None = None) -> int:
    return math.ceil(spec.drift.steps_factor * search_steps(spec, n_train))


def drift_betas(spec: StudySpec, method: str) -> tuple[float, ...]:
    """The method's beta grid: ``drift.betas`` or ``grid_points`` values log-spaced from its range's low to high."""
    if method in spec.drift.betas:
        return tuple(sorted(spec.drift.betas[method]))
    r = spec.methods[method].beta
    grid = np.exp(np.linspace(math.log(r.low), math.log(r.high), spec.drift.grid_points))
    return tuple(float(f"{b:.4g}") for b in grid)


def drift_learning_rate(spec: StudySpec, searches: dict[str, optuna.Study] | None) -> tuple[float, str]:
    """(learning rate, where it came from): the spec's, else the geometric mean of each method's best search trial's."""
    if spec.drift.learning_rate is not None:
        return spec.drift.learning_rate, "drift.learning_rate"
    best = []
    for method, study in (searches or {}).items():
        ranked = ranked_trials(study)
        if ranked:
            best.append((method, float(ranked[0].params["learning_rate"])))
    if len(best) < len(spec.methods):
        raise SpecError("drift.learning_rate is not set and not every method has a finished search trial to take it "
                        "from: run the search first (nox -s study) or set drift.learning_rate")
    lr = float(f"{math.exp(sum(math.log(v) for _, v in best) / len(best)):.4g}")
    return lr, "geometric mean of the best search trials' " + ", ".join(f"{m} {v:.3g}" for m, v in best)


def design(spec: StudySpec, stage: str, searches: dict[str, optuna.Study]) -> dict[str, list[dict[str, float]]]:
    """The stage's points per method (without seeds)."""
    if stage != "drift":
        raise SpecError(f"unknown stage '{stage}' (known: {', '.join(STAGES)})")
    lr, _ = drift_learning_rate(spec, searches)
    return {m: [{"beta": b, "learning_rate": lr} for b in drift_betas(spec, m)] for m in spec.methods}


def seeds_of(spec: StudySpec, stage: str) -> tuple[int, ...]:
    return spec.drift.seeds


def _open(spec: StudySpec, storage: optuna.storages.BaseStorage, method: str, stage: str,
          create: bool) -> optuna.Study | None:
    name = study_name(spec, method, stage)
    if not create:
        try:
            return optuna.load_study(study_name=name, storage=storage, pruner=optuna.pruners.NopPruner())
        except KeyError:
            return None
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=spec.seed),
                                pruner=optuna.pruners.NopPruner(), load_if_exists=True)
    if "method" not in study.user_attrs:
        study.set_user_attr("method", method)
        study.set_user_attr("stage", stage)
        study.set_user_attr("spec_fingerprint", spec.fingerprint())
    return study


def load(spec: StudySpec, storage: optuna.storages.BaseStorage, stage: str) -> dict[str, tuple[optuna.Study, int]]:
    """The stage's studies as they are (worker processes: their parent enqueued the runs)."""
    out = {}
    for method in spec.methods:
        study = _open(spec, storage, method, stage, create=False)
        if study is not None:
            out[method] = (study, waiting(study))
    return out


def create(spec: StudySpec, storage: optuna.storages.BaseStorage, searches: dict[str, optuna.Study],
           stage: str) -> dict[str, tuple[optuna.Study, int]]:
    """Create/load each method's stage study and enqueue its missing runs; returns (study, runs to do). A study
    that already holds runs keeps its design (a resumed stage never changes its learning rate midway)."""
    points = design(spec, stage, searches)
    out = {}
    for method in spec.methods:
        study = _open(spec, storage, method, stage, create=True)
        assert study is not None
        trials = study.get_trials(deepcopy=False)
        stored = study.user_attrs.get("design")
        if stored is None:
            study.set_user_attr("design", points[method])
            stored = points[method]
        elif stored != points[method] and spec.drift.learning_rate is None:
            points[method] = stored  # the learning rate came from the search, which may have grown since

        def key(params: dict[str, float], seed: Any) -> tuple[Any, ...]:
            return (round(params["beta"], 12), round(params["learning_rate"], 15), seed)

        done = {key(t.user_attrs["stage_params"], t.user_attrs.get("stage_seed")) for t in trials
                if t.state == TrialState.COMPLETE and "stage_params" in t.user_attrs}
        covered = done | {key(t.user_attrs["stage_params"], t.user_attrs.get("stage_seed")) for t in trials
                          if t.state in (TrialState.WAITING, TrialState.RUNNING) and "stage_params" in t.user_attrs}
        todo = 0
        for point in points[method]:
            for seed in seeds_of(spec, stage):
                todo += key(point, seed) not in done
                if key(point, seed) in covered:
                    continue
                study.enqueue_trial(dict(point), user_attrs={"stage_params": dict(point), "stage_seed": seed})
        out[method] = (study, todo)
    return out


def schedule_and_probe(worker: Any, stage: str, run_dir: Any) -> tuple[Any, DriftProbe]:
    """A stage run's training.trainer.Schedule (length, eval points, fixed val pairs) and its probe."""
    from prefstudy.training.trainer import Schedule

    spec = worker.spec
    n_train = len(worker.prepared.tokenized["train"])
    schedule = Schedule.even(drift_steps(spec, n_train), spec.drift.eval_points,
                             spec.drift.val_pairs or spec.evaluation.val_subset)
    return schedule, DriftProbe(worker, run_dir)


class DriftProbe:
    """At every eval point of a drift run: per-pair drift, per-token margin and ranking wins on the fixed val pairs,
    and generation accuracy on the first ``drift.generation_pairs`` val prompts; per-pair values to ``pairs.jsonl``,
    means to the point's curves row."""

    def __init__(self, worker: Any, run_dir: Any) -> None:
        self.worker, self.run_dir = worker, run_dir
        spec = worker.spec
        self.val_pairs = spec.drift.val_pairs or spec.evaluation.val_subset
        self.scorer = spec.evaluation.generation.resolved_scorer(spec.data.source)

    def __call__(self, model: Any, step: int, arrays: dict[str, Any] | None) -> dict[str, Any]:
        from prefstudy.evaluation import drift
        from prefstudy.evaluation.generation import generation_metrics
        from prefstudy.evaluation.heldout import metric_wins

        spec, prepared = self.worker.spec, self.worker.prepared
        ref = {k: np.asarray(v)[: self.val_pairs] for k, v in prepared.ref["val"].items()}
        policy = ref if arrays is None else arrays["val"]  # step 0: the adapter is zero, the policy is the base
        n = len(policy["chosen"])
        mask = np.asarray(policy["chosen_token_mask"])
        values = {
            "drift": drift.pair_drift(policy["chosen_token_logps"], ref["chosen_token_logps"][:n, : mask.shape[1]],
                                      mask),
            "margin_per_token": drift.pair_margin_per_token(policy, ref),
            "wins": metric_wins(policy, spec.evaluation.metric),
        }
        row: dict[str, Any] = {"step": step, **{k: [round(float(x), 7) for x in v] for k, v in values.items()}}
        out = {"drift/kl_proxy": float(values["drift"].mean()),
               "drift/margin_per_token": float(values["margin_per_token"].mean())}
        generated = generation_metrics(model, self.worker.tokenizer, prepared.tokenized["val"],
                                       spec.drift.generation_pairs, spec.evaluation.generation.max_new_tokens,
                                       spec.evaluation.generation.batch_size, self.scorer)
        if generated is not None:
            summary, result = generated
            row["generated"] = [float(x) for x in result.correct]
            row["generated_rows"] = result.indices
            row["generated_text"] = result.texts
            out.update({"generation/accuracy": summary["generation_accuracy"],
                        "generation/empty_fraction": summary["generation_empty_fraction"]})
        append_jsonl(self.run_dir / "pairs.jsonl", row)
        return out
