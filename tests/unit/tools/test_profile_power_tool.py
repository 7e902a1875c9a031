"""The plasmode world's seed SD and its power curve (benchmarks.profile_power), worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.profile_power import power_curve, seed_sd


def test_seed_sd_is_the_spread_beyond_the_pairs_on_the_logit_scale() -> None:
    # one learning rate, 2 seeds x 100 pairs: accuracies 0.4 and 0.6 (mean 0.5); var over seeds (ddof 1) 0.02,
    # binomial part 0.25 / 100 = 0.0025 -> excess 0.0175, SD 0.1323, over p(1 - p) = 0.25 -> 0.529 on the logit scale
    wins = np.zeros((1, 2, 100))
    wins[0, 0, :40] = 1.0
    wins[0, 1, :60] = 1.0
    assert seed_sd(wins) == pytest.approx(math.sqrt(0.02 - 0.0025) / 0.25)


def test_seeds_that_agree_have_no_seed_sd_and_saturated_rates_are_left_out() -> None:
    same = np.zeros((2, 3, 50))
    same[0, :, :25] = 1.0  # every seed at 0.5: var 0 < binomial part -> 0
    same[1] = 1.0  # every seed at 1.0: left out (no logit scale there)
    assert seed_sd(same) == 0.0


def test_the_power_curve_reads_planted_shifts_or_in_a_both_world_the_truths_size() -> None:
    rows = [{"shift": 0.25, "truth": 0.02, "power": 0.04}, {"shift": 0.0, "truth": -0.25, "power": 0.66},
            {"shift": -0.1, "truth": -0.34, "power": 0.92}, {"shift": 0.55, "truth": 0.24, "power": 0.68}]
    # both: sizes 0.02 (the null, left out), 0.24, 0.25, 0.34 -> MDE between 0.25 (0.66) and 0.34 (0.92)
    assert power_curve(rows, True) == [(0.24, 0.68), (0.25, 0.66), (0.34, 0.92)]
    # one world: the planted shifts; 0 and the negative one's size 0.1 ... 0.1 > 0.05 stays
    assert power_curve(rows, False) == [(0.1, 0.92), (0.25, 0.04), (0.55, 0.68)]
