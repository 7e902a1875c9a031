"""The GPU benchmark command, run on the CPU with a tiny shape: same code path, honest label."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, cli_env

pytestmark = pytest.mark.slow


def test_gpubench_tiny_shape_runs_dpo_and_ipo_through_the_trial_code(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpubench", "--shape", "tiny", "--steps", "2", "--batch-size", "2",
         "--max-length", "192", "--out", str(out)],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["measurement"].startswith("code-path check only")
    assert report["quantization"] == "nf4" and report["lora_r"] == 128 and report["max_length"] == 192
    for mode in ("off", "on"):  # TRL's own forward and the packed one, on the same pairs
        for method, loss_type in (("dpo", "sigmoid"), ("ipo", "ipo")):
            row = report["prefix_sharing"][mode][method]
            assert row["loss_type"] == loss_type and row["steps"] == 2
            assert row["tokens_per_s"] == pytest.approx(row["tokens_per_step"] / row["step_seconds"])
            assert 100 < row["tokens_per_step"] <= 2 * 192 * 2 * 4  # batch 2 x accumulation 4 pairs of <= 192 tokens
    for method in ("dpo", "ipo"):
        off, on = report["prefix_sharing"]["off"][method], report["prefix_sharing"]["on"][method]
        assert report["speedup_vs_trl"][method] == pytest.approx(off["step_seconds"] / on["step_seconds"])
