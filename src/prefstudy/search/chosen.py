"""Test and OOD for the chosen trials only (``evaluation.test_scoring: chosen``): choose on val, report on test.

A search trial scores val and train; after the search, each method's chosen trial (``selection.best_trial``) is
scored once on test and OOD from its saved adapter. A finished Optuna trial cannot take new user attributes, so the
numbers go to the study's user attribute ``heldout/<trial number>`` (read back through :func:`trial_attrs`), to the
trial's ``heldout.json`` and ``metrics.json``. Scoring 384 test pairs costs about a minute on the 2-core CPU: once
per method instead of once per complete trial is what keeps the default study within its budget.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from prefstudy.core.rundir import write_json
from prefstudy.search.selection import best_trial

if TYPE_CHECKING:
    from prefstudy.search.worker import Worker

PREFIX = "heldout/"


def trial_attrs(study_attrs: dict[str, Any], trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's user attributes with the test/OOD numbers scored for it after the search, if any."""
    return {**trial.user_attrs, **study_attrs.get(f"{PREFIX}{trial.number}", {})}


def needs_scoring(spec: Any, studies: dict[str, optuna.Study]) -> dict[str, optuna.trial.FrozenTrial]:
    """Method -> its chosen trial, for the methods whose chosen trial has no test numbers yet."""
    if spec.evaluation.test_scoring != "chosen":
        return {}
    out = {}
    for method, study in studies.items():
        best = best_trial(study)
        if best is not None and f"test/{spec.evaluation.metric}" not in trial_attrs(study.user_attrs, best):
            out[method] = best
    return out


def score_chosen(worker: Worker, studies: dict[str, optuna.Study]) -> None:
    """Score test and OOD for every method's chosen trial that lacks them (a later, better trial gets its own)."""
    import time

    from peft import PeftModel

    from prefstudy.evaluation.heldout import heldout_record, heldout_test_metrics, score_splits
    from prefstudy.training.trainer import remove_adapter

    spec, prepared = worker.spec, worker.prepared
    for method, trial in needs_scoring(spec, studies).items():
        run_dir = Path(str(trial.user_attrs.get("run_dir", "")))
        adapter = run_dir / "adapter"
        if not (adapter / "adapter_config.json").is_file():
            worker.log(f"{method} trial {trial.number}: no saved adapter in {adapter}: its test/OOD cannot be scored")
            continue
        started = time.perf_counter()
        model = PeftModel.from_pretrained(worker.base_model, str(adapter))
        try:
            metrics, arrays = score_splits(model, spec, worker.tokenizer.pad_token_id, prepared, ["test", "ood"])
        finally:
            remove_adapter(model)
        if "test" not in arrays:
            continue
        attrs: dict[str, Any] = {f"{split}/{key}": float(value) for split, values in metrics.items()
                                 for key, value in values.items()}
        attrs.update(heldout_test_metrics(arrays, prepared, spec.evaluation.metric))
        attrs["test_scored"] = "chosen"
        _merge_files(run_dir, heldout_record(prepared, arrays), metrics, attrs)
        studies[method].set_user_attr(f"{PREFIX}{trial.number}", attrs)
        worker.log(f"{method} trial {trial.number} (chosen on val): test {spec.evaluation.metric} "
                   f"{attrs[f'test/{spec.evaluation.metric}']:.3f} on {len(arrays['test']['chosen'])} pairs, "
                   f"scored in {time.perf_counter() - started:.1f}s")


def _merge_files(run_dir: Path, heldout: dict[str, Any], metrics: dict[str, Any], attrs: dict[str, Any]) -> None:
    """Add the test/OOD numbers to the trial's heldout.json and metrics.json (the report reads both)."""
    def read(name: str) -> dict[str, Any]:
        try:
            data = json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    write_json(run_dir / "heldout.json", {**read("heldout.json"), **heldout})
    stored = read("metrics.json")
    stored["metrics"] = {**stored.get("metrics", {}), **metrics}
    stored["derived"] = {**stored.get("derived", {}),
                         **{k: v for k, v in attrs.items() if "/" not in k and k != "test_scored"}}
    stored["test_scored"] = "chosen"
    write_json(run_dir / "metrics.json", stored)
