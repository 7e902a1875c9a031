"""How sure a comparison can be: intervals that cover, and the smallest effect a design could detect.

Pure functions (the standard library and scipy.stats).

- :func:`wilson_interval`: a single proportion (accuracy on n pairs). Wilson's score interval keeps its coverage
  near the bounds (train accuracy 0.94-1.00, small per-family counts), where a percentile bootstrap covers 64-81%.
- :func:`paired_mde`: the minimum detectable paired accuracy difference (two-sided ``alpha``, ``power``) on n
  pairs, from the share of discordant pairs (one method right, the other wrong). Under H0 the per-pair difference
  takes -1, 0, +1 with variance equal to the discordant share, so the SE of the mean difference is
  ``sqrt(discordant / n)`` and ``MDE = (z_{1-alpha/2} + z_power) * SE``.
- :func:`seed_mde`: the same when the estimate is a mean over k seeds: the SE combines the between-seed variance
  of the per-seed differences (over k seeds, t with k - 1 degrees of freedom) with the pair-level variance.
- :func:`paired_difference`: the estimate, interval, p-value and MDE of mean(a - b) for two methods scored on the
  same items over k paired seeds, from the two-way (seeds x items) crossed random-effects decomposition of the
  per-seed, per-item differences, with Satterthwaite's degrees of freedom (k - 1 dominate when seeds differ).
- :func:`from_interval`: the SE, p-value and MDE implied by a stored symmetric-in-SE 95% interval.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

_NORMAL = NormalDist()
#: the planning assumption for the seed-to-seed SD of a paired test difference (plan, and the primary endpoint's
#: projected MDE before its confirmation runs); the verdicts use the observed seed variance once there is one
SEED_SD = 0.03


def z(quantile: float) -> float:
    """The standard normal quantile."""
    return _NORMAL.inv_cdf(quantile)


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``successes / n``."""
    if n <= 0:
        raise ValueError("wilson_interval needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n]; got {successes} of {n}")
    q = z(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + q * q / n
    centre = (p + q * q / (2 * n)) / denominator
    half = q * math.sqrt(p * (1 - p) / n + q * q / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_mde(n_pairs: int, discordant: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest paired accuracy difference detectable with ``power`` at two-sided ``alpha`` on ``n_pairs``."""
    if n_pairs <= 0:
        raise ValueError("paired_mde needs n_pairs >= 1")
    if not 0 <= discordant <= 1:
        raise ValueError(f"discordant must be a share in [0, 1]; got {discordant}")
    return (z(1 - alpha / 2) + z(power)) * math.sqrt(discordant / n_pairs)


def t_quantile(quantile: float, df: float) -> float:
    """Student's t quantile (the normal one for infinite degrees of freedom)."""
    from scipy.stats import t

    if df <= 0:
        raise ValueError("t_quantile needs df > 0")
    return z(quantile) if math.isinf(df) else float(t.ppf(quantile, df))


def seed_mde(seed_sd: float, seeds: int, pair_se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """MDE of a mean over ``seeds`` paired differences: SE^2 = seed_sd^2 / seeds + pair_se^2, with the t quantile
    at the Welch-Satterthwaite degrees of freedom of the two parts (the pair part counted as large-sample)."""
    if seeds < 2:
        raise ValueError("seed_mde needs at least 2 seeds (one seed has no seed variance to estimate)")
    seed_part = seed_sd ** 2 / seeds
    se = math.sqrt(seed_part + pair_se ** 2)
    if se == 0:
        return 0.0
    df = (seed_part + pair_se ** 2) ** 2 / (seed_part ** 2 / (seeds - 1)) if seed_part > 0 else math.inf
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se


def difference_mde(a: Any, b: Any, alpha: float = 0.05, power: float = 0.8) -> float:
    """MDE of the paired difference mean(a - b) of two methods scored on the same items, ``[seeds, items]`` each
    (seed i of one paired with seed i of the other). One seed: :func:`paired_mde` from the observed spread of the
    per-item differences. Several: :func:`seed_mde` from the spread of the per-seed mean differences and the
    pair-level SE of the seed-averaged per-item differences."""
    import numpy as np

    diff = np.atleast_2d(np.asarray(a, dtype=float)) - np.atleast_2d(np.asarray(b, dtype=float))
    seeds, items = diff.shape
    if items < 2:
        return math.inf
    per_item = diff.mean(axis=0)
    pair_se = float(per_item.std(ddof=1)) / math.sqrt(items)
    if seeds < 2:
        return (z(1 - alpha / 2) + z(power)) * pair_se
    return seed_mde(float(diff.mean(axis=1).std(ddof=1)), seeds, pair_se, alpha, power)


def paired_difference(a: Any, b: Any, confidence: float = 0.95, alpha: float = 0.05,
                      power: float = 0.8) -> dict[str, float]:
    """mean(a - b) for ``[seeds, items]`` scores of two methods on the same items (seed i of one paired with seed i
    of the other): ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high``, ``p_value`` (two-sided t) and ``mde``.

    Model: ``d[s, i] = delta + item_i + seed_s + e_si`` with independent item, seed and residual effects (items
    and seeds both samples of their populations). The grand mean's variance is
    ``var_item / n + var_seed / k + var_e / (k n)``, and with the two-way mean squares (items ``MS_I`` on n - 1
    df, seeds ``MS_S`` on k - 1, residual ``MS_E`` on (n - 1)(k - 1)) its unbiased estimate is
    ``(MS_I + MS_S - MS_E) / (k n)``, floored at ``max(MS_I, MS_S) / (k n)`` (each of which never exceeds the true
    variance in expectation). Degrees of freedom: Satterthwaite's for that combination of mean squares. One seed:
    the per-item SE on n - 1 df. The MDE is ``(t_{1-alpha/2} + t_power) * se`` at the same df."""
    import numpy as np

    d = np.atleast_2d(np.asarray(a, dtype=float)) - np.atleast_2d(np.asarray(b, dtype=float))
    k, n = d.shape
    if n < 2:
        raise ValueError("paired_difference needs at least 2 items")
    estimate = float(d.mean())
    item_means, seed_means = d.mean(axis=0), d.mean(axis=1)
    ms_items = k * float(((item_means - estimate) ** 2).sum()) / (n - 1)
    if k == 1:
        terms = [(ms_items, 1.0, n - 1)]
    else:
        ms_seeds = n * float(((seed_means - estimate) ** 2).sum()) / (k - 1)
        resid = d - item_means[None, :] - seed_means[:, None] + estimate
        ms_error = float((resid ** 2).sum()) / ((n - 1) * (k - 1))
        combined = ms_items + ms_seeds - ms_error
        if combined >= max(ms_items, ms_seeds):
            terms = [(ms_items, 1.0, n - 1), (ms_seeds, 1.0, k - 1), (ms_error, -1.0, (n - 1) * (k - 1))]
        else:
            terms = [max((ms_items, 1.0, n - 1), (ms_seeds, 1.0, k - 1))]
    variance = sum(c * ms for ms, c, _ in terms) / (k * n)
    se = math.sqrt(max(variance, 0.0))
    denominator = sum((c * ms) ** 2 / df for ms, c, df in terms)
    df = (sum(c * ms for ms, c, _ in terms) ** 2 / denominator) if denominator > 0 else math.inf
    df = max(df, 1.0)
    half = t_quantile(0.5 + confidence / 2, df) * se
    if se == 0:
        p_value = 1.0 if estimate == 0 else 0.0
    else:
        from scipy.stats import t

        p_value = float(2 * t.sf(abs(estimate) / se, df))
    mde = (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se
    return {"estimate": estimate, "se": se, "df": df, "ci_low": estimate - half, "ci_high": estimate + half,
            "p_value": p_value, "mde": mde, "seeds": k, "items": n}


def from_interval(estimate: float, low: float, high: float, confidence: float = 0.95, alpha: float = 0.05,
                  power: float = 0.8) -> dict[str, float]:
    """SE, two-sided normal p-value and MDE implied by a stored interval ``[low, high]`` of ``estimate`` (a
    large-sample interval: SE = width / (2 z)). For verdicts read back from storage, where only the interval was
    kept (a trial's gain over the base model, its lm-eval change)."""
    q = z(0.5 + confidence / 2)
    se = (high - low) / (2 * q)
    if se <= 0:
        return {"se": 0.0, "p_value": 1.0 if estimate == 0 else 0.0, "mde": 0.0}
    p_value = 2 * (1 - _NORMAL.cdf(abs(estimate) / se))
    return {"se": se, "p_value": p_value, "mde": (z(1 - alpha / 2) + z(power)) * se}


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (strong control of the family-wise error rate),
    returned in the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def bootstrap_p_value(replicates: Any, estimate: float) -> float:
    """Two-sided p-value of H0: effect = 0 from bootstrap replicates of the estimate, by inverting the percentile
    interval: twice the smaller share of replicates on either side of 0 (never below 1 / (B + 1))."""
    import numpy as np

    stats = np.asarray(replicates, dtype=float)
    if stats.size == 0:
        raise ValueError("bootstrap_p_value needs replicates")
    below, above = float((stats <= 0).mean()), float((stats >= 0).mean())
    if estimate == 0:
        return 1.0
    return min(1.0, max(2 * min(below, above), 1 / (stats.size + 1)))
