"""Tests for the IPO-paper toy experiment (benchmarks.toy)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from trl_loss import TRL_VERSION, trl_loss

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


# "Same losses as training": compare with TRL 1.16's own DPOTrainer._compute_loss (tests/trl_loss.py).


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
        loss_trl = trl_loss(loss_type, tau, torch.cat([lw, ll])[:, None], [1] * 12, ref, ref)
        toy = toy_fn((lw - ref) - (ll - ref), tau).mean()
        (g_trl,) = torch.autograd.grad(loss_trl, theta, retain_graph=True)
        (g_toy,) = torch.autograd.grad(toy, theta)
        torch.testing.assert_close(loss_trl, toy, rtol=1e-12, atol=1e-12)
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
    trl_dpo = trl_loss("sigmoid", tau, tok, lens, ref[:b], ref[b:])
    trl_ipo = trl_loss("ipo", tau, tok, lens, ref[:b], ref[b:])
    torch.testing.assert_close(trl_dpo, dpo_loss(h_sum, tau).mean(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(trl_ipo, ipo_loss(h_avg, tau).mean(), rtol=1e-12, atol=1e-12)
    assert not torch.isclose(trl_ipo, ipo_loss(h_sum, tau).mean())
