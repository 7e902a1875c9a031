"""`python -m benchmarks.bench` on the smoke spec (tiny model): the step measurement times the same trainer with
TRL's forward and the packed one, the three wall-time variants run the same 4 trials, and the results file carries
every number the benchmark promises, computed from the raw timings; ``--quick`` writes the same step keys alone."""

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
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench", "study/smoke.yaml", "--out", str(tmp_path),
                           "--repeats", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text())
    raw = result["raw"]
    assert set(raw) == {"steps", "prefstudy", "strong", "naive"}
    steps = raw.pop("steps")
    _check_steps(result, steps)
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
    quick = subprocess.run([sys.executable, "-m", "benchmarks.bench", "study/smoke.yaml", "--out", str(tmp_path),
                            "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert quick.returncode == 0, quick.stdout[-3000:] + quick.stderr[-3000:]
    fast = json.loads((tmp_path / "quick.json").read_text())
    assert set(fast["raw"]) == {"steps"} and "phases" not in fast
    _check_steps(fast, fast["raw"]["steps"])
    assert fast["runs_per_mode"] == 2 and result["runs_per_mode"] == 2  # one repeat of (DPO, IPO) in both here


def _check_steps(result: dict, steps: dict) -> None:
    """The step keys follow from the raw per-step timings and FLOPs."""
    runs = steps["runs"]
    assert {r["layout"] for r in runs} == {"TRL", "shared rows", "one pair per row"}
    for run in runs:
        assert len(run["step_s"]) == steps["n_steps"] == len(run["step_flops"])
        assert run["mean_step_s"] == pytest.approx(sum(run["step_s"][2:]) / (steps["n_steps"] - 2), abs=1e-4)
        assert run["scoring"]["val"]["seconds"] > 0 and run["scoring"]["test"]["flops"] > 0
    mean = {layout: sum(r["mean_step_s"] for r in runs if r["layout"] == layout)
            / sum(r["layout"] == layout for r in runs) for layout in ("TRL", "shared rows", "one pair per row")}
    assert result["train_step_s_trl"] == pytest.approx(mean["TRL"], abs=1e-4)
    assert result["train_step_s"] == pytest.approx(mean["shared rows"], abs=1e-4)
    assert result["train_step_s_one_pair_per_row"] == pytest.approx(mean["one pair per row"], abs=1e-4)
    assert result["train_speedup_vs_trl"] == pytest.approx(mean["TRL"] / mean["shared rows"], rel=1e-2)
    assert result["matmul_peak_gflops"] == max(result["matmul_gflops"].values()) > 0
    assert result["train_peak_fraction"] == pytest.approx(result["train_gflops"] / result["matmul_peak_gflops"],
                                                          abs=2e-3)
    assert result["score_peak_fraction"] == pytest.approx(result["score_gflops"] / result["matmul_peak_gflops"],
                                                          abs=2e-3)
    assert result["train_flops_per_step"] < result["train_flops_per_step_trl"]  # the packed rows run less
    assert result["loss_max_abs_difference_trl_vs_packed"] < 1e-4  # same trainer, seeds, batches: same losses
