"""claims.json's drift entry from planted runs: a clear slope difference is 'supported' with the planted values
inside the intervals, its reverse 'contradicted', noise 'inconclusive' with an MDE; the one-line sentence."""

from __future__ import annotations

import numpy as np
import pytest
from support import SMOKE

from prefstudy.report.claim_a_held_out import MethodRuns, drift_claim
from prefstudy.report.claims import sentence
from prefstudy.spec import load_spec

STEPS = [0, 4, 8, 12]


def _runs(method: str, loss_type: str, betas: list[float], slope: float, rng: np.random.Generator,
          seed_sd: float = 0.1, margin: list[float] | None = None) -> MethodRuns:
    runs = MethodRuns(method, loss_type, betas, STEPS, runs=len(betas) * 2)
    shape = (len(betas), len(STEPS), 2, 16)
    grow = np.asarray(STEPS, dtype=float)[None, :, None, None] / STEPS[-1]
    seed_effect = rng.normal(0, seed_sd, (len(betas), 1, 2, 1))
    level = np.exp(slope * np.log(np.asarray(betas))[:, None, None, None] + seed_effect)
    runs.values["drift"] = grow * level * np.exp(rng.normal(0, 0.2, shape))
    target = np.asarray(margin if margin is not None else [1.0] * len(betas))[:, None, None, None]
    runs.values["margin_per_token"] = grow * target + rng.normal(0, 0.05, shape)
    runs.values["wins"] = (rng.random(shape) < 0.6).astype(float)
    runs.values["generated"] = (rng.random(shape) < 0.5).astype(float)
    return runs


def test_a_planted_difference_is_supported_and_recovered() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(0)
    ipo_betas = [0.1, 0.3, 1.0]
    runs = {"dpo": _runs("dpo", "sigmoid", [0.05, 0.15, 0.5], -0.1, rng),
            "ipo": _runs("ipo", "ipo", ipo_betas, -2.0, rng, margin=[1 / (2 * b) for b in ipo_betas])}
    entry = drift_claim(spec, runs)
    assert entry["verdict"] == "supported"
    assert entry["ci_low"] <= -1.9 <= entry["ci_high"]  # the planted difference -2.0 - (-0.1)
    assert entry["slopes"]["ipo"]["ci_low"] <= -2.0 <= entry["slopes"]["ipo"]["ci_high"]
    assert entry["dpo_flat"]["margin"] == spec.drift.flat_margin
    targets = [s for s in entry["secondary"] if "1/(2 beta)" in s["name"]]
    assert len(targets) == 3 and all(s["ci_low"] <= 0 <= s["ci_high"] for s in targets)  # IPO sits on its target
    line = sentence(entry)
    assert line.startswith("claim (a) drift: SUPPORTED") and "[95%" in line


def test_the_reverse_is_contradicted_and_noise_is_inconclusive_with_an_mde() -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(1)
    reverse = {"dpo": _runs("dpo", "sigmoid", [0.05, 0.15, 0.5], -2.0, rng),
               "ipo": _runs("ipo", "ipo", [0.1, 0.3, 1.0], 0.0, rng)}
    assert drift_claim(spec, reverse)["verdict"] == "contradicted"
    noise = {"dpo": _runs("dpo", "sigmoid", [0.05, 0.15, 0.5], 0.0, rng, seed_sd=1.0),
             "ipo": _runs("ipo", "ipo", [0.1, 0.3, 1.0], 0.0, rng, seed_sd=1.0)}
    entry = drift_claim(spec, noise)
    assert entry["verdict"] == "inconclusive" and entry["mde"] > 0
    assert "cannot detect differences below" in sentence(entry)


def test_missing_runs_say_what_to_run() -> None:
    spec = load_spec(SMOKE)
    entry = drift_claim(spec, {"dpo": _runs("dpo", "sigmoid", [0.05, 0.15, 0.5], 0.0, np.random.default_rng(2))})
    assert entry["verdict"] == "inconclusive" and entry["estimate"] is None
    assert "--stage drift" in entry["reason"]


@pytest.mark.parametrize("betas", [[0.1, 0.3]])
def test_fewer_than_three_betas_is_incomplete(betas: list[float]) -> None:
    spec = load_spec(SMOKE)
    rng = np.random.default_rng(3)
    entry = drift_claim(spec, {"dpo": _runs("dpo", "sigmoid", betas, 0.0, rng),
                               "ipo": _runs("ipo", "ipo", betas, -1.0, rng)})
    assert entry["estimate"] is None and "fewer than 3 betas" in entry["reason"]
