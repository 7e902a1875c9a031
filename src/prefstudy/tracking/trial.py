"""A trial's trackers: opened when its run directory exists, fed TRL's per-step log and every new eval-point row of
``curves.jsonl`` while it trains, closed with its state and final metrics. A tracker that fails (a server gone, a
full disk) is switched off for the trial with one warning: the trial and its run directory go on."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from prefstudy.spec import StudySpec

# The modules each tracker needs, and the extra that installs them (preflight refuses a spec missing one).
NEEDS = {"tensorboard": ("tensorboard", "pip install 'prefstudy[tensorboard]'"),
         "mlflow": ("mlflow", "pip install 'prefstudy[mlflow]'")}


def numeric(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a nested dict, keys joined with '/' (booleans and strings left out)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(numeric(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def trial_params(spec: StudySpec, method: str, params: dict[str, float], seed: int, stage: str) -> dict[str, Any]:
    """What a tracker records as the trial's params: the tuned values, the seed and the recipe (never a storage URL
    or anything else outside the study's definition)."""
    training = spec.training.model_dump(mode="json")
    lora = training.pop("lora")
    return {**params, "method": method, "loss_type": spec.methods[method].loss_type, "seed": seed, "stage": stage,
            "model": spec.model.name_or_path, "spec_fingerprint": spec.fingerprint(),
            **{f"training.{k}": v for k, v in training.items()}, **{f"lora.{k}": v for k, v in lora.items()}}


class TrialTracker:
    def __init__(self, sinks: list[Any], run_dir: Path, warn: Callable[[str], None]) -> None:
        self.sinks, self.run_dir, self.warn = sinks, run_dir, warn
        self.curves_read = 0
        self.last_step = 0

    def _each(self, call: Callable[[Any], None]) -> None:
        for sink in list(self.sinks):
            try:
                call(sink)
            except Exception as exc:  # a tracker must never cost a trial
                self.sinks.remove(sink)
                self.warn(f"{type(sink).__name__} switched off for this trial: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]}")

    def step(self, step: int, logs: dict[str, Any]) -> None:
        self.last_step = max(self.last_step, step)
        values = numeric(logs)
        self._each(lambda sink: sink.scalars("train", step, values))

    def _point(self, step: int, values: dict[str, float]) -> None:
        self._each(lambda sink: sink.scalars("eval", step, values))

    def new_points(self) -> None:
        """Mirror the eval-point rows appended to curves.jsonl since the last call."""
        path = self.run_dir / "curves.jsonl"
        if not path.exists():
            return
        lines = path.read_text().splitlines()
        for line in lines[self.curves_read:]:
            row = json.loads(line)
            self._point(int(row["step"]), numeric({k: v for k, v in row.items() if k not in ("step", "final", "base")}))
        self.curves_read = len(lines)
        self._each(lambda sink: sink.flush())

    def close(self, state: str, attrs: dict[str, Any] | None = None) -> None:
        """The trial's state (COMPLETE, PRUNED, FAIL, DIVERGED) and final metrics: metrics.json's value, metrics and
        derived numbers, and the trial's lm_eval/* attributes."""
        self.new_points()
        final: dict[str, float] = {}
        path = self.run_dir / "metrics.json"
        if path.exists():
            record = json.loads(path.read_text())
            final = numeric({k: record[k] for k in ("value", "metrics", "derived") if k in record})
        final.update(numeric({k: v for k, v in (attrs or {}).items() if k.startswith("lm_eval/")}))
        self._each(lambda sink: sink.close(state, final, self.last_step))
        self.sinks = []

    def callback(self) -> TrainerCallback:
        tracker = self

        class TrackerCallback(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                       **_: Any) -> None:
                if logs and "loss" in logs:
                    tracker.step(state.global_step, logs)

            def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
                tracker.new_points()  # after the evaluator's callback, which writes the row

        return TrackerCallback()


def open_tracker(spec: StudySpec, study: str, trial: int, run_dir: Path, params: dict[str, Any],
                 tags: dict[str, str], warn: Callable[[str], None]) -> TrialTracker | None:
    """The trackers ``spec.tracking`` turns on, for one trial; None when it turns on neither TensorBoard nor MLflow
    (TRL's own integrations need no tracker: ``report_to``)."""
    if not spec.tracking.tensorboard and spec.tracking.mlflow is None:
        return None
    factories: list[Callable[[], Any]] = []
    if spec.tracking.tensorboard:
        from prefstudy.tracking.tensorboard_sink import TensorBoardSink

        factories.append(lambda: TensorBoardSink(run_dir, params))
    uri = spec.mlflow_uri()
    if uri is not None:
        from prefstudy.tracking.mlflow_sink import MlflowSink

        run_name = f"{study}/trial-{trial}"
        # a local store keeps its (unused) artifact folder beside it, not in whatever folder the study started from
        artifacts = (spec.run_root() / "mlartifacts").resolve().as_uri() if spec.tracking.mlflow == "local" else None
        factories.append(lambda: MlflowSink(uri, spec.name, study, run_name, params, tags, artifacts))
    sinks = []
    for factory in factories:
        try:
            sinks.append(factory())
        except Exception as exc:  # a tracker that cannot start must not cost the trial either
            warn(f"a tracker could not start for this trial: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    return TrialTracker(sinks, run_dir, warn)


def report_to(spec: StudySpec, run_dir: Path, run_name: str) -> dict[str, Any]:
    """DPOConfig keywords for TRL's own integrations (``tracking.report_to``), the run named after the trial and the
    project after the spec: W&B runs offline unless WANDB_MODE says otherwise, and writes under the run directory."""
    names = list(spec.tracking.report_to)
    if "wandb" in names:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(run_dir))
    return {"report_to": names, "run_name": run_name, "project": spec.name} if names else {}


def missing_modules(spec: StudySpec) -> list[str]:
    """'module (how to install it)' for every tracker the spec turns on whose module is not installed."""
    import importlib.util

    wanted = [name for name in ("tensorboard",) if spec.tracking.tensorboard]
    wanted += ["mlflow"] if spec.tracking.mlflow is not None else []
    wanted += list(spec.tracking.report_to)
    out = []
    for name in wanted:
        module, hint = NEEDS.get(name, (name, f"pip install {name}"))
        if importlib.util.find_spec(module) is None:
            out.append(f"{module} ({hint})")
    return out
