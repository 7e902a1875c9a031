"""Claim (b)'s rules: the degradation learning rate's interpolation, censoring and divergence rules against
hand-worked values, beta re-tuning chosen on val, and a planted degradation learning rate recovered inside its
clustered interval in >= 90% of simulated stages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefstudy.evaluation import lr_profile as lp
from prefstudy.evaluation.clustered import clustered

X = [-4.0, -3.5, -3.0, -2.5, -2.0, -1.5]


def test_degradation_interpolates_in_log_lr_by_hand() -> None:
    # peak 0.8 at -3.0, threshold 0.75; -2.5 (0.78) is inside, -2.0 (0.70) is not: the line from 0.78 to 0.70
    # crosses 0.75 after (0.78 - 0.75) / 0.08 = 0.375 of the 0.5-decade step: -2.5 + 0.1875 = -2.3125
    x, censored = lp.degradation_log_lr(X, [0.6, 0.7, 0.8, 0.78, 0.70, 0.5], 0.05)
    assert x == pytest.approx(-2.3125) and not censored
    # a recovery after the drop does not count: the first drop below the threshold decides
    assert lp.degradation_log_lr(X, [0.6, 0.7, 0.8, 0.70, 0.80, 0.8], 0.05)[0] == pytest.approx(-3.0 + 0.5 * 0.5)


def test_the_first_maximum_is_the_peak_by_hand() -> None:
    # peak 0.8 at -4.0 (first of two), threshold 0.75; -3.0 (0.7): (0.8 - 0.75) / 0.1 = 0.5 of the step from -3.5
    assert lp.degradation_log_lr(X, [0.8, 0.8, 0.7, 0.6, 0.5, 0.5], 0.05)[0] == pytest.approx(-3.25)


def test_no_drop_inside_the_grid_is_censored_at_its_top() -> None:
    assert lp.degradation_log_lr(X, [0.5, 0.6, 0.7, 0.72, 0.74, 0.76], 0.05) == (-1.5, True)
    assert lp.degradation_log_lr(X, [0.5, 0.6, 0.7, 0.8, 0.78, 0.76], 0.05) == (-1.5, True)  # -1.5 is inside


def test_a_diverged_run_scores_zero_and_counts_as_degraded_by_hand() -> None:
    # divergence at -2.0 scores 0 on every pair: (0.79 - 0.75) / (0.79 - 0) = 0.050633 of the step from -2.5
    x, censored = lp.degradation_log_lr(X, [0.6, 0.7, 0.8, 0.79, 0.0, 0.0], 0.05)
    assert x == pytest.approx(-2.5 + 0.5 * 0.04 / 0.79) and not censored
    assert math.isnan(lp.degradation_log_lr(X, [0.6, 0.7, np.nan, 0.79, 0.0, 0.0], 0.05)[0])  # missing: undefined


def test_retuning_picks_the_best_val_slot_per_learning_rate() -> None:
    # [lrs=2, slots=3, seeds=1, pairs=2]: at lr 0 only slot 0 ran; at lr 1 slot 2 wins on val (0.75)
    val = np.full((2, 3, 1, 2), np.nan)
    val[0, 0, 0] = [1.0, 0.0]
    val[1, 0, 0] = [0.5, 0.5]
    val[1, 1, 0] = [0.0, 0.5]
    val[1, 2, 0] = [1.0, 0.5]
    test = np.full_like(val, np.nan)
    test[:, :, 0] = [[0.2, 0.2], [0.9, 0.9], [0.1, 0.1]]
    assert list(lp.chosen_slots(lp.accuracy(val), True)) == [0, 2]
    assert lp.profile(val, True) == pytest.approx([0.5, 0.75])
    assert lp.profile(val, False) == pytest.approx([0.5, 0.5])
    assert lp.profile(test, True, choose_on=val) == pytest.approx([0.2, 0.1])  # test read where val chose


def test_grid_and_candidates_by_hand() -> None:
    assert lp.grid(1e-4, 1e-2, 3) == (1e-4, 1e-3, 1e-2)
    assert lp.retune_candidates(0.1, 3.0, 0.02, 0.5) == (0.03333, 0.3)
    assert lp.retune_candidates(0.5, 3.0, 0.2, 2.0) == (0.2, 1.5)  # 0.1667 clipped up to the range's low
    assert lp.retune_candidates(2.0, 3.0, 0.2, 2.0) == (0.6667,)  # 6 clipped to 2.0 = the tuned beta itself


def test_verdict_rules() -> None:
    def est(low: float, high: float) -> object:
        return type("E", (), {"ci_low": low, "ci_high": high})()

    assert lp.verdict(est(0.1, 0.5)) == "supported"
    assert lp.verdict(est(-0.5, -0.1)) == "contradicted"
    assert lp.verdict(est(-0.1, 0.5)) == "inconclusive"
    assert lp.verdict(est(float("nan"), 0.5)) == "inconclusive"


# Planted profiles (val accuracy per learning rate), a clear peak, straight lines between grid points:
# A: peak 0.85 at -3.0, threshold 0.80; 0.84 at -2.5, 0.64 at -2.0: (0.84 - 0.80) / 0.20 = 0.2 -> -2.4
# B: peak 0.84 at -3.5, threshold 0.79; 0.82 at -3.0, 0.62 at -2.5: (0.82 - 0.79) / 0.20 = 0.15 -> -2.925
TRUE_A = np.array([0.70, 0.78, 0.85, 0.84, 0.64, 0.50])
TRUE_B = np.array([0.72, 0.84, 0.82, 0.62, 0.52, 0.50])


def _stage(rng: np.random.Generator, truth: np.ndarray, seeds: int, pairs: int, seed_sd: float) -> np.ndarray:
    """[lrs, 1 slot, seeds, pairs] of 0/1 wins: each (lr, seed) run's accuracy is the truth plus seed noise."""
    p = np.clip(truth[:, None] + rng.normal(0, seed_sd, (len(truth), seeds)), 0.01, 0.99)
    return (rng.random((len(truth), seeds, pairs)) < p[..., None]).astype(float)[:, None]


def test_the_planted_profiles_by_hand() -> None:
    assert lp.degradation_log_lr(X, TRUE_A, 0.05)[0] == pytest.approx(-2.4)
    assert lp.degradation_log_lr(X, TRUE_B, 0.05)[0] == pytest.approx(-2.925)


@pytest.mark.parametrize("seeds", [2, 3])
def test_a_planted_degradation_difference_is_inside_its_interval_in_90_percent_of_stages(seeds: int) -> None:
    planted = -2.4 - -2.925
    rng = np.random.default_rng(7 + seeds)
    statistic = lp.degradation_difference(X, "a", "b", 0.05, True)
    covered, estimates = 0, []
    sims = 120
    for i in range(sims):
        data = {"a": _stage(rng, TRUE_A, seeds, 400, 0.01), "b": _stage(rng, TRUE_B, seeds, 400, 0.01)}
        est = clustered(statistic, data, n_boot=150, seed=i)
        covered += est.ci_low <= planted <= est.ci_high
        estimates.append(est.estimate)
    assert covered / sims >= 0.90, covered / sims
    assert abs(np.mean(estimates) - planted) < 0.1  # recovered, not only covered by a wide interval
