"""What a fixed-design stage measures at its eval points (``training.trainer.Probe``), written to ``pairs.jsonl``.

``DriftProbe`` (``--stage drift``): per-pair drift, per-token margin and ranking wins on the fixed val pairs at every
eval point, and generation accuracy. ``ProfileProbe`` (``--stage lr-profile``): at the run's last step, per-pair
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
    return row, {"generation/accuracy": summary["generation_accuracy"],
                 "generation/empty_fraction": summary["generation_empty_fraction"]}


class DriftProbe:
    """At every eval point of a drift run: per-pair drift, per-token margin and ranking wins on the fixed val pairs,
    and generation accuracy on the first ``drift.generation_pairs`` val prompts; per-pair values to ``pairs.jsonl``,
    means to the point's curves row."""

    def __init__(self, worker: Any, run_dir: Any) -> None:
        self.worker, self.run_dir = worker, run_dir
        spec = worker.spec
        self.val_pairs = spec.drift.val_pairs or spec.evaluation.val_subset

    def __call__(self, model: Any, step: int, arrays: dict[str, Any] | None) -> dict[str, Any]:
        from prefstudy.evaluation import drift
        from prefstudy.evaluation.heldout import metric_wins

        spec, prepared = self.worker.spec, self.worker.prepared
        ref = {k: np.asarray(v)[: self.val_pairs] for k, v in prepared.ref["val"].items()}
        policy = ref if arrays is None else arrays["val"]  # step 0: the adapter is zero, the policy is the base
        n = len(policy["chosen"])
        mask = np.asarray(policy["chosen_token_mask"])
        values = {
            "drift": drift.pair_drift(policy["chosen_token_logps"], ref["chosen_token_logps"][:n, : mask.shape[1]],
                                      mask),
            "margin_per_token": drift.pair_margin_per_token(policy, ref),
            "wins": metric_wins(policy, spec.evaluation.metric),
        }
        row: dict[str, Any] = {"step": step, **{k: [round(float(x), 7) for x in v] for k, v in values.items()}}
        out = {"drift/kl_proxy": float(values["drift"].mean()),
               "drift/margin_per_token": float(values["margin_per_token"].mean())}
        generated = _generation(self.worker, model, spec.drift.generation_pairs)
        if generated is not None:
            row.update(generated[0])
            out.update(generated[1])
        append_jsonl(self.run_dir / "pairs.jsonl", row)
        return out


class ProfileProbe:
    """At the last step of an lr-profile run: per-pair wins on val and test, generation where ``capability``."""

    def __init__(self, worker: Any, run_dir: Any, capability: bool) -> None:
        self.worker, self.run_dir, self.capability = worker, run_dir, capability

    def __call__(self, model: Any, step: int, arrays: dict[str, Any] | None) -> dict[str, Any]:
        from prefstudy.evaluation.heldout import metric_wins

        if arrays is None:  # step 0: nothing to record (the base model's scores are the search's)
            return {}
        metric = self.worker.spec.evaluation.metric
        row: dict[str, Any] = {"step": step, **{split: [round(float(x), 7) for x in metric_wins(arrays[split], metric)]
                                               for split in ("val", "test") if split in arrays}}
        out: dict[str, Any] = {}
        pairs = self.worker.spec.evaluation.generation.pairs
        if self.capability and pairs:
            generated = _generation(self.worker, model, pairs)
            if generated is not None:
                row.update(generated[0])
                out.update(generated[1])
        append_jsonl(self.run_dir / "pairs.jsonl", row)
        return out
