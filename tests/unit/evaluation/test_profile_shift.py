"""The joint logistic fit of two learning-rate profiles: exact recovery on noise-free curves, the identification
rule, a planted shift recovered from per-pair wins, and the retention statistic by hand."""

from __future__ import annotations

import numpy as np
import pytest

from prefstudy.evaluation import profile_shift as ps
from prefstudy.evaluation.clustered import clustered

GRID = np.log10([5e-5, 1.4e-4, 3.8e-4, 8e-4, 1.2e-3, 1.8e-3, 2.9e-3, 8e-3])


def test_the_model_by_hand() -> None:
    # at the midpoint halfway between plateau and floor; one decade past it with slope ln(9): 1/10 of the way
    assert ps.logistic4(-3.0, 5.0, 0.2, 0.8, -3.0) == pytest.approx(0.5)
    assert ps.logistic4(-2.0, np.log(9), 0.2, 0.8, -3.0) == pytest.approx(0.2 + 0.6 / 10)


@pytest.mark.parametrize("shift", [-0.4, 0.0, 0.25, 0.6])
def test_noise_free_profiles_give_back_their_parameters(shift: float) -> None:
    dpo = ps.logistic4(GRID, 4.0, 0.45, 0.66, -2.9)
    ipo = ps.logistic4(GRID, 4.0, 0.45, 0.63, -2.9 + shift)
    fit = ps.fit_joint(GRID, ipo, dpo, min_drop=0.05)
    assert fit.identified, fit.reason
    assert fit.shift == pytest.approx(shift, abs=1e-4)
    assert fit.slope == pytest.approx(4.0, rel=1e-3) and fit.floor == pytest.approx(0.45, abs=1e-4)
    assert fit.plateaus == pytest.approx((0.63, 0.66), abs=1e-4)


def test_a_profile_that_does_not_decline_is_not_identified() -> None:
    dpo = ps.logistic4(GRID, 4.0, 0.45, 0.66, -2.9)
    flat = np.full(len(GRID), 0.62)
    fit = ps.fit_joint(GRID, flat, dpo, min_drop=0.05)
    assert not fit.identified and np.isnan(fit.shift)
    assert "first profile" in fit.reason


def test_a_decline_past_the_grid_is_not_identified() -> None:
    dpo = ps.logistic4(GRID, 4.0, 0.45, 0.66, -2.9)
    late = ps.logistic4(GRID, 4.0, 0.45, 0.66, -1.6)  # midpoint 0.5 decade above the grid's top (-2.1)
    fit = ps.fit_joint(GRID, late, dpo, min_drop=0.05)
    assert not fit.identified and "outside the grid" in fit.reason


def test_too_few_points_are_refused_or_not_identified() -> None:
    with pytest.raises(ValueError, match=">= 4"):
        ps.fit_joint(GRID[:3], [0.6, 0.5, 0.4], [0.6, 0.5, 0.4], 0.05)
    holes = ps.logistic4(GRID, 4.0, 0.45, 0.66, -2.9)
    holes[:5] = np.nan
    assert ps.fit_joint(GRID, holes, holes, 0.05).reason == "fewer than 4 finite points on a profile"


def test_retention_by_hand() -> None:
    # 4 learning rates, 1 seed, 2 pairs: curve 0.5, 1.0, 0.75, 0.25 -> from the third point: mean 0.5 - max 1.0
    x = [0.0, 1.0, 2.0, 3.0]
    a = np.array([[[0.5, 0.5]], [[1.0, 1.0]], [[1.0, 0.5]], [[0.5, 0.0]]])
    b = np.array([[[0.5, 0.5]], [[0.5, 0.5]], [[0.5, 0.5]], [[0.5, 0.5]]])  # flat: keeps all of it
    assert ps.retention(x, "a", 2.0)({"a": a}) == pytest.approx(-0.5)
    assert ps.retention_difference(x, "a", "b", 2.0)({"a": a, "b": b}) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="no grid point"):
        ps.retention(x, "a", 4.0)


def test_shifted_moves_a_profile_right_on_its_grid() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    out = ps.shifted(x, v, 0.5)  # read at x - 0.5: 1, 1, 0.5, 0 (and the mirror image)
    np.testing.assert_allclose(out[:, 0], [1.0, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(out[:, 1], [0.0, 0.0, 0.5, 1.0])


def test_a_planted_shift_is_recovered_from_per_pair_wins() -> None:
    # 4 seeds x 256 pairs of Bernoulli wins around the two curves; the interval covers the planted 0.3 decades
    rng = np.random.default_rng(11)
    dpo_p = ps.logistic4(GRID, 4.0, 0.45, 0.66, -2.9)
    ipo_p = ps.logistic4(GRID, 4.0, 0.45, 0.66, -2.6)
    estimates, covered = [], 0
    for _ in range(12):
        data = {m: (rng.random((len(GRID), 4, 256)) < p[:, None, None]).astype(float)
                for m, p in (("ipo", ipo_p), ("dpo", dpo_p))}
        est = clustered(ps.shift_difference(GRID, "ipo", "dpo", 0.05), data, n_boot=100, seed=0)
        estimates.append(est.estimate)
        covered += est.ci_low <= 0.3 <= est.ci_high
    assert abs(np.median(estimates) - 0.3) < 0.08 and covered >= 10


def test_the_slot_is_chosen_on_one_split_and_read_on_the_other() -> None:
    # 2 learning rates x 3 slots x 2 seeds x 4 pairs. Val: slot 0 best at lr 0, slot 2 best at lr 1 (0.75 vs 0.5,
    # 0.25); test says otherwise (slot 1 all wins at lr 1) and is read, never chooses
    val = np.zeros((2, 3, 2, 4))
    val[0, 0] = 1.0
    val[1, 0, :, :2] = 1.0
    val[1, 1, :, :1] = 1.0
    val[1, 2, :, :3] = 1.0
    test = np.zeros((2, 3, 2, 4))
    test[:, 1] = 1.0
    test[1, 2, :, :1] = 1.0
    read = ps.read_chosen(test, val)
    assert read.shape == (2, 1, 2, 4)
    np.testing.assert_array_equal(read[0, 0], test[0, 0])
    np.testing.assert_array_equal(read[1, 0], test[1, 2])
    assert ps.curve(read).tolist() == [0.0, 0.25]
    val[1, 0, :, :3] = 1.0  # a tie with slot 2: the tuned beta (slot 0) is kept
    assert ps.curve(ps.read_chosen(test, val)).tolist() == [0.0, 0.0]


def test_the_alignment_shift_by_hand() -> None:
    x = np.array([0.0, 0.5, 1.0, 1.5])
    dpo = np.array([0.8, 0.8, 0.6, 0.5])
    ipo = np.array([0.8, 0.8, 0.8, 0.6])  # DPO moved 0.5 right: ipo(x) = dpo(x - 0.5) at x = 0.5, 1.0, 1.5
    assert ps.alignment_shift(x, ipo, dpo) == pytest.approx(0.5)
    assert ps.alignment_shift(x, dpo, ipo) == pytest.approx(-0.5)  # the other way round
    assert ps.alignment_shift(x, dpo, dpo) == pytest.approx(0.0)
    # 3 of 4 points must stay inside: d reaches -(1.5 - 1.0) and +(0.5 - 0.0); max_shift caps it further
    assert ps.alignable(x) == (pytest.approx(-0.5), pytest.approx(0.5))
    assert ps.alignable(x, max_shift=0.3) == (pytest.approx(-0.3), pytest.approx(0.3))
    flat = np.full(4, 0.7)
    assert ps.alignment_shift(x, flat, flat) == 0.0  # aligns anywhere: the tie goes to 0
    # halfway: ipo = dpo moved 0.25 right, read on the grid by straight lines -> 0.25 exactly
    quarter = np.interp(x - 0.25, x, dpo)
    assert ps.alignment_shift(x, quarter, dpo) == pytest.approx(0.25)
    assert np.isnan(ps.alignment_shift(x, np.array([0.8, np.nan, 0.6, 0.5]), dpo))


PLANTED_X = np.log10([3.8e-4, 1.05e-3, 2.9e-3, 8e-3])
PLANTED_DPO = ps.logistic4(PLANTED_X, 3.0, 0.5, 0.66, -2.7)
PLANTED_IPO = np.interp(PLANTED_X - 0.3, PLANTED_X, PLANTED_DPO)  # DPO's profile moved 0.3 decades right


def _planted_stage(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One stage of 5 seeds x 2000 pairs from the planted profiles: ``{method: [lrs, 1 slot, seeds, pairs]}``."""
    return {m: (rng.random((4, 5, 2000)) < np.asarray(c)[:, None, None]).astype(float)[:, None]
            for m, c in (("ipo", PLANTED_IPO), ("dpo", PLANTED_DPO))}


def test_a_planted_alignment_shift_is_recovered_with_its_interval() -> None:
    rng = np.random.default_rng(7)
    x, data = PLANTED_X, _planted_stage(rng)
    est = clustered(ps.alignment_difference(list(x), "ipo", "dpo"), data, n_boot=100, seed=0)
    assert est.ci_low <= 0.3 <= est.ci_high and abs(est.estimate - 0.3) < 0.1 and est.ci_low > 0


def test_the_area_shift_by_hand() -> None:
    x = np.array([0.0, 0.5, 1.0, 1.5])
    dpo = np.array([0.8, 0.8, 0.6, 0.5])
    ipo = np.array([0.8, 0.8, 0.8, 0.6])  # DPO moved 0.5 right (as in the alignment test)
    # ipo - dpo = [0, 0, 0.2, 0.1]; trapezoids of width 0.5: 0 + 0.05 + 0.075 = 0.125; pooled profile
    # [0.8, 0.8, 0.7, 0.55] drops 0.25 from first to last point -> 0.125 / 0.25 = 0.5
    assert ps.area_shift(x, ipo, dpo) == pytest.approx(0.5)
    assert ps.area_shift(x, dpo, ipo) == pytest.approx(-0.5)  # the other way round
    assert ps.area_shift(x, dpo, dpo) == 0.0
    # a profile that rises again at the end: [0.8, 0.7, 0.5, 0.6] against dpo: diff [0, -0.1, -0.1, 0.1];
    # area 0.5 * (-0.05 - 0.1 + 0) = -0.075; pooled [0.8, 0.75, 0.55, 0.55] drops 0.25 -> -0.3
    assert ps.area_shift(x, np.array([0.8, 0.7, 0.5, 0.6]), dpo) == pytest.approx(-0.3)
    flat = np.array([0.7, 0.7, 0.7, 0.69])  # pooled drop 0.01 < 0.02: no decline to measure by
    assert np.isnan(ps.area_shift(x, flat, flat))
    assert np.isnan(ps.area_shift(x, np.array([0.8, np.nan, 0.6, 0.5]), dpo))


def test_a_planted_area_shift_is_recovered_with_its_interval() -> None:
    from prefstudy.evaluation.clustered import crossed

    rng = np.random.default_rng(7)
    x = PLANTED_X
    truth = ps.area_shift(x, PLANTED_IPO, PLANTED_DPO)  # 0.3 up to the grid's straight lines and its ends
    assert abs(truth - 0.3) < 0.1
    estimates, covered, detected = [], 0, 0
    for k in range(40):  # 40 stages of 5 seeds x 2000 pairs: unbiased, covered ~95%, detected every time
        est = crossed(ps.area_difference(list(x), "ipo", "dpo"), _planted_stage(rng), n_boot=100, seed=k)
        estimates.append(est.estimate)
        covered += est.ci_low <= truth <= est.ci_high
        detected += est.ci_low > 0
    assert abs(np.mean(estimates) - truth) < 0.025 and covered >= 34 and detected == 40
