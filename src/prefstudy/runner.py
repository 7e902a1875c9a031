"""Run a study from a validated spec: load once, prepare once, top every method's study up, summarise."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from prefstudy.secrets import redact
from prefstudy.spec import StudySpec


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def log(message: str) -> None:
    """One line to stdout; under --workers N each worker's lines start with [wK]."""
    tag = os.environ.get("PREFSTUDY_WORKER_TAG")
    print(f"[{tag}] {message}" if tag else message, flush=True)


def _quiet_libraries() -> None:
    import warnings

    import datasets
    import optuna
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat, retry callback


def offline_if_local(spec: StudySpec) -> None:
    """Nothing to download for the embedded/tiny/local models and local data: fail fast instead of retrying."""
    name = spec.model.name_or_path
    local_model = name.startswith(("embedded:", "tiny-")) or Path(name).expanduser().is_dir()
    if local_model and spec.data.source != "hf":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_worker(spec: StudySpec, storage_url: str, studies: dict[str, Any], lm_eval_manager: Any = None,
                with_lm_eval: bool = True) -> Any:
    """Load the tokenizer, the base model (once) and the reference cache; record the base metrics once."""
    import torch

    from prefstudy.data import load_splits
    from prefstudy.model import load_base_model, load_tokenizer, resolve_model_path
    from prefstudy.objective import Worker, base_metrics
    from prefstudy.refcache import model_identity, prepare

    torch.set_num_threads(spec.training.threads or max(1, os.cpu_count() or 1))
    splits = load_splits(spec.data)
    started = time.perf_counter()
    tokenizer = load_tokenizer(spec.model)
    model = load_base_model(spec.model, spec.training)
    log(f"model {spec.model.name_or_path} loaded in {time.perf_counter() - started:.1f}s "
        f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {torch.get_num_threads()} threads)")
    identity = model_identity(resolve_model_path(spec.model.name_or_path), spec.model.revision)
    prepared = prepare(
        spec.run_root() / "cache", model, tokenizer, splits.splits, spec.training, identity,
        spec.evaluation.batch_size, log=log,
    )
    dropped = {**splits.dropped, **{f"over_length/{k}": v for k, v in prepared.over_length.items() if v}}
    log(f"data: {splits.sizes()} pairs" + (f", dropped {dropped}" if dropped else "")
        + (f"; reference pass {prepared.seconds:.1f}s" if prepared.computed else "; reference log-probs from cache"))
    data_dir = spec.run_root() / "data"
    if not (data_dir / "train.jsonl").exists():
        splits.save(data_dir)
    base = base_metrics(prepared)
    for study in studies.values():
        if "base/val/accuracy" not in study.user_attrs:
            for split, values in base.items():
                for key, value in values.items():
                    study.set_user_attr(f"base/{split}/{key}", value)
            study.set_user_attr("data_fingerprint", prepared.fingerprint)
            study.set_user_attr("dropped", dropped)
    log("base model preference accuracy: " + ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in base.items()))
    from prefstudy.evaluate import family_accuracy

    for split in prepared.ref:
        per_family = family_accuracy(prepared, split, None)
        log(f"  {split} per family: " + ", ".join(f"{f} {a:.2f}" for f, a in per_family.items()))
        for study in studies.values():
            if f"base/{split}/family" not in study.user_attrs:
                study.set_user_attr(f"base/{split}/family", per_family)
    worker = Worker(spec=spec, tokenizer=tokenizer, base_model=model, prepared=prepared,
                    storage_url=storage_url, log=log, lm_eval_manager=lm_eval_manager)
    if spec.evaluation.lm_eval.tasks and with_lm_eval:
        worker.lm_eval_base = base_lm_eval(worker, studies)
    return worker


def base_lm_eval(worker: Any, studies: dict[str, Any]) -> dict[str, Any]:
    """The base model's lm-eval result: computed once per study, then read from runs/<name>/base/lm_eval.json."""
    import json

    from prefstudy.lmeval import LmEvalError, evaluate, flat_attrs, tasks_digest
    from prefstudy.rundir import write_json

    spec = worker.spec
    path = spec.run_root() / "base" / "lm_eval.json"
    if path.exists():
        stored = json.loads(path.read_text())
        now = tasks_digest(spec.evaluation.lm_eval.tasks)
        if stored.get("tasks_digest") != now:
            raise LmEvalError(
                f"{path} was scored on other lm-eval task files or settings (digest "
                f"{stored.get('tasks_digest', 'none')}, now {now}): this study's trials are not comparable with "
                "new scores. Give the study a new `name` (or delete its run directory and storage to start over)"
            )
        log(f"lm-eval of the base model: reused {path}")
        return stored
    started = time.perf_counter()
    result = evaluate(worker.base_model, worker.tokenizer, spec, spec.seed, worker.lm_eval_manager)
    write_json(path, result)
    for study in studies.values():
        for key, value in flat_attrs(result, prefix="lm_eval_base").items():
            study.set_user_attr(key, value)
    log(f"lm-eval of the base model in {time.perf_counter() - started:.1f}s: "
        + ", ".join(f"{name} {task['value']:.3f}" for name, task in result["tasks"].items()))
    return result


def keep_best_adapter(study: Any, _trial: Any) -> None:
    """save_adapter: best -- delete the adapters of every trial but the method's current best."""
    import shutil

    from prefstudy.summary import best_trial

    best = best_trial(study)
    for trial in study.get_trials(deepcopy=False):
        folder = Path(trial.user_attrs.get("run_dir", "")) / "adapter"
        if trial.user_attrs.get("run_dir") and (best is None or trial.number != best.number) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def prepare(spec: StudySpec, storage_url: str, confirm: bool, requeue: bool = True) -> tuple[Any, dict[str, Any], Any]:
    """Everything that must hold before a trial runs, done once: inputs checked, lm-eval tasks resolved, storage
    schema and studies created (several workers racing on a fresh database crash otherwise)."""
    from prefstudy import confirm as confirmation
    from prefstudy.study import create_studies, open_storage

    if confirm:
        confirmation.check_configured(spec)
    offline_if_local(spec)
    if requeue:  # the launching process checks; its workers need not repeat it
        from prefstudy.preflight import check_inputs

        check_inputs(spec, storage_url, log=log)  # data, model and storage: refused before anything is written
    _quiet_libraries()
    lm_eval_manager = None
    if spec.evaluation.lm_eval.tasks:  # resolve every task (and reach its data) before anything is written
        from prefstudy.lmeval import validate_tasks

        lm_eval_manager = validate_tasks(spec.evaluation.lm_eval.tasks)
    storage = open_storage(storage_url, spec)
    return storage, create_studies(spec, storage, requeue), lm_eval_manager


def run(spec: StudySpec, storage_url: str, confirm: bool = False, role: str = "main") -> int:
    """Top up every method's study to spec.search.n_trials finished trials, then (``confirm`` or
    ``confirm.auto``) the confirmation runs. Returns the process exit code.

    ``role`` is 'main' (one process does everything), or, under ``--workers N``, 'search' / 'confirm' for a worker
    process that only runs trials (its parent prepared the storage, enqueues the confirmation and reports).
    """
    from prefstudy import confirm as confirmation
    from prefstudy.objective import Objective
    from prefstudy.study import counts, finished, run_loop, waiting

    confirm = (confirm or spec.confirm.auto) and role == "main"
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: the running trial is recorded as interrupted
    if spec.search.objective == "pareto" and role == "main":
        log("objective 'pareto' (val accuracy, lm-eval mean): pruning is off, every trial runs to the end")
    storage, studies, lm_eval_manager = prepare(spec, storage_url, confirm, requeue=role == "main")
    target = spec.search.n_trials
    failures: dict[str, int] = {}
    confirm_failures: dict[str, int] = {}
    worker = None
    poll = float(spec.workers.heartbeat_interval)
    if role in ("main", "search"):
        todo = {m: max(waiting(s), target - finished(s), 0) for m, s in studies.items()}  # queued ones run too
        log(f"study '{spec.name}': storage {redact(storage_url)}; trials to run per method: {todo}")
        if any(todo.values()) or any(counts(s)["running"] for s in studies.values()):
            started = time.perf_counter()
            worker = load_worker(spec, storage_url, studies, lm_eval_manager)
            callbacks = [keep_best_adapter] if spec.training.save_adapter == "best" else None
            failures = run_loop(studies, lambda method: Objective(worker, method), target, log, callbacks, poll)
            log(f"search finished in {(time.perf_counter() - started) / 60:.1f} min")
    if confirm or role == "confirm":
        if role == "confirm":  # the parent enqueued the runs; only run them
            confirm_studies = confirmation.load(spec, storage, studies)
        else:
            confirm_studies = confirmation.create(spec, storage, studies)
            runs = {m: todo for m, (_, todo) in confirm_studies.items()}
            log(f"confirmation: top {spec.confirm.top_k} configuration(s) x seeds {list(spec.confirm.seeds)}; "
                f"runs to do per method: {runs}")
        if any(waiting(s) for s, _ in confirm_studies.values()):
            started = time.perf_counter()
            worker = worker or load_worker(spec, storage_url, studies, lm_eval_manager)
            confirm_failures = confirmation.run(
                confirm_studies, lambda method: Objective(worker, method, stage="confirm"), log)
            failures = {m: failures.get(m, 0) + confirm_failures.get(m, 0) for m in studies}
            log(f"confirmation finished in {(time.perf_counter() - started) / 60:.1f} min")
    if role == "main":
        finish(spec, storage_url, storage, studies)
    incomplete = any(finished(s) < target for s in studies.values()) or any(confirm_failures.values())
    return 1 if any(failures.values()) and incomplete else 0


def finish(spec: StudySpec, storage_url: str, storage: Any, studies: dict[str, Any]) -> None:
    """The end-of-run table and the report (a failed report never fails the run: it can be rebuilt)."""
    from prefstudy.summary import print_summary

    print_summary(spec, studies, storage_url, out=sys.stdout)
    if len(studies) >= 2:
        from prefstudy.compare import compare, sentence

        paired = compare(spec, storage)
        if paired is not None:
            a, b = paired.a.method.upper(), paired.b.method.upper()
            log(sentence(f"paired, test {spec.evaluation.metric}", a, b, paired.heldout) + f" ({paired.scope()})")
            if paired.lm_eval is not None:
                log(sentence("paired, lm-eval mean", a, b, paired.lm_eval))
    try:
        from prefstudy.report import build_report

        log(f"report:  {build_report(spec, storage_url, storage=storage)}")
    except Exception as exc:  # noqa: BLE001 - the study's results are safe in storage; the report can be rebuilt
        log(f"report could not be built ({type(exc).__name__}: {redact(str(exc))}); retry: nox -s report -- SPEC")
