"""`python -m prefstudy.tools.bench` on the smoke spec (tiny model): all three variants run the same 4 trials and the
results file carries every number the benchmark promises, computed from the raw timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, cli_env

pytestmark = pytest.mark.slow


def test_bench_writes_results_with_ratios_phases_and_passes(tmp_path: Path) -> None:
    env = cli_env()
    done = subprocess.run([sys.executable, "-m", "prefstudy.tools.bench", "study/smoke.yaml", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text())
    raw = result["raw"]
    assert set(raw) == {"prefstudy", "strong", "naive"}
    for variant in raw.values():  # the same 4 trials everywhere: params and seeds
        assert sorted((t["method"], t["seed"], t["params"]["beta"]) for t in variant["trials"]) == sorted(
            (t["method"], t["seed"], t["params"]["beta"]) for t in raw["prefstudy"]["trials"])
        assert len(variant["trials"]) == 4
    assert result["ref_logprob_passes"] == 1
    assert result["ref_logprob_passes_per_variant"]["strong"] == 4
    assert result["wall_ratio_vs_naive"] == pytest.approx(raw["prefstudy"]["wall_s"] / raw["naive"]["wall_s"],
                                                          abs=1e-4)
    assert result["wall_ratio_vs_strong"] == pytest.approx(raw["prefstudy"]["wall_s"] / raw["strong"]["wall_s"],
                                                           abs=1e-4)
    trials = raw["prefstudy"]["trials"]
    inside = sum(t["train"] + t["evaluate"] + t["lm_eval"] for t in trials)
    wall = sum(t["wall"] for t in trials)
    assert result["overhead_fraction"] == pytest.approx((wall - inside) / wall, abs=1e-4)
    assert 0 <= result["overhead_fraction"] < 1
    rss = [t["rss_mb"] for t in trials]
    assert result["rss_growth_fraction"] == pytest.approx((rss[-1] - rss[0]) / rss[0], abs=1e-4)
    for name in ("strong", "naive"):
        phases = result["phases"][name]["sum_over_trials"]
        assert phases["load"] > 0 and phases["train"] > 0 and phases["evaluate"] > 0 and phases["lm_eval"] > 0
    assert result["machine"]["cpu"] and result["versions"]["trl"] == "1.16.0"
    assert "not run" in result["gpu"]["status"] or result["gpu"]["status"] == "measured"
    summary = (tmp_path / "results.md").read_text()
    assert "wall_ratio_vs_naive" in summary and "| naive |" in summary
