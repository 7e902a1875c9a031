"""The plasmode world's seed SD (benchmarks.profile_power), worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.profile_power import seed_sd


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
