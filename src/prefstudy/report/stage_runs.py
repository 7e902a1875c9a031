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


def read_rows(folder: Path | None) -> list[dict[str, Any]]:
    """A stage run's ``pairs.jsonl`` rows ([] without a folder)."""
    from prefstudy.core.rundir import read_jsonl

    return read_jsonl(folder / "pairs.jsonl") if folder is not None else []


def ipo_and_dpo(runs: dict[str, Any], entry: dict[str, Any], stage: str) -> tuple[str, str] | None:
    """:func:`roles`, or None with the entry's reason set to what to run."""
    pair = roles(runs)
    if pair is None:
        entry["reason"] = no_roles_reason(stage)
    return pair


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


def new_entry(claim_id: str, claim: str, statistic: str) -> dict[str, Any]:
    """A claims.json entry before any data: inconclusive, every number None."""
    return {"id": claim_id, "claim": claim, "statistic": statistic, "estimate": None, "ci_low": None,
            "ci_high": None, "mde": None, "p_value": None, "verdict": "inconclusive", "secondary": [], "design": {}}


def no_roles_reason(stage: str) -> str:
    return (f"no {stage} runs of both an IPO (loss_type ipo) and a DPO (sigmoid) method yet: "
            f"nox -s study -- --stage {stage}")


class Secondaries(list[dict[str, Any]]):
    """A claim's secondary rows: ``add`` estimates one statistic (clustered over seeds and pairs) or records why it
    cannot be."""

    def __init__(self, n_boot: int, seed: int) -> None:
        super().__init__()
        self.n_boot, self.seed = n_boot, seed

    def add(self, name: str, statistic: Any, data: dict[str, Any], interval: Any = None, **extra: Any) -> None:
        """``interval``: ``clustered`` (the default) or another function of the same signature (``crossed``)."""
        from prefstudy.evaluation.clustered import clustered

        try:
            chosen = interval or clustered
            est = chosen(statistic, data, n_boot=self.n_boot, seed=self.seed)
            self.append(entry_of(name, est, interval=chosen.__name__, **extra))
        except ValueError as exc:
            self.append({"name": name, "estimate": None, "reason": str(exc)})
