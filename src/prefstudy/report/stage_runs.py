"""What every claim stage's reader needs: its finished runs from the storage, their run directories, which methods
play IPO and DPO, and one statistic as a claims.json row."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from prefstudy.core.rundir import trial_dir
from prefstudy.evaluation.clustered import ClusteredEstimate
from prefstudy.spec import StudySpec


def stage_trials(spec: StudySpec, storage: Any, method: str, stage: str) -> list[Any]:
    """The complete runs of the method's ``stage`` study (none when the study does not exist)."""
    try:
        study = optuna.load_study(study_name=f"{spec.study_name(method)}/{stage}", storage=storage)
    except KeyError:
        return []
    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and "stage_params"
            in t.user_attrs]


def run_folder(spec: StudySpec, method: str, stage: str, trial: Any) -> Path | None:
    """A stage run's directory: where the storage says, else where this spec puts it (a moved runs/ folder)."""
    for folder in (trial.user_attrs.get("run_dir"), trial_dir(spec.run_root(), f"{method}/{stage}", trial.number)):
        if folder and (Path(folder) / "pairs.jsonl").is_file():
            return Path(folder)
    return None


def entry_of(name: str, est: ClusteredEstimate, **extra: Any) -> dict[str, Any]:
    """One statistic with its clustered interval, as a claims.json row."""
    values = {k: finite(getattr(est, k)) for k in ("estimate", "ci_low", "ci_high", "mde", "p_value", "df")}
    return {"name": name, **values, "seeds": est.seeds, "pairs": est.pairs, **extra}


def finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def roles(runs: dict[str, Any]) -> tuple[str, str] | None:
    """(IPO method, DPO method) labels: the first of each loss type that has runs."""
    ipo = next((m for m, r in runs.items() if r.loss_type == "ipo"), None)
    dpo = next((m for m, r in runs.items() if r.loss_type == "sigmoid"), None)
    return (ipo, dpo) if ipo and dpo else None
