"""Every private TRL seam, in one file (TRL is pinned in the lock; tests/unit/test_trl_seams.py checks each one).

- :func:`tokenize_records` runs TRL's own ``DPOTrainer._prepare_dataset`` (unbound: building a trainer would load
  a model), so our reference cache and held-out metrics see exactly the tokens the trainer trains on.
- :class:`CachedRefDPOTrainer` skips ``_prepare_dataset`` for data that is already tokenized and reads the
  reference log-probs from the dataset's ``ref_chosen_logps``/``ref_rejected_logps`` columns, as TRL does after its
  own precompute (which would hash the whole model, seeded LoRA init included, and so never hit across trials).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trl import DPOConfig, DPOTrainer

# DPOConfig and DPOTrainer are re-exported: the bench's TRL baselines import TRL only through this seam
__all__ = ["CachedRefDPOTrainer", "DPOConfig", "DPOTrainer", "TrlSeamError", "tokenize_records"]

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

#: the fields of DPOConfig that ``DPOTrainer._prepare_dataset`` reads (TRL 1.16)
_PREPARE_ARGS = ("dataset_num_proc", "max_length", "truncation_mode")


class TrlSeamError(RuntimeError):
    """The installed TRL no longer has a private method or field this module relies on."""


@dataclass(frozen=True)
class _PrepareArgs:
    """The part of a DPOConfig that ``_prepare_dataset`` reads."""

    max_length: int
    dataset_num_proc: int | None = None
    truncation_mode: str = "keep_start"


@dataclass
class _TokenizerHost:
    """Stands in for the trainer instance: ``_prepare_dataset`` reads only ``self._tokenizer``."""

    _tokenizer: PreTrainedTokenizerBase


def _check_prepare_dataset() -> None:
    method = getattr(DPOTrainer, "_prepare_dataset", None)
    if method is None or list(inspect.signature(method).parameters)[1:] != [
            "dataset", "processing_class", "args", "dataset_name"]:
        raise TrlSeamError("trl.DPOTrainer._prepare_dataset changed its signature; install the pinned TRL "
                           "(requirements.lock) or update prefstudy.training.trl_seams")
    missing = [name for name in _PREPARE_ARGS if name not in DPOConfig.__dataclass_fields__]
    if missing:
        raise TrlSeamError(f"trl.DPOConfig lacks {missing}; install the pinned TRL (requirements.lock)")


def tokenize_records(records: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase,
                     max_length: int) -> tuple[Dataset, int]:
    """Records -> a datasets.Dataset with prompt_ids/chosen_ids/rejected_ids (+ id, family), tokenized by TRL.

    Pairs whose prompt+answer is longer than ``max_length`` are dropped (TRL would silently truncate them); the
    second value is how many were dropped.
    """
    from datasets import Dataset

    _check_prepare_dataset()
    dataset = Dataset.from_list(records)
    tokenized = DPOTrainer._prepare_dataset(  # unbound: the host has all the method reads of ``self``
        _TokenizerHost(tokenizer), dataset, tokenizer, _PrepareArgs(max_length=max_length), "pairs")
    keep = [
        i
        for i, row in enumerate(tokenized)
        if len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])) <= max_length
    ]
    dropped = len(records) - len(keep)
    tokenized = tokenized.select(keep).remove_columns(["prompt", "chosen", "rejected"])
    return tokenized, dropped


class CachedRefDPOTrainer(DPOTrainer):
    """DPOTrainer that takes pre-tokenized data carrying ``ref_chosen_logps``/``ref_rejected_logps`` columns.

    It is built with ``precompute_ref_log_probs=False`` (so TRL does not hash the whole model) and then switched
    to read the reference from the batch, as TRL does after its own precompute.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        columns = set(self.train_dataset.column_names)
        if not {"ref_chosen_logps", "ref_rejected_logps"} <= columns:
            raise ValueError("train_dataset lacks the cached reference log-prob columns")
        self.precompute_ref_logps = True

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if "prompt_ids" in dataset.column_names:
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
