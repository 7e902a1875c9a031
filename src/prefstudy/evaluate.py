"""Held-out preference metrics of a policy, from one forward pass over each split and the cached reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from prefstudy import metrics
from prefstudy.logprobs import sequence_logps
from prefstudy.refcache import Prepared


def split_metrics(policy: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    """Every metric of one split (definitions in prefstudy.metrics)."""
    n = len(policy["chosen"])
    summary = metrics.preference_summary(
        policy["chosen"], policy["rejected"], ref["chosen"][:n], ref["rejected"][:n],
        policy["chosen_tokens"], policy["rejected_tokens"],
    )
    mask = policy["chosen_token_mask"]
    summary["kl_proxy"] = metrics.kl_proxy(
        policy["chosen_token_logps"], ref["chosen_token_logps"][:n, : mask.shape[1]], mask
    )
    return summary


def score_splits(
    model: Any, ctx: Any, prepared: Prepared, names: list[str], subsets: dict[str, int] | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """Score ``model`` on the named splits (the first ``subsets[name]`` pairs when given)."""
    results: dict[str, dict[str, float]] = {}
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        if name not in prepared.tokenized:
            continue
        dataset = prepared.tokenized[name]
        limit = (subsets or {}).get(name)
        if limit is not None and limit < len(dataset):
            dataset = dataset.select(range(limit))
        policy = sequence_logps(
            model, dataset, ctx.tokenizer.pad_token_id, ctx.spec.evaluation.batch_size,
            ctx.spec.training.precision, ctx.spec.training.max_length,
        )
        results[name] = split_metrics(policy, prepared.ref[name])
        arrays[name] = policy
    return results, arrays


def family_accuracy(prepared: Prepared, split: str, policy: dict[str, np.ndarray] | None) -> dict[str, float]:
    """Preference accuracy per data family (the reference model's when ``policy`` is None)."""
    dataset = prepared.tokenized[split]
    source = policy or prepared.ref[split]
    wins = metrics.pairwise_preference(source["chosen"], source["rejected"])
    out: dict[str, float] = {}
    families = np.asarray(dataset["family"])
    for family in sorted(set(families.tolist())):
        out[str(family)] = float(wins[families == family].mean())
    return out
