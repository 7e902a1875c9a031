"""The fixed points of claim (a) (evaluation/closed_forms.py), reached by minimising TRL 1.16's own loss
(``DPOTrainer._compute_loss``, tests/trl_loss.py) over free per-token log-probs of instances shown as k copies with
a share 1 - p flipped, the two answers of unequal length: DPO's summed margin goes to logit(p)/beta, IPO's per-token
margin to (2p - 1)/(2 beta); at p = 1 DPO's keeps growing while IPO's stops at 1/(2 beta)."""

from __future__ import annotations

import math

import pytest
import torch
from trl_loss import trl_loss

from prefstudy.evaluation.closed_forms import dpo_fixed_point, fixed_point, ipo_fixed_point

LENGTHS = [(3, 7), (5, 2), (1, 4)]  # (majority-chosen, majority-rejected) answer tokens per instance


def _fit(loss_type: str, beta: float, copies: int, flipped: int, steps: int = 60,
         sgd: bool = False) -> tuple[list[float], float]:
    """Minimise TRL's mean loss over every copy (L-BFGS, or ``steps`` plain gradient steps with ``sgd``); returns
    each instance's margin in its majority orientation (summed for sigmoid, per-token for ipo) and the final loss."""
    torch.manual_seed(0)
    width = max(max(a, b) for a, b in LENGTHS)
    answers = torch.nn.Parameter(torch.randn(len(LENGTHS), 2, width, dtype=torch.float64) * 0.1 - 2.0)
    ref = -torch.rand(len(LENGTHS), 2, dtype=torch.float64) * 5 - 1  # summed reference log-probs of A and B
    mask = torch.zeros(len(LENGTHS), 2, width, dtype=torch.float64)
    for i, (a, b) in enumerate(LENGTHS):
        mask[i, 0, :a], mask[i, 1, :b] = 1, 1
    rows = [(i, c < flipped) for i in range(len(LENGTHS)) for c in range(copies)]  # (instance, flipped?)

    def loss() -> torch.Tensor:
        tokens = answers * mask
        win = torch.stack([tokens[i, 1 if f else 0] for i, f in rows])
        lose = torch.stack([tokens[i, 0 if f else 1] for i, f in rows])
        lens = [LENGTHS[i][1 if f else 0] for i, f in rows] + [LENGTHS[i][0 if f else 1] for i, f in rows]
        ref_w = torch.stack([ref[i, 1 if f else 0] for i, f in rows])
        ref_l = torch.stack([ref[i, 0 if f else 1] for i, f in rows])
        return trl_loss(loss_type, beta, torch.cat([win, lose]), lens, ref_w, ref_l)

    optimizer: torch.optim.Optimizer = torch.optim.SGD([answers], lr=1.0) if sgd else torch.optim.LBFGS(
        [answers], lr=1, max_iter=50, line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)
    for _ in range(steps):
        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            value = loss()
            value.backward()
            return value
        optimizer.step(closure)
    with torch.no_grad():
        summed = (answers * mask).sum(-1) - ref  # [instances, 2]: r(A), r(B)
        if loss_type == "sigmoid":
            margins = (summed[:, 0] - summed[:, 1]).tolist()
        else:
            n = torch.tensor(LENGTHS, dtype=torch.float64)
            margins = (summed[:, 0] / n[:, 0] - summed[:, 1] / n[:, 1]).tolist()
        return margins, float(loss())


@pytest.mark.parametrize("beta", [0.1, 0.5])
@pytest.mark.parametrize(("copies", "flipped"), [(4, 1), (8, 1), (8, 3)])
def test_trls_losses_reach_the_closed_forms(beta: float, copies: int, flipped: int) -> None:
    p = 1 - flipped / copies
    for loss_type in ("sigmoid", "ipo"):
        margins, _ = _fit(loss_type, beta, copies, flipped)
        target = fixed_point(loss_type, p, beta)
        assert margins == pytest.approx([target] * len(LENGTHS), rel=1e-6, abs=1e-8), (loss_type, p, beta)


def test_hand_worked_values() -> None:
    assert dpo_fixed_point(0.75, 0.1) == pytest.approx(math.log(3) / 0.1)  # 10.99 nats
    assert ipo_fixed_point(0.75, 0.5) == pytest.approx(0.5)  # (1.5 - 1) / 1
    assert ipo_fixed_point(1.0, 0.5) == pytest.approx(1.0) and math.isinf(dpo_fixed_point(1.0, 0.1))
    with pytest.raises(ValueError):
        ipo_fixed_point(0.5, 0.1)  # no preferred answer: no direction to rank


def test_deterministic_preferences_dpo_keeps_growing_ipo_stops() -> None:
    short, _ = _fit("sigmoid", 0.5, 4, 0, steps=300, sgd=True)
    long, loss = _fit("sigmoid", 0.5, 4, 0, steps=3000, sgd=True)
    # no finite optimum: the margin keeps growing (about log(steps)/beta), the loss keeps falling but never reaches 0
    assert all(b > a + 2 for a, b in zip(short, long, strict=True)) and 0 < loss < 1e-2
    ipo, _ = _fit("ipo", 0.5, 4, 0)
    assert ipo == pytest.approx([1.0] * len(LENGTHS), rel=1e-6)
