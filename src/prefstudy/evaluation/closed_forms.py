"""Where DPO's and IPO's losses put a pair's margin when the pair's preference is not deterministic: the fixed
points claim (a) is tested against (Azar et al. 2023, sections 4-5; docs/claims.md).

A pair is shown with its preferred answer winning with probability ``p`` (and the other one winning otherwise: in
the training data, a share ``1 - p`` of its copies flipped). With ``h`` the margin TRL's loss uses for that pair,
the expected loss over the two orientations is minimal at

* DPO (``loss_type`` "sigmoid", summed log-ratios, ``h = r(y_w) - r(y_l)`` in nats):
  ``p * -log sigmoid(beta h) + (1 - p) * -log sigmoid(-beta h)`` is minimal where ``sigmoid(beta h) = p``, so
  ``h* = logit(p) / beta``. At ``p = 1`` there is no finite minimum: the loss keeps falling as ``h`` grows.
* IPO (``loss_type`` "ipo", TRL's per-token averaged log-ratios, each answer divided by its own token count):
  ``p (h - 1/(2 beta))^2 + (1 - p) (h + 1/(2 beta))^2`` is minimal at ``h* = (2p - 1) / (2 beta)`` nats per token,
  ``1/(2 beta)`` at ``p = 1``.

``tests/unit/training/test_closed_forms.py`` reaches both by minimising TRL 1.16's own ``_compute_loss`` on
synthetic log-probs with answers of unequal length.
"""

from __future__ import annotations

import math


def _check(p: float, beta: float) -> None:
    if not 0.5 < p <= 1.0:
        raise ValueError(f"preference probability p={p}: must be in (0.5, 1] (the preferred answer wins more often)")
    if not beta > 0:
        raise ValueError(f"beta={beta}: must be positive")


def dpo_fixed_point(p: float, beta: float) -> float:
    """DPO's optimal summed margin ``logit(p) / beta`` in nats; ``inf`` at p = 1 (no finite optimum)."""
    _check(p, beta)
    return math.inf if p == 1.0 else math.log(p / (1.0 - p)) / beta


def ipo_fixed_point(p: float, beta: float) -> float:
    """TRL's IPO optimal per-token margin ``(2p - 1) / (2 beta)`` in nats per token."""
    _check(p, beta)
    return (2.0 * p - 1.0) / (2.0 * beta)


def fixed_point(loss_type: str, p: float, beta: float) -> float:
    """The fixed point of ``loss_type`` ("sigmoid" or "ipo") at preference probability ``p``."""
    if loss_type == "sigmoid":
        return dpo_fixed_point(p, beta)
    if loss_type == "ipo":
        return ipo_fixed_point(p, beta)
    raise ValueError(f"no closed form for loss_type '{loss_type}' (sigmoid or ipo)")
