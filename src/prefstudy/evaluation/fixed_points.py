"""Claim (a) where its theory speaks: does each loss's margin on the TRAINING preferences stop growing, and where?
Pure numpy over the per-instance margins the drift stage stores (``train/margin``, ``train/margin_per_token``);
the rules are declared in ``docs/claims.md`` and the spec's ``drift`` section before any data.

A cell is (method, beta, p). Its data are the margins of every training instance at every eval point of every seed,
``[points, seeds, instances]``, normalised so that each finite closed form (``evaluation.closed_forms``) is 1:

* DPO (summed margin ``h``): ``z = beta * h / logit(p)``; at p = 1 there is no target and ``z = beta * h``;
* IPO (per-token margin ``h``): ``z = 2 * beta * h / (2p - 1)``.

Per cell, with intervals clustered over seeds and instances (``evaluation.clustered``):

* **late growth**: the least-squares slope of the mean ``z`` over the last ``k`` eval points, times the steps they
  span (how much ``z`` still rose over the end of the run, in units of the target);
* **bounded**: TOST of the late growth within ``+-growth_margin``; a cell that is not bounded has *not converged*,
  reported with its distance, never as support;
* **level**: ``log`` of the mean ``z`` at the last eval point; **at the closed form**: TOST of the level within
  ``+-log(level_margin)``;
* the per-instance spread of ``z`` at the end (standard deviation over instances, mean over seeds), printed beside.

**Growth contrast** (DPO, per beta): late growth of ``beta * h`` at p = 1 minus at p < 1, the same seeds and
instances (paired), one-sided: positive means deterministic preferences keep DPO's margin growing where noisy ones
stop it.

**Primary** (intersection-union, each part at 5%): *supported* when every DPO growth contrast is positive AND every
IPO cell and every p < 1 cell is bounded; *contradicted* when a part is refuted: a contrast significantly negative,
or a cell that should stop significantly growing by more than ``growth_margin`` (one-sided, Holm across the parts);
otherwise *not converged* (some part neither shown nor refuted), with each part's estimate and interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from prefstudy.evaluation import power
from prefstudy.evaluation.closed_forms import fixed_point
from prefstudy.evaluation.clustered import ClusteredEstimate, Data, clustered, ols_slope, tost

ALPHA = 0.05


def normalise(margins: np.ndarray, loss_type: str, p: float, beta: float) -> np.ndarray:
    """``z`` of the module docstring: each finite closed form is 1 (DPO at p = 1: ``beta * h``)."""
    h = np.asarray(margins, dtype=float)
    if loss_type == "sigmoid":
        return beta * h if p == 1.0 else beta * h / math.log(p / (1.0 - p))
    if loss_type == "ipo":
        return 2.0 * beta * h / (2.0 * p - 1.0)
    raise ValueError(f"no closed form for loss_type '{loss_type}'")


def late_growth(steps: Sequence[float], last: int, key: str = "z") -> Callable[[Data], float]:
    """Statistic on ``{key: [points, seeds, instances]}``: the OLS slope of the mean over the last ``last`` points,
    times the steps they span."""
    x = np.asarray(steps, dtype=float)[-last:]
    span = float(x[-1] - x[0])

    def statistic(data: Data) -> float:
        level = np.nanmean(data[key][-last:], axis=(1, 2))
        return ols_slope(x, level) * span
    return statistic


def growth_contrast(steps: Sequence[float], last: int) -> Callable[[Data], float]:
    """Statistic on ``{"p1": ..., "q": ...}`` (``beta * h``, [points, seeds, instances], the same seeds and
    instances): late growth at p = 1 minus at p < 1."""
    first, second = late_growth(steps, last, "p1"), late_growth(steps, last, "q")
    return lambda data: first(data) - second(data)


def peak_fall(key: str) -> Callable[[Data], float]:
    """Statistic on ``{key: [points, seeds, pairs]}``: the highest mean over the eval points minus the mean at the
    last one (how far val accuracy fell from its peak; 0 when the last point is the peak)."""
    def statistic(data: Data) -> float:
        curve = np.nanmean(data[key], axis=(1, 2))
        return float(np.max(curve) - curve[-1])
    return statistic


def fall_contrast(first: str = "p1", second: str = "q") -> Callable[[Data], float]:
    """Statistic: :func:`peak_fall` of ``first`` minus that of ``second`` (the same seeds and pairs): does the run
    on deterministic preferences lose more of its held-out accuracy than the one on noisy preferences?"""
    a, b = peak_fall(first), peak_fall(second)
    return lambda data: a(data) - b(data)


def last_mean(key: str) -> Callable[[Data], float]:
    """Statistic: the mean of ``{key: [points, seeds, pairs]}`` at the last eval point."""
    return lambda data: float(np.nanmean(data[key][-1]))


def log_level(key: str = "z") -> Callable[[Data], float]:
    """Statistic: log of the mean ``z`` at the last eval point (NaN where it is not positive)."""
    def statistic(data: Data) -> float:
        mean = float(np.nanmean(data[key][-1]))
        return math.log(mean) if mean > 0 else float("nan")
    return statistic


@dataclass
class Cell:
    """One (method, beta, p) cell's results."""

    method: str
    loss_type: str
    beta: float
    p: float
    target: float | None  # the closed form in the margin's own units (nats or nats/token); None: DPO at p = 1
    growth: ClusteredEstimate
    bounded: bool
    p_bounded: float  # TOST p of |growth| < growth_margin
    p_growing: float  # one-sided p of growth > growth_margin (refutes "bounded")
    level: ClusteredEstimate | None  # log mean z at the end (None: DPO at p = 1)
    at_closed_form: bool
    p_closed_form: float
    spread: float  # SD of z over instances at the end, mean over seeds
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """Mean z at the end: the margin as a share of its closed form."""
        return math.exp(self.level.estimate) if self.level is not None and math.isfinite(self.level.estimate) else None


def _one_sided_above(est: ClusteredEstimate, bound: float) -> float:
    """p of H0: effect <= bound against effect > bound."""
    if not (math.isfinite(est.estimate) and math.isfinite(est.se)) or est.se <= 0:
        return float("nan")
    return float(stats.t.sf((est.estimate - bound) / est.se, est.df))


def cell(method: str, loss_type: str, beta: float, p: float, margins: np.ndarray, steps: Sequence[float], last: int,
         growth_margin: float, level_margin: float, n_boot: int = 1000, seed: int = 0) -> Cell:
    """A cell's results from its margins ``[points, seeds, instances]`` (module docstring)."""
    z = normalise(margins, loss_type, p, beta)
    data = {"z": z}
    growth = clustered(late_growth(steps, last), data, n_boot=n_boot, seed=seed)
    bounded, p_bounded = tost(growth.estimate, growth.se, growth.df, growth_margin)
    finite = not (loss_type == "sigmoid" and p == 1.0)
    level = clustered(log_level(), data, n_boot=n_boot, seed=seed) if finite else None
    if level is not None:
        at, p_at = tost(level.estimate, level.se, level.df, math.log(level_margin))
    else:
        at, p_at = False, float("nan")
    target = fixed_point(loss_type, p, beta) if finite else None
    spread = float(np.nanmean(np.nanstd(z[-1], axis=-1, ddof=1)))
    return Cell(method, loss_type, beta, p, target, growth, bool(bounded), p_bounded,
                _one_sided_above(growth, growth_margin), level, bool(at), p_at, spread)


def holm(p_values: Sequence[float]) -> list[float]:
    """``evaluation.power.holm`` over the finite p-values; a NaN (a part with no interval) stays NaN and does not
    count in the family."""
    finite = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    out = [float("nan")] * len(p_values)
    for i, adjusted in zip(finite, power.holm([float(p_values[i]) for i in finite]), strict=True):
        out[i] = adjusted
    return out


def primary(contrasts: Sequence[ClusteredEstimate], cells: Sequence[Cell]) -> dict[str, Any]:
    """The intersection-union verdict of the module docstring over DPO's growth contrasts and the cells that should
    stop (every IPO cell, every p < 1 cell)."""
    should_stop = [c for c in cells if not (c.loss_type == "sigmoid" and c.p == 1.0)]
    p_grows = [_one_sided_above(c, 0.0) for c in contrasts]  # H1: the contrast is positive
    p_shrinks = [float(stats.t.cdf(c.estimate / c.se, c.df)) if c.se > 0 and math.isfinite(c.se) else float("nan")
                 for c in contrasts]  # H1: negative (refutes)
    shown = (bool(contrasts) and all(p < ALPHA for p in p_grows) and bool(should_stop)
             and all(c.bounded for c in should_stop))
    refuting = holm([*p_shrinks, *(c.p_growing for c in should_stop)])
    refuted = any(p < ALPHA for p in refuting if math.isfinite(p))
    verdict = "supported" if shown else "contradicted" if refuted else "not converged"
    if shown and refuted:  # cannot both hold at once; say so rather than pick
        verdict = "inconsistent"
    return {"verdict": verdict, "p_contrast_positive": p_grows, "p_refuting_holm": refuting,
            "bounded": {f"{c.method} beta {c.beta:g} p {c.p:g}": c.bounded for c in should_stop}}
