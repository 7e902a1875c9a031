"""A stage is one kind of trials a study runs through THE trial loop (``search.loop``): the search, the confirmation,
the fixed-design stages of the claims. Each is an object (``search.registry`` lists them in the order they run):

- which studies it runs and what it enqueues in them (:meth:`Stage.enqueue` in the launching process, which logs
  the stage's design; :meth:`Stage.queued` in a worker process, which only takes what the launcher left);
- how one of its trials is parameterised (:meth:`Stage.plan`: seed, steps, folder, schedule, probes, pruning,
  whether lm-eval runs), which the objective (``search.objective``) asks for and otherwise treats alike;
- what follows it in the launching process (:meth:`Stage.after`: the search's chosen trials get their test scores);
- how a failure of its trials may still be one of its results (:meth:`Stage.failed_result`: a diverged lr-profile
  run).

The pipeline walks the stages without knowing their names; the report reads their studies back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import optuna

from prefstudy.search.storage import waiting
from prefstudy.spec import StudySpec
from prefstudy.spec.stages import Request

__all__ = ["Queue", "Request", "Shape", "Stage", "StudyContext", "TrialPlan", "queue_of"]

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

    from prefstudy.search.worker import Inputs, Worker
    from prefstudy.training.trainer import Probe, Schedule


@dataclass(frozen=True)
class Shape:
    """How a stage's run trains and is scored, beyond its parameters and seed (``prefstudy rerun`` repeats it)."""

    final_only: bool = False  # held-out splits scored at the last step only
    schedule: Schedule | None = None  # a fixed design's length, eval points and pairs (None: the spec's)
    probe: Callable[[Path], Probe] | None = None  # a fixed design's per-pair measurements, given the run directory


@dataclass(frozen=True)
class TrialPlan:
    """How one trial of a stage runs: everything in which the search, the confirmation and the fixed designs differ."""

    params: dict[str, float]  # beta, learning_rate: suggested by the sampler or the enqueued point
    seed: int  # the training seed (LoRA init, data order)
    folder: str  # the trial's folder under runs/<name>/: "<method>" or "<method>/<stage>"
    sampling: str  # the 'sampling' user attribute: how the parameters were chosen
    capability: bool = True  # config.json's 'capability' (lr-profile: this run carries lm-eval and generation)
    prunable: bool = False  # the val objective is reported at every eval point and may prune the trial
    with_lm_eval: bool = False  # lm-eval on the trained adapter
    shape: Shape = Shape()
    design: dict[str, Any] = field(default_factory=dict)  # a design point's other factors (config.json 'design')


@dataclass
class Queue:
    """A stage's studies for this run, one per method, and how much there is to do in them."""

    studies: dict[str, optuna.Study]
    todo: dict[str, int]  # runs (or trials) per method that are not finished yet
    total: int  # trials this run expects to finish (the progress line's denominator)
    has_work: bool  # whether any trial is queued (or, for the search, wanted or still running elsewhere)


@dataclass
class StudyContext:
    """What every stage of one ``prefstudy study`` process shares: the spec, the storage with each method's search
    study, the resolved lm-eval tasks, preflight's inputs, and the worker (tokenizer, base model, reference cache),
    loaded once on first use from those same inputs (never when no stage has a trial to run)."""

    spec: StudySpec
    storage_url: str
    storage: optuna.storages.BaseStorage
    searches: dict[str, optuna.Study]
    lm_eval_manager: TaskManager | None = None
    inputs: Inputs | None = None
    loaded: Worker | None = field(default=None, repr=False)

    def worker(self) -> Worker:
        if self.loaded is None:
            from prefstudy.search import worker  # looked up at call time: the bench counts these loads

            self.loaded = worker.load_worker(self.spec, self.storage_url, self.searches, self.lm_eval_manager,
                                             inputs=self.inputs)
        return self.loaded


class Stage:
    """One kind of trials. Subclasses set the names and implement :meth:`plan`, :meth:`enqueue` and :meth:`queued`."""

    name: ClassVar[str]  # the studies' suffix (<name>/<method>/<stage>), --role and --stage value, config 'stage'
    title: ClassVar[str]  # "<title> finished in 3.2 min"
    label: ClassVar[str]  # the progress line's noun: "2/12 <label> of this run"
    #: the user attribute every enqueued run of the stage carries; a trial without it was handed out by Optuna after
    #: another worker took the last queued run, and is closed untrained (None: the stage's sampler suggests)
    run_attr: ClassVar[str | None] = None

    def selected(self, spec: StudySpec, request: Request) -> bool:
        """Whether a launching process runs this stage for ``request``."""
        raise NotImplementedError

    def check(self, spec: StudySpec) -> None:
        """Refuse a spec the stage cannot run (SpecError), before anything is written."""

    def target(self, spec: StudySpec) -> int:
        """Finished trials each study must hold (0: just the queued runs)."""
        return 0

    def enqueue(self, ctx: StudyContext) -> Queue:
        """The launching process: create the stage's studies, queue its missing runs, log its design."""
        raise NotImplementedError

    def queued(self, ctx: StudyContext) -> Queue:
        """A worker process: the stage's studies as the launching process left them."""
        raise NotImplementedError

    def plan(self, trial: optuna.Trial, method: str, worker: Worker) -> TrialPlan:
        """The trial's parameters (suggested through ``trial``), seed, folder and shape."""
        raise NotImplementedError

    def shape(self, worker: Worker, capability: bool, design: Mapping[str, Any]) -> Shape:
        """How a run of the stage trains and is scored (default: as the spec says); ``design`` is the run's
        TrialPlan.design (config.json's 'design' when ``prefstudy rerun`` repeats it)."""
        return Shape()

    def callbacks(self, spec: StudySpec) -> list[Any]:
        """Optuna callbacks after each of the stage's trials, beside the progress line."""
        return []

    def after(self, ctx: StudyContext) -> None:
        """The launching process, once the stage's trials have run (and its worker processes have exited)."""

    def failed_result(self, trial: optuna.Trial, run_dir: Path, reason: str) -> float | None:
        """A value that completes a failed trial as a result of the design, or None: the trial fails."""
        return None


def queue_of(studies: dict[str, tuple[optuna.Study, int]]) -> Queue:
    """A fixed design's queue from ``{method: (study, runs not complete)}`` (``storage.top_up`` bookkeeping)."""
    queued = {m: s for m, (s, _) in studies.items()}
    total = sum(waiting(s) for s in queued.values())
    return Queue(queued, {m: todo for m, (_, todo) in studies.items()}, total, total > 0)
