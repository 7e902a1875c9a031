"""Claim (a) of the IPO paper, as numbers: does DPO drift from the reference whatever beta is, while IPO stops at
its target 1/(2*beta)? Pure numpy over the per-pair values the ``drift`` stage stores; rules declared in
``docs/claims.md`` and in the spec's ``drift`` section before any data.

Per pair (the stage's fixed val pairs), at each eval point of a run:

* ``drift`` -- the KL proxy on the chosen answer, ``0.5 * mean_t (log pi(y_t) - log pi_ref(y_t))^2`` over its
  tokens (metrics.kl_proxy for one pair). A run's drift is the mean over pairs.
* ``margin_per_token`` -- ``r(y_w)/|y_w| - r(y_l)/|y_l|`` with ``r = log pi - log pi_ref`` summed over the answer:
  the quantity TRL's IPO loss regresses to 1/(2*beta).
* ``wins`` (ranking accuracy per pair) and, where generation is checked, ``generated`` (1/0.5/0 per prompt).

**Primary statistic**: ``slope(IPO) - slope(DPO)`` where a method's slope is the least-squares slope of
``log(final drift)`` against ``log(beta)`` over its beta grid, the log drift of a beta being the mean over seeds of
each run's log drift. Interval: :func:`prefstudy.evaluation.clustered.clustered` (seeds and pairs).

* **supported**: the interval lies below 0 and IPO's own slope is negative (IPO's drift falls faster with beta);
* **contradicted**: the interval lies above 0;
* otherwise **inconclusive**, with the MDE.

"DPO's drift does not depend on beta" is a separate equivalence test (TOST) of DPO's slope within
``±drift.flat_margin``, never read off a failure to reject.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from prefstudy.evaluation.clustered import ClusteredEstimate, Data, clustered, ols_slope

#: the per-pair arrays a drift run stores at each eval point
KEYS = ("drift", "margin_per_token", "wins")


def pair_drift(policy_token_logps: np.ndarray, ref_token_logps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per pair: ``0.5 * mean over the chosen answer's tokens of (logp_policy - logp_ref)^2`` ([pairs, tokens] in;
    ``mask`` 1 at answer tokens)."""
    policy, ref, m = (np.asarray(a, dtype=float) for a in (policy_token_logps, ref_token_logps, mask))
    if policy.shape != ref.shape or policy.shape != m.shape:
        raise ValueError(f"shape mismatch: {policy.shape}, {ref.shape}, {m.shape}")
    counts = m.sum(1)
    if (counts <= 0).any():
        raise ValueError("every pair needs at least one answer token")
    return (0.5 * m * (policy - ref) ** 2).sum(1) / counts


def pair_margin_per_token(policy: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> np.ndarray:
    """Per pair: ``(pi_w - ref_w)/n_w - (pi_l - ref_l)/n_l`` in nats per token (TRL's IPO normalisation)."""
    n = len(policy["chosen"])
    n_w = np.asarray(policy["chosen_tokens"], dtype=float)
    n_l = np.asarray(policy["rejected_tokens"], dtype=float)
    r_w = np.asarray(policy["chosen"], dtype=float) - np.asarray(ref["chosen"], dtype=float)[:n]
    r_l = np.asarray(policy["rejected"], dtype=float) - np.asarray(ref["rejected"], dtype=float)[:n]
    return r_w / n_w - r_l / n_l


def ipo_target(beta: float) -> float:
    """The per-token margin TRL's IPO loss regresses to: 1/(2*beta)."""
    return 1.0 / (2.0 * beta)


def _log_level(values: np.ndarray) -> np.ndarray:
    """[..., seeds, pairs] -> [...]: mean over seeds of log(mean over pairs); NaN where a mean is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.nanmean(values, axis=-1)
        logs = np.where(means > 0, np.log(np.where(means > 0, means, 1.0)), np.nan)
        return np.nanmean(logs, axis=-1) if np.isfinite(logs).any() else np.full(logs.shape[:-1], np.nan)


def log_slope(log_betas: ArrayLike, values: np.ndarray) -> float:
    """Slope of log(mean value) against log(beta): ``values`` is [betas, seeds, pairs] (one method's final point)."""
    return ols_slope(np.asarray(log_betas, dtype=float), _log_level(values))


def slope_difference(log_betas: Mapping[str, ArrayLike], first: str, second: str) -> Callable[[Data], float]:
    """The statistic ``slope(first) - slope(second)`` on data ``{method: [betas, seeds, pairs]}``."""
    def statistic(data: Data) -> float:
        return log_slope(log_betas[first], data[first]) - log_slope(log_betas[second], data[second])
    return statistic


def one_slope(log_betas: ArrayLike, key: str) -> Callable[[Data], float]:
    def statistic(data: Data) -> float:
        return log_slope(log_betas, data[key])
    return statistic


def verdict(diff: ClusteredEstimate, ipo_slope: float) -> str:
    """'supported' | 'contradicted' | 'inconclusive' by the rule of the module docstring."""
    if not (math.isfinite(diff.ci_low) and math.isfinite(diff.ci_high)):
        return "inconclusive"
    if diff.ci_high < 0 and ipo_slope < 0:
        return "supported"
    if diff.ci_low > 0:
        return "contradicted"
    return "inconclusive"


def step_slope(steps: Sequence[float], key: str, last: int) -> Callable[[Data], float]:
    """Slope against the step of the mean value over the last ``last`` eval points, averaged over the design's
    leading axis: data ``{key: [betas, points, seeds, pairs]}``."""
    x = np.asarray(steps, dtype=float)[-last:]

    def statistic(data: Data) -> float:
        values = data[key][:, -last:]
        level = np.nanmean(np.nanmean(values, axis=-1), axis=-1)  # [betas, points]
        slopes = [ols_slope(x, row) for row in level]
        return float(np.nanmean(slopes)) if np.isfinite(slopes).any() else float("nan")
    return statistic


def mean_minus(key: str, target: float) -> Callable[[Data], float]:
    def statistic(data: Data) -> float:
        return float(np.nanmean(data[key])) - target
    return statistic


def mean_difference(first: str, second: str) -> Callable[[Data], float]:
    def statistic(data: Data) -> float:
        return float(np.nanmean(data[first])) - float(np.nanmean(data[second]))
    return statistic


def estimate(statistic: Callable[[Data], float], data: Data, n_boot: int = 1000, seed: int = 0) -> ClusteredEstimate:
    """:func:`clustered` with the stage's defaults."""
    return clustered(statistic, data, n_boot=n_boot, seed=seed)
