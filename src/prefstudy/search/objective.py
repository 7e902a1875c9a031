"""The Optuna objective: short glue -- take the parameters, write the config, train, report/prune, record, return.

Data, the base model and the reference cache come in through a ``Worker`` (loaded once per process), never through
globals. Run directories, failure reasons, interval maths and dashboard notes live in the modules that own them.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import optuna

from prefstudy.core.rundir import start_trial_dir, write_json
from prefstudy.core.secrets import redact
from prefstudy.search.record import record_complete
from prefstudy.search.session import Worker
from prefstudy.spec import StudySpec, spec_text


def trial_seed(spec: StudySpec, number: int) -> int:
    return spec.seed * 100_003 + number


def confirm_seed(spec: StudySpec, seed: int) -> int:
    """The training seed of a confirmation run: disjoint from every search trial's seed (< 1e6 per spec seed)."""
    return 1_000_000_007 + spec.seed * 1_000 + seed


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


class Objective:
    """``stage`` 'search' suggests (beta, lr) and may be pruned; 'confirm' re-trains an enqueued configuration
    with the seed in its ``confirm_seed`` user attribute, to the end, under ``<method>/confirm/trial-NNNN``; a
    fixed-design stage ('drift', search.stages) trains its enqueued point (``stage_params``, ``stage_seed``) on the
    stage's schedule with the stage's probe, under ``<method>/<stage>/trial-NNNN``."""

    def __init__(self, worker: Worker, method: str, stage: str = "search") -> None:
        self.worker = worker
        self.method = method
        self.stage = stage

    def _params(self, trial: optuna.Trial) -> dict[str, float]:
        spec = self.worker.spec
        if self.stage not in ("search", "confirm"):  # a fixed design point: exactly the enqueued values
            fixed = trial.user_attrs["stage_params"]
            return {k: trial.suggest_float(k, float(fixed[k]), float(fixed[k])) for k in ("beta", "learning_rate")}
        beta, lr = spec.methods[self.method].beta, spec.learning_rate
        return {
            "beta": trial.suggest_float("beta", beta.low, beta.high, log=beta.log),
            "learning_rate": trial.suggest_float("learning_rate", lr.low, lr.high, log=lr.log),
        }

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        from prefstudy.training.faults import failure_reason, is_disk_full

        try:
            return self._run(trial)
        except OSError as exc:  # a full disk anywhere (the run directory's files): say so before the trial closes
            if is_disk_full(exc) and "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", failure_reason(exc))
            raise

    def _run(self, trial: optuna.Trial) -> float | tuple[float, float]:
        from prefstudy.search import stages
        from prefstudy.tracking.trial import open_tracker, trial_params
        from prefstudy.training.faults import failure_reason, free_memory
        from prefstudy.training.trainer import train_trial

        confirm = self.stage == "confirm"
        fixed = self.stage in stages.STAGES
        needed = "confirm_seed" if confirm else "stage_seed" if fixed else None
        if needed and needed not in trial.user_attrs:
            # With several workers, another one can take the last enqueued run between this worker's check and
            # its optimize(): Optuna then hands out a fresh trial, which is not an enqueued run. Close it
            # without training (PRUNED, so no ranking or verdict ever reads it) instead of failing the worker.
            trial.set_user_attr("note", f"no enqueued {self.stage} run was left (another worker took it)")
            raise optuna.TrialPruned(f"no enqueued {self.stage} run left")
        spec, worker = self.worker.spec, self.worker
        method = spec.methods[self.method]
        params = self._params(trial)
        if confirm:
            seed = confirm_seed(spec, int(trial.user_attrs["confirm_seed"]))
        elif fixed:
            seed = stages.stage_seed(spec, self.stage, int(trial.user_attrs["stage_seed"]))
        else:
            seed = trial_seed(spec, trial.number)
        folder = self.method if self.stage == "search" else f"{self.method}/{self.stage}"
        run_dir = start_trial_dir(spec.run_root(), folder, trial.number, {
            "study": trial.study.study_name, "study_uuid": trial.study.user_attrs.get("study_uuid"),
            "stage": self.stage, "trial": trial.number, "method": self.method,
            "loss_type": method.loss_type, "params": params, "seed": seed,
            "prefix_sharing": "on" if worker.prefix_sharing else "off",
            "capability": bool(trial.user_attrs.get("stage_capability", not fixed)),
            "storage": redact(worker.storage_url), "spec_fingerprint": spec.fingerprint(),
            "data_fingerprint": worker.prepared.fingerprint, "spec": spec.model_dump(mode="json"),
            "spec_yaml": spec_text(spec),
        }, seed)
        for key, value in {"run_dir": str(run_dir.resolve()), "seed": seed, "worker_pid": os.getpid(),
                           "hostname": socket.gethostname(),
                           "prefix_sharing": "on" if worker.prefix_sharing else "off",
                           "sampling": self.stage if self.stage != "search" else sampling_kind(trial, spec)}.items():
            trial.set_user_attr(key, value)
        worker.trial_label = f"{self.method}#{trial.number}"
        worker.log(f"[{trial.study.study_name} trial {trial.number}] beta={params['beta']:.4g} "
                   f"learning_rate={params['learning_rate']:.3g} seed={seed}")
        prunable = self.stage == "search" and spec.search.objective != "pareto"  # Optuna prunes single-objective only

        def reporter(step: int, value: float) -> bool:
            if not prunable:
                return False
            trial.report(value, step)
            return trial.should_prune()

        def lm_eval(model: Any) -> Any:
            from prefstudy.evaluation.lmeval import evaluate

            return evaluate(model, worker.tokenizer, spec, seed, worker.lm_eval_manager)

        capability = bool(trial.user_attrs.get("stage_capability", False))  # lr-profile: lm-eval on these runs
        with_lm_eval = bool(spec.evaluation.lm_eval.tasks) and (capability if fixed else (
            not confirm or int(trial.user_attrs["confirm_seed"]) in spec.confirm.seeds[: spec.confirm.lm_eval_seeds]))
        tracker = open_tracker(spec, trial.study.study_name, trial.number, run_dir,
                               trial_params(spec, self.method, params, seed, self.stage),
                               {"study": trial.study.study_name, "study_uuid": str(trial.study.user_attrs.get(
                                   "study_uuid")), "trial": str(trial.number), "method": self.method,
                                "seed": str(seed), "stage": self.stage, "run_dir": str(run_dir.resolve())},
                               worker.log)
        schedule = probe = None
        if fixed:
            schedule, probe = stages.schedule_and_probe(worker, self.stage, run_dir, capability)
        try:
            outcome = train_trial(worker, method, params, seed, run_dir, reporter,
                                  after_training=lm_eval if with_lm_eval else None,
                                  final_only=confirm, schedule=schedule, probe=probe, trackers=tracker)
        except BaseException as exc:
            reason = failure_reason(exc)
            if self.stage == "lr-profile" and reason.startswith("non-finite loss"):
                value = diverged(trial, run_dir, reason)  # a result of the design, not a failure (docs/claims.md)
                _close(tracker, "DIVERGED")
                return value
            trial.set_user_attr("fail_reason", redact(reason)[:500])
            try:
                write_json(run_dir / "metrics.json", {"status": "failed", "reason": redact(reason)})
            except OSError:  # the disk that just filled up: the reason is in the storage
                pass
            if reason.startswith("out of memory"):
                free_memory()
            _close(tracker, "FAIL")
            raise
        trial.set_user_attr("clipped_fraction", outcome.clipped_fraction)
        trial.set_user_attr("steps", outcome.steps_done)
        if outcome.pruned_at is not None:
            write_json(run_dir / "metrics.json", {"status": "pruned", "pruned_at": outcome.pruned_at})
            _close(tracker, "PRUNED")
            raise optuna.TrialPruned(f"pruned at step {outcome.pruned_at}")
        result = record_complete(worker, self.method, trial, outcome, run_dir)
        _close(tracker, "COMPLETE", trial.user_attrs)
        return result


def _close(tracker: Any, state: str, attrs: dict[str, Any] | None = None) -> None:
    if tracker is not None:
        tracker.close(state, attrs)


def diverged(trial: optuna.Trial, run_dir: Any, reason: str) -> float:
    """An lr-profile run whose loss or log-probs went non-finite: COMPLETE with value 0 and ``diverged`` set, so it
    counts as degraded (every pair lost) and is never retried or dropped."""
    trial.set_user_attr("diverged", redact(reason)[:500])
    write_json(run_dir / "metrics.json", {"status": "diverged", "reason": redact(reason), "value": 0.0})
    return 0.0
