"""``--stage lr-profile`` end to end on the smoke spec: the search first, then the learning-rate grid through the
trial loop (tuned beta at two seeds, beta re-tuned at the top), per-pair val and test values in every run, lm-eval
and generation on the capability runs only, claims.json's lr_tolerance entry, the report's learning-rate profile and
the end-of-run verdict line; a second call with two workers finds nothing left to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import SMOKE, cli_env

pytestmark = pytest.mark.slow

ARGS = ["search.n_trials=1"]
KEYS = {"id", "statistic", "estimate", "ci_low", "ci_high", "mde", "verdict", "secondary"}


@pytest.fixture(scope="module")
def profile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[subprocess.CompletedProcess]]:
    work = tmp_path_factory.mktemp("lr-profile")
    storage = f"sqlite:///{work}/runs/smoke/optuna.db"
    command = [sys.executable, "-m", "prefstudy", "study", str(SMOKE), *ARGS, "--stage", "lr-profile"]
    first = subprocess.run(command, cwd=work, env=cli_env(), capture_output=True, text=True, timeout=900)
    again = subprocess.run([*command, "--workers", "2"], cwd=work, env=cli_env(), capture_output=True, text=True,
                           timeout=600)
    return work, storage, [first, again]


def _trials(storage: str, method: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=f"smoke/{method}/lr-profile", storage=storage).trials


def test_the_grid_runs_once_and_a_second_call_redoes_nothing(profile_run) -> None:
    work, storage, (first, again) = profile_run
    assert first.returncode == 0, first.stderr[-3000:]
    assert again.returncode == 0, again.stderr[-3000:]
    assert "runs to do per method: {'dpo': 0, 'ipo': 0}" in again.stderr + again.stdout
    for method in ("dpo", "ipo"):
        trials = _trials(storage, method)
        assert len(trials) == 14 and all(t.state == TrialState.COMPLETE for t in trials)  # 6 x 2 seeds + 2
        slots = sorted(t.user_attrs["stage_slot"] for t in trials)
        assert slots == [0] * 12 + [1, 2]
        for t in trials:
            folder = Path(t.user_attrs["run_dir"])
            row = json.loads((folder / "pairs.jsonl").read_text().splitlines()[-1])
            assert len(row["val"]) == 8 and len(row["test"]) == 8  # all of val, lr_profile.test_pairs of test
            capability = t.user_attrs["stage_capability"]
            assert capability == (t.user_attrs["stage_slot"] == 0 and t.user_attrs["stage_seed"] == 1)
            assert (folder / "lm_eval.json").is_file() == capability and ("generated" in row) == capability


def test_claims_json_report_and_summary_carry_the_verdict(profile_run) -> None:
    work, _, (first, _) = profile_run
    entries = {e["id"]: e for e in json.loads((work / "reports" / "smoke" / "claims.json").read_text())}
    entry = entries["lr_tolerance"]
    assert KEYS <= set(entry) and entry["verdict"] in ("supported", "contradicted", "inconclusive")
    assert entry["estimate"] is not None and entry["ci_low"] <= entry["estimate"] <= entry["ci_high"]
    for method in ("dpo", "ipo"):
        design = entry["design"][method]
        assert len(design["learning_rates"]) == 6 and design["retuned"]["val_peak"] is not None
    assert any("fixed tuned beta" in s["name"] for s in entry["secondary"])
    assert "claim (b) lr_tolerance: " + entry["verdict"].upper() in first.stderr + first.stdout
    page = (work / "reports" / "smoke" / "index.html").read_text()
    assert '<section id="lr-profile">' in page and 'id="fig-lr-profile"' in page
    assert "claim (b) lr_tolerance" in page


def test_dry_run_prints_the_stage_cost(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "prefstudy", "study", str(SMOKE), "--dry-run", "--stage",
                             "lr-profile"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stage lr-profile: 28 runs = 2 methods x (6 learning rates" in result.stdout
    assert "per run: 4 optimizer steps" in result.stdout and "8 val + 8 test pairs" in result.stdout


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="kaleido needs chromium (apt-get install chromium)")
def test_the_figures_tool_writes_the_profile_as_png(profile_run) -> None:
    work, storage, _ = profile_run
    out = work / "figures"
    result = subprocess.run([sys.executable, "-m", "prefstudy.tools.claims_figures", str(SMOKE), "--storage", storage,
                             "--out", str(out)], cwd=work, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("lr-profile", "lr-lm-eval"):
        png = out / f"claims-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert json.loads((out / "claims.json").read_text())[0]["id"] == "lr_tolerance"  # the report's copy
