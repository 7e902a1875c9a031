"""``--stage lr-profile`` end to end on the smoke spec: the search first, then the learning-rate grid through the
trial loop (tuned beta at two seeds, beta re-tuned at the top), per-pair val, test and profile-split values in every
run (the profile split read with test), lm-eval
and generation on the capability runs only, claims.json's lr_tolerance entry, the report's learning-rate profile and
the end-of-run verdict line; interrupted, it resumes with two workers without redoing a finished run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import SMOKE, cli_env

pytestmark = pytest.mark.slow

ARGS = ["search.n_trials=1", "lr_profile.betas={dpo: 0.1, ipo: 0.5}",  # fixed: two candidates each
        "data.synthetic.n_profile=4", "lr_profile.profile_pairs=3"]  # pairs only the stage reads (the first 3 of 4)
KEYS = {"id", "statistic", "estimate", "ci_low", "ci_high", "mde", "verdict", "secondary"}


@pytest.fixture(scope="module")
def profile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[subprocess.CompletedProcess]]:
    """Interrupted (SIGTERM) inside IPO's fourth run, resumed with two workers, then called once more."""
    work = tmp_path_factory.mktemp("lr-profile")
    storage = f"sqlite:///{work}/runs/smoke/optuna.db"
    command = [sys.executable, "-m", "prefstudy", "study", str(SMOKE), *ARGS, "--stage", "lr-profile"]
    process = subprocess.Popen(command, cwd=work, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    marker = work / "runs" / "smoke" / "ipo" / "lr-profile" / "trial-0003" / "env.json"
    deadline = time.time() + 600
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # inside the run
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    first = subprocess.CompletedProcess(command, process.returncode, out, err)
    before = {m: len([t for t in _trials(storage, m) if t.state == TrialState.COMPLETE]) for m in ("dpo", "ipo")}
    (work / "before.json").write_text(json.dumps(before))
    resumed = subprocess.run([*command, "--workers", "2"], cwd=work, env=cli_env(), capture_output=True, text=True,
                             timeout=900)
    again = subprocess.run(command, cwd=work, env=cli_env(), capture_output=True, text=True, timeout=600)
    return work, storage, [first, resumed, again]


def _trials(storage: str, method: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=f"smoke/{method}/lr-profile", storage=storage).trials


def test_an_interrupted_grid_resumes_with_workers_and_a_last_call_redoes_nothing(profile_run) -> None:
    work, storage, (first, resumed, again) = profile_run
    assert first.returncode == 130, first.stderr[-3000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert again.returncode == 0, again.stderr[-3000:]
    before = json.loads((work / "before.json").read_text())
    assert 3 <= before["ipo"] < 14 and before["dpo"] >= 3
    assert "runs to do per method: {'dpo': 0, 'ipo': 0}" in again.stderr + again.stdout
    for method in ("dpo", "ipo"):
        trials = [t for t in _trials(storage, method) if t.state == TrialState.COMPLETE]
        assert len(trials) == 14  # 6 x 2 seeds + 2 re-tuned; the interrupted run was redone, nothing twice
        assert len({(t.user_attrs["stage_params"]["beta"], t.user_attrs["stage_params"]["learning_rate"],
                     t.user_attrs["stage_seed"]) for t in trials}) == 14
        slots = sorted(t.user_attrs["stage_slot"] for t in trials)
        assert slots == [0] * 12 + [1, 2]
        for t in trials:
            folder = Path(t.user_attrs["run_dir"])
            row = json.loads((folder / "pairs.jsonl").read_text().splitlines()[-1])
            assert len(row["val"]) == 8 and len(row["test"]) == 6  # all of val, lr_profile.test_pairs of test
            assert len(row["profile"]) == 3  # the first lr_profile.profile_pairs of the profile split
            capability = t.user_attrs["stage_capability"]
            assert capability == (t.user_attrs["stage_slot"] == 0 and t.user_attrs["stage_seed"] == 1)
            assert (folder / "lm_eval.json").is_file() == capability and ("generated" in row) == capability


def test_claims_json_report_and_summary_carry_the_verdict(profile_run) -> None:
    work, _, (_, first, _) = profile_run
    entries = {e["id"]: e for e in json.loads((work / "reports" / "smoke" / "claims.json").read_text())}
    entry = entries["lr_tolerance"]
    assert KEYS <= set(entry) and entry["verdict"] in ("supported", "contradicted", "inconclusive")
    # the smoke spec's 2 seeds give no verdict; a random model's profiles may not decline (no area shift then)
    assert entry["verdict"] == "inconclusive", entry
    if entry["estimate"] is None:
        assert entry["reason"].startswith("no decline to measure by"), entry
    else:
        assert entry["reason"].startswith("2 seed(s)"), entry
    alignment = entry["secondary"][0]  # the alignment shift always has an estimate, inside its alignable range
    assert alignment["name"].startswith("alignment shift at the tuned beta")
    assert entry["alignable"][0] <= alignment["estimate"] <= entry["alignable"][1]
    if entry["ci_low"] is not None and entry["estimate"] is not None:
        assert entry["ci_low"] <= entry["estimate"] <= entry["ci_high"]
    assert all(len(entry["profiles"][m]) == 6 for m in ("dpo", "ipo")) and entry["read_pairs"] == 6 + 3
    assert entry["fit"]["slope_per_decade"] is not None and set(entry["fit"]["midpoint_lr"]) == {"dpo", "ipo"}
    crossing = next(s for s in entry["secondary"] if s["name"].startswith("threshold crossing"))
    if crossing.get("ci_low") is not None:  # 2 seeds x 8 val pairs on a random model: the interval may be missing
        assert crossing["ci_low"] <= crossing["estimate"] <= crossing["ci_high"]
    for method in ("dpo", "ipo"):
        design = entry["design"][method]
        assert len(design["learning_rates"]) == 6 and design["retuned"]["val_peak"] is not None
    assert entry["secondary"][1]["name"].startswith("alignment shift with beta re-tuned")  # candidates ran
    assert "claim (b) lr_tolerance: " + entry["verdict"].upper() in first.stderr + first.stdout
    page = (work / "reports" / "smoke" / "index.html").read_text()
    assert '<section id="lr-profile">' in page and 'id="fig-lr-profile"' in page
    assert "claim (b) lr_tolerance" in page and "test + profile pairs, tuned" in page  # the primary's profile drawn


def test_dry_run_prints_the_stage_cost(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "prefstudy", "study", str(SMOKE), "data.synthetic.n_profile=4",
                             "--dry-run", "--stage", "lr-profile"], cwd=tmp_path, env=cli_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stage lr-profile: 28 runs = 2 methods x (6 learning rates" in result.stdout
    assert "per run: 4 optimizer steps" in result.stdout
    assert "8 val pairs (chose the tuned beta; choose a re-tuned one) + 6 test + 4 profile-split pairs (the profile " \
           "read)" in result.stdout
    assert "primary (area shift at the tuned beta, IPO - DPO): projected MDE" in result.stdout


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="kaleido needs chromium (apt-get install chromium)")
def test_the_figures_tool_writes_the_profile_as_png(profile_run) -> None:
    work, storage, _ = profile_run
    out = work / "figures"
    result = subprocess.run([sys.executable, "-m", "benchmarks.claims_figures", str(SMOKE), "--storage", storage,
                             "--out", str(out)], cwd=work, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("lr-profile", "lr-lm-eval"):
        png = out / f"claims-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert json.loads((out / "claims.json").read_text())[0]["id"] == "lr_tolerance"  # the report's copy


def test_the_power_tool_simulates_the_candidates_on_the_stages_pairs(profile_run) -> None:
    work, storage, _ = profile_run
    out = work / "power.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.profile_power", str(SMOKE), "--storage", storage,
                             "--out", str(out), "--sims", "2", "--boot", "20", "--designs", "2x6", "--shifts", "0,0.3"],
                            cwd=work, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    table = json.loads(out.read_text())
    assert table["pilot"]["pairs"] == 14 and table["pilot"]["method"] == "dpo"  # 8 val + 6 test pairs pooled
    assert {row["candidate"] for row in table["table"]} >= {"crossing (today's, fixed beta)", "joint logistic shift",
                                                            "alignment shift (no model)", "area shift"}
    assert len(table["table"]) == 2 * 5  # 2 planted shifts x 5 candidates
    # a stage: 2 methods x (6 rates x 2 seeds + 2 re-tuning candidates at the 1 highest rate)
    assert all(row["sims"] == 2 and row["runs"] == 2 * (6 * 2 + 2) for row in table["table"])
