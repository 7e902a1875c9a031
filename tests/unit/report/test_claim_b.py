"""claims.json's lr_tolerance entry from planted lr-profile runs. The primary (from the third run of 2026-12-06: the
area shift at the tuned beta, read on test and the profile split): IPO's decline planted 0.4 decades to the right
of DPO's is 'supported' with the planted shift inside the interval, the reverse 'contradicted'; the profile split
is read with test; a shift past the grid reads on; no decline gives no verdict; two seeds give no verdict. The
secondaries: the alignment shift (the second design's primary), the re-tuned shift (the slot read chosen on val),
the threshold crossing by hand, beta re-tuning that rescues the highest learning rates moving the degradation point;
the sentence and the missing-runs reason."""

from __future__ import annotations

import numpy as np
import pytest
from support import SMOKE

from prefstudy.evaluation import lr_profile as lp
from prefstudy.evaluation.profile_shift import logistic4
from prefstudy.report.claim_b import ProfileRuns, lr_claim, sentence
from prefstudy.spec import load_spec

LRS = [1e-5, 3.162e-5, 1e-4, 3.162e-4, 1e-3, 3.162e-3]  # half-decade steps: log10 -5 .. -2.5


def _runs(method: str, loss_type: str, truth: list[float], rng: np.random.Generator, rescue: float = 0.0,
          pairs: int = 600, seeds: int = 3, keys: tuple[str, ...] = ("val", "test")) -> ProfileRuns:
    """Slot 0 follows ``truth`` at ``seeds`` seeds; slot 1 (re-tuned, its seed 1 copied to the others) is
    ``truth + rescue`` at the two highest learning rates; slot 2 is worse by 0.2 there."""
    runs = ProfileRuns(method, loss_type, LRS, [0.1, 0.3, 0.03], runs=16)
    p = np.full((len(LRS), 3, seeds), np.nan)
    p[:, 0] = np.asarray(truth)[:, None] + rng.normal(0, 0.005, (len(LRS), seeds))
    p[-2:, 1] = (np.asarray(truth[-2:]) + rescue)[:, None]
    p[-2:, 2] = (np.asarray(truth[-2:]) - 0.2)[:, None]
    for key in keys:
        draws = (rng.random((*p.shape, pairs)) < np.nan_to_num(p, nan=0.5)[..., None]).astype(float)
        draws[np.isnan(p)] = np.nan
        draws[:, 1:, 1:] = draws[:, 1:, :1]  # a candidate's one seed stands for the other (claim_b.load_profile)
        runs.values[key] = draws
    return runs


IPO = [0.70, 0.78, 0.85, 0.84, 0.64, 0.50]
DPO = [0.72, 0.84, 0.82, 0.62, 0.52, 0.50]


X = np.log10(LRS)
# logistic profiles (profile_shift.logistic4): slope 6 per decade, floor 0.5, plateau 0.85; midpoints IPO -3.3,
# DPO -3.7: IPO's profile is DPO's moved 0.4 decades to the right (the grid aligns up to 1.0 decade either way)
IPO_L = [float(v) for v in logistic4(X, 6.0, 0.5, 0.85, -3.3)]
DPO_L = [float(v) for v in logistic4(X, 6.0, 0.5, 0.85, -3.7)]


def test_a_planted_shift_is_supported_and_recovered() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(0)
    entry = lr_claim(spec, {"dpo": _runs("dpo", "sigmoid", DPO_L, rng), "ipo": _runs("ipo", "ipo", IPO_L, rng)})
    assert entry["verdict"] == "supported", entry
    assert entry["ci_low"] <= 0.4 <= entry["ci_high"] and entry["estimate"] == pytest.approx(0.4, abs=0.1)
    assert entry["alignable"] == [pytest.approx(-1.0), pytest.approx(1.0)] and not entry["censored"]
    assert "TUNED" in entry["statistic"] and "profile split" in entry["statistic"] and "VAL" in entry["statistic"]
    assert entry["statistic"].startswith("area shift")
    assert entry["profiles"]["ipo"][3] == pytest.approx(IPO_L[3], abs=0.03)  # 600 pairs x 3 seeds
    names = [s["name"] for s in entry["secondary"]]
    assert names[0].startswith("alignment shift at the tuned beta")
    assert names[1].startswith("alignment shift with beta re-tuned") and "threshold crossing" in names[2]
    for k in (0, 1):
        assert entry["secondary"][k]["ci_low"] <= 0.4 <= entry["secondary"][k]["ci_high"]
    line = sentence(entry)
    assert line.startswith("claim (b) lr_tolerance: SUPPORTED: area shift of the decline") and "decades" in line


def test_the_reverse_is_contradicted() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(1)
    entry = lr_claim(spec, {"dpo": _runs("dpo", "sigmoid", IPO_L, rng), "ipo": _runs("ipo", "ipo", DPO_L, rng)})
    assert entry["verdict"] == "contradicted" and entry["ci_high"] < 0
    assert entry["estimate"] == pytest.approx(-0.4, abs=0.1)  # coverage: tests/unit/evaluation/test_crossed.py


def test_the_profile_split_is_read_with_test_and_narrows_the_interval() -> None:
    spec = load_spec(SMOKE)
    keys = ("val", "test", "profile")
    runs = {"dpo": _runs("dpo", "sigmoid", DPO_L, np.random.default_rng(6), pairs=300, keys=keys),
            "ipo": _runs("ipo", "ipo", IPO_L, np.random.default_rng(7), pairs=300, keys=keys)}
    both = lr_claim(spec, runs)
    assert both["read_pairs"] == 600 and both["ci_low"] <= 0.4 <= both["ci_high"]
    for r in runs.values():
        del r.values["profile"]
    alone = lr_claim(spec, runs)
    assert alone["read_pairs"] == 300
    assert both["ci_high"] - both["ci_low"] < 0.85 * (alone["ci_high"] - alone["ci_low"])  # ~1/sqrt(2)


def test_without_re_tuning_candidates_the_primary_stands_alone() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(8)
    runs = {"dpo": _runs("dpo", "sigmoid", DPO_L, rng), "ipo": _runs("ipo", "ipo", IPO_L, rng)}
    for r in runs.values():  # lr_profile.retune_points 0: the tuned beta's slot only
        r.betas = r.betas[:1]
        r.values = {k: v[:, :1] for k, v in r.values.items()}
    entry = lr_claim(spec, runs)
    assert entry["verdict"] == "supported"
    assert not any(s["name"].startswith("alignment shift with beta re-tuned") for s in entry["secondary"])
    assert entry["secondary"][0]["name"].startswith("alignment shift at the tuned beta")
    assert "threshold crossing" in entry["secondary"][1]["name"]


def test_a_shift_past_the_grid_reads_on_where_the_alignment_stops_at_its_bound() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(4)
    far = [float(v) for v in logistic4(X, 6.0, 0.5, 0.85, -2.4)]  # 1.3 decades right of DPO: past the 1.0 bound
    entry = lr_claim(spec, {"dpo": _runs("dpo", "sigmoid", DPO_L, rng), "ipo": _runs("ipo", "ipo", far, rng)})
    assert entry["verdict"] == "supported" and entry["estimate"] > 1.0 and not entry["censored"]
    alignment = entry["secondary"][0]
    assert alignment["name"].startswith("alignment shift at the tuned beta")
    assert alignment["estimate"] == pytest.approx(1.0)  # the alignable bound


def test_profiles_that_do_not_decline_give_no_verdict() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(9)
    flat = [float(v) for v in np.linspace(0.66, 0.74, len(LRS))]  # rising: pooled drop -0.08 < 0.02, no decline
    entry = lr_claim(spec, {"dpo": _runs("dpo", "sigmoid", flat, rng), "ipo": _runs("ipo", "ipo", flat, rng)})
    assert entry["verdict"] == "inconclusive" and entry["estimate"] is None
    assert entry["reason"].startswith("no decline to measure by")


def test_the_crossing_secondary_matches_the_hand_worked_degradation_points() -> None:
    # IPO: peak 0.85 at 1e-4, within 0.05 at 3.16e-4 (0.84), 0.64 at 1e-3: degrades at log10 -3.5 + 0.5 * 0.2 = -3.4
    # DPO: peak 0.84 at 3.16e-5, 0.82 at 1e-4, 0.62 at 3.16e-4: degrades at -4.0 + 0.5 * 0.15 = -3.925
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(0)
    entry = lr_claim(spec, {"dpo": _runs("dpo", "sigmoid", DPO, rng), "ipo": _runs("ipo", "ipo", IPO, rng)})
    crossing = next(s for s in entry["secondary"] if s["name"].startswith("threshold crossing"))
    assert crossing["ci_low"] <= -3.4 - -3.925 <= crossing["ci_high"]
    assert crossing["estimate"] == pytest.approx(0.525, abs=0.15)
    ipo = entry["design"]["ipo"]["fixed"]
    assert ipo["log10_degradation_lr"] == pytest.approx(-3.4, abs=0.15) and not ipo["censored"]
    assert ipo["peak_lr"] == pytest.approx(1e-4) and ipo["test_at_peak"] == pytest.approx(0.85, abs=0.05)


def test_retuning_beta_that_rescues_the_top_learning_rates_moves_the_degradation_point() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(2)
    # IPO re-tuned at 1e-3 and 3.16e-3 recovers to 0.84 and 0.70: within delta at 1e-3, degrades before 3.16e-3
    runs = {"dpo": _runs("dpo", "sigmoid", DPO, rng), "ipo": _runs("ipo", "ipo", IPO, rng, rescue=0.20)}
    entry = lr_claim(spec, runs)
    retuned, fixed = entry["design"]["ipo"]["retuned"], entry["design"]["ipo"]["fixed"]
    assert retuned["log10_degradation_lr"] > fixed["log10_degradation_lr"] + 0.3
    assert retuned["beta_read"][-2] == 0.3 and fixed["beta_read"][-2] == 0.1  # slot 1 chosen on val
    # by hand, on the truth: 0.84 at -3.0 (inside), 0.70 at -2.5: (0.84 - 0.80) / 0.14 of the step -> -2.857
    truth = np.array(IPO[:4] + [0.84, 0.70])
    assert lp.degradation_log_lr(np.log10(LRS), truth, 0.05)[0] == pytest.approx(-3.0 + 0.5 * 0.04 / 0.14, abs=1e-3)
    assert retuned["log10_degradation_lr"] == pytest.approx(-2.857, abs=0.15)


def test_missing_runs_say_what_to_run() -> None:
    spec = load_spec(SMOKE)
    entry = lr_claim(spec, {"dpo": _runs("dpo", "sigmoid", DPO, np.random.default_rng(3))})
    assert entry["verdict"] == "inconclusive" and entry["estimate"] is None
    assert "--stage lr-profile" in entry["reason"]


def test_two_seeds_give_an_interval_but_no_verdict() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(5)
    entry = lr_claim(spec, {"dpo": _runs("dpo", "sigmoid", DPO_L, rng, seeds=2),
                            "ipo": _runs("ipo", "ipo", IPO_L, rng, seeds=2)})
    assert entry["estimate"] is not None and entry["ci_low"] < entry["ci_high"]
    assert entry["verdict"] == "inconclusive" and entry["reason"].startswith("2 seed(s)")
    assert "(2 seed(s)" in sentence(entry)
