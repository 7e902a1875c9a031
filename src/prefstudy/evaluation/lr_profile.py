"""Claim (b), as numbers: does IPO tolerate higher learning rates than DPO if beta is tuned with it? Pure numpy over
the per-pair values the ``lr-profile`` stage stores; rules declared in ``docs/claims.md`` and in the spec's
``lr_profile`` section before any data.

A method's runs form an array ``[learning rates, beta slots, seeds, pairs]`` of per-pair wins (1 / 0.5 / 0) on the
stage's val (or test) pairs. Slot 0 is the method's tuned beta, run at every learning rate and every seed; slots 1..
are the re-tuning candidates, run at the highest learning rates with one seed (NaN elsewhere). The caller copies a
candidate's one seed into the other seed columns, so that "the statistic on seed s alone" is defined: the seed
component of the interval then carries the tuned-beta runs' seed variance only (docs/claims.md says so).

* **Accuracy of a (learning rate, slot)**: mean over pairs, then over seeds.
* **Profile**: at fixed beta, slot 0's accuracy per learning rate; with beta re-tuned, at each learning rate the
  slot with the highest val accuracy there (chosen on val, inside every bootstrap resample too).
* **Divergence**: a run that diverged (NaN loss or log-probs) scores 0 on every pair: degraded, never dropped.
* **Degradation learning rate** (:func:`degradation_log_lr`): from the profile's peak (the first maximum), walk up
  the grid to the first learning rate whose accuracy is more than ``delta`` below the peak; the degradation point
  is where the straight line between it and the grid point before crosses ``peak - delta``, in log10 learning rate.
  No such point: the top of the grid, flagged *censored* (the method did not degrade inside the grid).

**The threshold crossing** ``log10(IPO's degradation lr) - log10(DPO's)`` with beta re-tuned, in decades, with the
seed-and-pair clustered interval of :mod:`prefstudy.evaluation.clustered`: the primary of the 2026-12-02 run, a
secondary since 2026-12-06 (the primary is :func:`prefstudy.evaluation.profile_shift.alignment_shift`, chosen by
power; docs/claims.md). :func:`verdict` reads either: supported above 0, contradicted below, else inconclusive.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from prefstudy.evaluation.clustered import ClusteredEstimate, Data

#: the per-pair arrays an lr-profile run stores at its last step
KEYS = ("val", "test")


def degradation_log_lr(log_lrs: ArrayLike, values: ArrayLike, delta: float) -> tuple[float, bool]:
    """(log10 degradation learning rate, censored) of one profile (module docstring). NaN when a value up to the
    crossing is missing."""
    x, v = np.asarray(log_lrs, dtype=float), np.asarray(values, dtype=float)
    if len(x) != len(v) or len(x) < 2:
        raise ValueError(f"need matching learning rates and values (>= 2), got {len(x)} and {len(v)}")
    if not np.isfinite(v).all():
        return float("nan"), False
    peak = int(np.argmax(v))
    threshold = v[peak] - delta
    for j in range(peak + 1, len(v)):
        if v[j] < threshold:
            share = (v[j - 1] - threshold) / (v[j - 1] - v[j])
            return float(x[j - 1] + share * (x[j] - x[j - 1])), False
    return float(x[-1]), True


def accuracy(values: np.ndarray) -> np.ndarray:
    """[lrs, slots, seeds, pairs] -> [lrs, slots]: mean over pairs, then over seeds (NaN where not run)."""
    with warnings.catch_warnings():  # a slot that never ran at a learning rate: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        per_seed = np.nanmean(values, axis=-1)
        return np.nanmean(per_seed, axis=-1)


def chosen_slots(val_accuracy: np.ndarray, retune: bool) -> np.ndarray:
    """Per learning rate, the slot read: 0 at fixed beta; with ``retune`` the slot of highest val accuracy there
    (ties: the lower slot, so the tuned beta wins a tie)."""
    if not retune:
        return np.zeros(len(val_accuracy), dtype=int)
    filled = np.where(np.isfinite(val_accuracy), val_accuracy, -np.inf)
    return np.argmax(filled, axis=1)


def profile(values: np.ndarray, retune: bool, choose_on: np.ndarray | None = None) -> np.ndarray:
    """[lrs]: the profile of ``values`` ([lrs, slots, seeds, pairs]); the slots are chosen on ``choose_on`` (the
    val arrays) when given, else on ``values`` themselves."""
    acc = accuracy(values)
    slots = chosen_slots(accuracy(choose_on) if choose_on is not None else acc, retune)
    return acc[np.arange(len(acc)), slots]


def degradation_difference(log_lrs: Sequence[float], first: str, second: str, delta: float,
                           retune: bool) -> Callable[[Data], float]:
    """The statistic ``log10 deg lr(first) - log10 deg lr(second)`` on ``{method: [lrs, slots, seeds, pairs]}``."""
    def statistic(data: Data) -> float:
        a, _ = degradation_log_lr(log_lrs, profile(data[first], retune), delta)
        b, _ = degradation_log_lr(log_lrs, profile(data[second], retune), delta)
        return a - b
    return statistic


def one_degradation(log_lrs: Sequence[float], key: str, delta: float, retune: bool) -> Callable[[Data], float]:
    def statistic(data: Data) -> float:
        return degradation_log_lr(log_lrs, profile(data[key], retune), delta)[0]
    return statistic


def interpolate(log_lrs: ArrayLike, values: ArrayLike, x: float) -> float:
    """The profile's value at log10 learning rate ``x``, straight lines between grid points."""
    return float(np.interp(x, np.asarray(log_lrs, dtype=float), np.asarray(values, dtype=float)))


def verdict(diff: ClusteredEstimate) -> str:
    """'supported' (interval above 0) | 'contradicted' (below 0) | 'inconclusive'."""
    if not (math.isfinite(diff.ci_low) and math.isfinite(diff.ci_high)):
        return "inconclusive"
    if diff.ci_low > 0:
        return "supported"
    if diff.ci_high < 0:
        return "contradicted"
    return "inconclusive"


def grid(low: float, high: float, points: int) -> tuple[float, ...]:
    """``points`` learning rates log-spaced from ``low`` to ``high`` (4 significant digits)."""
    values = np.exp(np.linspace(math.log(low), math.log(high), points))
    return tuple(float(f"{v:.4g}") for v in values)


def retune_candidates(tuned: float, factor: float, low: float, high: float) -> tuple[float, ...]:
    """The re-tuning betas: ``tuned / factor`` and ``tuned * factor`` clipped to [low, high], without the tuned beta
    itself or repeats."""
    out: list[float] = []
    for value in (tuned / factor, tuned * factor):
        clipped = float(f"{min(max(value, low), high):.4g}")
        if not math.isclose(clipped, tuned, rel_tol=1e-3) and clipped not in out:
            out.append(clipped)
    return tuple(out)
