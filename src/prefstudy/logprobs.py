"""Tokenization and sequence log-probabilities, done exactly as TRL's DPOTrainer does them.

Tokenization goes through TRL's own ``DPOTrainer._prepare_dataset`` and batching through its
``DataCollatorForPreference``, so our reference cache and held-out metrics are computed on the same tokens, and
(up to float rounding) the same numbers, as the loss the trainer optimises. Both are private TRL seams: TRL is pinned in
constraints.txt and tests/unit/test_trl_seams.py checks them.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch


def tokenize_records(records: list[dict[str, Any]], tokenizer: Any, max_length: int) -> tuple[Any, int]:
    """Records -> a datasets.Dataset with prompt_ids/chosen_ids/rejected_ids (+ id, family).

    Pairs whose prompt+answer is longer than ``max_length`` are dropped (TRL would silently truncate them); the
    second value is how many were dropped.
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    dataset = Dataset.from_list(records)
    args = SimpleNamespace(dataset_num_proc=None, max_length=max_length, truncation_mode="keep_start")
    stub = SimpleNamespace(_tokenizer=tokenizer)
    assert hasattr(DPOConfig, "truncation_mode")  # the fields used above exist in the pinned TRL
    tokenized = DPOTrainer._prepare_dataset(stub, dataset, tokenizer, args, "pairs")
    keep = [
        i
        for i, row in enumerate(tokenized)
        if len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])) <= max_length
    ]
    dropped = len(records) - len(keep)
    tokenized = tokenized.select(keep).remove_columns(["prompt", "chosen", "rejected"])
    return tokenized, dropped


def _backbone_and_head(model: Any) -> tuple[Any, Any]:
    """The decoder stack and LM head of a causal LM (LoRA layers, injected in place by peft, stay active)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def completion_logps(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     completion_mask: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs of the completion tokens, shape like ``completion_mask[:, 1:]`` (0 elsewhere).

    The LM head is applied only at the positions that predict a completion token: on the CPU this is ~5x
    cheaper than full logits or TRL's tiled fused head, and equal to them up to float rounding (tested).
    """
    backbone, head = _backbone_and_head(model)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    targets = completion_mask[:, 1:].bool()
    rows = hidden[:, :-1][targets]
    logits = head(rows).float()
    picked = logits.gather(-1, input_ids[:, 1:][targets].unsqueeze(-1)).squeeze(-1)
    out = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device)
    out[targets] = picked - torch.logsumexp(logits, dim=-1)
    return out


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def sequence_logps(
    model: Any, dataset: Any, pad_token_id: int, batch_size: int, precision: str, max_length: int
) -> dict[str, np.ndarray]:
    """Summed completion log-probs of chosen and rejected for every row, plus token counts and the per-token
    log-probs of the chosen answers (padded with 0, for the KL proxy)."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    collator = DataCollatorForPreference(pad_token_id=pad_token_id, max_length=max_length)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chosen, rejected, n_chosen, n_rejected, token_rows = [], [], [], [], []
    columns = ["prompt_ids", "chosen_ids", "rejected_ids"]
    try:
        for start in range(0, len(dataset), batch_size):
            rows = dataset.select_columns(columns)[start : start + batch_size]
            examples = [dict(zip(columns, values)) for values in zip(*(rows[c] for c in columns))]
            batch = collator(examples)
            completion = batch["completion_mask"].to(device)
            with autocast(precision, device):
                per_token = completion_logps(
                    model, batch["input_ids"].to(device), batch["attention_mask"].to(device), completion
                )
            shift_mask = completion[:, 1:]
            sums = per_token.sum(dim=1).cpu().numpy()
            counts = shift_mask.sum(dim=1).cpu().numpy()
            half = len(examples)
            chosen.append(sums[:half])
            rejected.append(sums[half:])
            n_chosen.append(counts[:half])
            n_rejected.append(counts[half:])
            for row, mask in zip(per_token[:half].cpu().numpy(), shift_mask[:half].cpu().numpy()):
                token_rows.append(row[mask.astype(bool)])
    finally:
        model.train(was_training)
    width = max((len(r) for r in token_rows), default=0)
    tokens = np.zeros((len(token_rows), width), dtype=np.float64)
    token_mask = np.zeros_like(tokens)
    for i, row in enumerate(token_rows):
        tokens[i, : len(row)] = row
        token_mask[i, : len(row)] = 1.0
    return {
        "chosen": np.concatenate(chosen) if chosen else np.zeros(0),
        "rejected": np.concatenate(rejected) if rejected else np.zeros(0),
        "chosen_tokens": np.concatenate(n_chosen) if n_chosen else np.zeros(0),
        "rejected_tokens": np.concatenate(n_rejected) if n_rejected else np.zeros(0),
        "chosen_token_logps": tokens,
        "chosen_token_mask": token_mask,
    }
