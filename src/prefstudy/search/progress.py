"""One console line per finished trial: its state and value, how far the run is, and when it should end."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _finished(studies: Sequence[optuna.Study]) -> int:
    return sum(len(s.get_trials(deepcopy=False, states=FINISHED)) for s in studies)


class Progress:
    """An Optuna callback: ``[default/dpo trial 3] COMPLETE val accuracy 0.625 in 94 s · 5/12 trials of this run,
    8.2 min elapsed, ETA 6.0 min`` (the ETA is the elapsed time over the trials finished, times the trials left).

    With ``studies`` (the run's, one per method, in the shared storage) the count is every worker's trials finished
    in them since this callback was made, so each of ``--workers N`` prints the run's progress, not its own share
    against the whole run's total."""

    def __init__(self, total: int, metric: str, log: Callable[[str], None], label: str = "trials",
                 studies: Sequence[optuna.Study] = ()) -> None:
        self.total = max(total, 0)
        self.metric = metric
        self.log = log
        self.label = label
        self.studies = tuple(studies)
        self.before = _finished(self.studies)
        self.started = time.perf_counter()
        self.done = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done = _finished(self.studies) - self.before if self.studies else self.done + 1
        elapsed = time.perf_counter() - self.started
        seconds = trial.duration.total_seconds() if trial.duration is not None else float("nan")
        if trial.state == TrialState.COMPLETE and trial.values:
            what = f"COMPLETE val {self.metric} {trial.values[0]:.3f}"
        elif trial.state == TrialState.PRUNED:
            what = f"PRUNED at step {trial.last_step}" if trial.last_step is not None else "PRUNED"
        else:
            what = trial.state.name
        left = max(self.total - self.done, 0)
        eta = f", ETA {_minutes(elapsed / self.done * left)}" if left else ""
        self.log(f"[{study.study_name} trial {trial.number}] {what} in {_minutes(seconds)} · "
                 f"{self.done}/{max(self.total, self.done)} {self.label} of this run, {_minutes(elapsed)} "
                 f"elapsed{eta}")
