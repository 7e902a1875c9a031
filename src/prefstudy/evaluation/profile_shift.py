"""Claim (b) as a shift between two learning-rate profiles: how many decades further right does one method's decline
sit than the other's? The lr-profile stage's primary since 2026-12-06 (issue #32) is :func:`alignment_shift`, chosen
by the plasmode power simulation of :mod:`prefstudy.evaluation.profile_power` (docs/claims.md) over the candidates
below; the joint logistic fit stays as the candidate that lost, with its reason.

**Alignment shift (the primary).** Model-free: the horizontal shift ``d`` (decades) that lays the second method's
profile, moved ``d`` to the right, best onto the first's: least squares between ``first(x)`` and ``second(x - d)``
(straight lines between grid points) over the grid points where ``x - d`` is inside the grid, at least 3 of them,
``d`` on a 0.01-decade grid. With 3 of 4 points needed, ``|d|`` cannot exceed the span of the top (or bottom) three
grid points' complement: :func:`alignable` gives that bound, and an estimate at it is censored (a lower bound on the
shift). A profile that does not decline aligns anywhere: the interval is wide, never a false verdict.

**Joint logistic (a candidate; not identified on the 2026-12-06 pilot).** Each method's accuracy against
``x = log10(learning rate)`` as a four-parameter logistic falling from a plateau to a floor::

    acc_m(x) = floor + (plateau_m - floor) / (1 + exp(slope * (x - mid_m)))

slope (per decade) and floor shared, plateau and midpoint per method; the shift is ``mid_first - mid_second``. Least
squares, bounded (slope 0.3-60 per decade, floor and plateaus in [0, 1], midpoints within a decade of the grid), from
a starting slope of 6 per decade, then 2 and 20 where the first fit is not identified. **Identified**: each plateau
at least ``min_drop`` above the floor and each midpoint inside the grid; otherwise NaN (a resample drops out; on all
data the caller says "not identified"). On the pilot the profiles decline gradually across the whole grid, the
noise-free fit puts a midpoint outside it, and the candidate has no estimand there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from prefstudy.evaluation.clustered import Data
from prefstudy.evaluation.lr_profile import accuracy, chosen_slots

SLOPE_BOUNDS = (0.3, 60.0)  # per decade: from a decline spread over ~10 decades to one inside a tenth of a decade
STARTS = (6.0, 2.0, 20.0)  # starting slopes, the later ones tried only when a fit is not identified


def logistic4(x: ArrayLike, slope: float, floor: float, plateau: float, mid: float) -> np.ndarray:
    """The profile model of the module docstring at ``x`` (log10 learning rates)."""
    t = np.clip(slope * (np.asarray(x, dtype=float) - mid), -60.0, 60.0)
    return floor + (plateau - floor) / (1.0 + np.exp(t))


@dataclass(frozen=True)
class JointFit:
    slope: float
    floor: float
    plateaus: tuple[float, float]
    mids: tuple[float, float]
    identified: bool
    reason: str = ""

    @property
    def shift(self) -> float:
        """``mid_first - mid_second`` in decades; NaN when the fit is not identified."""
        return self.mids[0] - self.mids[1] if self.identified else float("nan")


def _start_mid(x: np.ndarray, y: np.ndarray) -> float:
    """Where the profile first falls below halfway between its maximum and its minimum (the grid's middle if never)."""
    half = (np.nanmax(y) + np.nanmin(y)) / 2
    top = int(np.nanargmax(y))
    for j in range(top + 1, len(y)):
        if y[j] < half:
            share = (y[j - 1] - half) / (y[j - 1] - y[j])
            return float(x[j - 1] + share * (x[j] - x[j - 1]))
    return float((x[0] + x[-1]) / 2)


def fit_joint(log_lrs: ArrayLike, first: ArrayLike, second: ArrayLike, min_drop: float) -> JointFit:
    """The joint fit of the module docstring to two profiles on the same grid (NaN points left out)."""
    x = np.asarray(log_lrs, dtype=float)
    ys = [np.asarray(first, dtype=float), np.asarray(second, dtype=float)]
    if any(len(y) != len(x) for y in ys) or len(x) < 4:
        raise ValueError(f"need two profiles on the same grid of >= 4 learning rates, got {len(x)}")
    keep = [np.isfinite(y) for y in ys]
    if any(k.sum() < 4 for k in keep):
        return JointFit(float("nan"), float("nan"), (float("nan"),) * 2, (float("nan"),) * 2, False,
                        "fewer than 4 finite points on a profile")
    lo, hi = float(x.min()), float(x.max())

    def residuals(theta: np.ndarray) -> np.ndarray:
        slope, floor, p1, m1, p2, m2 = theta
        return np.concatenate([logistic4(x[keep[0]], slope, floor, p1, m1) - ys[0][keep[0]],
                               logistic4(x[keep[1]], slope, floor, p2, m2) - ys[1][keep[1]]])

    def jacobian(theta: np.ndarray) -> np.ndarray:  # analytic: 3x fewer model evaluations than finite differences
        slope, floor, p1, m1, p2, m2 = theta
        out = np.zeros((int(keep[0].sum() + keep[1].sum()), 6))
        row = 0
        for k, plateau, mid, col in ((0, p1, m1, 2), (1, p2, m2, 4)):
            xs = x[keep[k]]
            sig = 1.0 / (1.0 + np.exp(np.clip(slope * (xs - mid), -60.0, 60.0)))
            d = (plateau - floor) * sig * (1.0 - sig)  # minus the derivative of the curve in t
            rows = slice(row, row + len(xs))
            out[rows, 0] = -d * (xs - mid)
            out[rows, 1] = 1.0 - sig
            out[rows, col] = sig
            out[rows, col + 1] = d * slope
            row += len(xs)
        return out

    floor0 = float(min(np.nanmin(ys[0]), np.nanmin(ys[1])))
    lower = [SLOPE_BOUNDS[0], 0.0, 0.0, lo - 1.0, 0.0, lo - 1.0]
    upper = [SLOPE_BOUNDS[1], 1.0, 1.0, hi + 1.0, 1.0, hi + 1.0]
    best = None
    for slope0 in STARTS:  # the later starts only when the fit so far is not identified (most fits: one start)
        theta0 = np.clip([slope0, floor0, np.nanmax(ys[0]), _start_mid(x, ys[0]), np.nanmax(ys[1]),
                          _start_mid(x, ys[1])], np.add(lower, 1e-9), np.subtract(upper, 1e-9))
        result = least_squares(residuals, theta0, jac=jacobian, bounds=(lower, upper), method="trf")
        if best is None or result.cost < best.cost:
            best = result
        if not _problems(best.x, lo, hi, min_drop):
            break
    assert best is not None
    slope, floor, p1, m1, p2, m2 = (float(v) for v in best.x)
    reasons = _problems(best.x, lo, hi, min_drop)
    return JointFit(slope, floor, (p1, p2), (m1, m2), not reasons, "; ".join(reasons))


def _problems(theta: np.ndarray, lo: float, hi: float, min_drop: float) -> list[str]:
    """Why a fit is not identified (module docstring); empty when it is."""
    _, floor, p1, m1, p2, m2 = (float(v) for v in theta)
    reasons = []
    for name, plateau, mid in (("first", p1, m1), ("second", p2, m2)):
        if plateau - floor < min_drop:
            reasons.append(f"the {name} profile falls {plateau - floor:.3f} < {min_drop:g} inside the grid")
        if not lo <= mid <= hi:
            reasons.append(f"the {name} profile's midpoint {mid:.2f} lies outside the grid [{lo:.2f}, {hi:.2f}]")
    return reasons


def curve(values: np.ndarray) -> np.ndarray:
    """[lrs, seeds, pairs] (or [lrs, 1 slot, seeds, pairs]) -> [lrs]: the tuned beta's accuracy per learning rate
    (``lr_profile.accuracy``: mean over pairs, then over seeds)."""
    return accuracy(values if values.ndim == 4 else values[:, None])[:, 0]


def read_chosen(read: np.ndarray, choose_on: np.ndarray) -> np.ndarray:
    """[lrs, slots, seeds, pairs] on the split the profile is read on -> [lrs, 1, seeds, pairs]: at each learning
    rate the beta slot with the highest accuracy on ``choose_on`` (another split's runs, e.g. val; ties: the lower
    slot, so the tuned beta wins a tie). The choice is made once, on all of ``choose_on``: the pairs the profile is
    read on never choose, so resampling them needs no re-choice."""
    slots = chosen_slots(accuracy(choose_on), retune=True)
    return read[np.arange(read.shape[0]), slots][:, None]


def shift_difference(log_lrs: Sequence[float], first: str, second: str, min_drop: float) -> Callable[[Data], float]:
    """Statistic on ``{method: [lrs, seeds, pairs]}`` (the tuned beta's runs): the joint fit's shift, first minus
    second, in decades (NaN when not identified)."""
    def statistic(data: Data) -> float:
        return fit_joint(log_lrs, curve(data[first]), curve(data[second]), min_drop).shift
    return statistic


def alignment_shift(log_lrs: ArrayLike, first: ArrayLike, second: ArrayLike, max_shift: float = 1.0,
                    step: float = 0.01, min_points: int = 3) -> float:
    """The horizontal shift (decades) that best lays ``second`` moved right onto ``first``: the ``d`` in
    ``[-max_shift, max_shift]`` (a grid of ``step``) minimising the mean squared difference between ``first(x)`` and
    ``second(x - d)`` (straight lines between grid points) over the grid points where ``x - d`` lies inside the grid
    (at least ``min_points`` of them). No model of the shape; a flat profile aligns anywhere (a wide interval)."""
    x = np.asarray(log_lrs, dtype=float)
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    shifts = np.round(np.arange(-max_shift, max_shift + step / 2, step), 10)
    moved = x[None, :] - shifts[:, None]  # [shifts, points]
    inside = (moved >= x[0] - 1e-12) & (moved <= x[-1] + 1e-12)
    at = np.interp(moved, x, b)
    counts = inside.sum(axis=1)
    with np.errstate(invalid="ignore"):
        loss = np.where(inside, (a[None, :] - at) ** 2, 0.0).sum(axis=1) / counts
    loss[counts < min_points] = np.inf
    if not np.isfinite(loss).any():
        return float("nan")
    best = np.flatnonzero(loss <= loss.min() + 1e-12)  # a tie (flat profiles): the shift nearest 0
    return float(shifts[best[np.argmin(np.abs(shifts[best]))]])


def alignable(log_lrs: ArrayLike, max_shift: float = 1.0, min_points: int = 3) -> tuple[float, float]:
    """(lowest, highest) ``d`` :func:`alignment_shift` can return on this grid: at most ``max_shift`` either way,
    and ``min_points`` grid points must stay inside once moved, so ``d`` reaches from minus the distance between the
    grid's ``min_points``-th point and its last, to the distance between its first and its ``(n - min_points + 1)``-th
    point."""
    x = np.asarray(log_lrs, dtype=float)
    if len(x) < min_points:
        raise ValueError(f"need at least {min_points} learning rates, got {len(x)}")
    return max(-max_shift, float(-(x[-1] - x[min_points - 1]))), min(max_shift, float(x[len(x) - min_points] - x[0]))


def alignment_difference(log_lrs: Sequence[float], first: str, second: str) -> Callable[[Data], float]:
    """Statistic: :func:`alignment_shift` of the two methods' profiles (seed means), first against second."""
    def statistic(data: Data) -> float:
        return alignment_shift(log_lrs, curve(data[first]), curve(data[second]))
    return statistic


def area_shift(log_lrs: ArrayLike, first: ArrayLike, second: ArrayLike, min_drop: float = 0.02) -> float:
    """The horizontal shift (decades) that the accuracy ``first`` holds over ``second`` across the grid stands for:
    the area between the profiles (trapezoids in log10 learning rate) over the pooled profile's drop from the grid's
    first point to its last. For a profile that falls by ``h`` inside the grid and is moved ``d`` decades right, the
    area is ``d * h``, so this reads ``d``; unlike :func:`alignment_shift` it is linear in the profiles but for the
    drop, so noise moves it smoothly. NaN when the pooled drop is below ``min_drop`` (no decline to measure by)."""
    x = np.asarray(log_lrs, dtype=float)
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    pooled = (a + b) / 2
    drop = float(pooled[0] - pooled[-1])
    if drop < min_drop:
        return float("nan")
    return float(np.trapezoid(a - b, x)) / drop


def area_difference(log_lrs: Sequence[float], first: str, second: str,
                    min_drop: float = 0.02) -> Callable[[Data], float]:
    """Statistic: :func:`area_shift` of the two methods' profiles (seed means), first against second."""
    def statistic(data: Data) -> float:
        return area_shift(log_lrs, curve(data[first]), curve(data[second]), min_drop)
    return statistic


def retention(log_lrs: Sequence[float], key: str, from_log_lr: float) -> Callable[[Data], float]:
    """Statistic: mean accuracy over the grid points at or above ``from_log_lr`` minus the profile's maximum (how
    much of its best a method keeps where the rates are high; 0 = everything)."""
    x = np.asarray(log_lrs, dtype=float)
    upper = x >= from_log_lr - 1e-9
    if not upper.any():
        raise ValueError(f"no grid point at or above log10 lr {from_log_lr}")

    def statistic(data: Data) -> float:
        c = curve(data[key])
        return float(np.nanmean(c[upper]) - np.nanmax(c))
    return statistic


def retention_difference(log_lrs: Sequence[float], first: str, second: str,
                         from_log_lr: float) -> Callable[[Data], float]:
    a, b = retention(log_lrs, first, from_log_lr), retention(log_lrs, second, from_log_lr)
    return lambda data: a(data) - b(data)


def shifted(log_lrs: ArrayLike, values: ArrayLike, shift: float) -> np.ndarray:
    """A profile moved ``shift`` decades to the right, read on the same grid (straight lines between points; held
    flat beyond the ends): ``values`` at ``x - shift``. The planted effect of the power simulation."""
    x = np.asarray(log_lrs, dtype=float)
    v = np.asarray(values, dtype=float)
    return np.stack([np.interp(x - shift, x, row) for row in v.reshape(len(x), -1).T], axis=-1).reshape(v.shape)
