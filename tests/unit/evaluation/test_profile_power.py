"""The power simulation of claim (b)'s candidate estimands: worlds plant what they say, the tally counts coverage and
detection, and the MDE in decades is read off a power curve by hand."""

from __future__ import annotations

import numpy as np
import pytest

from prefstudy.evaluation import lr_profile as lp
from prefstudy.evaluation import profile_power as pp
from prefstudy.evaluation import profile_shift as ps

GRID = tuple(np.log10([5e-5, 1.4e-4, 3.8e-4, 1.05e-3, 1.8e-3, 2.9e-3, 8e-3]))
CURVE = ps.logistic4(GRID, 5.0, 0.5, 0.68, -2.75)


def test_a_parametric_world_keeps_its_curve_on_average_and_plants_the_shift() -> None:
    world = pp.parametric_world(GRID, CURVE, shift=0.3, pair_sd=0.8, n_pairs=4000)
    truth = world.truth()
    # averaging expit(logit(c) + u) over pairs pulls toward 1/2: the mean stays on the same side and ordered
    dpo = truth["dpo"][:, 0, 0].mean(axis=-1)
    assert np.all(np.diff(dpo) <= 1e-9) and dpo[0] > 0.6 and dpo[-1] < 0.52
    ipo = truth["ipo"][:, 0, 0].mean(axis=-1)
    np.testing.assert_allclose(ipo, ps.shifted(GRID, dpo, 0.3), atol=1e-12)  # shifting commutes with the mean
    assert np.all(ipo >= dpo - 1e-12)  # moved right = later decline


def test_a_world_of_both_methods_moves_the_first_methods_own_chances() -> None:
    dpo = pp.parametric_world(GRID, CURVE, shift=0.0, n_pairs=50, seed=1).chances
    ipo = pp.parametric_world(GRID, ps.logistic4(GRID, 5.0, 0.5, 0.7, -2.6), shift=0.0, n_pairs=50, seed=2).chances
    world = pp.World(GRID, dpo, 0.2, first=ipo)
    truth = world.truth()
    np.testing.assert_allclose(truth["ipo"][:, 0, 0], ps.shifted(GRID, ipo, 0.2), atol=1e-12)
    np.testing.assert_allclose(truth["dpo"][:, 0, 0], dpo, atol=1e-12)
    data = world.draw(seeds=2, pairs=4000, rng=np.random.default_rng(0))  # both read the same drawn pairs
    assert data["ipo"].shape == data["dpo"].shape == (len(GRID), 1, 2, 4000)
    np.testing.assert_allclose(data["ipo"].mean(axis=(1, 2, 3)), truth["ipo"][:, 0, 0].mean(axis=-1), atol=0.03)


def test_draws_have_the_design_shape_and_the_worlds_mean() -> None:
    world = pp.parametric_world(GRID, CURVE, shift=0.0, pair_sd=0.5, seed_sd=0.0)
    data = world.draw(seeds=3, pairs=5000, rng=np.random.default_rng(0))
    assert data["ipo"].shape == (len(GRID), 1, 3, 5000) and set(np.unique(data["dpo"])) <= {0.0, 1.0}
    np.testing.assert_allclose(data["dpo"].mean(axis=(1, 2, 3)), world.chances.mean(axis=1), atol=0.02)


def test_mde_by_hand() -> None:
    # power 0.5 at 0.2 decades and 0.9 at 0.4: 80% at 0.2 + (0.3 / 0.4) * 0.2 = 0.35
    assert pp.mde_decades([0.1, 0.2, 0.4], [0.2, 0.5, 0.9]) == pytest.approx(0.35)
    assert pp.mde_decades([0.1, 0.2], [0.85, 0.95]) == pytest.approx(0.1)
    assert np.isnan(pp.mde_decades([0.1, 0.2], [0.3, 0.5]))


def test_a_decline_moved_past_the_grid_has_no_identified_truth() -> None:
    world = pp.parametric_world(GRID, CURVE, 0.8, pair_sd=0.5)  # IPO's midpoint at -1.95, above the grid's -2.1
    tally = pp.simulate(world, 2, 64, {"shift": lambda g: ps.shift_difference(g, "ipo", "dpo", 0.05)}, 0)
    assert np.isnan(tally["shift"].truth)


def test_the_tally_sees_a_large_shift_and_no_shift() -> None:
    candidates = {"shift": lambda g: ps.shift_difference(g, "ipo", "dpo", 0.05),
                  "crossing": lambda g: lp.degradation_difference(g, "ipo", "dpo", 0.05, False)}
    big = pp.simulate(pp.parametric_world(GRID, CURVE, 0.5, pair_sd=0.5), 3, 256, candidates, n_sims=4, n_boot=40)
    assert big["shift"].truth == pytest.approx(0.5, abs=0.05)
    assert abs(np.median(big["shift"].estimates) - big["shift"].truth) < 0.15 and big["shift"].covered >= 3
    assert big["shift"].sims == 4 and big["crossing"].truth == pytest.approx(0.5, abs=0.1)
    none = pp.simulate(pp.parametric_world(GRID, CURVE, 0.0, pair_sd=0.5), 3, 256, candidates, n_sims=4, n_boot=40)
    assert none["shift"].truth == pytest.approx(0.0, abs=1e-6) and none["crossing"].truth == pytest.approx(0.0)
    assert none["shift"].sims == 4 and none["shift"].detected <= 1
    # below / above 0 count every interval wholly on one side, whatever the truth: a large planted shift is above
    assert big["shift"].above == big["shift"].detected and big["shift"].below == 0
    assert none["shift"].below + none["shift"].above == none["shift"].detected  # truth 0: either side detects


def test_the_area_shift_covers_where_the_profiles_are_not_parallel() -> None:
    """A world like the second verdict run's, in miniature: IPO's profile is not DPO's moved but rises again at the
    top. 60 stages of 5 seeds x 1024 pairs with run offsets: the area shift is identified, centred on its truth and
    covers it (the 300-stage check on the run's own pairs: docs/claims.md, "The third run")."""
    grid = tuple(np.log10([3.8e-4, 1.05e-3, 2.9e-3, 8e-3]))
    dpo = np.array([0.63, 0.61, 0.55, 0.53])
    ipo = np.array([0.60, 0.59, 0.52, 0.55])  # lower at first, lower through the cliff, higher at the top
    world = pp.World(grid, np.repeat(dpo[:, None], 2000, axis=1), 0.0, 0.11, first=np.repeat(ipo[:, None], 2000, 1))
    candidates = {"area": lambda g: ps.area_difference(g, "ipo", "dpo")}
    t = pp.simulate(world, 5, 1024, candidates, n_sims=60, n_boot=100, seed=3)
    area = t["area"]
    assert area.truth == pytest.approx(ps.area_shift(grid, ipo, dpo)) and area.not_identified == 0
    # the estimates spread ~0.3 decades here, so the median of 60 is known to ~0.05: centred within 2.5 of that
    assert area.coverage >= 0.88 and abs(np.median(area.estimates) - area.truth) < 0.12


def test_the_variance_model_by_hand() -> None:
    from scipy import stats

    model = pp.VarianceModel(seed=0.02, pair=5.0, run=3.0)
    # 3 seeds x 384 pairs: seed 0.02 / 3 = 0.006667; pair (5 + 3 / 3) / 384 = 0.015625 (pair-dominated:
    # Satterthwaite df = 0.022292^2 / (0.006667^2 / 2 + 0.015625^2 / 383) = 21.74)
    v_seed, v_pair = model.components(3, 384)
    assert (v_seed, v_pair) == (pytest.approx(0.0066667, rel=1e-4), pytest.approx(0.015625))
    df = (v_seed + v_pair) ** 2 / (v_seed**2 / 2 + v_pair**2 / 383)
    assert df == pytest.approx(21.74, abs=0.01)
    by_hand = (stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * np.sqrt(v_seed + v_pair)
    assert model.mde(3, 384) == pytest.approx(by_hand) and by_hand == pytest.approx(0.438, abs=0.002)
    # seed-dominated (seed 0.2 / 3 > pair): df = S - 1 = 2, as the stage's interval uses
    heavy = pp.VarianceModel(seed=0.2, pair=5.0, run=3.0)
    se = np.sqrt(0.2 / 3 + 6 / 384)
    assert heavy.mde(3, 384) == pytest.approx((stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * se)
    size = model.size_for(0.35, 3, 384)
    s_min = size["seeds_at_these_pairs"]
    assert s_min is not None and model.mde(s_min, 384) <= 0.35 < model.mde(s_min - 1, 384)
    # more pairs at 3 seeds never get there: once the seed component dominates, df drops to S - 1 = 2
    assert size["pairs_at_these_seeds"] is None and model.mde(3, 4096) > model.mde(3, 768)
    light = pp.VarianceModel(seed=0.005, pair=5.0, run=3.0)
    n_min = light.size_for(0.35, 3, 384)["pairs_at_these_seeds"]
    assert n_min is not None and light.mde(3, n_min) <= 0.35 < light.mde(3, n_min - 64)


def test_the_variance_model_is_recovered_from_designs_that_follow_it() -> None:
    truth = pp.VarianceModel(seed=0.03, pair=4.0, run=2.5)
    rows = [(s, n, *truth.components(s, n)) for s, n in ((3, 192), (3, 384), (5, 384), (5, 192))]
    got = pp.fit_variance(rows)
    assert (got.seed, got.pair, got.run) == (pytest.approx(0.03), pytest.approx(4.0), pytest.approx(2.5))
    one_s = pp.fit_variance([r for r in rows if r[0] == 3])  # one S: the run term cannot be told from the pair term
    assert one_s.run == 0.0 and one_s.pair == pytest.approx(4.0 + 2.5 / 3)
    with pytest.raises(ValueError):
        pp.fit_variance([])


def test_the_primary_covers_and_detects_at_the_declared_design() -> None:
    """The lr-profile primary (the alignment shift) at the declared design (4 learning rates, 5 seeds x 384 pairs) on
    a world shaped like the 2026-12-06 pilot (DPO's val profile there, pairs of varied difficulty): with no shift
    its interval covers 0 and almost never decides; a planted 0.4 decades is found in most stages and covered.
    120 stages each (docs/claims.md has the plasmode simulation on the pilot's own pairs)."""
    grid = tuple(np.log10([3.8e-4, 1.05e-3, 2.9e-3, 8e-3]))
    curve = np.array([0.633, 0.617, 0.544, 0.531])
    primary = {"alignment": lambda g: ps.alignment_difference(g, "ipo", "dpo")}
    null = pp.simulate(pp.parametric_world(grid, curve, 0.0, pair_sd=1.0, seed_sd=0.05), 5, 384, primary, 120,
                       n_boot=100, seed=1)["alignment"]
    assert null.truth == 0.0 and null.coverage >= 0.93 and null.detected <= 6 and null.not_identified == 0
    planted = pp.simulate(pp.parametric_world(grid, curve, 0.4, pair_sd=1.0, seed_sd=0.05), 5, 384, primary, 120,
                          n_boot=100, seed=2)["alignment"]
    assert planted.truth == pytest.approx(0.4) and planted.coverage >= 0.93 and planted.power >= 0.6


def test_the_mde_model_by_hand() -> None:
    # (MDE / 2.8016)^2 x N = pair + run / S: pair 2, run 10 -> S 5, N 800: (2 + 2) / 800 = 0.005, MDE = 2.8016 x 0.0707
    k = pp.MDE_FACTOR
    rows = [(s, n, k * ((2.0 + 10.0 / s) / n) ** 0.5) for s, n in ((5, 800), (3, 1200), (8, 400))]
    model = pp.fit_mde([*rows, (4, 100, float("nan"))])  # a design that never reached 80% power is left out
    assert model.seed == 0.0 and model.pair == pytest.approx(2.0) and model.run == pytest.approx(10.0)
    assert model.mde(5, 800) == pytest.approx(k * 0.005 ** 0.5, rel=0.01)  # t(799) ~ z
    with pytest.raises(ValueError, match="80% power"):
        pp.fit_mde([(4, 100, float("nan"))])
    # run 60, pair 0 but noisy: the line through the origin (only S x N counts): 60 = sum(y x) / sum(x^2) by hand
    rows = [(2, 600, k * (30.5 / 600) ** 0.5), (4, 600, k * (14.5 / 600) ** 0.5)]  # y: 30.5, 14.5 at x 1/2, 1/4
    through_origin = pp.fit_mde(rows)  # a free line would cross at pair -1.5
    assert through_origin.pair == 0.0
    assert through_origin.run == pytest.approx((30.5 * 0.5 + 14.5 * 0.25) / (0.25 + 0.0625))
