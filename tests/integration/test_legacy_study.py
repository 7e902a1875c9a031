"""A study and its run directories written before 2026-12-06's renames (search/session.py -> worker.py, the lm-eval
tasks' include: layout, one key per measurement) still resume and still rebuild their report.

The fixture (tests/fixtures/legacy-study-2026-12-06.tar.gz, 47 KB) is the smoke study with 2 trials per method, run
by commit fd690c7 (before the change) in a folder of its own: its storage, run directories, base scores (with the
tasks digest of the old flat task files) and data folder; the caches left out (they are rebuilt)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import ROOT, run_cli

pytestmark = pytest.mark.slow

FIXTURE = ROOT / "tests" / "fixtures" / "legacy-study-2026-12-06.tar.gz"
ARGS = ["study/smoke.yaml", "name=legacy", "training.save_adapter=none", "evaluation.test_scoring=every"]


def _finished(storage: str, method: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=f"legacy/{method}", storage=storage)
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def test_an_old_study_resumes_and_rebuilds_its_report(tmp_path: Path) -> None:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    (tmp_path / "study").symlink_to(ROOT / "study")
    storage = f"sqlite:///{tmp_path}/runs/legacy/optuna.db"
    base = json.loads((tmp_path / "runs" / "legacy" / "base" / "lm_eval.json").read_text())
    assert base["tasks_digest"] == "da63348ba65f0502"  # the old flat files' digest
    before = {m: {t.number for t in _finished(storage, m)} for m in ("dpo", "ipo")}
    assert all(len(v) == 2 for v in before.values())

    resumed = run_cli("study", *ARGS, "search.n_trials=3", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert "reused" in log and "before 2026-12-06" in log  # the base lm-eval score kept, not recomputed or refused
    for method in ("dpo", "ipo"):
        after = _finished(storage, method)
        assert {t.number for t in after} >= before[method] and len(after) == 3  # one new trial, the old ones kept
        new = [t for t in after if t.number not in before[method]]
        assert new and (Path(new[0].user_attrs["run_dir"]) / "config.json").is_file()

    shutil.rmtree(tmp_path / "reports", ignore_errors=True)
    report = run_cli("report", *ARGS, "search.n_trials=3", "--storage", storage, cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    page = (tmp_path / "reports" / "legacy" / "index.html").read_text()
    assert '<section id="claims">' in page
    verdicts = json.loads((tmp_path / "reports" / "legacy" / "verdicts.json").read_text())
    assert any(v["measured"] and v["name"].startswith("DPO trial") for v in verdicts)  # read from the run dirs
    for method in ("dpo", "ipo"):
        for number in before[method]:  # the old trials' run directories are read (moved folder: found by layout)
            assert (tmp_path / "runs" / "legacy" / method / f"trial-{number:04d}" / "curves.jsonl").is_file()
