"""The ``tracking`` section: where a trial's curves go besides its run directory (docs/tracking.md).

The run directory stays the record (the report reads nothing else); trackers mirror it while the trial runs. The
section is left out of the spec's fingerprint: turning a tracker on does not change what a trial is.
"""

from __future__ import annotations

import re

from pydantic import field_validator

from prefstudy.spec.base import _Frozen

# TRL's other integrations (transformers' report_to names), passed through as they are. TensorBoard and MLflow have
# their own keys: prefstudy writes them itself, with the study's names, params and final metrics.
PASS_THROUGH = ("azure_ml", "clearml", "codecarbon", "comet_ml", "dagshub", "dvclive", "neptune", "swanlab",
                "trackio", "wandb")
_CREDENTIALS = re.compile(r"://[^/@\s]+@|[?&](password|token|secret)=", re.IGNORECASE)


class TrackingSpec(_Frozen):
    tensorboard: bool = False  # event files per trial under its run directory's tensorboard/ (nox -s tensorboard)
    mlflow: str | None = None  # an MLflow tracking URI ("local": sqlite:///<runs_dir>/<name>/mlflow.db)
    report_to: tuple[str, ...] = ()  # TRL's report_to for the others, e.g. [wandb] (offline unless WANDB_MODE says)

    @field_validator("mlflow")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is None or value == "local":
            return value
        if _CREDENTIALS.search(value):
            raise ValueError("tracking.mlflow must not carry credentials (user:password@, ?token=): MLflow reads "
                             "them from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD / MLFLOW_TRACKING_TOKEN")
        if "://" not in value:
            raise ValueError(f"tracking.mlflow must be a tracking URI such as sqlite:///mlflow.db, "
                             f"http://127.0.0.1:5000 or 'local'; got {value!r}")
        return value

    @field_validator("report_to")
    @classmethod
    def _report_to(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name in ("tensorboard", "mlflow"):
                raise ValueError(f"tracking.report_to: use tracking.{name} for {name} (prefstudy writes it with "
                                 f"the study's names, params and final metrics)")
            if name not in PASS_THROUGH:
                raise ValueError(f"tracking.report_to: unknown integration {name!r}; one of {', '.join(PASS_THROUGH)}")
        if len(set(value)) != len(value):
            raise ValueError("tracking.report_to lists an integration twice")
        return value

    def enabled(self) -> bool:
        return self.tensorboard or self.mlflow is not None or bool(self.report_to)
