"""Fixed-design stages (``--stage drift``, ``--stage lr-profile``): enqueued runs per method, through THE trial loop.

One Optuna study per method and stage, ``<name>/<method>/<stage>``, beside the search and the confirmation. Every
run of the design is one enqueued trial carrying ``stage_params``, ``stage_seed`` and the design's own attributes;
running again tops up what is missing (interrupted, failed or never started), so a stage resumes like the search
and works with ``--workers``. Runs are never pruned and land in ``runs/<name>/<method>/<stage>/trial-NNNN/`` with
the usual files, plus ``pairs.jsonl``: the per-pair values of the stage's fixed pairs (``search.probes``).

``drift`` (claim (a)): one learning rate for both methods (``drift.learning_rate``, default the geometric mean of the
methods' best search trials' learning rates), ``drift.grid_points`` betas per method log-spaced across its search
range (or ``drift.betas``), each run ``drift.steps_factor`` times a search trial's steps, ``drift.seeds``.

``lr-profile`` (claim (b)): per method, ``lr_profile.grid_points`` learning rates log-spaced from the search range's
low / ``extend[0]`` to its high * ``extend[1]`` (or ``lr_profile.learning_rates``), at the method's tuned beta (its
best search trial's, or ``lr_profile.betas``) for every seed (slot 0), and at the ``retune_points`` highest learning
rates (none by default) also at the tuned beta / and * ``retune_factor`` with the first seed (slots 1..). Runs
last a search trial's steps; lm-eval and generation run on the tuned beta's first-seed runs only
(``stage_capability``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from prefstudy.core.console import log
from prefstudy.core.rundir import write_json
from prefstudy.core.secrets import redact
from prefstudy.search.selection import ranked_trials
from prefstudy.search.stage import Queue, Request, Shape, Stage, StudyContext, TrialPlan, queue_of
from prefstudy.search.storage import top_up, waiting
from prefstudy.spec import SpecError, StudySpec
from prefstudy.spec.stages import STAGES

Run = dict[str, Any]  # {"params": {"beta", "learning_rate"}, "seed": int, "attrs": {...}}


def study_name(spec: StudySpec, method: str, stage: str) -> str:
    return f"{spec.study_name(method)}/{stage}"


def stage_seed(spec: StudySpec, stage: str, seed: int) -> int:
    """A stage run's training seed: disjoint from search (< 1e6 per spec seed), confirmation and other stages."""
    return 2_000_000_011 + STAGES.index(stage) * 10_000_000 + spec.seed * 1_000 + seed


def search_steps(spec: StudySpec, n_train: int | None = None) -> int:
    """A search trial's optimizer steps (training.trainer.total_steps)."""
    from prefstudy.training.trainer import total_steps

    return total_steps(spec.training, n_train or 1)


def drift_steps(spec: StudySpec, n_train: int | None = None, copies: int = 1) -> int:
    """A drift run's steps: ``steps_factor`` times a search trial's, and with ``copies`` per instance rounded up to
    whole epochs of the expanded training set (so every instance is seen equally often in both p arms)."""
    steps = math.ceil(spec.drift.steps_factor * search_steps(spec, n_train))
    if copies > 1 and n_train:
        per_epoch = math.ceil(n_train * copies / (spec.training.batch_size * spec.training.gradient_accumulation_steps))
        steps = math.ceil(steps / per_epoch) * per_epoch
    return steps


#: a drift run's preference-determinism factors (user attributes of its trial, config.json 'design')
DETERMINISM = ("preference_p", "copies")


def drift_determinism(spec: StudySpec) -> list[dict[str, Any]]:
    """Each preference probability's run attributes (none for deterministic data shown once, as before)."""
    d = spec.drift
    return [{} if p == 1.0 and d.copies == 1 else {"preference_p": p, "copies": d.copies} for p in d.preference_p]


def drift_betas(spec: StudySpec, method: str) -> tuple[float, ...]:
    """The method's beta grid: ``drift.betas`` or ``grid_points`` values log-spaced from its range's low to high."""
    if method in spec.drift.betas:
        return tuple(sorted(spec.drift.betas[method]))
    r = spec.methods[method].beta
    grid = np.exp(np.linspace(math.log(r.low), math.log(r.high), spec.drift.grid_points))
    return tuple(float(f"{b:.4g}") for b in grid)


def _best(searches: dict[str, optuna.Study] | None, key: str) -> dict[str, float]:
    out = {}
    for method, study in (searches or {}).items():
        ranked = ranked_trials(study)
        if ranked:
            out[method] = float(ranked[0].params[key])
    return out


def drift_learning_rate(spec: StudySpec, searches: dict[str, optuna.Study] | None) -> tuple[float, str]:
    """(learning rate, where it came from): the spec's, else the geometric mean of each method's best search trial's."""
    if spec.drift.learning_rate is not None:
        return spec.drift.learning_rate, "drift.learning_rate"
    best = _best(searches, "learning_rate")
    if len(best) < len(spec.methods):
        raise SpecError("drift.learning_rate is not set and not every method has a finished search trial to take it "
                        "from: run the search first (nox -s study) or set drift.learning_rate")
    lr = float(f"{math.exp(sum(math.log(v) for v in best.values()) / len(best)):.4g}")
    return lr, "geometric mean of the best search trials' " + ", ".join(f"{m} {v:.3g}" for m, v in best.items())


def profile_learning_rates(spec: StudySpec) -> tuple[float, ...]:
    """The lr-profile grid: ``lr_profile.learning_rates``, or ``grid_points`` across the extended search range."""
    from prefstudy.evaluation.lr_profile import grid

    p = spec.lr_profile
    if p.learning_rates:
        return p.learning_rates
    return grid(spec.learning_rate.low / p.extend[0], spec.learning_rate.high * p.extend[1], p.grid_points)


def tuned_betas(spec: StudySpec, searches: dict[str, optuna.Study] | None) -> dict[str, float]:
    """Each method's tuned beta: ``lr_profile.betas``, else its best search trial's beta."""
    best = {m: float(f"{b:.4g}") for m, b in _best(searches, "beta").items()}
    out = {m: spec.lr_profile.betas.get(m, best.get(m)) for m in spec.methods}
    missing = [m for m, b in out.items() if b is None]
    if missing:
        raise SpecError(f"lr_profile.betas does not name {', '.join(missing)} and the search has no finished trial to "
                        "take the tuned beta from: run the search first (nox -s study) or set lr_profile.betas")
    return {m: float(b) for m, b in out.items() if b is not None}


def design(spec: StudySpec, stage: str, searches: dict[str, optuna.Study] | None) -> dict[str, list[Run]]:
    """The stage's runs per method (module docstring)."""
    if stage == "drift":
        lr, _ = drift_learning_rate(spec, searches)
        return {m: [{"params": {"beta": b, "learning_rate": lr}, "seed": s, "attrs": dict(factors)}
                    for b in drift_betas(spec, m) for factors in drift_determinism(spec) for s in spec.drift.seeds]
                for m in spec.methods}
    if stage != "lr-profile":
        raise SpecError(f"unknown stage '{stage}' (known: {', '.join(STAGES)})")
    from prefstudy.evaluation.lr_profile import retune_candidates

    p, lrs, tuned = spec.lr_profile, profile_learning_rates(spec), tuned_betas(spec, searches)
    out: dict[str, list[Run]] = {}
    for method, beta in tuned.items():
        r = spec.methods[method].beta
        runs = [{"params": {"beta": beta, "learning_rate": lr}, "seed": s,
                 "attrs": {"stage_slot": 0, "stage_capability": s == p.seeds[0]}} for lr in lrs for s in p.seeds]
        top = lrs[len(lrs) - p.retune_points:]  # the retune_points highest (none with 0)
        for slot, candidate in enumerate(retune_candidates(beta, p.retune_factor, r.low, r.high), start=1):
            runs += [{"params": {"beta": candidate, "learning_rate": lr}, "seed": p.seeds[0],
                      "attrs": {"stage_slot": slot, "stage_capability": False}} for lr in top]
        out[method] = runs
    return out


def describe(spec: StudySpec, stage: str, searches: dict[str, optuna.Study] | None) -> str:
    """One log line: the stage's design."""
    if stage == "drift":
        lr, source = drift_learning_rate(spec, searches)
        d = spec.drift
        decay = f", falling linearly to 0 over the last {d.lr_decay:.0%} of each run" if d.lr_decay else ", constant"
        copies = f"; p {list(d.preference_p)} on {d.copies} copies per instance" if d.copies > 1 else ""
        return (f"drift: learning_rate {lr:.3g} ({source}{decay}); betas "
                + "; ".join(f"{m} {list(drift_betas(spec, m))}" for m in spec.methods)
                + f"{copies}; seeds {list(d.seeds)}")
    lrs = profile_learning_rates(spec)
    return (f"lr-profile: learning rates {[f'{v:.3g}' for v in lrs]}; tuned betas "
            + ", ".join(f"{m} {b:.4g}" for m, b in tuned_betas(spec, searches).items())
            + f" x seeds {list(spec.lr_profile.seeds)}"
            + (f"; beta re-tuned (x/÷ {spec.lr_profile.retune_factor:g}, seed {spec.lr_profile.seeds[0]}) at the "
               f"{spec.lr_profile.retune_points} highest" if spec.lr_profile.retune_points else "; beta not re-tuned")
            + f"; {search_steps(spec)} steps")


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


def _key(params: dict[str, Any], seed: Any, attrs: dict[str, Any]) -> tuple[Any, ...]:
    determinism = round(float(attrs.get("preference_p", 1.0)), 12), int(attrs.get("copies", 1))
    return round(float(params["beta"]), 12), round(float(params["learning_rate"]), 15), seed, *determinism


def _stored_runs(stored: list[Any], seeds: tuple[int, ...]) -> list[Run]:
    """A stored design; one stored as points only (drift, before lr-profile existed) gets the spec's seeds."""
    if stored and "params" not in stored[0]:
        return [{"params": dict(point), "seed": s, "attrs": {}} for point in stored for s in seeds]
    return stored


def pinned(spec: StudySpec, stage: str) -> bool:
    """Whether the spec fixes the design itself (else it comes from the search, which may have grown since)."""
    return spec.drift.learning_rate is not None if stage == "drift" else set(spec.lr_profile.betas) >= set(spec.methods)


def create(spec: StudySpec, storage: optuna.storages.BaseStorage, searches: dict[str, optuna.Study],
           stage: str) -> dict[str, tuple[optuna.Study, int]]:
    """Create/load each method's stage study and enqueue its missing runs; returns (study, runs to do). A study
    that already holds a design keeps it unless the spec pins a new one (a resumed stage never changes the learning
    rate or tuned beta it took from the search midway)."""
    wanted = design(spec, stage, searches)
    seeds = spec.drift.seeds if stage == "drift" else spec.lr_profile.seeds
    out = {}
    for method in spec.methods:
        study = _open(spec, storage, method, stage, create=True)
        assert study is not None
        stored = study.user_attrs.get("design")
        if stored is None:
            study.set_user_attr("design", wanted[method])
            runs = wanted[method]
        else:
            runs = wanted[method] if pinned(spec, stage) else _stored_runs(stored, seeds)
        todo = top_up(study, [(_key(r["params"], r["seed"], r["attrs"]), r["params"],
                               {"stage_params": dict(r["params"]), "stage_seed": r["seed"], **r["attrs"]})
                              for r in runs],
                      lambda t: _key(t.user_attrs["stage_params"], t.user_attrs.get("stage_seed"), t.user_attrs)
                      if "stage_params" in t.user_attrs else None)
        out[method] = (study, todo)
    return out


class FixedStage(Stage):
    """A fixed design (module docstring): enqueued runs at given points, never pruned, on the stage's own schedule
    with the stage's probe writing ``pairs.jsonl``."""

    run_attr = "stage_seed"

    def selected(self, spec: StudySpec, request: Request) -> bool:
        return request.stage == self.name

    def enqueue(self, ctx: StudyContext) -> Queue:
        queue = queue_of(create(ctx.spec, ctx.storage, ctx.searches, self.name))
        log(describe(ctx.spec, self.name, ctx.searches) + f"; runs to do per method: {queue.todo}")
        return queue

    def queued(self, ctx: StudyContext) -> Queue:
        return queue_of(load(ctx.spec, ctx.storage, self.name))

    def plan(self, trial: optuna.Trial, method: str, worker: Any) -> TrialPlan:
        spec, fixed = worker.spec, trial.user_attrs["stage_params"]
        capability = bool(trial.user_attrs.get("stage_capability", False))  # lr-profile: lm-eval on these runs
        factors = {k: trial.user_attrs[k] for k in DETERMINISM if k in trial.user_attrs}
        return TrialPlan(
            params={k: trial.suggest_float(k, float(fixed[k]), float(fixed[k])) for k in ("beta", "learning_rate")},
            seed=stage_seed(spec, self.name, int(trial.user_attrs["stage_seed"])), folder=f"{method}/{self.name}",
            sampling=self.name, capability=capability,
            with_lm_eval=bool(spec.evaluation.lm_eval.tasks) and capability,
            shape=self.shape(worker, capability, factors), design=factors,
        )


class DriftStage(FixedStage):
    name = title = "drift"
    label = "drift runs"

    def shape(self, worker: Any, capability: bool, design: Mapping[str, Any]) -> Shape:
        """The run's length in whole epochs of its copies, every training instance scored at every eval point
        beside the fixed val pairs, and its training rows: ``copies`` per instance, a share 1 - p flipped."""
        from prefstudy.search.probes import DriftProbe
        from prefstudy.training.preference_copies import Copies
        from prefstudy.training.trainer import Schedule

        spec, d = worker.spec, worker.spec.drift
        p, copies = float(design.get("preference_p", 1.0)), int(design.get("copies", 1))
        steps = drift_steps(spec, len(worker.prepared.tokenized["train"]), copies)
        schedule = Schedule.even(steps, d.eval_points, d.val_pairs or spec.evaluation.val_subset,
                                 train_every_point=True, copies=Copies(p, copies, d.copies_together),
                                 decay_steps=decay_steps(steps, d.lr_decay))
        return Shape(schedule=schedule, probe=lambda run_dir: DriftProbe(worker, run_dir))


def decay_steps(steps: int, share: float) -> int:
    """The drift runs' last steps over which the learning rate falls to 0: ``share`` of them, at least 1 if any."""
    return max(1, round(share * steps)) if share > 0 else 0


class LrProfileStage(FixedStage):
    name = title = "lr-profile"
    label = "lr-profile runs"

    def shape(self, worker: Any, capability: bool, design: Mapping[str, Any]) -> Shape:
        from prefstudy.search.probes import ProfileProbe
        from prefstudy.training.trainer import Schedule

        spec, tokenized = worker.spec, worker.prepared.tokenized
        n_val, n_test = (len(tokenized[s]) for s in ("val", "test"))
        test_pairs = min(spec.lr_profile.test_pairs or n_test, n_test)
        profile_pairs = spec.lr_profile.profile_pairs_of(len(tokenized["profile"]) if "profile" in tokenized else 0)
        steps = search_steps(spec, len(tokenized["train"]))
        return Shape(schedule=Schedule(steps, (steps,), n_val, test_pairs, profile_pairs=profile_pairs),
                     probe=lambda run_dir: ProfileProbe(worker, run_dir, capability))

    def failed_result(self, trial: optuna.Trial, run_dir: Path, reason: str) -> float | None:
        """A run whose loss or log-probs went non-finite: COMPLETE with value 0 and ``diverged`` set, so it counts as
        degraded (every pair lost) and is never retried or dropped (a result of the design, docs/claims.md)."""
        if not reason.startswith("non-finite loss"):
            return None
        trial.set_user_attr("diverged", redact(reason)[:500])
        write_json(run_dir / "metrics.json", {"status": "diverged", "reason": redact(reason), "value": 0.0})
        return 0.0
