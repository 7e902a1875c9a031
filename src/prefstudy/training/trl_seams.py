"""Every private TRL seam, in one file (TRL is pinned in the lock; tests/unit/test_trl_seams.py checks each one).

- :func:`tokenize_records` runs TRL's own ``DPOTrainer._prepare_dataset`` (unbound: building a trainer would load
  a model), so our reference cache and held-out metrics see exactly the tokens the trainer trains on.
- :class:`CachedRefDPOTrainer` skips ``_prepare_dataset`` for data that is already tokenized and reads the
  reference log-probs from the dataset's ``ref_chosen_logps``/``ref_rejected_logps`` columns, as TRL does after its
  own precompute (which would hash the whole model, seeded LoRA init included, and so never hit across trials).
- :func:`pair_length` is ``_prepare_dataset``'s length rule on one pair, for preflight (no dataset is built):
  where the completion starts (TRL's ``common_prefix_length`` of the prompt and prompt + answer) and what is kept.
- ``CachedRefDPOTrainer._get_train_sampler`` (transformers' Trainer hook) keeps an instance's copies in one batch
  when the run trains on copies (``training.preference_copies``).
- :func:`remove_fused_head_patch` takes off the ``forward`` TRL sets on a model instance for its fused LM head.
- :class:`PackedPreferenceCollator` and ``CachedRefDPOTrainer.compute_loss`` run the prefix-shared forward of
  :mod:`prefstudy.models.packed_forward` in place of the model call inside TRL's ``_compute_loss``: TRL still builds the
  labels and masks, and computes the DPO/IPO loss and its logged metrics from the per-token log-probs we hand back
  in the layout its fused LM head returns (``FusedCausalLMOutput``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import FusedCausalLMOutput

from prefstudy.models.packed_forward import pack_pairs, packed_forward

# DPOConfig and DPOTrainer are re-exported: the bench's TRL baselines import TRL only through this seam
__all__ = ["CachedRefDPOTrainer", "DPOConfig", "DPOTrainer", "PackedPreferenceCollator", "TrlSeamError",
           "LengthCounts", "TRUNCATIONS", "pair_length", "pair_token_counts", "remove_fused_head_patch",
           "tokenize_records"]

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


#: what happens to a pair longer than training.max_length (spec.TrainingSpec.truncation)
TRUNCATIONS = ("keep_start", "drop")


@dataclass(frozen=True)
class LengthCounts:
    """What the length rule did to one split's pairs."""

    dropped: int = 0  # left out: longer than max_length ("drop"), or the prompt alone reaches it ("keep_start")
    truncated: int = 0  # kept with an answer cut to max_length ("keep_start")
    identical: int = 0  # of the truncated, pairs whose two answers became the same tokens (no gradient; a tie)


def tokenize_records(records: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int,
                     truncation: str = "keep_start") -> tuple[Dataset, LengthCounts]:
    """Records -> a datasets.Dataset with prompt_ids/chosen_ids/rejected_ids (+ id, family), tokenized by TRL, each
    pair cut as TRL's trainer would cut it, so the reference cache, the packed forward and TRL's own forward all
    read the same tokens.

    ``keep_start`` (TRL's ``truncation_mode`` default): prompt + chosen and prompt + rejected are each cut to their
    first ``max_length`` tokens, as ``DataCollatorForPreference`` does; a cut answer loses its end-of-turn token;
    a pair whose prompt alone reaches ``max_length`` is dropped, as ``_prepare_dataset`` does. ``drop``: a pair
    longer than ``max_length`` is left out whole.
    """
    from datasets import Dataset

    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation '{truncation}': one of {', '.join(TRUNCATIONS)}")
    _check_prepare_dataset()
    dataset = Dataset.from_list(records)
    tokenized = DPOTrainer._prepare_dataset(  # unbound: the host has all the method reads of ``self``
        _TokenizerHost(tokenizer), dataset, tokenizer, _PrepareArgs(max_length=max_length), "pairs")
    keep: list[int] = []
    room: dict[int, int] = {}  # kept row -> answer tokens that fit beside its prompt
    for i, row in enumerate(tokenized):
        prompt, longest = len(row["prompt_ids"]), max(len(row["chosen_ids"]), len(row["rejected_ids"]))
        if prompt + longest <= max_length:
            keep.append(i)
        elif truncation == "keep_start" and prompt < max_length:
            keep.append(i)
            room[len(keep) - 1] = max_length - prompt
    tokenized = tokenized.select(keep).remove_columns(["prompt", "chosen", "rejected"])
    identical = 0
    if room:
        def cut(row: dict[str, Any], index: int) -> dict[str, Any]:
            if index not in room:
                return {}
            return {"chosen_ids": row["chosen_ids"][: room[index]], "rejected_ids": row["rejected_ids"][: room[index]]}

        tokenized = tokenized.map(cut, with_indices=True)
        identical = sum(tokenized[i]["chosen_ids"] == tokenized[i]["rejected_ids"] for i in room)
    return tokenized, LengthCounts(len(records) - len(keep), len(room), identical)


def _chat_ids(tokenizer: PreTrainedTokenizerBase, messages: list[Any], **kwargs: Any) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, tools=None, **kwargs)
    return list(out["input_ids"])


def pair_length(record: dict[str, Any], tokenizer: PreTrainedTokenizerBase, max_length: int,
                truncation: str = "keep_start") -> int | None:
    """Tokens of prompt + the longer answer as ``DPOTrainer._prepare_dataset`` tokenizes the (conversational) pair,
    or None when :func:`tokenize_records` would keep it at ``max_length`` (whole, or cut under ``keep_start``)."""
    prompt_len, longest = _lengths(record, tokenizer)
    if prompt_len < max_length and (longest <= max_length or truncation == "keep_start"):
        return None
    return max(longest, prompt_len + 1)


def pair_token_counts(record: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> tuple[int, int, int]:
    """(prompt, prompt + chosen, prompt + rejected) tokens as ``_prepare_dataset`` tokenizes the pair, uncut."""
    prompt, chosen, rejected = _token_lists(record, tokenizer)
    from trl.data_utils import common_prefix_length

    prompt_len = min(common_prefix_length(prompt, chosen), common_prefix_length(prompt, rejected))
    return prompt_len, len(chosen), len(rejected)


def _lengths(record: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """(prompt tokens, prompt + the longer answer) as ``_prepare_dataset`` tokenizes the pair: the prompt is the
    shared prefix of the templated prompt and the templated conversations (TRL's own ``common_prefix_length``)."""
    prompt_len, chosen, rejected = pair_token_counts(record, tokenizer)
    return prompt_len, max(chosen, rejected)


def _token_lists(record: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], ...]:
    return (_chat_ids(tokenizer, record["prompt"], add_generation_prompt=True),
            _chat_ids(tokenizer, record["prompt"] + record["chosen"]),
            _chat_ids(tokenizer, record["prompt"] + record["rejected"]))


def remove_fused_head_patch(model: Any) -> None:
    """Take off the ``forward`` TRL 1.16 sets on the model instance for its fused LM head (``fused_lm_head=True``),
    so the shared base model is called as a plain module again."""
    model.__dict__.pop("forward", None)


class CachedRefDPOTrainer(DPOTrainer):
    """DPOTrainer that takes pre-tokenized data carrying ``ref_chosen_logps``/``ref_rejected_logps`` columns.

    It is built with ``precompute_ref_log_probs=False`` (so TRL does not hash the whole model) and then switched
    to read the reference from the batch, as TRL does after its own precompute.
    """

    def __init__(self, *args: Any, group_size: int | None = None, **kwargs: Any) -> None:
        self.group_size = group_size  # before super(): transformers builds no sampler there, but set it first
        super().__init__(*args, **kwargs)
        columns = set(self.train_dataset.column_names)
        if not {"ref_chosen_logps", "ref_rejected_logps"} <= columns:
            raise ValueError("train_dataset lacks the cached reference log-prob columns")
        self.precompute_ref_logps = True
        # Given a PeftModel, TRL copies its adapter as a frozen "ref" adapter to compute the reference with; ours
        # comes from the cache, so the copy would only cost memory (an adapter's size) and land in saved adapters.
        if "ref" in getattr(self.model, "peft_config", {}):
            self.model.delete_adapter("ref")

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """With ``group_size`` (copies of an instance, training.preference_copies): instances shuffled per epoch,
        each instance's copies consecutive, so a batch of ``group_size`` holds one instance (transformers' Trainer
        hook; the Trainer calls the sampler's ``set_epoch``)."""
        if self.group_size is None:
            return super()._get_train_sampler(train_dataset)
        from prefstudy.training.preference_copies import CopyGroupSampler

        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return CopyGroupSampler(len(dataset), self.group_size, self.args.data_seed or self.args.seed)

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if "prompt_ids" in dataset.column_names:
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """Trainer's own estimate (6 x tokens x parameters) with the parameter count taken once, not every step
        (counting them walks every module: ~40 ms a step on the CPU)."""
        if "_prefstudy_parameters" not in self.__dict__:
            self._prefstudy_parameters = self.model.num_parameters(exclude_embeddings=True)
        return 6 * int(inputs["input_ids"].numel()) * self._prefstudy_parameters

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        """TRL's loss; with a packed batch (:class:`PackedPreferenceCollator`) the model call inside it is ours."""
        if "packed_input_ids" in inputs:
            if self.aux_loss_enabled or self.use_weighting:
                raise TrlSeamError("prefix sharing does not produce MoE router logits or WPO weights: set "
                                   "training.prefix_sharing: off for this model or loss")
            model = _PackedModel(model)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


_PACKED_KEYS = ("packed_input_ids", "packed_position_ids", "packed_attention_mask", "packed_source",
                "packed_target", "packed_labels", "packed_pick")


class _PackedModel:
    """Stands in for the model inside TRL's ``_compute_loss``: called like ``model(input_ids=..., labels=...,
    fused_lm_head=True)``, it runs the packed rows and answers as TRL's fused LM head does."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, *, labels: Any, fused_lm_head: bool = False, **kwargs: Any) -> FusedCausalLMOutput:
        if not fused_lm_head:
            raise TrlSeamError("TRL called the model without fused_lm_head: install the pinned TRL")
        packed = {key: kwargs[key] for key in _PACKED_KEYS}
        layout = (labels.shape[0], labels.shape[1] - 1)
        fields = packed_forward(self.model, packed, layout)
        return FusedCausalLMOutput(label_mask=labels[:, 1:] != -100, **fields)


class PackedPreferenceCollator:
    """TRL's own ``DataCollatorForPreference`` batch (labels, masks, reference columns as TRL reads them) plus the
    packed rows of the same pairs (:func:`prefstudy.models.packed_forward.pack_pairs`)."""

    def __init__(self, pad_token_id: int, max_length: int | None, row_tokens: int = 0,
                 sliding_window: int | None = None) -> None:
        self.trl = DataCollatorForPreference(pad_token_id=pad_token_id, max_length=max_length)
        self.pad_token_id, self.row_tokens, self.sliding_window = pad_token_id, row_tokens, sliding_window

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.trl(examples)
        prompts = [e["prompt_ids"] for e in examples]
        chosen = [e["chosen_ids"] for e in examples]
        rejected = [e["rejected_ids"] for e in examples]
        packed = pack_pairs(prompts, chosen, rejected, self.pad_token_id, self.row_tokens, self.sliding_window)
        expected = max(len(p) + max(len(c), len(r)) for p, c, r in zip(prompts, chosen, rejected, strict=True))
        if batch["input_ids"].shape[1] != expected:  # TRL truncated or padded otherwise: the maps would be wrong
            raise TrlSeamError(f"TRL's preference batch is {batch['input_ids'].shape[1]} wide, packing expects "
                               f"{expected}: pairs must fit training.max_length untruncated")
        return {**batch, **packed}
