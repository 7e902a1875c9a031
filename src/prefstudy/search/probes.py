"""What a fixed-design stage measures at its eval points (``training.trainer.Probe``), written to ``pairs.jsonl``.

``DriftProbe`` (``--stage drift``): at every eval point, per pair of the fixed val pairs and of every training
instance (in the orientation the data give it, before any flipped copies): drift, the summed and per-token margins,
the chosen and rejected log-ratios (a falling chosen one is likelihood displacement), ranking wins; and generation
accuracy. Val values keep their historical keys (``drift``, ``margin_per_token``, ``wins``) beside ``val/margin``,
``val/chosen_ratio``, ``val/rejected_ratio``; training instances' are ``train/<key>``.

``ProfileProbe`` (``--stage lr-profile``): at the run's last step, per-pair
ranking wins on val and on the stage's test pairs, and generation accuracy on the runs that carry the capability
measurements (the tuned beta's first seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prefstudy.core.rundir import append_jsonl


def _generation(worker: Any, model: Any, pairs: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(row fields, curves fields) of greedy answers to the first ``pairs`` val prompts; None when not available."""
    from prefstudy.evaluation.generation import generation_metrics

    spec = worker.spec
    scorer = spec.evaluation.generation.resolved_scorer(spec.data.source)
    generated = generation_metrics(model, worker.tokenizer, worker.prepared.tokenized["val"], pairs,
                                   spec.evaluation.generation.max_new_tokens, spec.evaluation.generation.batch_size,
                                   scorer)
    if generated is None:
        return None
    summary, result = generated
    row = {"generated": [float(x) for x in result.correct], "generated_rows": result.indices,
           "generated_text": result.texts}
    # the keys a search trial's last eval point writes too (one key per measurement; run directories written before
    # 2026-12-06 have generation/accuracy and generation/empty_fraction in curves.jsonl, which nothing reads)
    return row, {"val/generation_accuracy": summary["generation_accuracy"],
                 "val/generation_empty_fraction": summary["generation_empty_fraction"]}


def pair_values(policy: dict[str, Any], ref: dict[str, Any], metric: str) -> dict[str, np.ndarray]:
    """Per pair: drift (KL proxy on the chosen answer), summed margin ``r(y_w) - r(y_l)``, per-token margin (TRL's
    IPO normalisation: each answer's log-ratio over its own tokens), the chosen and rejected log-ratios ``r``, and
    the ranking win in ``metric``."""
    from prefstudy.evaluation import drift
    from prefstudy.evaluation.heldout import metric_wins

    n = len(policy["chosen"])
    mask = np.asarray(policy["chosen_token_mask"])
    chosen = np.asarray(policy["chosen"], dtype=float) - np.asarray(ref["chosen"], dtype=float)[:n]
    rejected = np.asarray(policy["rejected"], dtype=float) - np.asarray(ref["rejected"], dtype=float)[:n]
    return {
        "drift": drift.pair_drift(policy["chosen_token_logps"], np.asarray(ref["chosen_token_logps"])[
            :n, : mask.shape[1]], mask),
        "margin": chosen - rejected, "margin_per_token": drift.pair_margin_per_token(policy, ref),
        "chosen_ratio": chosen, "rejected_ratio": rejected, "wins": metric_wins(policy, metric),
    }


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(x), 7) for x in values]


class DriftProbe:
    """At every eval point of a drift run: per-pair values (:func:`pair_values`) on the fixed val pairs and on every
    training instance, and generation accuracy on the first ``drift.generation_pairs`` val prompts; per-pair values
    to ``pairs.jsonl``, means to the point's curves row."""

    def __init__(self, worker: Any, run_dir: Any) -> None:
        self.worker, self.run_dir = worker, run_dir
        spec = worker.spec
        self.val_pairs = spec.drift.val_pairs or spec.evaluation.val_subset

    def __call__(self, model: Any, step: int, arrays: dict[str, Any] | None) -> dict[str, Any]:
        spec, prepared = self.worker.spec, self.worker.prepared
        row: dict[str, Any] = {"step": step}
        out: dict[str, Any] = {}
        for split, pairs in (("val", self.val_pairs), ("train", None)):
            if split not in prepared.ref:
                continue
            ref = {k: np.asarray(v)[:pairs] for k, v in prepared.ref[split].items()}
            if arrays is None:  # step 0: the adapter is zero, the policy is the base
                policy = ref
            elif split in arrays:
                policy = arrays[split]
            else:
                continue
            values = pair_values(policy, ref, spec.evaluation.metric)
            if split == "val":  # the historical keys first
                row.update({k: _rounded(values[k]) for k in ("drift", "margin_per_token", "wins")})
                row.update({f"val/{k}": _rounded(values[k]) for k in ("margin", "chosen_ratio", "rejected_ratio")})
                out.update({"drift/kl_proxy": float(values["drift"].mean()),
                            "drift/margin_per_token": float(values["margin_per_token"].mean())})
            else:
                row.update({f"train/{k}": _rounded(v) for k, v in values.items()})
                out.update({"drift/train_margin": float(values["margin"].mean()),
                            "drift/train_margin_per_token": float(values["margin_per_token"].mean())})
        generated = _generation(self.worker, model, spec.drift.generation_pairs)
        if generated is not None:
            row.update(generated[0])
            out.update(generated[1])
        append_jsonl(self.run_dir / "pairs.jsonl", row)
        return out


class ProfileProbe:
    """At the last step of an lr-profile run: per-pair wins on val, test and the profile split, generation where
    ``capability``."""

    def __init__(self, worker: Any, run_dir: Any, capability: bool) -> None:
        self.worker, self.run_dir, self.capability = worker, run_dir, capability

    def __call__(self, model: Any, step: int, arrays: dict[str, Any] | None) -> dict[str, Any]:
        from prefstudy.evaluation.heldout import metric_wins

        if arrays is None:  # step 0: nothing to record (the base model's scores are the search's)
            return {}
        metric = self.worker.spec.evaluation.metric
        row: dict[str, Any] = {"step": step, **{split: [round(float(x), 7) for x in metric_wins(arrays[split], metric)]
                                               for split in ("val", "test", "profile") if split in arrays}}
        out: dict[str, Any] = {}
        pairs = self.worker.spec.evaluation.generation.pairs
        if self.capability and pairs:
            generated = _generation(self.worker, model, pairs)
            if generated is not None:
                row.update(generated[0])
                out.update(generated[1])
        append_jsonl(self.run_dir / "pairs.jsonl", row)
        return out
