"""The Optuna objective: short glue -- suggest, write the config, train, record, return.

Data, the base model and the reference cache come in through a ``Worker`` object (loaded once per process),
never through globals.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from prefstudy import metrics
from prefstudy.dashboard import attach, note_markdown
from prefstudy.refcache import Prepared
from prefstudy.rundir import environment, trial_dir, write_json
from prefstudy.secrets import redact
from prefstudy.spec import StudySpec, spec_text


@dataclass
class Worker:
    """Everything a worker process loads once and every trial shares."""

    spec: StudySpec
    tokenizer: Any
    base_model: Any
    prepared: Prepared
    storage_url: str
    log: Callable[[str], None] = print
    trial_label: str = ""
    lm_eval_manager: Any = None  # lm-eval TaskManager, resolved once
    lm_eval_base: dict[str, Any] | None = None  # the base model's lm-eval result (per-doc scores included)


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


def flatten(final: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{split}/{key}": float(value) for split, values in final.items() for key, value in values.items()}


def base_metrics(prepared: Prepared) -> dict[str, dict[str, float]]:
    """The base (= reference) model's own preference accuracy per split."""
    out = {}
    for name, ref in prepared.ref.items():
        out[name] = {
            "accuracy": metrics.preference_accuracy(ref["chosen"], ref["rejected"]),
            "accuracy_per_token": metrics.per_token_preference_accuracy(
                ref["chosen"], ref["rejected"], ref["chosen_tokens"], ref["rejected_tokens"]
            ),
        }
    return out


def confirm_seed(spec: StudySpec, seed: int) -> int:
    """The training seed of a confirmation run: disjoint from every search trial's seed (< 1e6 per spec seed)."""
    return 1_000_000_007 + spec.seed * 1_000 + seed


class Objective:
    """``stage`` 'search' suggests (beta, lr) and may be pruned; 'confirm' re-trains an enqueued configuration
    with the seed in its ``confirm_seed`` user attribute, to the end, under ``<method>/confirm/trial-NNNN``."""

    def __init__(self, worker: Worker, method: str, stage: str = "search") -> None:
        self.worker = worker
        self.method = method
        self.stage = stage

    def __call__(self, trial: optuna.Trial) -> float:
        from prefstudy.train import train_trial

        if self.stage == "confirm" and "confirm_seed" not in trial.user_attrs:
            # With several workers, another one can take the last enqueued run between this worker's check and
            # its optimize(): Optuna then hands out a fresh trial, which is not a confirmation run. Close it
            # without training (PRUNED, so no ranking or verdict ever reads it) instead of failing the worker.
            trial.set_user_attr("note", "no enqueued confirmation run was left (another worker took it)")
            raise optuna.TrialPruned("no enqueued confirmation run left")
        spec = self.worker.spec
        method = spec.methods[self.method]
        params = {
            "beta": trial.suggest_float("beta", method.beta.low, method.beta.high, log=method.beta.log),
            "learning_rate": trial.suggest_float(
                "learning_rate", spec.learning_rate.low, spec.learning_rate.high, log=spec.learning_rate.log
            ),
        }
        confirm = self.stage == "confirm"
        if confirm:
            seed = confirm_seed(spec, int(trial.user_attrs["confirm_seed"]))
            run_dir = trial_dir(spec.run_root(), f"{self.method}/confirm", trial.number)
        else:
            seed = trial_seed(spec, trial.number)
            run_dir = trial_dir(spec.run_root(), self.method, trial.number)
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("curves.jsonl", "heldout.json", "lm_eval.json"):  # a retried trial number starts clean
            (run_dir / stale).unlink(missing_ok=True)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("worker_pid", os.getpid())
        trial.set_user_attr("hostname", socket.gethostname())
        trial.set_user_attr("sampling", "confirm" if confirm else sampling_kind(trial, spec))
        write_json(run_dir / "config.json", {
            "study": trial.study.study_name, "stage": self.stage, "trial": trial.number, "method": self.method,
            "loss_type": method.loss_type, "params": params, "seed": seed,
            "storage": redact(self.worker.storage_url), "spec_fingerprint": spec.fingerprint(),
            "data_fingerprint": self.worker.prepared.fingerprint, "spec": spec.model_dump(mode="json"),
            "spec_yaml": spec_text(spec),
        })
        write_json(run_dir / "env.json", environment(seed))
        write_json(run_dir / "metrics.json", {"status": "running", "started": time.time()})
        self.worker.trial_label = f"{self.method}#{trial.number}"
        self.worker.log(
            f"[{trial.study.study_name} trial {trial.number}] beta={params['beta']:.4g} "
            f"learning_rate={params['learning_rate']:.3g} seed={seed}"
        )

        pareto = spec.search.objective == "pareto"

        def reporter(step: int, value: float) -> bool:
            if pareto or confirm:  # Optuna prunes single-objective studies only; confirmation runs to the end
                return False
            trial.report(value, step)
            return trial.should_prune()

        def lm_eval(model: Any) -> Any:
            from prefstudy.lmeval import evaluate

            return evaluate(model, self.worker.tokenizer, spec, seed, self.worker.lm_eval_manager)

        after = lm_eval if spec.evaluation.lm_eval.tasks else None
        try:
            outcome = train_trial(self.worker, method, params, seed, run_dir, reporter, after_training=after,
                                  final_only=confirm)
        except BaseException as exc:
            reason = failure_reason(exc)
            trial.set_user_attr("fail_reason", redact(reason)[:500])
            write_json(run_dir / "metrics.json", {"status": "failed", "reason": redact(reason)})
            if reason.startswith("out of memory"):
                free_memory()
            raise
        trial.set_user_attr("clipped_fraction", outcome.clipped_fraction)
        trial.set_user_attr("steps", outcome.steps_done)
        if outcome.pruned_at is not None:
            write_json(run_dir / "metrics.json", {"status": "pruned", "pruned_at": outcome.pruned_at})
            self.worker.log(f"  pruned at step {outcome.pruned_at}")
            raise optuna.TrialPruned(f"pruned at step {outcome.pruned_at}")
        return self._record(trial, outcome, run_dir)

    def _record_lm_eval(self, trial: optuna.Trial, result: dict[str, Any], run_dir: Any) -> dict[str, float]:
        from prefstudy.lmeval import compare_to_base, flat_attrs

        spec = self.worker.spec
        write_json(run_dir / "lm_eval.json", result)
        attrs = flat_attrs(result)
        if self.worker.lm_eval_base is not None:
            attrs.update({f"lm_eval/{k}": v for k, v in
                          compare_to_base(result, self.worker.lm_eval_base, spec.seed).items()})
        drop = spec.search.max_lm_eval_drop
        if drop is not None and "lm_eval/delta_ci_high" in attrs:
            # infeasible (> 0) when the whole interval of the paired delta lies below -max_lm_eval_drop
            trial.set_user_attr("constraint", [-drop - attrs["lm_eval/delta_ci_high"]])
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return attrs

    def _record(self, trial: optuna.Trial, outcome: Any, run_dir: Any) -> float | tuple[float, float]:
        spec = self.worker.spec
        final = outcome.final
        ref_test = self.worker.prepared.ref["test"]
        gain = metrics.paired_bootstrap_diff(
            metrics.pairwise_preference(outcome.arrays["test"]["chosen"], outcome.arrays["test"]["rejected"]),
            metrics.pairwise_preference(ref_test["chosen"], ref_test["rejected"]),
            seed=spec.seed,
        )
        val_ci = metrics.bootstrap_mean_ci(
            metrics.pairwise_preference(outcome.arrays["val"]["chosen"], outcome.arrays["val"]["rejected"]),
            seed=spec.seed,
        )
        test_ci = metrics.bootstrap_mean_ci(
            metrics.pairwise_preference(outcome.arrays["test"]["chosen"], outcome.arrays["test"]["rejected"]),
            seed=spec.seed,
        )
        derived = {
            "generalization_gap": final["train"]["accuracy"] - final["val"]["accuracy"],
            "val_accuracy_ci_low": val_ci[1], "val_accuracy_ci_high": val_ci[2],
            "test_accuracy_ci_low": test_ci[1], "test_accuracy_ci_high": test_ci[2],
            "test_gain_vs_base": gain[0], "test_gain_ci_low": gain[1], "test_gain_ci_high": gain[2],
        }
        record = {**flatten(final), **derived}
        for key, value in record.items():
            trial.set_user_attr(key, value)
        for key, value in outcome.seconds.items():
            trial.set_user_attr(f"seconds/{key}", value)
        value = final["val"][spec.evaluation.metric]
        write_json(run_dir / "heldout.json", heldout_record(self.worker.prepared, outcome.arrays))
        write_json(run_dir / "metrics.json", {
            "status": "complete", "value": value, "metrics": final, "derived": derived,
            "seconds": outcome.seconds, "clipped_fraction": outcome.clipped_fraction,
        })
        lm_attrs = self._record_lm_eval(trial, outcome.extra, run_dir) if outcome.extra else {}
        trial.set_user_attr("rss_mb", _rss_mb())
        method = spec.methods[self.method]
        note = note_markdown(self.method, method.loss_type, dict(trial.params), final, derived, run_dir, lm_attrs)
        files = [run_dir / "curves.jsonl", run_dir / "metrics.json", run_dir / "lm_eval.json"]
        attach(trial, spec.run_root(), note, files)
        if spec.search.objective == "pareto":
            return value, float(lm_attrs.get("lm_eval/mean", float("nan")))
        return value


def failure_reason(exc: BaseException) -> str:
    """The ``fail_reason`` user attribute: 'interrupted', 'out of memory (...)', 'non-finite loss: ...' or the error."""
    import torch

    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(exc).lower():
        return f"out of memory ({type(exc).__name__}: {str(exc)[:300]})"
    from prefstudy.train import NonFiniteLoss

    if isinstance(exc, NonFiniteLoss):
        return f"non-finite loss: {exc}"
    return f"{type(exc).__name__}: {exc}"


def free_memory() -> None:
    """After an out-of-memory trial: drop what the failed trial left behind so the next one starts clean."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def heldout_record(prepared: Prepared, arrays: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-pair policy log-probs of the fully scored splits: what paired comparisons between trials need."""
    out = {}
    for split in ("val", "test", "ood"):
        if split not in arrays:
            continue
        policy = arrays[split]
        out[split] = {
            "ids": list(prepared.tokenized[split]["id"]) if "id" in prepared.tokenized[split].column_names else None,
            **{key: [float(v) for v in policy[key]] for key in ("chosen", "rejected", "chosen_tokens",
                                                                "rejected_tokens")},
        }
    return out


def _rss_mb() -> float:
    """This process's resident memory now (Linux), in MiB."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
