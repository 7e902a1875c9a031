"""Unit tests for prefstudy.evaluation.metrics: expected values are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from prefstudy.evaluation.metrics import (
    bootstrap_mean_ci,
    chosen_log_ratio,
    clustered_paired_bootstrap_diff,
    excludes_zero,
    implicit_reward_accuracy,
    kl_proxy,
    paired_bootstrap_diff,
    pairwise_preference,
    per_token_preference_accuracy,
    preference_accuracy,
    preference_summary,
    reward_margin,
    stratified_se,
)

# Shared hand example (3 pairs):
#   policy_chosen   PC = [-3, -5, -2]
#   policy_rejected PR = [-4, -5, -1]
#   ref_chosen      RC = [-2, -6, -4]
#   ref_rejected    RR = [-5, -4, -1]
# r(y_w) = PC - RC = [-3+2, -5+6, -2+4] = [-1,  1, 2]
# r(y_l) = PR - RR = [-4+5, -5+4, -1+1] = [ 1, -1, 0]
PC = [-3.0, -5.0, -2.0]
PR = [-4.0, -5.0, -1.0]
RC = [-2.0, -6.0, -4.0]
RR = [-5.0, -4.0, -1.0]


# --------------------------------------------------------------------------- ranking
def test_pairwise_preference_with_tie():
    # -3 > -4 -> 1 ; -5 == -5 -> 0.5 ; -2 < -1 -> 0
    np.testing.assert_array_equal(pairwise_preference(PC, PR), [1.0, 0.5, 0.0])


def test_preference_accuracy():
    # (1 + 0.5 + 0) / 3 = 0.5
    assert preference_accuracy(PC, PR) == pytest.approx(0.5)


def test_preference_accuracy_all_ties():
    # every pair tied -> 0.5 each -> 0.5
    assert preference_accuracy([-1.0, -2.0], [-1.0, -2.0]) == 0.5


def test_preference_accuracy_ignores_reference():
    # own ranking only: 2 > 1 -> 1, 0 > -7 -> 1 -> 1.0 (no ref, no beta involved)
    assert preference_accuracy([2.0, 0.0], [1.0, -7.0]) == 1.0


def test_per_token_flips_verdict():
    # raw sums: -10 vs -6 -> 0 ; -4 vs -3 -> 0  => accuracy 0
    # per token: -10/5 = -2 vs -6/2 = -3 -> 1 ; -4/2 = -2 vs -3/1 = -3 -> 1 => 1
    chosen, rejected = [-10.0, -4.0], [-6.0, -3.0]
    assert preference_accuracy(chosen, rejected) == 0.0
    assert per_token_preference_accuracy(chosen, rejected, [5, 2], [2, 1]) == 1.0


def test_per_token_tie():
    # -6/3 = -2 vs -4/2 = -2 -> tie 0.5 ; -1/1 = -1 vs -3/1 = -3 -> 1 => 1.5/2 = 0.75
    assert per_token_preference_accuracy([-6.0, -1.0], [-4.0, -3.0], [3, 1], [2, 1]) == 0.75


# --------------------------------------------------------------------------- implicit reward
def test_implicit_reward_accuracy():
    # r_w = [-1, 1, 2], r_l = [1, -1, 0]: -1>1 no 0 ; 1>-1 yes 1 ; 2>0 yes 1 => 2/3
    assert implicit_reward_accuracy(PC, PR, RC, RR) == pytest.approx(2 / 3)


def test_implicit_reward_accuracy_tie():
    # r_w = -1 - (-1) = 0, r_l = -2 - (-2) = 0 -> tie 0.5
    # r_w = -1 - (-3) = 2, r_l = -2 - (-4) = 2 -> tie 0.5  => 0.5
    assert implicit_reward_accuracy([-1.0, -1.0], [-2.0, -2.0], [-1.0, -3.0], [-2.0, -4.0]) == 0.5


def test_reward_margin():
    # r_w - r_l = [-1-1, 1+1, 2-0] = [-2, 2, 2] -> mean 2/3 (nats, no beta)
    assert reward_margin(PC, PR, RC, RR) == pytest.approx(2 / 3)


def test_chosen_log_ratio_and_displacement():
    # r_w = [-1, 1, 2] -> mean 2/3
    assert chosen_log_ratio(PC, RC) == pytest.approx(2 / 3)
    # policy lowers both chosen answers: (-5+4 + -3+1)/2 = (-1 - 2)/2 = -1.5
    assert chosen_log_ratio([-5.0, -3.0], [-4.0, -1.0]) == pytest.approx(-1.5)


def test_kl_proxy_with_mask():
    pol = [[-1.0, -2.0, -3.0], [-0.5, -1.0, 99.0]]
    ref = [[-1.5, -2.0, -1.0], [-0.5, -2.0, 0.0]]
    mask = [[1, 1, 1], [1, 1, 0]]
    # masked diffs: 0.5, 0, -2, 0, 1 ; squares 0.25 + 0 + 4 + 0 + 1 = 5.25
    # 0.5 * 5.25 = 2.625 over 5 tokens -> 0.525 (the 99 vs 0 padding is ignored)
    assert kl_proxy(pol, ref, mask) == pytest.approx(0.525)


def test_kl_proxy_zero_iff_unchanged_and_nan_padding_ignored():
    pol = [[-1.0, np.nan]]
    assert kl_proxy(pol, [[-1.0, 3.0]], [[1, 0]]) == 0.0
    # single token diff 2 -> 0.5 * 4 = 2
    assert kl_proxy([[1.0]], [[-1.0]], [[1]]) == 2.0


def test_preference_summary():
    # accuracy (1 + .5 + 0)/3 = .5 (see above)
    # per token with chosen_tokens [1,1,4], rejected [1,1,1]:
    #   -3 vs -4 -> 1 ; -5 vs -5 -> .5 ; -2/4 = -0.5 vs -1 -> 1  => 2.5/3 = 5/6
    # implicit 2/3, margin 2/3, chosen ratio 2/3, rejected ratio (1 - 1 + 0)/3 = 0
    s = preference_summary(PC, PR, RC, RR, [1, 1, 4], [1, 1, 1])
    assert set(s) == {
        "accuracy",
        "accuracy_per_token",
        "implicit_accuracy",
        "margin",
        "chosen_log_ratio",
        "rejected_log_ratio",
        "n",
    }
    assert s["accuracy"] == pytest.approx(0.5)
    assert s["accuracy_per_token"] == pytest.approx(5 / 6)
    assert s["implicit_accuracy"] == pytest.approx(2 / 3)
    assert s["margin"] == pytest.approx(2 / 3)
    assert s["chosen_log_ratio"] == pytest.approx(2 / 3)
    assert s["rejected_log_ratio"] == pytest.approx(0.0)
    assert s["n"] == 3.0
    # margin == chosen ratio - rejected ratio
    assert s["margin"] == pytest.approx(s["chosen_log_ratio"] - s["rejected_log_ratio"])


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_constant_is_degenerate():
    # every resample of fifty 0.25s has mean 0.25 exactly
    assert bootstrap_mean_ci([0.25] * 50) == (0.25, 0.25, 0.25)


def test_bootstrap_two_point_known_answer():
    # values [0, 1]: resampled mean is 0 (p=1/4), 0.5 (p=1/2), 1 (p=1/4);
    # 2.5% / 97.5% quantiles of 4000 draws are therefore 0 and 1; mean 0.5
    assert bootstrap_mean_ci([0.0, 1.0], n_boot=4000) == (0.5, 0.0, 1.0)


def test_bootstrap_interval_contains_mean_and_is_deterministic():
    v = np.random.default_rng(1).normal(size=100)
    m, lo, hi = bootstrap_mean_ci(v, seed=7)
    assert lo < m < hi
    assert bootstrap_mean_ci(v, seed=7) == (m, lo, hi)
    assert bootstrap_mean_ci(v, seed=8) != (m, lo, hi)
    # higher confidence -> wider interval
    _, lo99, hi99 = bootstrap_mean_ci(v, confidence=0.99, seed=7)
    assert lo99 <= lo and hi99 >= hi


def test_bootstrap_coverage_sanity():
    # 200 repetitions of n=200 N(1, 1) draws: the 95% CI should contain 1.0
    # in roughly 90-99% of them.
    rng = np.random.default_rng(123)
    hits = 0
    for rep in range(200):
        _, lo, hi = bootstrap_mean_ci(rng.normal(1.0, 1.0, size=200), n_boot=500, seed=rep)
        hits += lo <= 1.0 <= hi
    assert 180 <= hits <= 198


def test_paired_bootstrap_clear_positive_excludes_zero():
    rng = np.random.default_rng(2)
    b = rng.normal(size=100)
    a = b + 5.0 + rng.normal(scale=0.1, size=100)
    m, lo, hi = paired_bootstrap_diff(a, b)
    assert 4.9 < m < 5.1
    assert lo > 0 and excludes_zero(lo, hi)


def test_paired_bootstrap_symmetric_zero_does_not_exclude_zero():
    # differences [-1, +1] * 50 -> mean exactly 0, interval straddles 0
    d = np.array([-1.0, 1.0] * 50)
    m, lo, hi = paired_bootstrap_diff(d + 3.0, np.full(100, 3.0))
    assert m == 0.0
    assert lo < 0 < hi and not excludes_zero(lo, hi)


def test_paired_equals_bootstrap_of_differences():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert paired_bootstrap_diff(a, b, seed=4) == bootstrap_mean_ci(a - b, seed=4)


def test_clustered_constant_and_two_point():
    # constant diff 0.5 on a 3x4 grid -> (0.5, 0.5, 0.5)
    assert clustered_paired_bootstrap_diff(np.full((3, 4), 1.5), np.ones((3, 4))) == (
        0.5,
        0.5,
        0.5,
    )
    # 2 seeds x 1 item, d = [[0], [1]]: same as the two-point case -> (0.5, 0, 1)
    out = clustered_paired_bootstrap_diff([[0.0], [1.0]], [[0.0], [0.0]], n_boot=4000)
    assert out == (0.5, 0.0, 1.0)


def test_clustered_single_seed_two_items():
    # 1 seed x 2 items, d = [[0, 1]]: item resampling gives same law as above
    out = clustered_paired_bootstrap_diff([[0.0, 1.0]], [[0.0, 0.0]], n_boot=4000)
    assert out == (0.5, 0.0, 1.0)


def test_clustered_widens_with_seed_variance():
    rng = np.random.default_rng(5)
    n_seeds, n_items = 4, 200
    seed_effect = np.array([-1.0, 1.5, -0.5, 0.4])[:, None]
    b = rng.normal(size=(n_seeds, n_items))
    a = b + 0.3 + seed_effect + rng.normal(scale=0.2, size=(n_seeds, n_items))
    m, lo, hi = clustered_paired_bootstrap_diff(a, b, seed=1)
    _, plo, phi = paired_bootstrap_diff(a.ravel(), b.ravel(), seed=1)
    assert lo < m < hi
    assert (hi - lo) > 3 * (phi - plo)  # pooled CI ignores seed variance
    assert not excludes_zero(lo, hi) and excludes_zero(plo, phi)
    assert clustered_paired_bootstrap_diff(a, b, seed=1) == (m, lo, hi)


def test_clustered_clear_positive_excludes_zero():
    rng = np.random.default_rng(6)
    b = rng.normal(size=(3, 50))
    a = b + 2.0 + rng.normal(scale=0.1, size=(3, 50))
    _, lo, hi = clustered_paired_bootstrap_diff(a, b)
    assert lo > 0 and excludes_zero(lo, hi)


def test_excludes_zero():
    assert excludes_zero(0.1, 0.5)
    assert excludes_zero(-0.5, -0.1)
    assert not excludes_zero(-0.1, 0.5)
    assert not excludes_zero(0.0, 0.5)  # zero on the boundary is "contained"
    with pytest.raises(ValueError):
        excludes_zero(1.0, -1.0)
    with pytest.raises(ValueError):
        excludes_zero(float("nan"), 1.0)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "call",
    [
        lambda: preference_accuracy([1.0, 2.0], [1.0]),
        lambda: preference_accuracy([], []),
        lambda: preference_accuracy([1.0, np.nan], [0.0, 0.0]),
        lambda: preference_accuracy([[1.0]], [[0.0]]),
        lambda: pairwise_preference([1.0], [0.0, 1.0]),
        lambda: per_token_preference_accuracy([-1.0], [-1.0], [0], [1]),
        lambda: per_token_preference_accuracy([-1.0], [-1.0], [1, 2], [1]),
        lambda: implicit_reward_accuracy([1.0], [1.0], [1.0], [1.0, 2.0]),
        lambda: reward_margin([1.0], [np.nan], [1.0], [1.0]),
        lambda: chosen_log_ratio([], []),
        lambda: kl_proxy([[1.0, 2.0]], [[1.0]], [[1, 1]]),
        lambda: kl_proxy([[1.0]], [[1.0]], [[2]]),
        lambda: kl_proxy([[1.0]], [[1.0]], [[0]]),
        lambda: kl_proxy([1.0], [1.0], [1]),
        lambda: kl_proxy([[np.nan]], [[1.0]], [[1]]),
        lambda: preference_summary([1.0], [1.0], [1.0], [1.0], [1], [1, 1]),
        lambda: bootstrap_mean_ci([]),
        lambda: bootstrap_mean_ci([1.0, np.nan]),
        lambda: bootstrap_mean_ci([1.0], confidence=1.0),
        lambda: bootstrap_mean_ci([1.0], n_boot=0),
        lambda: paired_bootstrap_diff([1.0, 2.0], [1.0]),
        lambda: paired_bootstrap_diff([], []),
        lambda: clustered_paired_bootstrap_diff(np.ones((2, 3)), np.ones((2, 4))),
        lambda: clustered_paired_bootstrap_diff([1.0, 2.0], [1.0, 2.0]),
        lambda: clustered_paired_bootstrap_diff(np.ones((0, 3)), np.ones((0, 3))),
    ],
)
def test_invalid_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_stratified_se_worked_by_hand():
    # block 1: [0, 1] has var 0.5 (ddof=1); block 2: [2, 2, 2] var 0; n = 5.
    # SE = sqrt(2 * 0.5 + 3 * 0) / 5 = 0.2.  One block: sd / sqrt(n) = sqrt(0.7) / sqrt(5).
    v = [0.0, 1.0, 2.0, 2.0, 2.0]
    assert stratified_se(v, [2, 3]) == pytest.approx(0.2)
    assert stratified_se(v) == pytest.approx(np.std(v, ddof=1) / np.sqrt(5))
    assert stratified_se([1.0, 2.0, 3.0], [1, 2]) == pytest.approx(np.sqrt(2 * 0.5) / 3)  # a 1-item block adds 0


def test_stratified_bootstrap_keeps_each_block_whole():
    # Two constant blocks of different values: resampling within blocks never changes the mean, so the interval
    # is a point; pooled resampling mixes the blocks and gives a wide interval.
    v = [0.0] * 10 + [1.0] * 30
    assert bootstrap_mean_ci(v, strata=[10, 30]) == (0.75, 0.75, 0.75)
    _, lo, hi = bootstrap_mean_ci(v)
    assert hi - lo > 0.1
    # the within-block spread alone: block 2 is {0, 1} resampled, block 1 constant 5
    _, lo, hi = bootstrap_mean_ci([5.0] * 4 + [0.0, 1.0], n_boot=4000, strata=[4, 2])
    assert (lo, hi) == (pytest.approx((20 + 0) / 6), pytest.approx((20 + 2) / 6))


def test_stratified_clustered_bootstrap_and_bad_strata():
    a = np.array([[0.0] * 5 + [1.0] * 5])
    b = np.zeros((1, 10))
    assert clustered_paired_bootstrap_diff(a, b, strata=[5, 5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="strata"):
        bootstrap_mean_ci([1.0, 2.0, 3.0], strata=[1, 1])
    with pytest.raises(ValueError, match="strata"):
        stratified_se([1.0, 2.0], strata=[0, 2])


def test_the_console_line_names_the_studys_metric_and_the_summed_one_only_where_it_differs() -> None:
    from prefstudy.evaluation.heldout import metric_line

    values = {"val": {"accuracy": 0.29, "accuracy_per_token": 0.812}, "train": {"accuracy": 0.0,
                                                                              "accuracy_per_token": 1.0}}
    assert metric_line(values, "accuracy_per_token", ("val", "train", "test")) == (
        "val acc/token 0.812 train acc/token 1.000 (summed acc: val 0.290, train 0.000)")
    assert metric_line(values, "accuracy", ("val", "train")) == "val acc 0.290 train acc 0.000"
    same = {"val": {"accuracy": 0.5, "accuracy_per_token": 0.5}}
    assert metric_line(same, "accuracy_per_token", ("val",)) == "val acc/token 0.500"  # nothing to add
