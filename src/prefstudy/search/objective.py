"""The Optuna objective, the same for every stage: short glue in six steps (optuna-examples' ``objective``).

1. take the parameters: the stage (``search.stage.Stage.plan``) suggests them or takes its enqueued point;
2. write the run directory (resolved config, environment) and the trial's identity, built once;
3. train (``training.trainer.train_trial``);
4. report the val objective at each eval point and prune, where the stage allows it;
5. score and record (``search.record``);
6. return the val objective.

Data, the base model and the reference cache come in through a ``Worker`` (loaded once per process), never through
globals. Failure bookkeeping is one context manager (:class:`TrialFailures`).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import optuna

from prefstudy.core.rundir import start_trial_dir, trial_dir, write_json
from prefstudy.core.secrets import redact
from prefstudy.search.record import record_complete
from prefstudy.search.stage import Stage, TrialPlan
from prefstudy.search.worker import Worker
from prefstudy.spec import spec_text


@dataclass(frozen=True)
class TrialIdentity:
    """Who a trial is, written to its config.json, its user attributes and its trackers' tags alike."""

    study: str
    study_uuid: Any
    trial: int
    method: str
    stage: str
    seed: int
    run_dir: Path

    @classmethod
    def of(cls, trial: optuna.Trial, method: str, stage: str, plan: TrialPlan, run_root: Path) -> TrialIdentity:
        return cls(trial.study.study_name, trial.study.user_attrs.get("study_uuid"), trial.number, method, stage,
                   plan.seed, trial_dir(run_root, plan.folder, trial.number))

    def record(self) -> dict[str, Any]:
        return {"study": self.study, "study_uuid": self.study_uuid, "stage": self.stage, "trial": self.trial,
                "method": self.method}

    def tags(self) -> dict[str, str]:
        return {"study": self.study, "study_uuid": str(self.study_uuid), "trial": str(self.trial),
                "method": self.method, "seed": str(self.seed), "stage": self.stage,
                "run_dir": str(self.run_dir.resolve())}


class TrialFailures:
    """Failure bookkeeping around a trial's training: the reason in the storage and in metrics.json, memory given
    back after an out-of-memory error, trackers closed. A stage may take a failure as one of its results
    (``Stage.failed_result``): the exception is then swallowed and :attr:`result` holds the trial's value."""

    def __init__(self, trial: optuna.Trial, run_dir: Path, tracker: Any, stage: Stage) -> None:
        self.trial, self.run_dir, self.tracker, self.stage = trial, run_dir, tracker, stage
        self.result: float | None = None

    def __enter__(self) -> TrialFailures:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        from prefstudy.training.faults import failure_reason, free_memory

        if exc is None:
            return False
        reason = failure_reason(exc)
        self.result = self.stage.failed_result(self.trial, self.run_dir, reason)
        if self.result is not None:
            close_tracker(self.tracker, "DIVERGED")
            return True
        self.trial.set_user_attr("fail_reason", redact(reason)[:500])
        try:
            write_json(self.run_dir / "metrics.json", {"status": "failed", "reason": redact(reason)})
        except OSError:  # the disk that just filled up: the reason is in the storage
            pass
        if reason.startswith("out of memory"):
            free_memory()
        close_tracker(self.tracker, "FAIL")
        return False


@contextlib.contextmanager
def disk_full_reason(trial: optuna.Trial) -> Iterator[None]:
    """A full disk anywhere (the run directory's files): say so before the trial closes."""
    from prefstudy.training.faults import failure_reason, is_disk_full

    try:
        yield
    except OSError as exc:
        if is_disk_full(exc) and "fail_reason" not in trial.user_attrs:
            trial.set_user_attr("fail_reason", failure_reason(exc))
        raise


def close_tracker(tracker: Any, state: str, attrs: dict[str, Any] | None = None) -> None:
    if tracker is not None:
        tracker.close(state, attrs)


class Objective:
    """One method's objective in one stage (a ``search.stage.Stage`` or its name)."""

    def __init__(self, worker: Worker, method: str, stage: Stage | str = "search") -> None:
        from prefstudy.search.registry import by_name

        self.worker = worker
        self.method = method
        self.stage = by_name(stage) if isinstance(stage, str) else stage

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        from prefstudy.training.trainer import train_trial

        needed = self.stage.run_attr
        if needed is not None and needed not in trial.user_attrs:
            # With several workers, another one can take the last enqueued run between this worker's check and
            # its optimize(): Optuna then hands out a fresh trial, which is not an enqueued run. Close it
            # without training (PRUNED, so no ranking or verdict ever reads it) instead of failing the worker.
            trial.set_user_attr("note", f"no enqueued {self.stage.name} run was left (another worker took it)")
            raise optuna.TrialPruned(f"no enqueued {self.stage.name} run left")
        worker, spec = self.worker, self.worker.spec
        with disk_full_reason(trial):
            plan = self.stage.plan(trial, self.method, worker)  # 1
            identity = TrialIdentity.of(trial, self.method, self.stage.name, plan, spec.run_root())
            tracker = self._start(trial, plan, identity)  # 2
            shape, run_dir = plan.shape, identity.run_dir
            with TrialFailures(trial, run_dir, tracker, self.stage) as failures:
                outcome = train_trial(  # 3, with 4 at every eval point
                    worker, spec.methods[self.method], plan.params, plan.seed, run_dir, self._reporter(trial, plan),
                    after_training=self._lm_eval(plan.seed) if plan.with_lm_eval else None,
                    final_only=shape.final_only, schedule=shape.schedule,
                    probe=shape.probe(run_dir) if shape.probe is not None else None, trackers=tracker)
            if failures.result is not None:
                return failures.result
            trial.set_user_attr("clipped_fraction", outcome.clipped_fraction)
            trial.set_user_attr("steps", outcome.steps_done)
            if outcome.pruned_at is not None:  # 4
                write_json(run_dir / "metrics.json", {"status": "pruned", "pruned_at": outcome.pruned_at})
                close_tracker(tracker, "PRUNED")
                raise optuna.TrialPruned(f"pruned at step {outcome.pruned_at}")
            result = record_complete(worker, self.method, trial, outcome, run_dir)  # 5
            close_tracker(tracker, "COMPLETE", trial.user_attrs)
            return result  # 6

    def _start(self, trial: optuna.Trial, plan: TrialPlan, identity: TrialIdentity) -> Any:
        """The run directory with the resolved config (before any work), the trial's attributes, its trackers."""
        from prefstudy.tracking.trial import open_tracker, trial_params

        worker, spec = self.worker, self.worker.spec
        sharing = "on" if worker.prefix_sharing else "off"
        start_trial_dir(spec.run_root(), plan.folder, trial.number, {
            **identity.record(), "loss_type": spec.methods[self.method].loss_type, "params": plan.params,
            "seed": plan.seed, "prefix_sharing": sharing, "capability": plan.capability,
            "storage": redact(worker.storage_url), "spec_fingerprint": spec.fingerprint(),
            "data_fingerprint": worker.prepared.fingerprint, "spec": spec.model_dump(mode="json"),
            "spec_yaml": spec_text(spec), **({"design": plan.design} if plan.design else {}),
        }, plan.seed)
        for key, value in {"run_dir": str(identity.run_dir.resolve()), "seed": plan.seed, "worker_pid": os.getpid(),
                           "hostname": socket.gethostname(), "prefix_sharing": sharing,
                           "sampling": plan.sampling}.items():
            trial.set_user_attr(key, value)
        worker.trial_label = f"{self.method}#{trial.number}"
        worker.log(f"[{identity.study} trial {trial.number}] beta={plan.params['beta']:.4g} "
                   f"learning_rate={plan.params['learning_rate']:.3g} seed={plan.seed}")
        return open_tracker(spec, identity.study, trial.number, identity.run_dir,
                            trial_params(spec, self.method, plan.params, plan.seed, identity.stage), identity.tags(),
                            worker.log)

    @staticmethod
    def _reporter(trial: optuna.Trial, plan: TrialPlan) -> Any:
        def reporter(step: int, value: float) -> bool:
            if not plan.prunable:
                return False
            trial.report(value, step)
            return trial.should_prune()

        return reporter

    def _lm_eval(self, seed: int) -> Any:
        worker = self.worker

        def lm_eval(model: Any) -> Any:
            from prefstudy.evaluation.lmeval import evaluate

            return evaluate(model, worker.tokenizer, worker.spec, seed, worker.lm_eval_manager)

        return lm_eval
