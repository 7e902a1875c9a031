"""Re-train one finished trial from its run directory's config.json and seed, and compare the curves.

``python -m prefstudy rerun <study> <trial>``: the study is ``<name>/<method>`` (or ``<name>/<method>/confirm``),
the storage defaults to ``sqlite:///runs/<name>/optuna.db``. The re-run writes ``<run_dir>/rerun/curves.jsonl``
and ``rerun.json`` (the largest absolute difference per column) and exits 0 when every held-out number and loss
matches the original within the tolerance, 1 otherwise. lm-eval is not re-run (its own re-score is in the README).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from prefstudy.core.rundir import read_jsonl, write_json
from prefstudy.spec import SpecError, StudySpec

#: curve columns that are timings, not results
TIMING = {"train_seconds", "eval_seconds"}


def curve_differences(original: list[dict[str, Any]], again: list[dict[str, Any]]) -> dict[str, float]:
    """Largest absolute difference per numeric column over matching steps; inf when the curves do not line up."""
    if [r["step"] for r in original] != [r["step"] for r in again]:
        return {"step": math.inf}
    worst: dict[str, float] = {}
    for old, new in zip(original, again, strict=True):
        for key, value in old.items():
            if key in TIMING or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            other = new.get(key)
            if not isinstance(other, (int, float)):
                worst[key] = math.inf
                continue
            both_nan = math.isnan(value) and math.isnan(other)
            worst[key] = max(worst.get(key, 0.0), 0.0 if both_nan else abs(float(value) - float(other)))
    return worst


def locate(study_name: str, number: int, storage_url: str | None) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(run_dir, config.json, metrics.json) of a trial; SpecError when the study, trial or files are missing."""
    from prefstudy.search.storage import load_named_study

    study = load_named_study(study_name, storage_url)
    trials = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    if not trials:
        raise SpecError(f"study '{study_name}' has no trial {number}")
    run_dir = Path(trials[0].user_attrs.get("run_dir", ""))
    try:
        config = json.loads((run_dir / "config.json").read_text())
        result = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError) as exc:
        raise SpecError(f"trial {number} of '{study_name}': its run directory '{run_dir}' is unreadable ({exc})") \
            from None
    if result.get("status") not in ("complete", "pruned"):
        raise SpecError(f"trial {number} of '{study_name}' did not finish (status {result.get('status')}): "
                        "only complete or pruned trials can be re-run")
    return run_dir, config, result


def rerun(study_name: str, number: int, storage_url: str | None = None, tolerance: float = 1e-6) -> int:
    from prefstudy.core.console import log
    from prefstudy.search.registry import by_name
    from prefstudy.search.worker import load_worker, offline_if_local, quiet_libraries
    from prefstudy.training.trainer import train_trial

    run_dir, config, result = locate(study_name, number, storage_url)
    spec_data = config["spec"]
    if config.get("prefix_sharing") in ("on", "off"):  # what the trial ran with, not what "auto" picks here
        spec_data = {**spec_data, "training": {**spec_data["training"], "prefix_sharing": config["prefix_sharing"]}}
    spec = StudySpec.model_validate(spec_data)
    offline_if_local(spec)
    quiet_libraries()
    worker = load_worker(spec, storage_url or "", {}, None, with_lm_eval=False)
    out = run_dir / "rerun"
    out.mkdir(exist_ok=True)
    (out / "curves.jsonl").unlink(missing_ok=True)
    stop_at = result.get("pruned_at")
    worker.trial_label = f"{config['method']}#{number} (re-run)"
    log(f"re-running trial {number} of {study_name}: params {config['params']} seed {config['seed']}"
        + (f", stopping at step {stop_at} where it was pruned" if stop_at else ""))
    # the stage's own length, eval points, final-only scoring and per-pair probe (pairs.jsonl)
    shape = by_name(config.get("stage", "search")).shape(worker, bool(config.get("capability", True)),
                                                         config.get("design", {}))
    (out / "pairs.jsonl").unlink(missing_ok=True)
    started = time.perf_counter()
    train_trial(worker, spec.methods[config["method"]], config["params"], config["seed"], out,
                lambda step, _value: stop_at is not None and step >= stop_at, final_only=shape.final_only,
                schedule=shape.schedule, probe=shape.probe(out) if shape.probe is not None else None)
    diffs = curve_differences(read_jsonl(run_dir / "curves.jsonl"), read_jsonl(out / "curves.jsonl"))
    worst = max(diffs.values(), default=math.inf)
    write_json(out / "rerun.json", {"study": study_name, "trial": number, "tolerance": tolerance,
                                    "max_abs_difference": worst, "per_column": diffs,
                                    "seconds": time.perf_counter() - started})
    ok = worst <= tolerance
    log(f"curves.jsonl re-run vs original: largest difference {worst:.3g} over {len(diffs)} columns "
        f"({'within' if ok else 'ABOVE'} tolerance {tolerance:g}); details in {out / 'rerun.json'}")
    return 0 if ok else 1
