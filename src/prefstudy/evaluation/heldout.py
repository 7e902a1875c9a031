"""Held-out preference metrics of a policy, from one forward pass over each split and the cached reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from prefstudy.evaluation import metrics
from prefstudy.evaluation.logprobs import sequence_logps
from prefstudy.evaluation.power import paired_difference, wilson_interval
from prefstudy.spec import METRIC_LABELS, StudySpec

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

Arrays = dict[str, np.ndarray]  # per-pair log-probs of one split (keys of sequence_logps)


@dataclass
class Prepared:
    """What every trial shares: tokenized splits (with TRL's ref columns) and reference arrays per split."""

    tokenized: dict[str, Dataset]
    ref: dict[str, Arrays]
    fingerprint: str
    over_length: dict[str, int] = field(default_factory=dict)  # pairs dropped for length, per split
    computed: bool = False
    seconds: float = 0.0
    truncated: dict[str, int] = field(default_factory=dict)  # pairs kept with an answer cut (keep_start)
    identical: dict[str, int] = field(default_factory=dict)  # of those, answers identical once cut


def split_metrics(policy: Arrays, ref: Arrays) -> dict[str, float]:
    """Every metric of one split (definitions in prefstudy.evaluation.metrics)."""
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
    model: torch.nn.Module, spec: StudySpec, pad_token_id: int, prepared: Prepared, names: list[str],
    subsets: dict[str, int | None] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, Arrays]]:
    """Score ``model`` on the named splits (the first ``subsets[name]`` pairs when given, all when None)."""
    results: dict[str, dict[str, float]] = {}
    arrays: dict[str, Arrays] = {}
    for name in names:
        if name not in prepared.tokenized:
            continue
        dataset = prepared.tokenized[name]
        limit = (subsets or {}).get(name)
        if limit is not None and limit < len(dataset):
            dataset = dataset.select(range(limit))
        policy = sequence_logps(
            model, dataset, pad_token_id, spec.evaluation.batch_size,
            spec.score_precision(), spec.training.max_length,
        )
        results[name] = split_metrics(policy, prepared.ref[name])
        arrays[name] = policy
    return results, arrays


def family_accuracy(prepared: Prepared, split: str, policy: Arrays | None,
                    metric: str = "accuracy") -> dict[str, float]:
    """Preference accuracy per data family in ``metric`` (the reference model's when ``policy`` is None)."""
    dataset = prepared.tokenized[split]
    source = policy or prepared.ref[split]
    wins = metric_wins(source, metric)
    out: dict[str, float] = {}
    families = np.asarray(dataset["family"])
    for family in sorted(set(families.tolist())):
        out[str(family)] = float(wins[families == family].mean())
    return out


def curve_metrics(arrays: Arrays, metric: str, n: int) -> dict[str, float]:
    """The curve's fixed set: the first ``n`` val pairs (what every eval point scores, the base model's step 0
    included), and its two halves by position (even / odd), one to choose a curve's peak step and the other to
    measure the drop from it without the selection bias of reading both off the same pairs."""
    wins = metric_wins({k: np.asarray(v)[:n] for k, v in arrays.items() if k in (
        "chosen", "rejected", "chosen_tokens", "rejected_tokens")}, metric)
    out = {f"curve/val/{metric}": float(wins.mean())}
    if len(wins) >= 2:
        out[f"curve/val_a/{metric}"] = float(wins[0::2].mean())
        out[f"curve/val_b/{metric}"] = float(wins[1::2].mean())
    return out


def family_counts(prepared: Prepared, split: str) -> dict[str, int]:
    """Pairs per data family in ``split``."""
    families = np.asarray(prepared.tokenized[split]["family"])
    return {str(f): int((families == f).sum()) for f in sorted(set(families.tolist()))}


def base_metrics(prepared: Prepared) -> dict[str, dict[str, float]]:
    """The base (= reference) model's own preference accuracy per split."""
    out = {}
    for name, ref in prepared.ref.items():
        out[name] = {
            "accuracy": metrics.preference_accuracy(ref["chosen"], ref["rejected"]),
            "accuracy_per_token": metrics.per_token_preference_accuracy(
                ref["chosen"], ref["rejected"], ref["chosen_tokens"], ref["rejected_tokens"]
            ),
        }
    return out


def metric_line(values: dict[str, dict[str, float]], metric: str, splits: Sequence[str]) -> str:
    """``val acc/token 0.812 train acc/token 0.900`` in the study's ``metric``, then the summed-log-prob accuracy as
    a labelled secondary where it differs (``(summed acc: val 0.500, train 0.000)``): with answers of different
    lengths that one is mostly answer length, and printing it alone would read as the objective."""
    label = METRIC_LABELS.get(metric, metric)
    shown = [s for s in splits if metric in values.get(s, {})]
    line = " ".join(f"{s} {label} {values[s][metric]:.3f}" for s in shown)
    summed = [s for s in shown if "accuracy" in values[s] and round(values[s]["accuracy"], 3)
              != round(values[s][metric], 3)]
    if metric != "accuracy" and summed:
        line += " (summed acc: " + ", ".join(f"{s} {values[s]['accuracy']:.3f}" for s in summed) + ")"
    return line


def metric_wins(arrays: Arrays, metric: str) -> np.ndarray:
    """Per-pair 1 / 0.5 / 0 in the spec's metric: summed log-probs (accuracy) or per-token averages."""
    chosen, rejected = np.asarray(arrays["chosen"], dtype=float), np.asarray(arrays["rejected"], dtype=float)
    if metric == "accuracy_per_token":
        chosen = chosen / np.asarray(arrays["chosen_tokens"], dtype=float)
        rejected = rejected / np.asarray(arrays["rejected_tokens"], dtype=float)
    return metrics.pairwise_preference(chosen, rejected)


def derived_metrics(final: dict[str, dict[str, float]], arrays: dict[str, Arrays], prepared: Prepared,
                    seed: int, metric: str = "accuracy") -> dict[str, float]:
    """In the spec's ``metric``: a finished trial's generalization gap, the 95% Wilson interval of its val value (a
    percentile bootstrap under-covers near 0 and 1) and, when test was scored, :func:`heldout_test_metrics`. The
    keys keep their ``accuracy`` names whichever metric fills them."""
    val_wins = metric_wins(arrays["val"], metric)
    val_ci = wilson_interval(float(val_wins.sum()), len(val_wins))
    out = {
        "generalization_gap": final["train"][metric] - final["val"][metric],
        "val_accuracy_ci_low": val_ci[0], "val_accuracy_ci_high": val_ci[1],
    }
    return {**out, **heldout_test_metrics(arrays, prepared, metric)} if "test" in arrays else out


def heldout_test_metrics(arrays: dict[str, Arrays], prepared: Prepared, metric: str = "accuracy") -> dict[str, float]:
    """The test value's 95% Wilson interval and the paired gain over the base model on the same test pairs
    (``power.paired_difference``: the per-pair t interval, coverage checked by simulation), in ``metric``. A run
    that scored a subset of test (an lr-profile run) scored its first rows: the base is read on the same rows."""
    test_wins = metric_wins(arrays["test"], metric)
    base = metric_wins(prepared.ref["test"], metric)[: len(test_wins)]
    paired = paired_difference(test_wins, base)  # t over pairs (one seed)
    test_ci = wilson_interval(float(test_wins.sum()), len(test_wins))
    return {
        "test_accuracy_ci_low": test_ci[0], "test_accuracy_ci_high": test_ci[1],
        "test_gain_vs_base": paired["estimate"], "test_gain_ci_low": paired["ci_low"],
        "test_gain_ci_high": paired["ci_high"],
    }


def heldout_record(prepared: Prepared, arrays: dict[str, Arrays]) -> dict[str, Any]:
    """Per-pair policy log-probs of the fully scored splits: what paired comparisons between trials need."""
    out: dict[str, Any] = {}
    for split in ("val", "test", "ood"):
        if split not in arrays:
            continue
        policy = arrays[split]
        out[split] = {
            "ids": (list(prepared.tokenized[split]["id"])[: len(policy["chosen"])]  # a subset: its first rows
                    if "id" in prepared.tokenized[split].column_names else None),
            **{key: [float(v) for v in policy[key]] for key in ("chosen", "rejected", "chosen_tokens",
                                                                "rejected_tokens")},
        }
    return out
