"""Study specs: YAML files validated into frozen, typed objects (``schema``), read by ``loading``.

Only pydantic and PyYAML are imported here, so a bad spec is refused in well under a second, before torch
loads. Unknown keys, wrong types, empty or inverted ranges and unknown loss types are errors that name the
file and the field.
"""

from prefstudy.spec.loading import INPUT_PATHS, apply_overrides, load_spec, spec_text
from prefstudy.spec.schema import (
    METRIC_LABELS,
    TRL_LOSS_TYPES,
    Columns,
    ConfirmSpec,
    DataSpec,
    DriftSpec,
    EvaluationSpec,
    GenerationSpec,
    LmEvalSpec,
    LmEvalTask,
    LogRange,
    LoraSpec,
    LrProfileSpec,
    MethodSpec,
    ModelSpec,
    PrunerSpec,
    SamplerSpec,
    SearchSpec,
    SpecError,
    StudySpec,
    SyntheticData,
    TrackingSpec,
    TrainingSpec,
    WorkersSpec,
)

__all__ = [
    "INPUT_PATHS", "METRIC_LABELS", "TRL_LOSS_TYPES", "Columns", "ConfirmSpec", "DataSpec", "DriftSpec",
    "EvaluationSpec",
    "GenerationSpec", "LmEvalSpec", "LmEvalTask", "LogRange", "LoraSpec", "LrProfileSpec", "MethodSpec", "ModelSpec",
    "PrunerSpec", "SamplerSpec", "SearchSpec",
    "SpecError", "StudySpec", "SyntheticData", "TrackingSpec", "TrainingSpec", "WorkersSpec", "apply_overrides",
    "load_spec",
    "spec_text",
]
