"""SIGTERM stops a study gracefully: the running trial is FAIL 'interrupted', and the same command re-runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import ROOT, cli_env

pytestmark = pytest.mark.slow


def test_sigterm_marks_the_trial_interrupted_and_resume_reruns_its_params(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    env = cli_env()
    spec = tmp_path / "one.yaml"  # the smoke spec with DPO only
    text = (ROOT / "study" / "smoke.yaml").read_text()
    spec.write_text("\n".join(line for line in text.splitlines() if not line.startswith("  ipo:")) + "\n")
    spec_args = [sys.executable, "-m", "prefstudy", "study", str(spec), f"runs_dir={tmp_path}",
                 "training.max_steps=40", "evaluation.eval_steps=20", "--storage", storage]
    process = subprocess.Popen(spec_args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    trial_dir = tmp_path / "smoke" / "dpo" / "trial-0000"
    deadline = time.time() + 120
    while not (trial_dir / "env.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # inside training
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    study = optuna.load_study(study_name="smoke/dpo", storage=storage)
    first = study.trials[0]
    assert first.state == TrialState.FAIL and first.user_attrs["fail_reason"] == "interrupted"
    resumed = subprocess.run(spec_args[:-2] + ["training.max_steps=4", "--storage", storage], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    # a different max_steps is a different spec: refused, nothing lost
    assert resumed.returncode == 2 and "different spec" in resumed.stderr
    resumed = subprocess.run(spec_args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    study = optuna.load_study(study_name="smoke/dpo", storage=storage)
    rerun = [t for t in study.trials if t.user_attrs.get("requeued_from") == first.number]
    assert len(rerun) == 1 and rerun[0].params == first.params and rerun[0].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 2
