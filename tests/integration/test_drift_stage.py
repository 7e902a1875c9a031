"""``--stage drift`` end to end on the smoke spec: the search first, then the beta grid through the trial loop; an
interrupt in the middle, a resume with two workers that redoes nothing, claims.json and the report's Claims section."""

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
from support import ROOT, SMOKE, cli_env

pytestmark = pytest.mark.slow

#: the search kept short (no lm-eval) so the stage is what this test spends its time on
ARGS = ["search.n_trials=1", "evaluation.lm_eval.tasks=[]", "drift.val_pairs=8"]


def _complete(storage: str, method: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=f"smoke/{method}/drift", storage=storage)
    return [t for t in study.trials if t.state == TrialState.COMPLETE]


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[subprocess.CompletedProcess]]:
    work = tmp_path_factory.mktemp("drift")
    storage = f"sqlite:///{work}/runs/smoke/optuna.db"
    command = [sys.executable, "-m", "prefstudy", "study", str(SMOKE), *ARGS, "--stage", "drift"]
    process = subprocess.Popen(command, cwd=work, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    marker = work / "runs" / "smoke" / "ipo" / "drift" / "trial-0001" / "env.json"  # round robin: dpo 0, ipo 0,
    deadline = time.time() + 400  # dpo 1, ipo 1: two DPO runs have finished when IPO's second one starts
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # inside the run
    process.send_signal(signal.SIGTERM)
    first_out, first_err = process.communicate(timeout=300)
    first = subprocess.CompletedProcess(command, process.returncode, first_out, first_err)
    before = {m: sorted(t.number for t in _complete(storage, m)) for m in ("dpo", "ipo")}
    (work / "before.json").write_text(json.dumps(before))
    resumed = subprocess.run([*command, "--workers", "2"], cwd=work, env=cli_env(), capture_output=True, text=True,
                             timeout=900)
    again = subprocess.run(command, cwd=work, env=cli_env(), capture_output=True, text=True, timeout=600)
    return work, storage, [first, resumed, again]


def test_an_interrupted_stage_resumes_with_workers_without_redoing_finished_runs(drift_run) -> None:
    work, storage, (first, resumed, again) = drift_run
    assert first.returncode == 130, first.stderr[-2000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    before = json.loads((work / "before.json").read_text())
    assert len(before["dpo"]) >= 2
    for method in ("dpo", "ipo"):
        done = _complete(storage, method)
        points = sorted((t.user_attrs["stage_params"]["beta"], t.user_attrs["stage_seed"]) for t in done)
        assert len(points) == 6 and len(set(points)) == 6  # 3 betas x 2 seeds, none twice
        assert set(before[method]) <= {t.number for t in done}  # the runs finished before the interrupt were kept
        assert {t.params["learning_rate"] for t in done} == {5e-4}
    assert again.returncode == 0 and "runs to do per method: {'dpo': 0, 'ipo': 0}" in again.stdout
    assert "claim (a) drift:" in again.stdout


def test_every_run_scores_the_same_pairs_at_every_point_from_step_0(drift_run) -> None:
    work, storage, _ = drift_run
    for method in ("dpo", "ipo"):
        for trial in _complete(storage, method):
            run_dir = Path(trial.user_attrs["run_dir"])
            assert run_dir.parent == work / "runs" / "smoke" / method / "drift"
            rows = [json.loads(line) for line in (run_dir / "pairs.jsonl").read_text().splitlines()]
            assert [r["step"] for r in rows] == [0, 2, 4, 6, 8, 10, 12]  # 12 steps (3 x 4), >= 5 points + step 0
            assert all(len(r["drift"]) == 8 and len(r["margin_per_token"]) == 8 for r in rows)
            assert rows[0]["drift"] == [0.0] * 8 and rows[0]["margin_per_token"] == [0.0] * 8  # the base model
            assert all(len(r["generated"]) == len(r["generated_text"]) for r in rows)
            curves = [json.loads(line) for line in (run_dir / "curves.jsonl").read_text().splitlines()]
            scored = [c for c in curves if not c.get("base")]
            # one key per measurement: the search trials' val/generation_accuracy, never generation/accuracy
            assert scored and all(0 <= c["val/generation_accuracy"] <= 1 for c in scored)
            assert not any(k.startswith("generation/") for c in curves for k in c)
            config = json.loads((run_dir / "config.json").read_text())
            assert config["stage"] == "drift" and config["seed"] > 2_000_000_000


def test_claims_json_and_the_report_section(drift_run) -> None:
    work, _, _ = drift_run
    entries = {e["id"]: e for e in json.loads((work / "reports" / "smoke" / "claims.json").read_text())}
    assert set(entries) == {"drift", "fixed_points"}
    entry = entries["drift"]
    assert entry["verdict"] in ("supported", "contradicted", "inconclusive")
    # the training-instance rules compare p = 1 with p < 1: without p < 1 arms they say what to run
    assert entries["fixed_points"]["verdict"] == "inconclusive" and "preference_p" in entries["fixed_points"]["reason"]
    assert entry["primary"] is True and entries["fixed_points"]["primary"] is False  # so the held-out slope leads
    for key in ("statistic", "estimate", "ci_low", "ci_high", "mde"):
        assert key in entry
    assert entry["ci_low"] <= entry["estimate"] <= entry["ci_high"]
    names = [s["name"] for s in entry["secondary"]]
    assert any("1/(2 beta)" in n for n in names) and any("generation" in n for n in names)
    assert all("p_adjusted" in s for s in entry["secondary"] if s.get("p_value") is not None)
    verdicts = json.loads((work / "reports" / "smoke" / "verdicts.json").read_text())
    assert sum(v["kind"] == "claim" for v in verdicts) == sum(s.get("p_value") is not None for s in entry["secondary"])
    page = (work / "reports" / "smoke" / "index.html").read_text()
    assert '<section id="claims">' in page and "fig-claim-margin" in page and "fig-claim-drift" in page


def test_the_dry_run_prints_the_stage_cost() -> None:
    result = subprocess.run([sys.executable, "-m", "prefstudy", "study", "mistral7b_qlora", "--dry-run", "--stage",
                             "drift", "--throughput", "2500"], cwd=ROOT, env=cli_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "stage drift: 12 runs" in result.stdout and "GPU-hours" in result.stdout
