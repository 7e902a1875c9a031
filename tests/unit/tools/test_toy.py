"""Tests for the IPO-paper toy experiment (benchmarks.toy)."""

from __future__ import annotations

import inspect
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks.toy import (
    DEFAULT_TAUS,
    METHODS,
    dpo_loss,
    ipo_fixed_point,
    ipo_loss,
    run_toy,
    sample_pair_indices,
    simulate,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def full_run():
    # The full protocol (10 seeds x 18,000 steps, every tau and both methods in one batched
    # tensor) takes ~15 s on one CPU thread, so the test uses it unchanged.
    return run_toy(DEFAULT_TAUS, seeds=10, steps=18000)


def test_ipo_simulation_matches_fixed_point(full_run):
    final = full_run.final_mean("ipo")
    for i, tau in enumerate(full_run.taus):
        np.testing.assert_allclose(final[i], ipo_fixed_point(tau), atol=0.01, err_msg=f"tau={tau}")


def test_dpo_drives_p_a_to_one(full_run):
    final = full_run.probs["dpo"][-1]  # [n_tau, n_seeds, 3]
    assert (final.mean(axis=1)[:, 0] > 0.95).all()
    assert (final[..., 0] > 0.95).all()  # every seed, every tau


def test_ipo_keeps_ranking_and_tends_to_uniform(full_run):
    final = full_run.probs["ipo"][-1]
    mean = final.mean(axis=1)
    for p in [*mean, *final.reshape(-1, 3)]:
        assert p[0] > p[1] > p[2] > 0.01
    kl_to_uniform = (mean * np.log(3 * mean)).sum(axis=1)
    assert list(full_run.taus) == sorted(full_run.taus)
    assert (np.diff(kl_to_uniform) < 0).all()


def test_fixed_point_by_hand():
    # tau = 0.5: d = 1/(3 tau) = 2/3; e^{2/3} = 1.947734, e^{4/3} = 3.793668,
    # Z = 1 + 1.947734 + 3.793668 = 6.741402, so
    # pi(a) = 3.793668 / 6.741402 = 0.562742, pi(b) = 1.947734 / 6.741402 = 0.288921,
    # pi(c) = 1 / 6.741402 = 0.148337.
    np.testing.assert_allclose(ipo_fixed_point(0.5), [0.562742, 0.288921, 0.148337], atol=1e-6)
    # Independent check: the population IPO objective on D1 is stationary at these logits,
    # with residuals h - 1/(2 tau) = -1/(6 tau), -1/(6 tau), +1/(6 tau) for (a,b), (b,c), (a,c).
    for tau in (0.5, *DEFAULT_TAUS):
        theta = torch.tensor(np.log(ipo_fixed_point(tau)), dtype=torch.float64, requires_grad=True)
        h = torch.stack([theta[0] - theta[1], theta[1] - theta[2], theta[0] - theta[2]])
        ipo_loss(h, tau).mean().backward()
        assert theta.grad.abs().max().item() < 1e-12
        r = (h - 1 / (2 * tau)).detach().numpy()
        np.testing.assert_allclose(r, np.array([-1, -1, 1]) / (6 * tau), atol=1e-12)


def test_batching_is_exact():
    idx = sample_pair_indices(seeds=3, steps=300, batch=9)
    batched = simulate(METHODS, DEFAULT_TAUS, idx)  # [rec, method, tau, seed, 3]
    single = simulate(["ipo"], [DEFAULT_TAUS[1]], idx[:, 2:3])
    np.testing.assert_allclose(batched[:, 1, 1, 2], single[:, 0, 0, 0], rtol=0, atol=1e-12)
    assert torch.equal(sample_pair_indices(1, 300, 9)[:, 0], idx[:, 0])  # seed streams don't depend on count


# ---------------------------------------------------------------------------------------------
# "Same losses as training": compare with TRL 1.16 DPOTrainer.
# PRIVATE SEAM (trl==1.16.0): `trl.trainer.dpo_trainer.DPOTrainer._compute_loss(self, model,
# inputs, return_outputs)`. The loss is computed inline there (branches `loss_type == "sigmoid"`
# -> `-F.logsigmoid(self.beta * delta_score)` and `loss_type == "ipo"` -> token-AVERAGED
# log-ratios via `completion_mask.chunk(2).sum(dim=1)`, then `(ipo_delta - 1/(2*self.beta))**2`;
# the DPO log-ratios are token-SUMMED). There is no standalone loss function, so we call the
# unbound method with a minimal stand-in `self` (attributes it reads: model.training,
# accelerator.{device,gather,gather_for_metrics}, aux_loss_enabled, ld_alpha,
# precompute_ref_logps, f_divergence_type, loss_types, loss_weights, beta, use_weighting,
# _metrics, _total_train_tokens, _tp_size) and a fake model whose output carries
# `log_probs` (already masked per token, as the fused LM head returns), `entropy`,
# `mean_logits`, `is_top1`. With `precompute_ref_logps=True` the reference log-probs come from
# `inputs["ref_chosen_logps"/"ref_rejected_logps"]`, so no reference model is needed.
# Re-check this stand-in whenever trl is upgraded.
# ---------------------------------------------------------------------------------------------
TRL_VERSION = "1.16.0"


def _trl_loss(loss_type, beta, per_token_logps, completion_lens, ref_chosen, ref_rejected):
    """TRL's loss on per-token policy log-probs ``[2B, T]`` (rows: chosen then rejected)."""
    from trl.trainer.dpo_trainer import DPOTrainer

    n, t = per_token_logps.shape
    completion_mask = torch.zeros(n, t + 1, dtype=torch.long)  # one prompt token, then completion
    for i, k in enumerate(completion_lens):
        completion_mask[i, 1 : 1 + k] = 1
    shift_mask = completion_mask[:, 1:]
    log_probs = per_token_logps * shift_mask  # fused head gives 0 where labels == -100
    outputs = SimpleNamespace(log_probs=log_probs, entropy=torch.zeros(n, t), mean_logits=torch.zeros(n, t),
                              is_top1=torch.zeros(n, t, dtype=torch.bool))
    attention_mask = completion_mask.clone()
    attention_mask[:, 0] = 1  # prompt token
    inputs = {"input_ids": torch.ones(n, t + 1, dtype=torch.long), "attention_mask": attention_mask,
              "completion_mask": completion_mask,
              "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    identity = lambda x: x  # noqa: E731
    stand_in = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(device=torch.device("cpu"), gather=identity, gather_for_metrics=identity),
        aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
        loss_types=[loss_type], loss_weights=[1.0], beta=beta, use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    return DPOTrainer._compute_loss(stand_in, lambda **kw: outputs, inputs, return_outputs=False)


def test_trl_seam_is_the_pinned_one():
    import trl
    from trl.trainer.dpo_trainer import DPOTrainer

    assert trl.__version__ == TRL_VERSION, "TRL changed: re-check the private _compute_loss seam"
    params = list(inspect.signature(DPOTrainer._compute_loss).parameters)
    assert params == ["self", "model", "inputs", "return_outputs"]


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_toy_losses_equal_trl_on_single_token_actions(tau):
    # The toy's completions are single action tokens: TRL's sum and per-token average coincide.
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)  # 6 policies
    win, lose = torch.tensor([0, 1, 0, 0, 1, 0]), torch.tensor([1, 2, 2, 1, 2, 2])
    ref = torch.full((6,), -np.log(3.0), dtype=torch.float64)
    for loss_type, toy_fn in (("sigmoid", dpo_loss), ("ipo", ipo_loss)):
        logp = torch.log_softmax(theta, -1)
        lw, ll = logp[torch.arange(6), win], logp[torch.arange(6), lose]
        trl_loss = _trl_loss(loss_type, tau, torch.cat([lw, ll])[:, None], [1] * 12, ref, ref)
        toy = toy_fn((lw - ref) - (ll - ref), tau).mean()
        (g_trl,) = torch.autograd.grad(trl_loss, theta, retain_graph=True)
        (g_toy,) = torch.autograd.grad(toy, theta)
        torch.testing.assert_close(trl_loss, toy, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g_trl, g_toy, rtol=1e-12, atol=1e-12)


def test_toy_losses_equal_trl_on_multi_token_completions():
    # Multi-token: TRL's DPO uses token-summed log-ratios, its IPO token-averaged ones.
    g = torch.Generator().manual_seed(1)
    b, t, tau = 4, 5, 0.5
    lens = [5, 2, 3, 1, 4, 5, 1, 2]  # chosen rows then rejected rows
    tok = -torch.rand(2 * b, t, generator=g, dtype=torch.float64) * 3
    mask = torch.tensor([[1.0] * k + [0.0] * (t - k) for k in lens], dtype=torch.float64)
    seq = (tok * mask).sum(1)
    ref = -torch.rand(2 * b, generator=g, dtype=torch.float64) * 10
    ratio = seq - ref
    n = torch.tensor(lens, dtype=torch.float64)
    h_sum = ratio[:b] - ratio[b:]
    h_avg = ratio[:b] / n[:b] - ratio[b:] / n[b:]
    trl_dpo = _trl_loss("sigmoid", tau, tok, lens, ref[:b], ref[b:])
    trl_ipo = _trl_loss("ipo", tau, tok, lens, ref[:b], ref[b:])
    torch.testing.assert_close(trl_dpo, dpo_loss(h_sum, tau).mean(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(trl_ipo, ipo_loss(h_avg, tau).mean(), rtol=1e-12, atol=1e-12)
    assert not torch.isclose(trl_ipo, ipo_loss(h_sum, tau).mean())
