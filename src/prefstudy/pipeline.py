"""The ``prefstudy study`` command, top to bottom: check inputs, prepare the storage once, run the search, the
confirmation, then the end-of-run summary and the report. In one process, or as N worker processes."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

import optuna

from prefstudy.core.console import log, settle, stdout
from prefstudy.core.secrets import redact
from prefstudy.spec import StudySpec
from prefstudy.spec.stages import STAGES


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def prepare(spec: StudySpec, storage_url: str, confirm: bool,
            requeue: bool = True) -> tuple[optuna.storages.BaseStorage, dict[str, optuna.Study], Any]:
    """Everything that must hold before a trial runs, done once: inputs checked, lm-eval tasks resolved, storage
    schema and studies created (several workers racing on a fresh database crash otherwise)."""
    from prefstudy.search import confirm as confirmation
    from prefstudy.search.session import offline_if_local, quiet_libraries
    from prefstudy.search.storage import create_studies, open_storage

    if confirm:
        confirmation.check_configured(spec)
    offline_if_local(spec)
    pairs = None
    if requeue:  # the launching process checks; its workers need not repeat it
        from prefstudy.preflight import check_inputs
        from prefstudy.search.ownership import check_owner

        splits = check_inputs(spec, storage_url, log=log)  # data, model, storage: refused before anything is written
        check_owner(spec, storage_url)  # runs/<name>/ of another storage's study: refused, nothing written
        pairs = splits.fingerprint()
    quiet_libraries()
    lm_eval_manager = None
    if spec.evaluation.lm_eval.tasks:  # resolve every task (and reach its data) before anything is written
        from prefstudy.evaluation.lmeval import validate_tasks

        lm_eval_manager = validate_tasks(spec.evaluation.lm_eval.tasks)
    storage = open_storage(storage_url, spec)
    studies = create_studies(spec, storage, requeue, pairs)
    if requeue:
        from prefstudy.search.ownership import claim

        claim(spec, storage_url, studies)
    settle()  # inputs are good and the study exists: its log file joins its run directory
    return storage, studies, lm_eval_manager


def run(spec: StudySpec, storage_url: str, confirm: bool = False, role: str = "main", stage: str | None = None) -> int:
    """Top up every method's study to spec.search.n_trials finished trials, then (``confirm`` or
    ``confirm.auto``) the confirmation runs, then the fixed-design ``stage`` (search.stages) when one is named.
    Returns the process exit code.

    ``role`` is 'main' (one process does everything), or, under ``--workers N``, 'search' / 'confirm' / a stage's
    name for a worker process that only runs trials (its parent prepared the storage, enqueues the runs, reports).
    """
    from prefstudy.search import confirm as confirmation
    from prefstudy.search.loop import run_trials
    from prefstudy.search.objective import Objective
    from prefstudy.search.progress import Progress
    from prefstudy.search.session import Worker, keep_best_adapter, load_worker
    from prefstudy.search.storage import counts, finished, waiting

    confirm = (confirm or spec.confirm.auto) and role == "main"
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: the running trial is recorded as interrupted
    if spec.search.objective == "pareto" and role == "main":
        log("objective 'pareto' (val accuracy, lm-eval mean): pruning is off, every trial runs to the end")
    storage, studies, lm_eval_manager = prepare(spec, storage_url, confirm, requeue=role == "main")
    target = spec.search.n_trials
    failures: dict[str, int] = {}
    confirm_failures: dict[str, int] = {}
    worker: Worker | None = None
    poll = float(spec.workers.heartbeat_interval)
    metric = spec.evaluation.metric
    if role in ("main", "search"):
        todo = {m: max(waiting(s), target - finished(s), 0) for m, s in studies.items()}  # queued ones run too
        log(f"study '{spec.name}': storage {redact(storage_url)}; trials to run per method: {todo}")
        if any(todo.values()) or any(counts(s)["running"] for s in studies.values()):
            started = time.perf_counter()
            worker = load_worker(spec, storage_url, studies, lm_eval_manager)
            search_worker = worker
            callbacks: list[Any] = [Progress(sum(todo.values()), metric, log)]
            if spec.training.save_adapter == "best":
                callbacks.append(keep_best_adapter)
            failures = run_trials(studies, lambda method: Objective(search_worker, method), target, log,
                                  callbacks, poll)
            log(f"search finished in {(time.perf_counter() - started) / 60:.1f} min")
    if role == "main":
        worker = score_chosen_trials(spec, storage_url, studies, lm_eval_manager, worker)
    if confirm or role == "confirm":
        if role == "confirm":  # the parent enqueued the runs; only run them
            confirm_studies = confirmation.load(spec, storage, studies)
        else:
            confirm_studies = confirmation.create(spec, storage, studies)
            runs = {m: todo for m, (_, todo) in confirm_studies.items()}
            log(f"confirmation: top {spec.confirm.top_k} configuration(s) x seeds {list(spec.confirm.seeds)}; "
                f"runs to do per method: {runs}")
        queued = {m: s for m, (s, _) in confirm_studies.items()}
        if any(waiting(s) for s in queued.values()):
            started = time.perf_counter()
            confirm_worker = worker or load_worker(spec, storage_url, studies, lm_eval_manager)
            progress = Progress(sum(waiting(s) for s in queued.values()), metric, log, "confirmation runs")
            confirm_failures = run_trials(queued, lambda method: Objective(confirm_worker, method, stage="confirm"),
                                          0, log, [progress], poll)
            failures = {m: failures.get(m, 0) + confirm_failures.get(m, 0) for m in studies}
            log(f"confirmation finished in {(time.perf_counter() - started) / 60:.1f} min")
    if (stage and role == "main") or role in STAGE_ROLES:
        stage_failures = run_stage(spec, storage_url, storage, studies, stage or role, lm_eval_manager, worker,
                                   enqueue=role == "main")
        confirm_failures = {m: confirm_failures.get(m, 0) + stage_failures.get(m, 0) for m in studies}
        failures = {m: failures.get(m, 0) + stage_failures.get(m, 0) for m in studies}
    if role == "main":
        finish(spec, storage_url, storage, studies)
    incomplete = any(finished(s) < target for s in studies.values()) or any(confirm_failures.values())
    return 1 if any(failures.values()) and incomplete else 0


STAGE_ROLES = STAGES


def run_stage(spec: StudySpec, storage_url: str, storage: Any, studies: dict[str, optuna.Study], stage: str,
              lm_eval_manager: Any, worker: Any, enqueue: bool = True) -> dict[str, int]:
    """Enqueue (``enqueue``) and run the stage's missing runs through the trial loop; returns failures per method."""
    from prefstudy.search import stages
    from prefstudy.search.loop import run_trials
    from prefstudy.search.objective import Objective
    from prefstudy.search.progress import Progress
    from prefstudy.search.session import load_worker
    from prefstudy.search.storage import waiting

    if enqueue:
        created = stages.create(spec, storage, studies, stage)
        log(stages.describe(spec, stage, studies)
            + f"; runs to do per method: { {m: todo for m, (_, todo) in created.items()} }")
    else:
        created = stages.load(spec, storage, stage)
    queued = {m: s for m, (s, _) in created.items()}
    if not any(waiting(s) for s in queued.values()):
        return {}
    started = time.perf_counter()
    stage_worker = worker or load_worker(spec, storage_url, studies, lm_eval_manager)
    progress = Progress(sum(waiting(s) for s in queued.values()), spec.evaluation.metric, log, f"{stage} runs")
    failures = run_trials(queued, lambda method: Objective(stage_worker, method, stage=stage), 0, log, [progress],
                          float(spec.workers.heartbeat_interval))
    log(f"{stage} finished in {(time.perf_counter() - started) / 60:.1f} min")
    return failures


def run_workers(spec: StudySpec, storage_url: str, n: int, command: list[str], confirm: bool,
                stage: str | None = None) -> int:
    """Run ``command`` (this CLI call without --workers) as ``n`` worker processes; returns the exit code."""
    from prefstudy.search import confirm as confirmation
    from prefstudy.search import workers
    from prefstudy.search.storage import finished, waiting

    confirm = confirm or spec.confirm.auto
    storage, studies, lm_eval_manager = prepare(spec, storage_url, confirm)
    gpus = workers.visible_gpus()
    log(f"study '{spec.name}': {n} workers on this machine" + (f", GPUs {gpus}" if gpus else " (no GPU)"))
    codes = workers.wait(workers.start(command, "search", n, gpus, storage_url))
    interrupted = any(c in workers.INTERRUPTED for c in codes)
    if not interrupted:  # the chosen trials' test/OOD, here: the workers have exited
        score_chosen_trials(spec, storage_url, studies, lm_eval_manager, None)
    if confirm and not interrupted:
        runs = {m: todo for m, (_, todo) in confirmation.create(spec, storage, studies).items()}
        log(f"confirmation: runs to do per method: {runs}")
        if any(runs.values()):
            codes += workers.wait(workers.start(command, "confirm", n, gpus, storage_url))
    interrupted = any(c in workers.INTERRUPTED for c in codes)
    if stage and not interrupted:
        from prefstudy.search import stages

        created = stages.create(spec, storage, studies, stage)
        runs = {m: todo for m, (_, todo) in created.items()}
        log(f"{stage}: runs to do per method: {runs}")
        if any(runs.values()):
            codes += workers.wait(workers.start(command, stage, n, gpus, storage_url))
    finish(spec, storage_url, storage, studies)
    target = spec.search.n_trials
    done = {m: finished(s) for m, s in studies.items()}
    over = {m: d - target for m, d in done.items() if d > target}
    if over:
        log(f"finished trials above the target of {target} per method (concurrent workers): {over}")
    if interrupted or any(c == 130 for c in codes):
        return 130
    complete = all(done[m] >= target and not waiting(s) for m, s in studies.items())
    return 0 if complete else 1


def score_chosen_trials(spec: StudySpec, storage_url: str, studies: dict[str, optuna.Study],
                        lm_eval_manager: Any, worker: Any) -> Any:
    """Test and OOD for each method's chosen trial that lacks them (``search.chosen``); loads the model only when
    there is one to score. Returns the worker (loaded here or given)."""
    from prefstudy.search.chosen import needs_scoring, score_chosen
    from prefstudy.search.session import load_worker

    if not needs_scoring(spec, studies):
        return worker
    worker = worker or load_worker(spec, storage_url, studies, lm_eval_manager)
    score_chosen(worker, studies)
    return worker


def finish(spec: StudySpec, storage_url: str, storage: optuna.storages.BaseStorage,
           studies: dict[str, optuna.Study]) -> None:
    """The end-of-run table, the report and its verdicts: the primary endpoint first (a failed report never fails
    the run: it can be rebuilt)."""
    from prefstudy.report.summary import print_summary

    print_summary(spec, studies, storage_url, out=stdout())
    try:
        from prefstudy.report import build_report

        index = build_report(spec, storage_url, storage=storage)
    except Exception as exc:  # noqa: BLE001 - the study's results are safe in storage; the report can be rebuilt
        log(f"report could not be built ({type(exc).__name__}: {redact(str(exc))}); retry: nox -s report -- SPEC")
        return
    log_verdicts(index.parent / "verdicts.json")
    log(f"report:  {index}")


def log_verdicts(path: Any) -> None:
    """The primary endpoint and the paired comparisons of ``verdicts.json``, one line each."""
    import json

    from prefstudy.report.verdicts import Verdict

    entries = [Verdict(**v) for v in json.loads(path.read_text())]
    for v in entries:  # every comparison with its interval, and its MDE where it does not decide
        log(v.sentence() + (f" ({v.scope})" if v.measured and v.kind != "vs_base" else ""))
    secondary = sum(not v.primary for v in entries)
    log(f"verdicts: {path} (1 primary, {secondary} secondary, Holm-adjusted)")
    claims = path.parent / "claims.json"
    if claims.is_file():
        from prefstudy.report.claims import sentence

        for entry in json.loads(claims.read_text()):
            log(sentence(entry))
        log(f"claims: {claims}")
