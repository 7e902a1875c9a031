"""What a finished trial leaves behind: user attributes, run-directory files, and its dashboard note."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from prefstudy.core.rundir import rss_mb, write_json
from prefstudy.evaluation.heldout import derived_metrics, heldout_record
from prefstudy.search.dashboard import attach, note_markdown
from prefstudy.search.worker import Worker
from prefstudy.training.trainer import TrialOutcome


def flatten(final: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{split}/{key}": float(value) for split, values in final.items() for key, value in values.items()}


def record_lm_eval(worker: Worker, trial: optuna.Trial, result: dict[str, Any], run_dir: Path) -> dict[str, float]:
    """lm_eval.json, the lm-eval user attributes (with the paired delta to the base) and the lm-eval constraint."""
    from prefstudy.evaluation.lmeval import compare_to_base, flat_attrs

    spec = worker.spec
    write_json(run_dir / "lm_eval.json", result)
    attrs = flat_attrs(result)
    if worker.lm_eval_base is not None:
        attrs.update({f"lm_eval/{k}": v for k, v in compare_to_base(result, worker.lm_eval_base, spec.seed).items()})
    drop = spec.search.max_lm_eval_drop
    if drop is not None and "lm_eval/delta_ci_high" in attrs:
        # infeasible (> 0) when the whole interval of the paired delta lies below -max_lm_eval_drop
        trial.set_user_attr("constraint", [-drop - attrs["lm_eval/delta_ci_high"]])
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return attrs


def record_complete(worker: Worker, method: str, trial: optuna.Trial, outcome: TrialOutcome,
                    run_dir: Path) -> float | tuple[float, float]:
    """Store a complete trial's metrics everywhere they are read, then return its objective value(s)."""
    spec = worker.spec
    final = outcome.final
    derived = derived_metrics(final, outcome.arrays, worker.prepared, spec.seed, spec.evaluation.metric)
    for key, value in {**flatten(final), **derived}.items():
        trial.set_user_attr(key, value)
    for key, value in outcome.seconds.items():
        trial.set_user_attr(f"seconds/{key}", value)
    value = final["val"][spec.evaluation.metric]
    write_json(run_dir / "heldout.json", heldout_record(worker.prepared, outcome.arrays))
    write_json(run_dir / "metrics.json", {
        "status": "complete", "value": value, "metrics": final, "derived": derived,
        "seconds": outcome.seconds, "clipped_fraction": outcome.clipped_fraction,
    })
    lm_attrs = record_lm_eval(worker, trial, outcome.extra, run_dir) if outcome.extra else {}
    trial.set_user_attr("rss_mb", rss_mb())
    loss_type = spec.methods[method].loss_type
    note = note_markdown(method, loss_type, dict(trial.params), final, derived, run_dir, lm_attrs)
    attach(trial, spec.run_root(), note, [run_dir / "curves.jsonl", run_dir / "metrics.json", run_dir / "lm_eval.json"])
    if len(trial.study.directions) > 1:  # the search under objective 'pareto' (stages are single-objective)
        return value, float(lm_attrs.get("lm_eval/mean", float("nan")))
    return value
