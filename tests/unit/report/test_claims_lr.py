"""claims.json's lr_tolerance entry from planted lr-profile runs: IPO degrading a decade later is 'supported' with
the planted difference inside the interval, the reverse 'contradicted'; beta re-tuning that rescues the highest
learning rates moves the degradation point; the sentence and the missing-runs reason."""

from __future__ import annotations

import numpy as np
import pytest
from support import SMOKE

from prefstudy.evaluation import lr_profile as lp
from prefstudy.report.claims_lr import ProfileRuns, lr_claim, sentence
from prefstudy.spec import load_spec

LRS = [1e-5, 3.162e-5, 1e-4, 3.162e-4, 1e-3, 3.162e-3]  # half-decade steps: log10 -5 .. -2.5


def _runs(method: str, loss_type: str, truth: list[float], rng: np.random.Generator, rescue: float = 0.0,
          pairs: int = 600, seeds: int = 3) -> ProfileRuns:
    """Slot 0 follows ``truth`` at ``seeds`` seeds; slot 1 (re-tuned, its seed 1 copied to the others) is
    ``truth + rescue`` at the two highest learning rates; slot 2 is worse by 0.2 there."""
    runs = ProfileRuns(method, loss_type, LRS, [0.1, 0.3, 0.03], runs=16)
    p = np.full((len(LRS), 3, seeds), np.nan)
    p[:, 0] = np.asarray(truth)[:, None] + rng.normal(0, 0.005, (len(LRS), seeds))
    p[-2:, 1] = (np.asarray(truth[-2:]) + rescue)[:, None]
    p[-2:, 2] = (np.asarray(truth[-2:]) - 0.2)[:, None]
    for key in ("val", "test"):
        draws = (rng.random((*p.shape, pairs)) < np.nan_to_num(p, nan=0.5)[..., None]).astype(float)
        draws[np.isnan(p)] = np.nan
        draws[:, 1:, 1:] = draws[:, 1:, :1]  # a candidate's one seed stands for the other (claims_lr.load_profile)
        runs.values[key] = draws
    return runs


# IPO: peak 0.85 at 1e-4, within 0.05 at 3.16e-4 (0.84), 0.64 at 1e-3: degrades at log10 -3.5 + 0.5 * 0.2 = -3.4
# DPO: peak 0.84 at 3.16e-5, 0.82 at 1e-4, 0.62 at 3.16e-4: degrades at -4.0 + 0.5 * 0.15 = -3.925
IPO = [0.70, 0.78, 0.85, 0.84, 0.64, 0.50]
DPO = [0.72, 0.84, 0.82, 0.62, 0.52, 0.50]


def test_a_planted_difference_is_supported_and_recovered() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(0)
    entry = lr_claim(spec, {"dpo": _runs("dpo", "sigmoid", DPO, rng), "ipo": _runs("ipo", "ipo", IPO, rng)})
    assert entry["verdict"] == "supported", entry
    assert entry["ci_low"] <= -3.4 - -3.925 <= entry["ci_high"]
    assert entry["estimate"] == pytest.approx(0.525, abs=0.15)
    ipo = entry["design"]["ipo"]["fixed"]
    assert ipo["log10_degradation_lr"] == pytest.approx(-3.4, abs=0.15) and not ipo["censored"]
    assert ipo["peak_lr"] == pytest.approx(1e-4) and ipo["test_at_peak"] == pytest.approx(0.85, abs=0.05)
    names = [s["name"] for s in entry["secondary"]]
    assert any("fixed tuned beta" in n for n in names)
    line = sentence(entry)
    assert line.startswith("claim (b) lr_tolerance: SUPPORTED") and "decades" in line and "IPO" in line


def test_the_reverse_is_contradicted() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(1)
    entry = lr_claim(spec, {"dpo": _runs("dpo", "sigmoid", IPO, rng), "ipo": _runs("ipo", "ipo", DPO, rng)})
    assert entry["verdict"] == "contradicted"


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
