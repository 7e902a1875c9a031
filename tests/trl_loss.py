"""TRL 1.16's own DPO/IPO loss on given per-token log-probs, for tests that compare with closed forms or a toy.

PRIVATE SEAM (trl==1.16.0): ``DPOTrainer._compute_loss(self, model, inputs, return_outputs)`` computes the loss
inline (``loss_type == "sigmoid"`` -> ``-logsigmoid(beta * delta)`` on token-SUMMED log-ratios; ``"ipo"`` ->
``(ipo_delta - 1/(2 beta))**2`` on token-AVERAGED ones). There is no standalone loss function, so the unbound method
is called with a minimal stand-in ``self`` and a fake model whose output carries ``log_probs`` (already masked per
token, as the fused LM head returns). With ``precompute_ref_logps=True`` the reference comes from the inputs.
Re-check whenever TRL is upgraded (``test_trl_seam_is_the_pinned_one``).
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import torch

TRL_VERSION = "1.16.0"


def trl_loss(loss_type: str, beta: float, per_token_logps: torch.Tensor, completion_lens: list[int],
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor) -> torch.Tensor:
    """TRL's loss on per-token policy log-probs ``[2B, T]`` (rows: chosen then rejected)."""
    from trl.trainer.dpo_trainer import DPOTrainer

    n, t = per_token_logps.shape
    completion_mask = torch.zeros(n, t + 1, dtype=torch.long)  # one prompt token, then completion
    for i, k in enumerate(completion_lens):
        completion_mask[i, 1 : 1 + k] = 1
    log_probs = per_token_logps * completion_mask[:, 1:]  # fused head gives 0 where labels == -100
    outputs = SimpleNamespace(log_probs=log_probs, entropy=torch.zeros(n, t), mean_logits=torch.zeros(n, t),
                              is_top1=torch.zeros(n, t, dtype=torch.bool))
    attention_mask = completion_mask.clone()
    attention_mask[:, 0] = 1  # prompt token
    inputs = {"input_ids": torch.ones(n, t + 1, dtype=torch.long), "attention_mask": attention_mask,
              "completion_mask": completion_mask, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    identity = lambda x: x  # noqa: E731
    stand_in = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(device=torch.device("cpu"), gather=identity, gather_for_metrics=identity),
        aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
        loss_types=[loss_type], loss_weights=[1.0], beta=beta, use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    return DPOTrainer._compute_loss(stand_in, lambda **kw: outputs, inputs, return_outputs=False)
