"""The ``prefstudy study`` command, top to bottom: check inputs, prepare the storage once, run each stage the request
selects (``search.registry``: the search, then the confirmation, then a fixed-design stage), then the end-of-run
summary and the report. In one process, or with N worker processes per stage."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

import optuna

from prefstudy.core.console import log, settle, stdout
from prefstudy.core.secrets import redact
from prefstudy.search.stage import Queue, Request, Stage, StudyContext
from prefstudy.spec import StudySpec


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def prepare(spec: StudySpec, storage_url: str, stages: list[Stage], launcher: bool = True) -> StudyContext:
    """Everything that must hold before a trial runs, done once: inputs checked (and kept for the worker), lm-eval
    tasks resolved, storage schema and studies created (several workers racing on a fresh database crash
    otherwise). ``launcher``: this process checks the inputs and claims the run directory; its workers need not."""
    from prefstudy.search.storage import create_studies, open_storage
    from prefstudy.search.worker import offline_if_local, quiet_libraries

    for stage in stages:
        stage.check(spec)
    offline_if_local(spec, log)
    inputs = None
    if launcher:
        from prefstudy.preflight import check_inputs
        from prefstudy.search.ownership import check_owner

        inputs = check_inputs(spec, storage_url, log=log)  # data, model, storage: refused before anything is written
        check_owner(spec, storage_url)  # runs/<name>/ of another storage's study: refused, nothing written
    quiet_libraries()
    lm_eval_manager = None
    if spec.evaluation.lm_eval.tasks:  # resolve every task (and reach its data) before anything is written
        from prefstudy.evaluation.lmeval import validate_tasks

        lm_eval_manager = validate_tasks(spec.evaluation.lm_eval.tasks)
    storage = open_storage(storage_url, spec)
    studies = create_studies(spec, storage, launcher, inputs.fingerprint() if inputs is not None else None)
    if launcher:
        from prefstudy.search.ownership import claim

        claim(spec, storage_url, studies)
    settle()  # inputs are good and the study exists: its log file joins its run directory
    return StudyContext(spec, storage_url, storage, studies, lm_eval_manager, inputs)


def run(spec: StudySpec, storage_url: str, request: Request | None = None) -> int:
    """Run the stages ``request`` selects in this process; returns the exit code. The search tops every method's
    study up to spec.search.n_trials finished trials; later stages run their queued runs. A worker process
    (``request.role``) runs its one stage's queued trials; its launcher prepared the storage and reports."""
    from prefstudy.search.registry import for_request

    request = request or Request()
    launcher = request.role is None
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: the running trial is recorded as interrupted
    if spec.search.objective == "pareto" and launcher:
        log("objective 'pareto' (val accuracy, lm-eval mean): pruning is off, every trial runs to the end")
    stages = for_request(spec, request)
    ctx = prepare(spec, storage_url, stages, launcher)
    failures: list[tuple[Stage, dict[str, int]]] = []
    for stage in stages:
        queue = stage.enqueue(ctx) if launcher else stage.queued(ctx)
        failures.append((stage, run_queue(ctx, stage, queue)))
        if launcher:
            stage.after(ctx)
    if launcher:
        finish(ctx)
    return exit_code(ctx, failures)


def run_queue(ctx: StudyContext, stage: Stage, queue: Queue) -> dict[str, int]:
    """The stage's trials in this process, through THE trial loop; returns failures per method."""
    from prefstudy.search.loop import run_trials
    from prefstudy.search.objective import Objective
    from prefstudy.search.progress import Progress

    if not queue.has_work:
        return {}
    started = time.perf_counter()
    worker, spec = ctx.worker(), ctx.spec
    callbacks = [Progress(queue.total, spec.evaluation.metric, log, stage.label, list(queue.studies.values())),
                 *stage.callbacks(spec)]
    failures = run_trials(queue.studies, lambda method: Objective(worker, method, stage), stage.target(spec), log,
                          callbacks, float(spec.workers.heartbeat_interval))
    log(f"{stage.title} finished in {(time.perf_counter() - started) / 60:.1f} min")
    return failures


def exit_code(ctx: StudyContext, failures: list[tuple[Stage, dict[str, int]]]) -> int:
    """1 when trials failed and the study is incomplete: the search short of its target, or a failed run of a stage
    of queued runs (a failed search trial that another trial replaced does not fail the run); else 0."""
    from prefstudy.search.storage import finished

    failed = any(n for _, per_method in failures for n in per_method.values())
    lost_run = any(n for stage, per_method in failures if not stage.target(ctx.spec) for n in per_method.values())
    incomplete = any(finished(s) < ctx.spec.search.n_trials for s in ctx.searches.values()) or lost_run
    return 1 if failed and incomplete else 0


def run_workers(spec: StudySpec, storage_url: str, n: int, command: list[str], request: Request) -> int:
    """Each selected stage's trials on ``n`` worker processes running ``command`` (this CLI call without --workers)
    with ``--role STAGE``; this process prepares, enqueues, follows each stage up and reports. Returns the exit code."""
    from prefstudy.search import processes
    from prefstudy.search.registry import for_request
    from prefstudy.search.storage import finished, waiting

    stages = for_request(spec, request)
    ctx = prepare(spec, storage_url, stages)
    gpus = processes.visible_gpus()
    log(f"study '{spec.name}': {n} workers on this machine" + (f", GPUs {gpus}" if gpus else " (no GPU)"))
    codes: list[int] = []
    for stage in stages:
        if stage.enqueue(ctx).has_work:
            codes += processes.wait(processes.start(command, stage.name, n, gpus, storage_url))
        if any(c in processes.INTERRUPTED for c in codes):
            break
        stage.after(ctx)  # here: the workers have exited
    finish(ctx)
    target = spec.search.n_trials
    done = {m: finished(s) for m, s in ctx.searches.items()}
    over = {m: d - target for m, d in done.items() if d > target}
    if over:
        log(f"finished trials above the target of {target} per method (concurrent workers): {over}")
    if any(c in processes.INTERRUPTED for c in codes):
        return 130
    complete = all(done[m] >= target and not waiting(s) for m, s in ctx.searches.items())
    return 0 if complete else 1


def summary(spec: StudySpec, storage_url: str) -> None:
    """The end-of-run table from the storage (``prefstudy summary``)."""
    from prefstudy.report.summary import print_summary
    from prefstudy.search.storage import create_studies, open_storage

    print_summary(spec, create_studies(spec, open_storage(storage_url, spec)), storage_url, stdout())


def report(spec: StudySpec, storage_url: str, storage: optuna.storages.BaseStorage | None = None) -> None:
    """Build the report from the storage and run directories, then log its verdicts and claims and where it is."""
    from prefstudy.report import build_report

    index = build_report(spec, storage_url, storage=storage)
    log_verdicts(index.parent / "verdicts.json")
    log(f"report:  {index}")


def finish(ctx: StudyContext) -> None:
    """The end-of-run table, the report and its verdicts: the primary endpoint first (a failed report never fails
    the run: it can be rebuilt)."""
    from prefstudy.report.summary import print_summary

    print_summary(ctx.spec, ctx.searches, ctx.storage_url, out=stdout())
    try:
        report(ctx.spec, ctx.storage_url, ctx.storage)
    except Exception as exc:  # noqa: BLE001 - the study's results are safe in storage; the report can be rebuilt
        log(f"report could not be built ({type(exc).__name__}: {redact(str(exc))}); retry: nox -s report -- SPEC")


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
        log(f"claims: {path.parent / 'claims.json'}")
