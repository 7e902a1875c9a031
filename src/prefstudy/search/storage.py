"""Storages and studies: opening a storage, creating each method's study once, counting its trials.

One Optuna study per method, named ``<name>/<method>``. ``search.n_trials`` is the number of FINISHED trials
(COMPLETE or PRUNED) wanted per method: running again tops each study up and never redoes finished trials.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from prefstudy.core.secrets import redact
from prefstudy.search.samplers import make_pruner, make_sampler
from prefstudy.spec import SpecError, StudySpec, spec_text

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class StorageError(RuntimeError):
    """The storage URL is malformed or the database cannot be reached."""


#: seconds a database server may take to answer a new connection (a URL's own connect_timeout wins)
CONNECT_TIMEOUT = 10


def engine_kwargs(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgresql", "mysql") and "connect_timeout" not in parsed.query:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}  # a silent server would block forever
    return kwargs


def open_storage(url: str, spec: StudySpec) -> optuna.storages.BaseStorage:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    workers = spec.workers
    try:
        kwargs = engine_kwargs(url)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=workers.heartbeat_interval,
            grace_period=workers.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=workers.max_retry, inherit_intermediate_values=True
            ),
            engine_kwargs=kwargs,
        )
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises many types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(f"storage '{redact(url)}' cannot be opened: {redact(first)}") from None


def create_studies(spec: StudySpec, storage: optuna.storages.BaseStorage, requeue: bool = True,
                   pairs: str | None = None) -> dict[str, optuna.Study]:
    """Create (or load) every method's study once, before any worker runs; refuse a changed spec, or (``pairs``:
    the data's fingerprint, ``PreferenceSplits.fingerprint``) changed data. ``requeue``: enqueue the parameters of
    interrupted trials again (the launching process does it, once). Each study gets a ``study_uuid`` of its own,
    which survives ``optuna.copy_study`` (a URL does not): the run directories are claimed with it."""
    studies = {}
    fingerprint = spec.fingerprint()
    for method in spec.methods:
        name = spec.study_name(method)
        pareto = spec.search.objective == "pareto"
        study = optuna.create_study(
            study_name=name, storage=storage, directions=["maximize", "maximize"] if pareto else ["maximize"],
            sampler=make_sampler(spec, method), pruner=make_pruner(spec), load_if_exists=True,
        )
        stored = study.user_attrs.get("spec_fingerprint")
        if stored is not None and stored != fingerprint:
            raise SpecError(
                f"study '{name}' in this storage was created from a different spec (fingerprint {stored}, now "
                f"{fingerprint}): the model, data, metrics or search space changed. Give the study a new `name` "
                f"(or another --storage) to start a new study; only search.n_trials and workers may change on resume."
            )
        if pairs is not None:
            check_pairs(study, pairs)
        if "study_uuid" not in study.user_attrs:
            study.set_user_attr("study_uuid", uuid.uuid4().hex)
        if stored is None:
            study.set_user_attr("spec_fingerprint", fingerprint)
            study.set_user_attr("spec_yaml", redact(spec_text(spec)))
            study.set_user_attr("method", method)
            study.set_user_attr("loss_type", spec.methods[method].loss_type)
            study.set_user_attr("truncation", spec.training.truncation)  # kept on resume (session.check_truncation)
            from optuna_dashboard import set_objective_names

            names = [f"val {spec.evaluation.metric}"] + (["lm-eval mean"] if pareto else [])
            set_objective_names(study, names)
            for point in spec.search.enqueue.get(method, ()):
                study.enqueue_trial(dict(point), user_attrs={"enqueued": "published default"})
        if requeue:
            requeue_interrupted(study)
        studies[method] = study
    return studies


def check_pairs(study: optuna.Study, pairs: str) -> None:
    """Refuse to resume a study on other pairs than it started with (an edited data file); record them if new."""
    from prefstudy.data.sources import DataError

    stored = study.user_attrs.get("pairs_fingerprint")
    if stored is None:
        study.set_user_attr("pairs_fingerprint", pairs)
    elif stored != pairs:
        raise DataError(
            f"study '{study.study_name}' was started on other preference pairs (data fingerprint {stored}, now "
            f"{pairs}): a data file changed since. Restore the data, or give the study a new `name` to start over "
            "on the new pairs")


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Enqueue again, once, the parameters of trials stopped by SIGINT/SIGTERM (fail_reason 'interrupted')."""
    done = set(study.user_attrs.get("requeued_trials", []))
    fresh = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.user_attrs.get("fail_reason") == "interrupted" and t.number not in done
    ]
    for trial in fresh:
        study.enqueue_trial(dict(trial.params), user_attrs={"requeued_from": trial.number})
    if fresh:
        study.set_user_attr("requeued_trials", sorted(done | {t.number for t in fresh}))
    return [t.number for t in fresh]


def counts(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    return {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
    }


def finished(study: optuna.Study) -> int:
    c = counts(study)
    return c["complete"] + c["pruned"]


def waiting(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def top_up(study: optuna.Study, runs: list[tuple[Any, dict[str, float], dict[str, Any]]],
           key_of: Any) -> int:
    """Enqueue each ``(key, params, user_attrs)`` run that is neither complete nor queued/running (a crashed
    worker's RUNNING trial is retried through its heartbeat); ``key_of(trial)`` gives a stored trial's key, None for
    a trial that is not one of the design's runs. Returns the runs not complete yet (the fixed stages' bookkeeping:
    confirmation, drift, lr-profile)."""
    trials = [t for t in study.get_trials(deepcopy=False) if key_of(t) is not None]
    done = {key_of(t) for t in trials if t.state == TrialState.COMPLETE}
    covered = done | {key_of(t) for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)}
    todo = 0
    for key, params, attrs in runs:
        todo += key not in done
        if key not in covered:
            study.enqueue_trial(dict(params), user_attrs=attrs)
            covered.add(key)
    return todo


def load_named_study(study_name: str, storage_url: str | None) -> optuna.Study:
    """A study by name (``<name>/<method>[/<stage>]``) from ``storage_url``, default ``sqlite:///runs/<name>/
    optuna.db``; SpecError when the storage or the study is missing (``rerun``, ``export``)."""
    url = storage_url or f"sqlite:///runs/{study_name.split('/')[0]}/optuna.db"
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise SpecError(f"no storage at {redact(url)}; pass --storage URL")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study_name, storage=url)
    except KeyError:
        raise SpecError(f"no study '{study_name}' in the storage (names look like <name>/<method>)") from None
