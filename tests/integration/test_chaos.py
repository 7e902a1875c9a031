"""The chaos soak, short (benchmarks/chaos.py; ``nox -s chaos`` is the long one): 2 workers on a private PostgreSQL,
one SIGKILLed and replaced, PostgreSQL restarted, the run directory's disk filled and freed. Nothing may be lost."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from support import ROOT, cli_env

from benchmarks.pgcluster import REQUIRE_ENV, find_bindir

pytestmark = pytest.mark.slow


def test_a_short_soak_loses_no_trial(tmp_path: Path) -> None:
    import subprocess

    if find_bindir() is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail("PostgreSQL server binaries are missing (install the Debian 'postgresql' package)")
        pytest.skip("no PostgreSQL server binaries")
    out = tmp_path / "out"
    done = subprocess.run(
        # 15 trials of 24 steps a method: ~1 min of trials here, so the kills (every 10-14 s), the database restart
        # (at 6 s) and the full disk (at 16 s, for 5 s) all happen before the target is met (5 trials of 8 steps
        # took ~1 s each and the run ended after ~20 s, before its first kill)
        [sys.executable, "-m", "benchmarks.chaos", "--workers", "2", "--trials", "15", "--steps", "24",
         "--kill-every", "10", "14", "--restart-after", "6", "--fill-after", "16", "--full-for", "5",
         "--min-kills", "1", "--tmpfs-mb", "48", "--timeout", "420", "--work", str(tmp_path / "work"),
         "--out", str(out)],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    result = json.loads((out / "results.json").read_text())
    assert done.returncode == 0 and result["passed"], (result["problems"], done.stdout[-3000:], done.stderr[-3000:])
    assert result["trials_lost"] == 0 and result["incomplete_run_dirs"] == 0
    assert result["kills"] >= 1 and result["database_restarts"] == 1
    assert all(n >= 5 for n in result["finished"].values())
    if os.geteuid() == 0:  # the tmpfs needs root
        assert result["disk_full_events"] == 1 and result["disk_full_failures"] >= 1
