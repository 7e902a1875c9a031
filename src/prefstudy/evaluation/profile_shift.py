"""Claim (b) as a shift between two learning-rate profiles: how many decades further right does one method's decline
sit than the other's? A candidate for the lr-profile stage's primary (issue #32), chosen against the threshold
crossing of :mod:`prefstudy.evaluation.lr_profile` by the power simulation of :mod:`prefstudy.evaluation.profile_power`.

**Model.** Each method's val accuracy against ``x = log10(learning rate)`` is a four-parameter logistic that falls from
a plateau to a floor::

    acc_m(x) = floor + (plateau_m - floor) / (1 + exp(slope * (x - mid_m)))

The slope (per decade) and the floor are shared: both methods end at chance or below once the rate is far too high,
and a shared shape is what makes "the same decline, shifted" a single number. The plateau and the midpoint are each
method's. The **shift** is ``mid_first - mid_second`` in decades (IPO minus DPO: above 0, IPO's decline sits at
higher learning rates).

**Fit.** Least squares on the two profiles (seed means of the per-pair wins), bounded (slope 0.3-60 per decade, floor
and plateaus in [0, 1], midpoints within a decade of the grid), from a starting slope of 6 per decade; where that fit
is not identified, from 2 and 20 as well, keeping the best.

**Identified** (a rule declared with the estimand, applied to the fit on all data and to every resample alike): each
method's plateau lies at least ``min_drop`` above the floor (it declines inside the grid) and each midpoint lies
inside the grid. Otherwise the shift is NaN: a resample that is not identified drops out of the bootstrap, and a fit
on all data that is not identified makes the verdict "not identified" (the caller says so with the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from prefstudy.evaluation.clustered import Data
from prefstudy.evaluation.lr_profile import accuracy

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

    floor0 = float(min(np.nanmin(ys[0]), np.nanmin(ys[1])))
    lower = [SLOPE_BOUNDS[0], 0.0, 0.0, lo - 1.0, 0.0, lo - 1.0]
    upper = [SLOPE_BOUNDS[1], 1.0, 1.0, hi + 1.0, 1.0, hi + 1.0]
    best = None
    for slope0 in STARTS:  # the later starts only when the fit so far is not identified (most fits: one start)
        theta0 = np.clip([slope0, floor0, np.nanmax(ys[0]), _start_mid(x, ys[0]), np.nanmax(ys[1]),
                          _start_mid(x, ys[1])], np.add(lower, 1e-9), np.subtract(upper, 1e-9))
        result = least_squares(residuals, theta0, bounds=(lower, upper), method="trf")
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


def shift_difference(log_lrs: Sequence[float], first: str, second: str, min_drop: float) -> Callable[[Data], float]:
    """Statistic on ``{method: [lrs, seeds, pairs]}`` (the tuned beta's runs): the joint fit's shift, first minus
    second, in decades (NaN when not identified)."""
    def statistic(data: Data) -> float:
        return fit_joint(log_lrs, curve(data[first]), curve(data[second]), min_drop).shift
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
