"""Two workers (--workers 2) on one storage; one is killed with SIGKILL mid-trial. Nothing may be lost.

Runs on SQLite and on a real PostgreSQL (the private cluster of benchmarks/pgcluster.py). The killed trial must turn
FAIL through Optuna's heartbeat and be re-run to completion with the same parameters by the surviving worker; the
finished count ends at the target or above it by at most workers - 1; and the storage password (PostgreSQL) must
not appear in the output, the run directories, the study's attributes or the report.
"""

from __future__ import annotations

import json
import os
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
TARGET = 4
WORKERS = 2
MAX_STEPS = 48


def _spec(tmp_path: Path) -> Path:
    """The smoke spec with DPO only, trials long enough to be killed mid-way, and a short heartbeat."""
    text = (ROOT / "study" / "smoke.yaml").read_text()
    path = tmp_path / "kill.yaml"
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("  ipo:")) + "\n")
    return path


def _running_mid_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """A running trial that has trained (an eval row past step 0) but is at most half-way (MAX_STEPS / 2): a trial
    picked near its end could finish between this poll and the kill, and the kill would hit the worker's next trial
    (a CI run saw exactly that: the 'victim' ended COMPLETE)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        curves = Path(trial.user_attrs.get("run_dir", "/nonexistent")) / "curves.jsonl"
        if "worker_pid" not in trial.user_attrs or not curves.is_file():
            continue
        rows = [json.loads(line) for line in curves.read_text().splitlines() if line.endswith("}")]
        if rows and 0 < rows[-1]["step"] <= MAX_STEPS // 2 and not rows[-1].get("final"):
            return trial
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/optuna.db"
    return request.getfixturevalue("postgres_url")


def test_sigkilled_worker_loses_nothing(storage_url: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    log = tmp_path / "study.log"
    env = cli_env()
    args = [sys.executable, "-m", "prefstudy", "study", str(_spec(tmp_path)), f"runs_dir={runs}",
            f"search.n_trials={TARGET}", f"training.max_steps={MAX_STEPS}", "evaluation.eval_steps=8",
            "evaluation.lm_eval.tasks=[]", "workers.heartbeat_interval=1", "workers.grace_period=4",
            "--workers", str(WORKERS), "--storage", storage_url]
    with open(log, "w") as out:
        parent = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            victim, finished_before, deadline, storage = None, [], time.time() + 240, None
            while victim is None and time.time() < deadline and parent.poll() is None:
                time.sleep(0.1)
                if "worker w0 started" not in log.read_text():
                    continue  # opening the storage here while the launcher creates the schema would race it
                # one storage (one connection pool) for all polls: a new engine per poll exhausts PostgreSQL's
                # connection slots under load
                storage = storage or optuna.storages.RDBStorage(storage_url)
                study = optuna.load_study(study_name="smoke/dpo", storage=storage)
                finished_before = [t for t in study.get_trials(deepcopy=False)
                                   if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
                if finished_before:  # kill only once something is finished, to show it survives
                    victim = _running_mid_trial(study)
            assert victim is not None, "no trial ran long enough to be killed:\n" + log.read_text()[-3000:]
            os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)
            parent.wait(timeout=420)
        finally:
            if parent.poll() is None:
                parent.kill()
    output = log.read_text()
    assert parent.returncode == 0, output[-4000:]
    assert f"worker pid {victim.user_attrs['worker_pid']} ended with killed by signal 9" in output

    study = optuna.load_study(study_name="smoke/dpo", storage=storage_url)
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    assert by_number[victim.number].state == TrialState.FAIL  # the heartbeat caught the dead worker
    retried = [t for t in trials if t.number > victim.number and t.params == victim.params
               and t.state == TrialState.COMPLETE]
    assert retried, "the killed trial was not re-run to completion with the same parameters"
    assert retried[0].user_attrs["worker_pid"] != victim.user_attrs["worker_pid"]
    for before in finished_before:  # no finished trial lost
        assert by_number[before.number].state == before.state and by_number[before.number].values == before.values
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert TARGET <= len(finished) <= TARGET + WORKERS - 1, [t.state for t in trials]
    assert len({t.user_attrs["worker_pid"] for t in trials}) == WORKERS
    assert all(t.user_attrs.get("hostname") for t in trials)
    if len(finished) > TARGET:
        assert "finished trials above the target" in output

    if "@" in storage_url:  # a password-protected PostgreSQL URL: it must never be written anywhere
        from sqlalchemy.engine import make_url

        password = make_url(storage_url).password
        assert password and len(password) >= 8
        assert password not in output
        attrs = json.dumps([study.user_attrs] + [t.user_attrs for t in trials], default=str)
        assert password not in attrs and "***" in study.user_attrs["spec_yaml"] + attrs + output
        leaks = [p for p in runs.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
        assert not leaks, leaks
        reports = [p for p in (ROOT / "reports" / "smoke").rglob("*") if p.is_file() and p.suffix == ".html"]
        assert reports and not any(password in p.read_text() for p in reports)
