"""Everything the report shows, loaded from the Optuna storage and the run directories into plain structures.

Nothing here draws or formats: ``load`` reads, the other functions compute the numbers the verdicts quote.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from prefstudy.core.rundir import read_jsonl, trial_dir
from prefstudy.core.secrets import redact
from prefstudy.search.chosen import trial_attrs
from prefstudy.search.selection import best_trial
from prefstudy.spec import StudySpec, spec_text

if TYPE_CHECKING:
    from prefstudy.report.compare import Comparison

SPLITS = ("train", "val", "test", "ood")
#: lm-eval attribute suffixes that are not ``<task>/<metric>`` scores.
_LM_EVAL_AGGREGATES = {"mean", "delta_vs_base", "delta_se", "delta_ci_low", "delta_ci_high"}


@dataclass
class ReportData:
    """The loaded study: one row per trial in ``trials``, one row per eval step in ``curves``."""

    spec: StudySpec
    storage_label: str  # the storage URL, redacted
    methods: list[str]  # every method of the spec, in spec order
    studies: dict[str, optuna.Study]  # only the methods whose study exists in the storage
    study_attrs: dict[str, dict[str, Any]]
    trials: pd.DataFrame
    curves: pd.DataFrame
    best: dict[str, int | None]  # method -> best trial number (complete, feasible, highest val)
    base: dict[str, float]  # "<split>/<metric>" of the base model
    base_lm_eval: dict[str, dict[str, float]]  # task -> {"metric", "value", "stderr"}; {} when lm-eval never ran
    base_lm_eval_mean: float | None
    env: dict[str, Any] | None
    spec_yaml: str
    toy: dict[str, Any] | None = None
    toy_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    comparison: Comparison | None = None  # of the first two methods, when both have scored runs
    claims: list[dict[str, Any]] = field(default_factory=list)  # claims.json entries (report.claims)
    claim_runs: dict[str, Any] = field(default_factory=dict)  # method -> claim_a_held_out.MethodRuns (drift)
    profile_runs: dict[str, Any] = field(default_factory=dict)  # method -> report.claim_b.ProfileRuns (lr-profile)
    train_runs: dict[str, Any] = field(default_factory=dict)  # method -> report.claim_a_train.TrainRuns (drift)
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per optimizer step (trainer_log.jsonl)

    @property
    def metric(self) -> str:
        return self.spec.evaluation.metric

    @property
    def pareto(self) -> bool:
        return self.spec.search.objective == "pareto"

    def of(self, method: str, states: tuple[str, ...] = ("COMPLETE",)) -> pd.DataFrame:
        t = self.trials
        if t.empty:
            return t
        return t[(t["method"] == method) & t["state"].isin(states)]

    def best_row(self, method: str) -> pd.Series | None:
        number = self.best.get(method)
        if number is None:
            return None
        rows = self.trials[(self.trials["method"] == method) & (self.trials["number"] == number)]
        return rows.iloc[0] if len(rows) else None


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _resolve_run_dir(spec: StudySpec, method: str, trial: FrozenTrial) -> Path | None:
    stored = trial.user_attrs.get("run_dir")
    candidates = [Path(stored)] if stored else []
    candidates.append(trial_dir(spec.run_root(), method, trial.number))
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


def _trial_row(spec: StudySpec, method: str, trial: FrozenTrial,
               study_attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    row = {k: v for k, v in trial_attrs(study_attrs or {}, trial).items() if _scalar(v)}
    constraint = trial.user_attrs.get("constraint", [0.0])
    run_dir = _resolve_run_dir(spec, method, trial)
    complete = trial.state == TrialState.COMPLETE
    steps = sorted(trial.intermediate_values)
    row.update({
        "method": method, "number": trial.number, "state": trial.state.name,
        "beta": trial.params.get("beta"), "learning_rate": trial.params.get("learning_rate"),
        "value": trial.values[0] if complete and trial.values else None,
        "feasible": all(c <= 0 for c in constraint),
        "constraint": max(constraint) if constraint else None,
        "last_step": steps[-1] if steps else None,
        "last_intermediate": trial.intermediate_values[steps[-1]] if steps else None,
        "duration_s": trial.duration.total_seconds() if trial.duration else None,
        "run_path": str(run_dir) if run_dir else None,
        "fail_reason": redact(str(trial.user_attrs["fail_reason"])) if "fail_reason" in trial.user_attrs else None,
    })
    return row


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lm_scores(attrs: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """``<prefix>/<task>/<metric>`` (+ ``_stderr``) attributes -> {task: {"metric", "value", "stderr"}}."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix + "/") or key.endswith("_stderr"):
            continue
        rest = key[len(prefix) + 1:]
        if "/" not in rest or rest in _LM_EVAL_AGGREGATES:
            continue
        task, metric = rest.rsplit("/", 1)
        out[task] = {"metric": metric, "value": value, "stderr": attrs.get(f"{key}_stderr")}
    return out


def _base_lm_eval(spec: StudySpec, study_attrs: dict[str, dict[str, Any]]) -> tuple[dict, float | None]:
    for attrs in study_attrs.values():
        scores = _lm_scores(attrs, "lm_eval_base")
        if scores:
            return scores, attrs.get("lm_eval_base/mean")
    stored = _read_json(spec.run_root() / "base" / "lm_eval.json")
    if stored and stored.get("tasks"):
        tasks = {name: {"metric": t.get("metric"), "value": t.get("value"), "stderr": t.get("stderr")}
                 for name, t in stored["tasks"].items()}
        return tasks, stored.get("mean")
    return {}, None


def load(spec: StudySpec, storage_url: str, storage: BaseStorage | str | None = None,
         toy_results: Path | None = Path("reports/toy/results.json")) -> ReportData:
    """Read every method's study (``<name>/<method>``) and its trials' run directories.

    ``storage`` may be an opened storage (or URL) to read instead of ``storage_url``; the URL is then only the
    label shown in the report. Methods whose study does not exist yet are listed in ``notes``.
    """
    if storage is None:
        from prefstudy.search.storage import open_storage

        storage = open_storage(storage_url, spec)
    studies: dict[str, optuna.Study] = {}
    notes: list[str] = []
    for method in spec.methods:
        try:
            studies[method] = optuna.load_study(study_name=spec.study_name(method), storage=storage)
        except KeyError:
            notes.append(f"no study '{spec.study_name(method)}' in the storage yet")
    study_attrs = {m: dict(s.user_attrs) for m, s in studies.items()}
    rows, curve_rows, step_rows, best = [], [], [], {}
    for method, study in studies.items():
        chosen = best_trial(study)
        best[method] = chosen.number if chosen else None
        for trial in study.get_trials(deepcopy=False):
            row = _trial_row(spec, method, trial, study_attrs.get(method))
            rows.append(row)
            if row["run_path"]:
                for curve in read_jsonl(Path(row["run_path"]) / "curves.jsonl"):
                    curve_rows.append({**curve, "method": method, "number": trial.number, "state": row["state"]})
                for logged in read_jsonl(Path(row["run_path"]) / "trainer_log.jsonl"):
                    step_rows.append({**logged, "method": method, "number": trial.number, "state": row["state"],
                                      "beta": row.get("beta")})
    trials = pd.DataFrame(rows)
    if not trials.empty:
        trials = trials.sort_values(["method", "number"], kind="stable").reset_index(drop=True)
    curves = pd.DataFrame(curve_rows)
    if not curves.empty:
        curves = curves.sort_values(["method", "number", "step"], kind="stable").reset_index(drop=True)
    first = next(iter(study_attrs.values()), {})
    base = {k.removeprefix("base/"): v for k, v in first.items() if k.startswith("base/")}
    base_lm, base_lm_mean = _base_lm_eval(spec, study_attrs)
    data = ReportData(
        spec=spec, storage_label=redact(storage_url), methods=list(spec.methods), studies=studies,
        study_attrs=study_attrs, trials=trials, curves=curves, best=best, base=base, base_lm_eval=base_lm,
        base_lm_eval_mean=base_lm_mean, env=_environment(trials, best),
        spec_yaml=redact(str(first.get("spec_yaml") or spec_text(spec))), notes=notes, steps=pd.DataFrame(step_rows),
    )
    if len(studies) >= 2:
        from prefstudy.report.compare import compare

        try:
            data.comparison = compare(spec, storage)
        except (OSError, ValueError, KeyError) as exc:
            notes.append(f"paired comparison not possible: {type(exc).__name__}: {exc}")
    from prefstudy.report import claims

    try:
        data.claims, data.claim_runs, data.profile_runs, data.train_runs = claims.build(spec, storage)
    except (OSError, ValueError, KeyError) as exc:
        notes.append(f"claims could not be computed: {type(exc).__name__}: {exc}")
    if toy_results is not None and Path(toy_results).is_file():
        data.toy, data.toy_path = _read_json(Path(toy_results)), Path(toy_results).resolve()
    return data


def _environment(trials: pd.DataFrame, best: dict[str, int | None]) -> dict[str, Any] | None:
    """env.json of a best trial, else of any trial with a run directory."""
    if trials.empty:
        return None
    ranked = trials.assign(_best=[best.get(m) == n for m, n in zip(trials["method"], trials["number"], strict=True)])
    for path in ranked.sort_values("_best", ascending=False)["run_path"].dropna():
        env = _read_json(Path(path) / "env.json")
        if env:
            return env
    return None


# --------------------------------------------------------------------------- analyses quoted by the verdicts
def peaks(data: ReportData) -> pd.DataFrame:
    """Per complete trial: the step where val peaked, and the drop from that peak to the final step.

    Curves that score one fixed set of val pairs at every eval point (``curve/val_a`` and ``curve/val_b``, its two
    halves; step 0 is the base model) choose the peak step on half a and read the peak, the final value and the
    drop on half b. So the drop is unbiased: reading the peak off the same noisy curve makes peak - final >= 0 by
    construction. Older curves (no halves) fall back to the maximum of ``val/<metric>`` (``split`` False).
    Ties go to the earliest step."""
    cols = ["method", "number", "peak_step", "peak", "final_step", "final", "drop", "split"]
    c = data.curves
    choose, measure = f"curve/val_a/{data.metric}", f"curve/val_b/{data.metric}"
    split = not c.empty and choose in c and measure in c
    if not split:
        choose = measure = f"val/{data.metric}"
    if c.empty or choose not in c:
        return pd.DataFrame(columns=cols)
    out = []
    for (method, number), g in c[c["state"] == "COMPLETE"].groupby(["method", "number"], sort=True):
        g = g.dropna(subset=[choose, measure]).sort_values("step")
        if g.empty:
            continue
        peak = g.loc[g[choose].idxmax()]
        last = g.iloc[-1]
        out.append({"method": method, "number": int(number), "peak_step": int(peak["step"]),
                    "peak": float(peak[measure]), "final_step": int(last["step"]), "final": float(last[measure]),
                    "drop": float(peak[measure] - last[measure]), "split": split})
    return pd.DataFrame(out, columns=cols)


def top_trials(data: ReportData, method: str, k: int = 3) -> list[int]:
    rows = data.of(method)
    if rows.empty:
        return []
    rows = rows[rows["feasible"]].sort_values(["value", "number"], ascending=[False, True])
    return [int(n) for n in rows["number"].head(k)]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points when both coordinates are maximised (duplicates all kept)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(x2 >= x and y2 >= y and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def lm_eval_table(data: ReportData) -> pd.DataFrame:
    """Rows per task: metric, base value/stderr and each method's best trial value/stderr."""
    tasks: dict[str, dict[str, Any]] = {t: {"task": t, "metric": s["metric"], "base": s["value"],
                                             "base_stderr": s["stderr"]} for t, s in data.base_lm_eval.items()}
    for method in data.methods:
        best = data.best_row(method)
        if best is None:
            continue
        for task, score in _lm_scores(best.dropna().to_dict(), "lm_eval").items():
            row = tasks.setdefault(task, {"task": task, "metric": score["metric"]})
            row[method], row[f"{method}_stderr"] = score["value"], score["stderr"]
    return pd.DataFrame(list(tasks.values()))


def spearman(x: pd.Series, y: pd.Series) -> float | None:
    """Spearman rank correlation, None with fewer than 3 pairs or no variation."""
    pairs = pd.DataFrame({"x": x, "y": y}).dropna()
    if len(pairs) < 3 or pairs["x"].nunique() < 2 or pairs["y"].nunique() < 2:
        return None
    rho = pairs["x"].rank().corr(pairs["y"].rank())
    return None if rho is None or math.isnan(rho) else float(rho)
