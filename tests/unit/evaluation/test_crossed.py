"""The two-way (seed x pair) interval of ``clustered.crossed``: its three parts against hand-worked values, its
coverage by simulation in crossed random-effects worlds with and without seed effects, and a planted difference
recovered."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefstudy.evaluation.clustered import clustered, crossed


def _mean(d: dict[str, np.ndarray]) -> float:
    return float(np.mean(d["y"]))


def test_the_three_parts_by_hand() -> None:
    """Y [3 seeds, 4 pairs] = [[1,0,1,1], [0,0,1,0], [1,1,1,0]], statistic the grand mean (7/12).
    * jackknife over seeds: leave-one-out means 1/2, 3/4, 1/2 (mean 7/12); 2/3 * (1/144 + 4/144 + 1/144) = 1/36
      (= the variance of the seed means 3/4, 1/4, 3/4 over 3: (1/12) / 3);
    * pair bootstrap: pair means 2/3, 1/3, 1, 1/3 (mean 7/12), population variance 11/144, / 4 pairs = 11/576;
    * cell bootstrap: each seed's 4 values resampled alone; every seed's population variance is 3/16, so
      (1/9) * 3 * (3/16) / 4 = 1/64;
    * V = (1/36 - 1/64) + 11/576 = 7/576 + 11/576 = 1/32."""
    data = {"y": np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=float)}
    est = crossed(_mean, data, n_boot=40_000, seed=3)
    assert est.estimate == pytest.approx(7 / 12)
    assert est.seed_variance == pytest.approx(1 / 36)  # exact: no resampling
    assert est.pair_variance == pytest.approx(11 / 576, rel=0.03)
    assert est.cell_variance == pytest.approx(1 / 64, rel=0.03)
    assert est.se**2 == pytest.approx(1 / 32, rel=0.03)
    # the seed part (7/576) is below the pair part (11/576): Satterthwaite's df from 2 and 3 degrees of freedom
    v_s, v_p = 1 / 36 - 1 / 64, 11 / 576
    assert est.df == pytest.approx((v_s + v_p) ** 2 / (v_s**2 / 2 + v_p**2 / 3), rel=0.08)


def test_with_identical_pairs_it_is_the_t_interval_over_seeds() -> None:
    """Every pair alike: no pair or cell variance; the jackknife of the mean of seeds 1, 2, 4 is var / 3 = 7/9, df 2
    (as ``clustered`` gives for a linear statistic)."""
    data = {"y": np.repeat(np.array([[1.0], [2.0], [4.0]]), 16, axis=1)}
    est = crossed(_mean, data, n_boot=200)
    assert est.pair_variance == pytest.approx(0.0) and est.cell_variance == pytest.approx(0.0)
    assert est.se**2 == pytest.approx(7 / 9)
    assert est.df == pytest.approx(2.0)
    assert est.ci_high - est.estimate == pytest.approx(4.302653 * math.sqrt(7 / 9), rel=1e-5)
    linear = clustered(_mean, data, n_boot=200)
    assert est.se == pytest.approx(linear.se)


def test_one_seed_carries_the_pair_part_alone() -> None:
    data = {"y": np.random.default_rng(0).normal(size=(1, 50))}
    est = crossed(_mean, data, n_boot=400)
    assert math.isnan(est.seed_variance) and est.seeds == 0
    assert est.se**2 == pytest.approx(est.pair_variance)
    with pytest.raises(ValueError):
        crossed(_mean, {"y": np.zeros((3, 1))})


def _world(rng: np.random.Generator, seeds: int, pairs: int, seed_sd: float, effect: float) -> dict[str, np.ndarray]:
    """Two methods x 3 design points, [points, seeds, pairs]: a shared pair effect (SD 1, the same pair in every run),
    a run's offset per point and seed (SD ``seed_sd``), a cell's noise (SD 2); method "a" sits ``effect`` above "b"."""
    pair = rng.normal(0.0, 1.0, pairs)
    out = {}
    for name, shift in (("a", effect), ("b", 0.0)):
        out[name] = (shift + pair + rng.normal(0.0, seed_sd, (3, seeds, 1))
                     + rng.normal(0.0, 2.0, (3, seeds, pairs)))
    return out


def _difference(d: dict[str, np.ndarray]) -> float:
    return float(np.mean(d["a"]) - np.mean(d["b"]))


@pytest.mark.parametrize(("seed_sd", "low", "high"), [(0.0, 0.93, 0.995), (0.3, 0.90, 0.98)])
def test_coverage_and_a_planted_difference(seed_sd: float, low: float, high: float) -> None:
    """A planted difference of 0.4 lies inside the 95% interval in 300 simulated stages (5 seeds x 96 pairs) at a
    rate in [low, high]: about 95% where seed effects dominate, on the wide side where there are none (the seed part
    is kept non-negative). The estimates centre on the planted value, and the interval is narrower than the
    one-seed-at-a-time ``clustered`` interval where cells' noise dominates (what the crossed interval is for)."""
    rng = np.random.default_rng(11)
    truth, hits, estimates, ratio = 0.4, 0, [], []
    for _ in range(300):
        data = _world(rng, 5, 96, seed_sd, truth)
        est = crossed(_difference, data, n_boot=150, seed=int(rng.integers(1 << 30)))
        hits += est.ci_low <= truth <= est.ci_high
        estimates.append(est.estimate)
        if len(estimates) <= 30:
            ratio.append(est.se / clustered(_difference, data, n_boot=150, seed=1).se)
    assert low <= hits / 300 <= high, f"coverage {hits / 300:.3f}"
    assert np.mean(estimates) == pytest.approx(truth, abs=3 * np.std(estimates) / math.sqrt(300))
    if seed_sd == 0.0:
        assert np.median(ratio) < 0.95
