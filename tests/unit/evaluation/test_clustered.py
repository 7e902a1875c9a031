"""The seed-and-pair clustered interval: its parts against hand-worked values, its coverage by simulation, and the
drift claim's statistic recovering a planted slope difference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefstudy.evaluation import drift as dr
from prefstudy.evaluation.clustered import clustered, ols_slope, satterthwaite_df, t_interval, tost


def test_ols_slope_by_hand() -> None:
    # x = 0, 1, 2; y = 1, 3, 4: x mean 1, y mean 8/3; sum (x - 1)(y - 8/3) = (-1)(-5/3) + 0 + (1)(4/3) = 3; / 2 = 1.5
    assert ols_slope(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 4.0])) == pytest.approx(1.5)
    assert ols_slope(np.array([0.0, 1.0, 2.0]), np.array([1.0, np.nan, 4.0])) == pytest.approx(1.5)
    assert math.isnan(ols_slope(np.array([1.0, 1.0]), np.array([0.0, 2.0])))


def test_satterthwaite_by_hand() -> None:
    # V_seed 0.04 over 2 seeds, V_pair 0.01 over 65 pairs: 0.05^2 / (0.04^2 / 1 + 0.01^2 / 64) = 0.0025 / 0.0016015625
    assert satterthwaite_df(0.04, 2, 0.01, 65) == pytest.approx(0.0025 / 0.0016015625)
    assert satterthwaite_df(0.0, 3, 0.01, 65) == pytest.approx(64.0)  # pairs only: N - 1


def test_t_interval_by_hand() -> None:
    # t(0.975, 4) = 2.776445, t(0.8, 4) = 0.940965
    low, high, p, mde = t_interval(1.0, 0.5, 4)
    assert (low, high) == pytest.approx((1.0 - 2.776445 * 0.5, 1.0 + 2.776445 * 0.5), abs=1e-5)
    assert mde == pytest.approx((2.776445 + 0.940965) * 0.5, abs=1e-5)
    assert p == pytest.approx(0.11612, abs=1e-4)  # 2 * P(T4 > 2)


def test_tost_by_hand() -> None:
    # estimate 0.1, se 0.1, df 10, margin 0.5: t(0.95, 10) = 1.812461, 90% interval [-0.0812, 0.2812] inside +-0.5
    equivalent, p = tost(0.1, 0.1, 10, 0.5)
    assert equivalent and p == pytest.approx(0.0012592, abs=1e-6)  # the upper test: P(T10 < (0.1 - 0.5) / 0.1 = -4)
    assert not tost(0.1, 0.3, 10, 0.5)[0]  # 0.1 + 1.81 * 0.3 = 0.64 > 0.5


def test_seed_component_is_the_variance_of_per_seed_values() -> None:
    """With every pair identical the pair bootstrap has no variance: the interval is the t interval over the seeds
    of the per-seed statistic (here the mean): seeds 1, 2, 4 -> mean 7/3, variance 7/3 / 3, df 2."""
    data = {"x": np.repeat(np.array([[1.0], [2.0], [4.0]]), 16, axis=1)}  # [seeds, pairs]
    est = clustered(lambda d: float(np.mean(d["x"])), data, n_boot=200)
    assert est.estimate == pytest.approx(7 / 3)
    assert est.pair_variance == pytest.approx(0.0)
    assert est.seed_variance == pytest.approx(np.var([1, 2, 4], ddof=1) / 3)
    assert est.df == pytest.approx(2.0)
    assert est.ci_high - est.estimate == pytest.approx(4.302653 * math.sqrt(est.seed_variance), rel=1e-5)


def _planted(rng: np.random.Generator, slopes: dict[str, float], seeds: int, pairs: int = 64) -> dict:
    """Per-pair drift = exp(a + slope * log(beta) + seed effect + pair effect + noise), pairs shared by every run."""
    pair_effect = rng.normal(0, 0.5, pairs)
    data, logs = {}, {}
    for method, slope in slopes.items():
        betas = np.array([0.1, 0.3, 1.0]) if method == "ipo" else np.array([0.02, 0.1, 0.5])
        logs[method] = np.log(betas)
        seed_effect = rng.normal(0, 0.25, (3, seeds, 1))
        noise = rng.normal(0, 0.3, (3, seeds, pairs))
        data[method] = np.exp(-2 + slope * logs[method][:, None, None] + seed_effect + pair_effect + noise)
    return {"data": data, "logs": logs}


@pytest.mark.parametrize("seeds", [2, 3])
def test_a_planted_slope_difference_is_recovered_inside_the_interval(seeds: int) -> None:
    """IPO's drift falls with slope -1.5 in log beta, DPO's with -0.2: the difference -1.3 lies inside the 95%
    interval in at least 90% of 200 simulated stages (with a seed SD of 0.25 and 64 shared pairs)."""
    rng = np.random.default_rng(seeds)
    truth, hits, widths = -1.3, 0, []
    for _ in range(200):
        sim = _planted(rng, {"ipo": -1.5, "dpo": -0.2}, seeds)
        est = clustered(dr.slope_difference(sim["logs"], "ipo", "dpo"), sim["data"], n_boot=200,
                        seed=int(rng.integers(1 << 30)))
        hits += est.ci_low <= truth <= est.ci_high
        widths.append(est.ci_high - est.ci_low)
    assert hits / 200 >= 0.90, f"coverage {hits / 200:.3f}"
    assert np.median(widths) < 10  # an interval, not the whole line


def test_the_verdict_rule() -> None:
    class E:
        def __init__(self, low: float, high: float) -> None:
            self.ci_low, self.ci_high = low, high

    assert dr.verdict(E(-2.0, -0.5), ipo_slope=-1.0) == "supported"  # type: ignore[arg-type]
    assert dr.verdict(E(-2.0, -0.5), ipo_slope=0.3) == "inconclusive"  # type: ignore[arg-type]
    assert dr.verdict(E(0.2, 1.0), ipo_slope=-1.0) == "contradicted"  # type: ignore[arg-type]
    assert dr.verdict(E(-1.0, 1.0), ipo_slope=-1.0) == "inconclusive"  # type: ignore[arg-type]
    assert dr.verdict(E(float("nan"), 1.0), ipo_slope=-1.0) == "inconclusive"  # type: ignore[arg-type]


def test_pair_drift_and_per_token_margin_by_hand() -> None:
    policy = np.array([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])
    ref = np.array([[-2.0, -2.0, 0.0], [-1.5, 0.0, 0.0]])
    mask = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # pair 0: 0.5 * (1^2 + 0^2) / 2 = 0.25; pair 1: 0.5 * 1^2 / 1 = 0.5
    assert dr.pair_drift(policy, ref, mask) == pytest.approx([0.25, 0.5])
    pol = {"chosen": np.array([-3.0]), "rejected": np.array([-9.0]), "chosen_tokens": np.array([2.0]),
           "rejected_tokens": np.array([3.0])}
    reference = {"chosen": np.array([-4.0]), "rejected": np.array([-6.0])}
    # (-3 + 4) / 2 - (-9 + 6) / 3 = 0.5 + 1 = 1.5
    assert dr.pair_margin_per_token(pol, reference) == pytest.approx([1.5])
    assert dr.ipo_target(0.25) == pytest.approx(2.0)


def test_log_slope_by_hand() -> None:
    """Runs whose mean drift is exactly c * beta^-2 give slope -2 whatever c and the seed."""
    betas = np.array([0.1, 1.0, 10.0])
    values = np.stack([np.full((2, 4), 3.0 * b**-2) for b in betas])  # [betas, seeds, pairs]
    assert dr.log_slope(np.log(betas), values) == pytest.approx(-2.0)
    steps = [0, 10, 20]
    ramp = np.stack([np.full((2, 4), s * 0.1) for s in steps])[None]  # [1 beta, points, seeds, pairs]
    assert dr.step_slope(steps, "m", 2)({"m": ramp}) == pytest.approx(0.1)
