"""One MLflow run per trial (``<study>/trial-N``), a child of one parent run per Optuna study, in the experiment
named after the spec. Written through ``MlflowClient`` only: no process-global active run in a long-lived worker."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

PARENT_TAG = "prefstudy.study"  # on the parent run: the Optuna study's name

# MLflow's own HTTP defaults (7 retries, backoff factor 2, 120 s timeout) ride out a rate-limited shared server for
# ~4 minutes per request: with a server that is down, that is ~4 minutes lost at the start of every trial. A trial's
# metrics are in its run directory anyway, so prefstudy gives up sooner; a variable the user set is kept.
RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
PROBE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
         "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}  # the check before a study: one quick answer or a refusal


def patient_defaults() -> None:
    for name, value in RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)


def quick_requests() -> contextlib.AbstractContextManager[Any]:
    """PROBE's settings for the length of the block (the user's own variables win), then the environment as it was."""
    from unittest import mock

    return mock.patch.dict(os.environ, {name: os.environ.get(name, value) for name, value in PROBE.items()})


def check_server(uri: str) -> str | None:
    """None when the tracking server at ``uri`` answers an experiment search; else why not, in one line. Local
    stores (sqlite:, file paths) are not probed: probing one would create it before the study is accepted."""
    if uri.split(":", 1)[0].lower() not in ("http", "https"):
        return None
    from mlflow.tracking import MlflowClient

    try:
        with quick_requests():
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - MlflowException, requests' errors, ...
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"{type(exc).__name__}: {first[:200]}"
    return None


def _experiment(client: Any, name: str, artifacts: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifacts))
    except Exception:  # another worker created it between the two calls
        return str(client.get_experiment_by_name(name).experiment_id)


def _parents(client: Any, experiment: str, study: str) -> list[Any]:
    runs = client.search_runs([experiment], filter_string=f"tags.`{PARENT_TAG}` = '{study}'", max_results=50)
    return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))


def parent_run(client: Any, experiment: str, study: str, tags: dict[str, str]) -> str:
    """The study's parent run, created once. Workers racing to create it converge: each one creates, looks again
    and keeps the oldest (the first one created is visible to every later creator), deleting its own if newer."""
    found = _parents(client, experiment, study)
    if found:
        return str(found[0].info.run_id)
    mine = client.create_run(experiment, run_name=study, tags={PARENT_TAG: study, **tags}).info.run_id
    oldest = str(_parents(client, experiment, study)[0].info.run_id)
    if oldest != mine:
        client.delete_run(mine)
    return oldest


class MlflowSink:
    def __init__(self, uri: str, experiment_name: str, study: str, run_name: str, params: dict[str, Any],
                 tags: dict[str, str], artifacts: str | None = None) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient  # needs the mlflow extra (preflight checks it)

        patient_defaults()
        self.client = MlflowClient(tracking_uri=uri)
        experiment = _experiment(self.client, experiment_name, artifacts)
        self.parent = parent_run(self.client, experiment, study, {k: v for k, v in tags.items() if k == "study_uuid"})
        run = self.client.create_run(experiment, run_name=run_name,
                                     tags={**tags, "mlflow.parentRunId": self.parent, "mlflow.runName": run_name})
        self.run_id = run.info.run_id
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in sorted(params.items())])

    def scalars(self, prefix: str, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"{prefix}/{key}", value, now, step) for key, value in values.items()]
        for start in range(0, len(metrics), 900):  # log_batch takes at most 1000 metrics a call
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 900])

    def flush(self) -> None:
        pass

    def close(self, state: str, final: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in final.items()],
                              tags=[RunTag("state", state)])
        self.client.set_terminated(self.run_id, "FAILED" if state == "FAIL" else "FINISHED")
        self.client.set_terminated(self.parent, "FINISHED")  # the study's run ends with its latest trial
