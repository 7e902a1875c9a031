"""The reference CPU's costs per unit of work (``prefstudy.plan`` uses them for ``--dry-run``'s wall time), and the
same costs scaled to a spec's data by tokens. Standard library and ``prefstudy.plan_sizes`` only."""

from __future__ import annotations

from dataclasses import dataclass

from prefstudy.plan_sizes import REFERENCE_PAIR_TOKENS, pair_tokens
from prefstudy.spec import StudySpec


@dataclass(frozen=True)
class CpuCosts:
    """Seconds per unit of work on the reference CPU (see the module docstring), measured on the default study."""

    train_per_pair_step: float = 0.37  # one pair in one optimizer step: packed forward + backward (1.4-1.6 s a step)
    score_per_pair: float = 0.155  # one held-out pair through the policy (LoRA attached), length-sorted batches of 32
    ref_per_pair: float = 0.14  # one pair of the reference pass (tokenizing included)
    lm_eval_per_doc: float = 0.075  # one lm-eval document of the default tasks (a forward, or a short generation)
    load: float = 30.0  # converting the embedded model once and loading it

    def scaled(self, factor: float) -> CpuCosts:
        """The costs of pairs ``factor`` times as many tokens as the reference data's (training, scoring and the
        reference pass scale with tokens at these lengths; lm-eval and loading do not)."""
        return CpuCosts(self.train_per_pair_step * factor, self.score_per_pair * factor, self.ref_per_pair * factor,
                        self.lm_eval_per_doc, self.load)

    def bf16_scoring(self) -> CpuCosts:
        """The costs with held-out scoring and the reference pass in bf16 (``evaluation.precision``) on the
        reference CPU, which has native bf16 (avx512_bf16): training and lm-eval as they were."""
        return CpuCosts(self.train_per_pair_step, self.score_per_pair / BF16_SCORE_SPEEDUP,
                        self.ref_per_pair / BF16_SCORE_SPEEDUP, self.lm_eval_per_doc, self.load)


#: fp32 / bf16 seconds of one scoring pass on the reference CPU: 1.62-2.14 (mean 1.87) over four trained adapters of
#: the third claim-(b) run, 256 profile pairs each, 1 thread (docs/speed.md, "Scoring in bf16")
BF16_SCORE_SPEEDUP = 1.87


CPU_COSTS = CpuCosts()
CPU_COST_MODELS = ("embedded:smollm2-135m-instruct",)  # the models CPU_COSTS was measured on


def costs_for(spec: StudySpec) -> CpuCosts:
    """CPU_COSTS scaled to the spec's data by tokens, not pairs: a pair of local files whose sampled sequences hold
    ``k`` times the reference data's tokens costs ``k`` times as much (``plan_sizes.pair_tokens``)."""
    sampled = pair_tokens(spec)
    costs = CPU_COSTS if sampled is None else CPU_COSTS.scaled(sampled.sequences / REFERENCE_PAIR_TOKENS)
    if spec.score_precision() == "bf16" and spec.training.precision == "fp32":
        return costs.bf16_scoring()
    return costs
