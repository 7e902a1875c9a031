"""Study specs: YAML files validated into frozen, typed objects.

Only pydantic and PyYAML are imported here, so a bad spec is refused in well under a second, before torch
loads. Unknown keys, wrong types, empty or inverted ranges and unknown loss types are errors that name the
file and the field.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# TRL 1.16 DPOTrainer loss types (DPOConfig.loss_type); "sigmoid" is DPO, "ipo" is IPO.
TRL_LOSS_TYPES = frozenset(
    {
        "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
        "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm",
    }
)


class SpecError(ValueError):
    """A spec (or a value derived from it) is invalid; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogRange(_Frozen):
    low: float = Field(gt=0)
    high: float = Field(gt=0)
    log: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> LogRange:
        if not self.low < self.high:
            raise ValueError(
                f"empty or inverted range: low={self.low} must be < high={self.high}; swap them or widen the range"
            )
        return self

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


class ModelSpec(_Frozen):
    name_or_path: str = "embedded:smollm2-135m-instruct"
    chat_template: str | None = None
    trust_remote_code: bool = False
    revision: str | None = None


class SyntheticData(_Frozen):
    n_train: int = Field(64, ge=1)
    n_val: int = Field(64, ge=1)
    n_test: int = Field(64, ge=1)
    n_ood: int = Field(32, ge=0)


class Columns(_Frozen):
    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"


class DataSpec(_Frozen):
    source: Literal["synthetic", "jsonl", "parquet", "hf"] = "synthetic"
    seed: int = 0
    synthetic: SyntheticData = SyntheticData()
    # jsonl / parquet: local files; hf: a dataset name with split names.
    train: str | None = None
    heldout: str | None = None
    ood: str | None = None
    hf_name: str | None = None
    hf_config: str | None = None
    train_split: str = "train"
    heldout_split: str = "test"
    columns: Columns = Columns()
    max_train: int | None = Field(None, ge=1)
    max_heldout: int | None = Field(None, ge=2)
    val_fraction: float = Field(0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _sources(self) -> DataSpec:
        if self.source in ("jsonl", "parquet") and not (self.train and self.heldout):
            raise ValueError(f"source '{self.source}' needs both 'train' and 'heldout' file paths")
        if self.source == "hf" and not self.hf_name:
            raise ValueError("source 'hf' needs 'hf_name' (a dataset id)")
        return self


class MethodSpec(_Frozen):
    loss_type: str
    beta: LogRange

    @field_validator("loss_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TRL_LOSS_TYPES:
            raise ValueError(
                f"unknown loss_type '{value}'; use 'sigmoid' for DPO or 'ipo' for IPO "
                f"(TRL 1.16 knows {', '.join(sorted(TRL_LOSS_TYPES))})"
            )
        return value


class LoraSpec(_Frozen):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainingSpec(_Frozen):
    max_steps: int | None = Field(16, ge=1)
    num_epochs: float | None = Field(None, gt=0)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(128, ge=8)
    lora: LoraSpec = LoraSpec()
    quantization: Literal["none", "nf4"] = "none"
    precision: Literal["fp32", "bf16"] = "fp32"
    optimizer: str = "adamw_torch"
    lr_scheduler: str = "constant"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    gradient_checkpointing: bool = False
    threads: int | None = Field(None, ge=1)
    save_adapter: Literal["all", "best", "none"] = "all"

    @model_validator(mode="after")
    def _length(self) -> TrainingSpec:
        if (self.max_steps is None) == (self.num_epochs is None):
            raise ValueError("set exactly one of 'max_steps' and 'num_epochs'")
        return self


class LmEvalTask(_Frozen):
    name: str
    num_fewshot: int = Field(0, ge=0)
    limit: int | float | None = None
    metric: str = "acc"


class LmEvalSpec(_Frozen):
    tasks: tuple[LmEvalTask, ...] = ()
    batch_size: int = Field(8, ge=1)
    log_samples: bool = False


class EvaluationSpec(_Frozen):
    eval_steps: int = Field(4, ge=1)
    val_subset: int = Field(32, ge=1)
    train_subset: int = Field(32, ge=1)
    batch_size: int = Field(16, ge=1)
    metric: Literal["accuracy", "accuracy_per_token"] = "accuracy"
    lm_eval: LmEvalSpec = LmEvalSpec()


class SamplerSpec(_Frozen):
    type: Literal["tpe", "random", "qmc", "grid"] = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(4, ge=0)
    grid_points: int = Field(3, ge=2)


class PrunerSpec(_Frozen):
    type: Literal["median", "percentile", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(2, ge=0)
    n_warmup_steps: int = Field(0, ge=0)
    percentile: float = Field(50.0, gt=0, lt=100)


class SearchSpec(_Frozen):
    n_trials: int = Field(6, ge=1)
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    enqueue: dict[str, tuple[dict[str, float], ...]] = {}
    objective: Literal["heldout", "pareto"] = "heldout"
    max_lm_eval_drop: float | None = Field(None, ge=0)


class ConfirmSpec(_Frozen):
    top_k: int = Field(0, ge=0)
    seeds: tuple[int, ...] = ()
    auto: bool = False  # run the confirmation right after the search (else only with --confirm)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(value)) != len(value) or any(s < 0 for s in value):
            raise ValueError("confirm.seeds must be distinct non-negative integers")
        return value


class WorkersSpec(_Frozen):
    count: int = Field(1, ge=1)
    heartbeat_interval: int = Field(30, ge=1)
    grace_period: int = Field(120, ge=2)
    max_retry: int = Field(2, ge=0)


class StudySpec(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = 0
    model: ModelSpec = ModelSpec()
    data: DataSpec = DataSpec()
    methods: dict[str, MethodSpec]
    learning_rate: LogRange
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    search: SearchSpec = SearchSpec()
    confirm: ConfirmSpec = ConfirmSpec()
    workers: WorkersSpec = WorkersSpec()
    storage: str | None = None
    runs_dir: str = "runs"

    @model_validator(mode="after")
    def _cross_checks(self) -> StudySpec:
        if not self.methods:
            raise ValueError("'methods' must name at least one method")
        for label in self.methods:
            if not label.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"method label '{label}' must be letters, digits, '-' or '_'")
        for label, points in self.search.enqueue.items():
            if label not in self.methods:
                raise ValueError(f"search.enqueue names unknown method '{label}'")
            for point in points:
                if set(point) != {"beta", "learning_rate"}:
                    raise ValueError(f"search.enqueue.{label}: each point needs exactly beta and learning_rate")
                if not self.methods[label].beta.contains(point["beta"]):
                    raise ValueError(f"search.enqueue.{label}: beta {point['beta']} is outside the method's range")
                if not self.learning_rate.contains(point["learning_rate"]):
                    raise ValueError(f"search.enqueue.{label}: learning_rate {point['learning_rate']} is outside range")
        return self

    def run_root(self) -> Path:
        return Path(self.runs_dir) / self.name

    def default_storage(self) -> str:
        return f"sqlite:///{self.run_root() / 'optuna.db'}"

    def study_name(self, method: str) -> str:
        return f"{self.name}/{method}"

    def fingerprint(self) -> str:
        """Hash of the fields that define a study (not its size, workers or storage)."""
        data = self.model_dump(mode="json")
        data["search"].pop("n_trials", None)
        for key in ("workers", "storage", "runs_dir", "confirm"):
            data.pop(key, None)
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where ``loc`` points (for "did you mean" on an unknown key)."""
    node: Any = StudySpec
    for part in loc[:-1]:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            node = field.annotation if field is not None else None
        elif get_origin(node) in (dict, tuple):
            node = get_args(node)[-1 if get_origin(node) is dict else 0]
        else:
            return []
        if get_origin(node) in (UnionType, Union):
            node = next((arg for arg in get_args(node) if arg is not type(None)), None)
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _format_error(path: str, error: ValidationError) -> str:
    """One line: every problem as ``field: message (got value)``, each with what to do where it is not obvious."""
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(item["loc"][-1]), _known_keys(item["loc"]), n=1)
            hint = f"did you mean '{close[0]}'? " if close else "check the spelling; "
            message = f"unknown key ({hint}see study/default.yaml for every knob)"
        elif item["type"] == "missing":
            message = "required key is missing; add it (see study/default.yaml)"
        elif item["type"] != "value_error" and isinstance(item.get("input"), str | int | float | bool):
            message = f"{message} (got {item['input']!r})"
        parts.append(f"{path}: {field}: {' '.join(message.split())}")
    return "; ".join(parts)


#: spec fields that name input files or folders: relative values are anchored (see :func:`load_spec`)
INPUT_PATHS = (("data", "train"), ("data", "heldout"), ("data", "ood"), ("model", "name_or_path"))


def _anchor(raw: dict[str, Any], base: Path, only: set[tuple[str, str]] | None = None) -> None:
    """Make the relative input paths of a raw spec absolute, against ``base``. A model name is a path only when it
    starts with '.' or names an existing folder there (otherwise it is a built-in name or a hub id)."""
    for section, key in INPUT_PATHS:
        node = raw.get(section)
        value = node.get(key) if isinstance(node, dict) else None
        if (only is not None and (section, key) not in only) or not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if path.is_absolute() or (key == "name_or_path" and not (value.startswith(".") or (base / path).is_dir())):
            continue
        node[key] = os.path.normpath(Path.cwd() / base / path)  # type: ignore[index]


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides (values parsed as YAML) to a raw spec mapping."""
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"override '{item}': expected key.path=value")
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SpecError(f"override '{item}': '{part}' is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(text)
    return raw


def load_spec(path: str | Path, overrides: list[str] | None = None) -> StudySpec:
    """Read, override and validate a spec file. Raises SpecError naming the file and the field.

    Input paths written in the file (data files, a local model folder) are read relative to the file's folder;
    those given as ``key=value`` overrides relative to the current folder. Outputs (``runs_dir``, a SQLite
    ``storage``) stay relative to the current folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror or exc}); check the path "
                        "(e.g. study/default.yaml)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{where}: not valid YAML ({problem}); fix the syntax at that line "
                        "(brackets, quotes, indentation)") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a YAML mapping of sections (name:, methods:, ...); "
                        "see study/default.yaml")
    _anchor(raw, path.parent)
    raw = apply_overrides(raw, overrides or [])
    overridden = {tuple(item.partition("=")[0].strip().split(".")) for item in overrides or []}
    _anchor(raw, Path("."), {key for key in INPUT_PATHS if key in overridden})
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_error(str(path), exc)) from None


def spec_text(spec: StudySpec) -> str:
    """The resolved spec as YAML (stored with the study so it can be re-run exactly)."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
