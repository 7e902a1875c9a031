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
