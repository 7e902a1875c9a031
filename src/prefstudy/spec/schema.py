"""The spec's schema: frozen, typed pydantic models, one per section of a study YAML file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from prefstudy.spec.base import _Frozen
from prefstudy.spec.stages import DriftSpec, LrProfileSpec
from prefstudy.spec.tracking import TrackingSpec

# TRL 1.16 DPOTrainer loss types (DPOConfig.loss_type); "sigmoid" is DPO, "ipo" is IPO.
TRL_LOSS_TYPES = frozenset(
    {
        "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
        "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm",
    }
)


class SpecError(ValueError):
    """A spec (or a value derived from it) is invalid; the message names the file and the field."""




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
    n_profile: int = Field(0, ge=0)  # pairs only the lr-profile stage reads, generated after every other split


class Columns(_Frozen):
    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"


class DataSpec(_Frozen):
    source: Literal["synthetic", "jsonl", "parquet", "hf"] = "synthetic"
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy's range
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
    leakage: Literal["error", "warn"] = "error"  # training pairs also in a held-out split: refuse, or go on

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
    # a pair longer than max_length: keep_start cuts each answer as TRL's trainer does (its prompt alone reaching
    # max_length: dropped, as TRL does); drop leaves the pair out (docs/metrics.md, "Long pairs")
    truncation: Literal["keep_start", "drop"] = "keep_start"
    lora: LoraSpec = LoraSpec()
    quantization: Literal["none", "nf4"] = "none"
    precision: Literal["fp32", "bf16"] = "fp32"
    optimizer: str = "adamw_torch"
    lr_scheduler: str = "constant"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    gradient_checkpointing: bool = False
    prefix_sharing: Literal["auto", "on", "off"] = "auto"
    threads: int | None = Field(None, ge=1)
    save_adapter: Literal["all", "best", "none"] = "all"

    @field_validator("prefix_sharing", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare ``on``/``off`` as true/false: take them for what was written."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

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


class GenerationSpec(_Frozen):
    """Generation accuracy (evaluation.generation): greedy answers to val prompts, checked against the chosen one."""

    pairs: int = Field(0, ge=0)  # val prompts answered at the last eval point of every search trial (0: off)
    max_new_tokens: int = Field(24, ge=1)
    batch_size: int = Field(32, ge=1)
    # auto (numeric for the built-in generator's data, else none) | numeric | none | a local folder holding a
    # sequence-classification reward model (a generation wins when it outscores the rejected answer)
    scorer: str = "auto"

    def resolved_scorer(self, source: str) -> str:
        """'numeric', 'none' or a reward model's path, for data of ``source``."""
        if self.scorer == "auto":
            return "numeric" if source == "synthetic" else "none"
        return self.scorer

    @field_validator("scorer")
    @classmethod
    def _scorer(cls, value: str) -> str:
        if value not in ("auto", "numeric", "none") and not Path(value).expanduser().is_dir():
            raise ValueError(f"evaluation.generation.scorer '{value}': use auto, numeric, none or the folder of a "
                             f"local sequence-classification reward model (no such folder)")
        return value


class EvaluationSpec(_Frozen):
    eval_steps: int = Field(4, ge=1)
    val_subset: int = Field(32, ge=1)
    train_subset: int = Field(32, ge=1)
    batch_size: int = Field(16, ge=1)
    metric: Literal["accuracy", "accuracy_per_token"] = "accuracy"
    lm_eval: LmEvalSpec = LmEvalSpec()
    # the primary endpoint: the confirmation's paired difference first - second on test, in ``metric``
    # (default: the first two methods); every other comparison is secondary and Holm-adjusted
    primary: tuple[str, str] | None = None
    # where a search trial's test and OOD pairs are scored: 'chosen' (once, for each method's chosen trial after
    # the search, from its saved adapter: choose on val, report on test) or 'every' complete trial
    test_scoring: Literal["chosen", "every"] = "chosen"
    generation: GenerationSpec = GenerationSpec()
    # held-out scoring and its reference arrays, not training (None: training's); docs/speed.md "Scoring in bf16"
    precision: Literal["fp32", "bf16"] | None = None


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
    lm_eval_seeds: int = Field(1, ge=0)  # lm-eval on the runs of the first N seeds (it measures a capability cost)

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


#: how the console names each preference-accuracy metric (evaluation.metric)
METRIC_LABELS = {"accuracy": "acc", "accuracy_per_token": "acc/token"}

#: the largest spec seed: every seed derived from it (search trials seed * 100003 + n, confirmation and stage runs)
#: stays within numpy's 0..2**32 - 1
MAX_SEED = 40_000


class StudySpec(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    model: ModelSpec = ModelSpec()
    data: DataSpec = DataSpec()
    methods: dict[str, MethodSpec]
    learning_rate: LogRange
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    search: SearchSpec = SearchSpec()
    confirm: ConfirmSpec = ConfirmSpec()
    drift: DriftSpec = DriftSpec()
    lr_profile: LrProfileSpec = LrProfileSpec()
    workers: WorkersSpec = WorkersSpec()
    tracking: TrackingSpec = TrackingSpec()
    storage: str | None = None
    runs_dir: str = "runs"

    @model_validator(mode="after")
    def _cross_checks(self) -> StudySpec:
        if not self.methods:
            raise ValueError("'methods' must name at least one method")
        for label in self.methods:
            if not label.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"method label '{label}' must be letters, digits, '-' or '_'")
        primary = self.evaluation.primary
        if primary is not None and (primary[0] == primary[1] or not set(primary) <= set(self.methods)):
            raise ValueError(f"evaluation.primary must name two different methods of 'methods' "
                             f"({', '.join(self.methods)}); got {list(primary)}")
        if self.evaluation.test_scoring == "chosen" and self.training.save_adapter == "none":
            raise ValueError("evaluation.test_scoring 'chosen' scores the chosen trial from its saved adapter: set "
                             "training.save_adapter to 'best' or 'all', or evaluation.test_scoring to 'every'")
        for section, names in (("drift.betas", self.drift.betas), ("lr_profile.betas", self.lr_profile.betas)):
            for label in names:
                if label not in self.methods:
                    raise ValueError(f"{section} names unknown method '{label}'")
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

    def mlflow_uri(self) -> str | None:
        """The MLflow tracking URI of ``tracking.mlflow`` ('local': a SQLite store beside the Optuna one)."""
        uri = self.tracking.mlflow
        return f"sqlite:///{self.run_root() / 'mlflow.db'}" if uri == "local" else uri

    def default_storage(self) -> str:
        return f"sqlite:///{self.run_root() / 'optuna.db'}"

    def primary_methods(self) -> tuple[str, str] | None:
        """The two methods of the primary endpoint (``evaluation.primary``, else the first two), or None."""
        if self.evaluation.primary is not None:
            return self.evaluation.primary
        methods = list(self.methods)
        return (methods[0], methods[1]) if len(methods) >= 2 else None

    def study_name(self, method: str) -> str:
        return f"{self.name}/{method}"

    def score_precision(self) -> Literal["fp32", "bf16"]:
        """The precision of held-out scoring and of the reference arrays: evaluation.precision, else training's."""
        return self.evaluation.precision or self.training.precision

    def fingerprint(self) -> str:
        """Hash of the fields that define a study (not its size, workers or storage)."""
        data = self.model_dump(mode="json")
        data["search"].pop("n_trials", None)
        for key in ("workers", "storage", "runs_dir", "confirm", "drift", "lr_profile", "tracking"):
            data.pop(key, None)
        data["data"].pop("leakage", None)  # a check on the data, not part of what the study is
        if not data["data"]["synthetic"].get("n_profile"):  # a study made before the profile split existed resumes
            data["data"]["synthetic"].pop("n_profile", None)
        data["evaluation"].pop("primary", None)  # how the results are read, not what the trials are
        data["evaluation"].pop("test_scoring", None)  # when test is scored, not what a trial is
        data["evaluation"].pop("generation", None)  # an extra measurement of a trained adapter, not the training
        if data["evaluation"].get("precision") in (None, data["training"]["precision"]):  # as training's: studies
            data["evaluation"].pop("precision", None)  # made before the setting resume
        data["training"].pop("truncation", None)  # checked against the study's own record (search.worker), so a
        # study made before the setting existed resumes where no pair is long enough for it to matter
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
