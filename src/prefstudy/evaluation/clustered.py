"""Intervals for statistics of a fixed design scored on fixed pairs: clustered over training seeds AND pairs.

A stage such as ``drift`` trains every design point (a method and a beta) once per seed and scores every run on the
same held-out pairs. A statistic computed from all of it (a slope across betas, a difference between methods) is
uncertain for two reasons: other seeds would train other adapters, and other pairs would score differently. Data
come as arrays whose last two axes are ``[seeds, pairs]`` (leading axes are the design: betas, eval steps); seed k
of one array is the same seed index as seed k of every other, and pair j the same pair.

:func:`clustered` estimates the variance of a statistic as the sum of

* the **seed component** ``s^2 / S``: the variance of the statistic computed on each seed alone (all pairs), over
  the S seeds. The pairs are the same for every seed, so this measures what training randomness adds;
* the **pair component**: the variance of the statistic (all seeds) over a bootstrap of the pairs, the same
  resampled pairs for every run (pairs are clustered across runs).

The interval is ``estimate ± t(df) * se`` with Welch-Satterthwaite degrees of freedom
``df = V^2 / (V_seed^2 / (S - 1) + V_pair^2 / (N - 1))``, except where the seed component is at least the pair
component: there df = S - 1, the seeds' own degrees of freedom. Satterthwaite's df leans on a seed variance
estimated from 2 or 3 values and under-covers there (0.87-0.89 of 200 simulated stages with a planted slope
difference, 2 and 3 seeds); with S - 1 the same simulations cover 0.92-0.96 (tests). With 2 seeds that is t(1) =
12.7: two seeds say little about seed variance, and the interval says so. The seed-by-pair interaction is counted in
both components, so the interval errs on the wide side.

:func:`crossed` is the two-way (seed x pair) interval without that double count, for statistics far from linear
such as claim (b)'s alignment shift (an argmin), where "the statistic on one seed alone" is a much noisier
estimator than the statistic on all seeds and the seed component above overstates the variance (the 2026-12-06
simulation: the clustered interval's SE 1.4x the estimate's SD, coverage 0.97-1.00). It is the multiway-clustering
variance of Cameron, Gelbach and Miller (2011, J. Bus. Econ. Stat. 29:238), each part computed by resampling the
statistic itself rather than through a linearisation:

* ``V_seed``: the delete-one-seed jackknife, ``(S - 1) / S * sum_s (theta_(-s) - mean)^2``; for a linear statistic
  it equals the seed component above, for a nonlinear one it perturbs the statistic by one seed in S, not S - 1 in S;
* ``V_pair``: the pair bootstrap above (the same resampled pairs for every run);
* ``V_cell``: a bootstrap of the (seed, pair) cells: each seed's runs get their own resampled pairs. It measures
  what varies with a cell alone (a run's noise on a pair), which both ``V_seed`` and ``V_pair`` contain;

and ``V = max(V_seed - V_cell, 0) + V_pair``: the seed part beyond the cells' noise (kept non-negative: a negative
estimate means no seed effect is visible) plus the pair part, which carries the cells' noise once. Degrees of
freedom as above, the seed part standing for the seeds' ``S - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

Data = dict[str, np.ndarray]
Statistic = Callable[[Data], float]


@dataclass
class ClusteredEstimate:
    estimate: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, against 0
    mde: float  # smallest |effect| detected with 80% power at two-sided 5% with this se and df
    seed_variance: float
    pair_variance: float
    seeds: int
    pairs: int
    cell_variance: float = float("nan")  # crossed(): the (seed, pair) cells' part, subtracted once

    @property
    def seed_part(self) -> float:
        """The seed variance the interval carries: ``seed_variance`` (``clustered``), or beyond the cells' part
        (``crossed``); 0 where no seed part could be estimated."""
        if not math.isfinite(self.seed_variance):
            return 0.0
        if math.isfinite(self.cell_variance):
            return max(self.seed_variance - self.cell_variance, 0.0)
        return self.seed_variance

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def satterthwaite_df(v_seed: float, seeds: int, v_pair: float, pairs: int) -> float:
    """Welch-Satterthwaite degrees of freedom of ``V_seed + V_pair`` (module docstring)."""
    total = v_seed + v_pair
    denominator = (v_seed**2 / (seeds - 1) if seeds > 1 else 0.0) + (v_pair**2 / (pairs - 1) if pairs > 1 else 0.0)
    return total**2 / denominator if denominator > 0 else float("inf")


def t_interval(estimate: float, se: float, df: float, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(ci_low, ci_high, two-sided p against 0, MDE at 80% power) of a t statistic."""
    if not (math.isfinite(estimate) and math.isfinite(se)) or se <= 0:
        nan = float("nan")
        return nan, nan, nan, nan
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    p = float(2 * stats.t.sf(abs(estimate) / se, df))
    mde = (q + float(stats.t.ppf(0.80, df))) * se
    return estimate - q * se, estimate + q * se, p, mde


def _seeds_and_pairs(data: Data) -> tuple[int, int]:
    """(S, N) of ``data``'s ``[seeds, pairs]`` last axes; a clear error for no data, mismatched axes or < 2 pairs."""
    if not data:
        raise ValueError("no data")
    shapes = {(a.shape[-2], a.shape[-1]) for a in data.values()}
    if len({s for s, _ in shapes}) != 1 or len({n for _, n in shapes}) != 1:
        raise ValueError(f"every array needs the same [seeds, pairs] last axes, got {sorted(shapes)}")
    seeds, pairs = shapes.pop()
    if pairs < 2:
        raise ValueError("need at least 2 pairs")
    return seeds, pairs


def _variance(values: np.ndarray) -> float:
    """The sample variance of the finite values; NaN with fewer than 2."""
    values = values[np.isfinite(values)]
    return float(np.var(values, ddof=1)) if len(values) >= 2 else float("nan")


def _t_of_parts(estimate: float, seed_part: float, seeds: int, v_pair: float, pairs: int,
                confidence: float) -> tuple[float, float, float, float, float, float]:
    """(se, df, ci_low, ci_high, p, mde) of ``seed_part + v_pair``: Satterthwaite's df, or the seeds' own S - 1 where
    the seed part dominates (module docstring); ``seeds`` 1 = no seed part."""
    se = math.sqrt(seed_part + v_pair) if math.isfinite(v_pair) else float("nan")
    df = satterthwaite_df(seed_part, seeds, v_pair, pairs) if math.isfinite(se) else float("nan")
    if seeds >= 2 and seed_part >= v_pair:  # seed-dominated: Satterthwaite under-covers
        df = float(seeds - 1)
    return (se, df, *t_interval(estimate, se, df, confidence))


def clustered(statistic: Statistic, data: Data, n_boot: int = 1000, seed: int = 0,
              confidence: float = 0.95) -> ClusteredEstimate:
    """The statistic on all of ``data`` with its seed-and-pair clustered t interval (module docstring). Seeds whose
    runs are missing may be NaN rows; a seed for which the statistic is NaN does not count toward the seed
    component."""
    seeds, pairs = _seeds_and_pairs(data)
    estimate = float(statistic(data))
    per_seed = np.array([statistic({k: v[..., [s], :] for k, v in data.items()}) for s in range(seeds)], dtype=float)
    per_seed = per_seed[np.isfinite(per_seed)]
    s_eff = len(per_seed)
    v_seed = float(np.var(per_seed, ddof=1)) / s_eff if s_eff >= 2 else float("nan")
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, pairs, pairs)
        boots[b] = statistic({k: v[..., idx] for k, v in data.items()})
    v_pair = _variance(boots)
    if not math.isfinite(v_seed):  # one seed: the interval cannot carry seed variance (the caller says so)
        v_seed_used, s_used = 0.0, 1
    else:
        v_seed_used, s_used = v_seed, s_eff
    se, df, low, high, p, mde = _t_of_parts(estimate, v_seed_used, s_used, v_pair, pairs, confidence)
    return ClusteredEstimate(estimate, se, df, low, high, p, mde, v_seed, v_pair, s_eff, pairs)


def crossed(statistic: Statistic, data: Data, n_boot: int = 1000, seed: int = 0,
            confidence: float = 0.95) -> ClusteredEstimate:
    """The statistic on all of ``data`` with the two-way seed x pair interval of the module docstring (jackknife over
    seeds, bootstraps over pairs and over cells). Needs >= 2 seeds with a finite leave-one-out statistic for a seed
    part; with fewer, the interval carries the pair part alone (the caller says so). ``seed_variance`` is ``V_seed``
    before the cells' part is taken off, ``cell_variance`` that part."""
    seeds, pairs = _seeds_and_pairs(data)
    estimate = float(statistic(data))
    left_out = np.array([statistic({k: np.delete(v, s, axis=-2) for k, v in data.items()}) for s in range(seeds)]
                        if seeds >= 2 else [], dtype=float)
    left_out = left_out[np.isfinite(left_out)]
    s_eff = len(left_out)
    v_seed = (s_eff - 1) / s_eff * float(((left_out - left_out.mean()) ** 2).sum()) if s_eff >= 2 else float("nan")
    rng = np.random.default_rng(seed)
    by_pair, by_cell = np.empty(n_boot), np.empty(n_boot)
    rows = np.arange(seeds)[:, None]
    for b in range(n_boot):
        idx = rng.integers(0, pairs, pairs)
        by_pair[b] = statistic({k: v[..., idx] for k, v in data.items()})
        cells = rng.integers(0, pairs, (seeds, pairs))  # each seed its own resampled pairs
        by_cell[b] = statistic({k: v[..., rows, cells] for k, v in data.items()})
    v_pair, v_cell = _variance(by_pair), _variance(by_cell)
    if math.isfinite(v_seed) and math.isfinite(v_cell):
        seed_part, s_used = max(v_seed - v_cell, 0.0), s_eff
    else:  # one seed: no seed part (the caller says so)
        seed_part, s_used = 0.0, 1
    se, df, low, high, p, mde = _t_of_parts(estimate, seed_part, s_used, v_pair, pairs, confidence)
    return ClusteredEstimate(estimate, se, df, low, high, p, mde, v_seed, v_pair, s_eff, pairs, v_cell)


def tost(estimate: float, se: float, df: float, margin: float, alpha: float = 0.05) -> tuple[bool, float]:
    """Two one-sided tests of ``|effect| < margin``: (equivalent at ``alpha``, the larger of the two one-sided
    p-values). Equivalent exactly when the (1 - 2 alpha) t interval lies inside (-margin, +margin)."""
    if not (math.isfinite(estimate) and math.isfinite(se)) or se <= 0 or margin <= 0:
        return False, float("nan")
    p_low = float(stats.t.sf((estimate + margin) / se, df))  # H0: effect <= -margin
    p_high = float(stats.t.cdf((estimate - margin) / se, df))  # H0: effect >= +margin
    p = max(p_low, p_high)
    return p < alpha, p


def ols_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y on x (NaN entries of y left out); NaN with fewer than 2 distinct points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan")
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc**2).sum())
