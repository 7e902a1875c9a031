"""Is the trained adapter really in the model that is scored? Harnesses have silently scored the base model
instead (LoRA ignored, base numbers reported as the trial's); a cheap check on two pairs catches that."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from prefstudy.evaluation.heldout import Prepared
from prefstudy.evaluation.logprobs import sequence_logps
from prefstudy.spec import StudySpec

if TYPE_CHECKING:
    import torch

#: pairs scored with and without the adapter
CHECK_PAIRS = 2


class AdapterNotApplied(RuntimeError):
    """The model being scored gives the same log-probs as the base model: the adapter is not applied."""


def check_adapter_applied(model: torch.nn.Module, spec: StudySpec, pad_token_id: int, prepared: Prepared) -> float:
    """Score the first val pairs through the held-out scoring path with the adapter on and off (peft's
    ``disable_adapter``); raise AdapterNotApplied when nothing changes. Returns the largest difference (nats)."""
    disable = getattr(model, "disable_adapter", None)
    if disable is None:
        raise AdapterNotApplied("adapter not applied: the scored model has no adapter (not a peft model)")
    split = "val" if "val" in prepared.tokenized else next(iter(prepared.tokenized))
    dataset = prepared.tokenized[split]
    dataset = dataset.select(range(min(CHECK_PAIRS, len(dataset))))

    def score() -> np.ndarray:
        arrays = sequence_logps(model, dataset, pad_token_id, spec.evaluation.batch_size, spec.score_precision(),
                                spec.training.max_length)
        return np.concatenate([arrays["chosen"], arrays["rejected"]])

    with_adapter = score()
    with disable():
        without = score()
    difference = float(np.max(np.abs(with_adapter - without))) if len(without) else 0.0
    if not difference > 0.0:
        raise AdapterNotApplied(
            f"adapter not applied: the scored model's log-probs on {len(dataset)} {split} pairs equal the base "
            "model's exactly; the trial's numbers would be the base model's")
    return difference
