"""Claim (a)'s rules on the training preferences (evaluation/fixed_points.py): hand-worked statistics, the clustered
intervals' coverage by simulation at the default design (3 seeds, 24 instances, 7 eval points, the last 3 read), and
planted worlds recovered: converged (supported), a cell still growing (contradicted), a cell just short of its
growth margin (not converged)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefstudy.evaluation import fixed_points as fp
from prefstudy.evaluation.clustered import clustered

STEPS = [0, 12, 24, 36, 48, 60, 72]
LAST = 3


def test_normalisation_puts_each_closed_form_at_one() -> None:
    assert fp.normalise(np.array([math.log(3) / 0.1]), "sigmoid", 0.75, 0.1)[0] == pytest.approx(1.0)
    assert fp.normalise(np.array([0.5]), "ipo", 0.75, 0.5)[0] == pytest.approx(1.0)  # (2p - 1)/(2 beta) = 0.5
    assert fp.normalise(np.array([1.0]), "ipo", 1.0, 0.5)[0] == pytest.approx(1.0)
    assert fp.normalise(np.array([30.0]), "sigmoid", 1.0, 0.1)[0] == pytest.approx(3.0)  # beta * h, no target


def test_late_growth_and_level_by_hand() -> None:
    z = np.zeros((7, 2, 3))
    z[:, :, :] = np.asarray([0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0])[:, None, None]
    growth = fp.late_growth(STEPS, LAST)({"z": z})
    assert growth == pytest.approx(0.2)  # slope 0.1 / 12 steps over 48..72, times 24 steps
    assert fp.log_level()({"z": z}) == pytest.approx(0.0)
    contrast = fp.growth_contrast(STEPS, LAST)({"p1": 2 * z, "q": z})
    assert contrast == pytest.approx(0.2)


def test_val_accuracy_fall_and_last_mean_by_hand() -> None:
    # [3 points, 2 seeds, 2 pairs]; means per point 0.5, 0.75, 0.625 -> fell 0.125 from its peak
    p1 = np.array([[[0.5, 0.5], [0.5, 0.5]], [[1.0, 1.0], [0.5, 0.5]], [[1.0, 0.5], [0.5, 0.5]]])
    q = np.array([[[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [1.0, 0.5]], [[1.0, 1.0], [1.0, 0.5]]])  # peak at the end
    assert fp.peak_fall("p1")({"p1": p1}) == pytest.approx(0.125)
    assert fp.peak_fall("q")({"q": q}) == pytest.approx(0.0)
    assert fp.fall_contrast()({"p1": p1, "q": q}) == pytest.approx(0.125)
    assert fp.last_mean("m")({"m": p1}) == pytest.approx(0.625)


def test_a_planted_fall_difference_is_recovered() -> None:
    # 4 seeds x 64 pairs x 6 points: the p = 1 arm peaks at point 2 and falls 0.1, the p < 1 arm holds its peak
    rng = np.random.default_rng(3)
    curve1 = np.array([0.5, 0.6, 0.7, 0.65, 0.6, 0.6])
    curve2 = np.array([0.5, 0.6, 0.7, 0.7, 0.7, 0.7])
    estimates, detected = [], 0
    for _ in range(40):
        seed1, seed2 = rng.normal(0, 0.01, (2, 1, 4, 1))
        p1 = np.clip(curve1[:, None, None] + seed1 + rng.normal(0, 0.05, (6, 4, 64)), 0, 1)
        q = np.clip(curve2[:, None, None] + seed2 + rng.normal(0, 0.05, (6, 4, 64)), 0, 1)
        est = clustered(fp.fall_contrast(), {"p1": p1, "q": q}, n_boot=200, seed=0)
        estimates.append(est.estimate)
        detected += est.ci_low > 0
    assert abs(np.mean(estimates) - 0.1) < 0.01 and detected >= 36


def test_holm_by_hand() -> None:
    assert fp.holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])


def _world(rng: np.random.Generator, shape: str, seeds: int = 4, instances: int = 24, seed_sd: float = 0.05,
           instance_sd: float = 0.3, noise: float = 0.05, scale: float = 1.0) -> np.ndarray:
    """z [points, seeds, instances]: a mean trajectory, a per-seed late slope, per-instance level and slope, noise."""
    t = np.asarray(STEPS, dtype=float) / STEPS[-1]
    mean = {"converged": 1 - np.exp(-t * 8), "growing": 1.2 * t, "edge": 1 - np.exp(-t * 8) + 0.3 * t,
            "log": np.log1p(8 * t)}[shape] * scale
    seed_slope = rng.normal(0, seed_sd, seeds)
    level, slope = rng.normal(0, instance_sd, instances), rng.normal(0, instance_sd / 3, instances)
    z = (mean[:, None, None] + seed_slope[None, :, None] * t[:, None, None] + level[None, None, :]
         + slope[None, None, :] * t[:, None, None] + rng.normal(0, noise, (len(t), seeds, instances)))
    return z


def _truth(shape: str, scale: float = 1.0) -> float:
    t = np.asarray(STEPS, dtype=float) / STEPS[-1]
    mean = {"converged": 1 - np.exp(-t * 8), "growing": 1.2 * t, "edge": 1 - np.exp(-t * 8) + 0.3 * t}[shape]
    return fp.late_growth(STEPS, LAST)({"z": (mean * scale)[:, None, None] + np.zeros((1, 1, 2))})


@pytest.mark.parametrize("shape", ["converged", "growing"])
def test_the_late_growth_interval_covers_at_the_default_design(shape: str) -> None:
    """Coverage of the clustered 95% interval of late growth (seeds and instances), 300 simulated stages."""
    rng = np.random.default_rng(11 if shape == "converged" else 12)
    truth = _truth(shape)
    hits = 0
    sims = 300
    for _ in range(sims):
        est = clustered(fp.late_growth(STEPS, LAST), {"z": _world(rng, shape)}, n_boot=200,
                        seed=int(rng.integers(1 << 30)))
        hits += est.ci_low <= truth <= est.ci_high
    print(f"coverage {shape}: {hits / sims:.3f}")
    assert 0.92 <= hits / sims <= 0.985, hits / sims


def _cells(rng: np.random.Generator, ipo_shape: str, growth_margin: float = 0.1) -> tuple[list, list]:
    """Two DPO betas and one IPO beta, p in {1, 0.75}: DPO at p = 1 grows like log(steps)."""
    cells, contrasts = [], []
    for beta in (0.1, 0.5):
        p1 = _world(rng, "log", scale=3.0) / beta  # beta * h grows without bound
        q = _world(rng, "converged") * math.log(3) / beta  # reaches logit(0.75)/beta
        for p, h in ((1.0, p1), (0.75, q)):
            cells.append(fp.cell("dpo", "sigmoid", beta, p, h, STEPS, LAST, growth_margin, 1.25, n_boot=200))
        contrasts.append(clustered(fp.growth_contrast(STEPS, LAST), {"p1": beta * p1, "q": beta * q}, n_boot=200))
    for p in (1.0, 0.75):
        h = _world(rng, ipo_shape) * (2 * p - 1) / (2 * 0.5)
        cells.append(fp.cell("ipo", "ipo", 0.5, p, h, STEPS, LAST, growth_margin, 1.25, n_boot=200))
    return cells, contrasts


@pytest.mark.parametrize(("ipo_shape", "expected", "share"), [
    ("converged", "supported", 0.8), ("growing", "contradicted", 0.8), ("edge", "not converged", 0.6)])
def test_planted_worlds_are_recovered(ipo_shape: str, expected: str, share: float) -> None:
    rng = np.random.default_rng({"converged": 1, "growing": 2, "edge": 3}[ipo_shape])
    verdicts = [fp.primary(*reversed(_cells(rng, ipo_shape)))["verdict"] for _ in range(40)]
    print(ipo_shape, {v: verdicts.count(v) for v in set(verdicts)})
    assert verdicts.count(expected) / len(verdicts) >= share, {v: verdicts.count(v) for v in set(verdicts)}


def test_a_converged_cell_is_at_its_closed_form_and_reports_its_ratio_and_spread() -> None:
    rng = np.random.default_rng(5)
    h = _world(rng, "converged", instance_sd=0.05) * 0.5
    result = fp.cell("ipo", "ipo", 0.5, 0.75, h, STEPS, LAST, 0.1, 1.25, n_boot=200)
    assert result.target == pytest.approx(0.5) and result.bounded and result.at_closed_form
    assert result.ratio == pytest.approx(1.0, abs=0.1) and 0 < result.spread < 0.2
    short = fp.cell("ipo", "ipo", 0.5, 0.75, h * 0.5, STEPS, LAST, 0.1, 1.25, n_boot=200)
    assert short.bounded and not short.at_closed_form and short.ratio == pytest.approx(0.5, abs=0.1)
