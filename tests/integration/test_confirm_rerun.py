"""The confirmation stage (--confirm), the paired DPO-vs-IPO verdict built from it, and `prefstudy rerun`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from support import ROOT, run_cli

pytestmark = pytest.mark.slow
CONFIRM = ["confirm.top_k=1", "confirm.seeds=[1, 2]"]


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, subprocess.CompletedProcess]:
    runs = tmp_path_factory.mktemp("confirm-runs")
    storage = f"sqlite:///{runs}/optuna.db"
    result = run_cli("study", "study/smoke.yaml", f"runs_dir={runs}", *CONFIRM, "--confirm", "--storage", storage)
    return runs, storage, result


def test_confirm_reruns_the_best_configuration_with_fresh_seeds(confirmed) -> None:
    runs, storage, result = confirmed
    assert result.returncode == 0, result.stderr[-3000:]
    for method in ("dpo", "ipo"):
        search = optuna.load_study(study_name=f"smoke/{method}", storage=storage)
        best = max((t for t in search.trials if t.state == TrialState.COMPLETE), key=lambda t: (t.value, -t.number))
        study = optuna.load_study(study_name=f"smoke/{method}/confirm", storage=storage)
        done = [t for t in study.trials if t.state == TrialState.COMPLETE]
        assert sorted(t.user_attrs["confirm_seed"] for t in done) == [1, 2]
        search_seeds = {t.user_attrs["seed"] for t in search.trials}
        seeds = {t.user_attrs["seed"] for t in done}
        assert len(seeds) == 2 and not seeds & search_seeds
        for trial in done:
            assert trial.params == best.params and trial.user_attrs["source_trial"] == best.number
            assert trial.user_attrs["sampling"] == "confirm"
            run_dir = Path(trial.user_attrs["run_dir"])
            assert run_dir == runs / "smoke" / method / "confirm" / f"trial-{trial.number:04d}"
            for name in ("config.json", "env.json", "curves.jsonl", "metrics.json", "heldout.json"):
                assert (run_dir / name).is_file(), name
            # confirm.lm_eval_seeds 1: lm-eval on the first seed's run only
            assert (run_dir / "lm_eval.json").is_file() == (trial.user_attrs["confirm_seed"] == 1)
            assert "test" in json.loads((run_dir / "heldout.json").read_text())  # every confirmation run: test
            assert json.loads((run_dir / "config.json").read_text())["stage"] == "confirm"
        curves = [json.loads(x) for x in (Path(done[0].user_attrs["run_dir"]) / "curves.jsonl").open()]
        other = [json.loads(x) for x in (Path(done[1].user_attrs["run_dir"]) / "curves.jsonl").open()]
        assert curves[-1]["loss"] != other[-1]["loss"], "different seeds must give different runs"


def test_confirm_resumes_without_redoing_runs(confirmed) -> None:
    runs, storage, _ = confirmed
    again = run_cli("study", "study/smoke.yaml", f"runs_dir={runs}", *CONFIRM, "--confirm", "--storage", storage)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "runs to do per method: {'dpo': 0, 'ipo': 0}" in again.stdout
    assert len(optuna.load_study(study_name="smoke/dpo/confirm", storage=storage).trials) == 2


def test_paired_verdict_matches_a_hand_computation_from_the_run_dirs(confirmed) -> None:
    from prefstudy.report.compare import compare
    from prefstudy.spec import load_spec

    runs, storage, _ = confirmed
    spec = load_spec(ROOT / "study" / "smoke.yaml", [f"runs_dir={runs}", *CONFIRM])
    result = compare(spec, storage)
    assert result is not None and result.source == "confirm" and result.n_seeds == 2 and result.n_pairs == 8
    by_method = {}
    for method in ("dpo", "ipo"):
        study = optuna.load_study(study_name=f"smoke/{method}/confirm", storage=storage)
        rows = []
        for trial in sorted(study.trials, key=lambda t: t.user_attrs["confirm_seed"]):
            test = json.loads((Path(trial.user_attrs["run_dir"]) / "heldout.json").read_text())["test"]
            rows.append([1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(test["chosen"], test["rejected"])])
        by_method[method] = np.array(rows)
    mean, low, high = result.heldout
    assert mean == pytest.approx((by_method["dpo"] - by_method["ipo"]).mean(), abs=1e-12)
    assert low <= mean <= high
    from prefstudy.evaluation.power import paired_difference

    hand = paired_difference(by_method["dpo"], by_method["ipo"])  # its arithmetic is checked by hand in test_power
    assert (low, high) == pytest.approx((hand["ci_low"], hand["ci_high"]), abs=1e-12)
    assert result.heldout_p == pytest.approx(hand["p_value"]) and result.heldout_mde == pytest.approx(hand["mde"])
    assert result.lm_eval is not None and result.lm_eval[1] <= result.lm_eval[0] <= result.lm_eval[2]
    assert any("lm-eval ran on 1 of the 2 seeds" in note for note in result.notes)  # confirm.lm_eval_seeds 1
    report = run_cli("report", "study/smoke.yaml", f"runs_dir={runs}", *CONFIRM, "--storage", storage)
    assert report.returncode == 0, report.stderr[-2000:]
    index = Path(report.stdout.split("report:")[-1].strip())
    page = index.read_text()
    assert '<section id="versus">' in page and "2 confirmation seed(s) per method x 8 test pairs" in page
    assert f"{mean:+.3f} [95% {low:+.3f}, {high:+.3f}]" in page
    verdicts = json.loads((index.parent / "verdicts.json").read_text())
    primary = [v for v in verdicts if v["primary"]]
    assert len(primary) == 1 and primary[0]["measured"] and primary[0]["estimate"] == pytest.approx(mean)
    assert (primary[0]["ci_low"], primary[0]["ci_high"]) == pytest.approx((low, high))
    assert "primary: confirmation DPO − IPO, test accuracy" in page
    secondary = [v for v in verdicts if not v["primary"]]
    assert secondary and all(v["p_adjusted"] >= v["p_value"] for v in secondary)
    assert all(v["decided"] or isinstance(v["mde"], float) for v in verdicts)


def test_confirm_without_settings_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = run_cli("study", "study/smoke.yaml", f"runs_dir={tmp_path}", "--confirm")
    assert result.returncode == 2 and "confirm.top_k" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("study_name", ["smoke/ipo", "smoke/dpo/confirm"])
def test_rerun_reproduces_the_curves(confirmed, study_name: str) -> None:
    """Trial 1 ran after another trial in the same process: the re-run in a fresh process must match it."""
    runs, storage, _ = confirmed
    result = run_cli("rerun", study_name, "1", "--storage", storage)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    trial = optuna.load_study(study_name=study_name, storage=storage).trials[1]
    summary = json.loads((Path(trial.user_attrs["run_dir"]) / "rerun" / "rerun.json").read_text())
    assert summary["max_abs_difference"] <= 1e-6
    # test is in a curve only where the trial itself scored it: confirmation runs (search: the chosen trial, later)
    scored = {"test/accuracy"} if study_name.endswith("/confirm") else set()
    assert {"loss", "val/accuracy", "val/chosen_log_ratio", *scored} <= set(summary["per_column"])


def test_rerun_of_a_missing_trial_exits_2(confirmed) -> None:
    _, storage, _ = confirmed
    result = run_cli("rerun", "smoke/dpo", "99", "--storage", storage)
    assert result.returncode == 2 and "no trial 99" in result.stderr


def test_rerun_uses_the_recorded_prefix_sharing(confirmed) -> None:
    """A trial records the resolved prefix_sharing; the re-run trains with it, not with what auto picks now."""
    _, storage, _ = confirmed
    trial = optuna.load_study(study_name="smoke/ipo", storage=storage).trials[0]
    assert trial.user_attrs["prefix_sharing"] == "on"
    path = Path(trial.user_attrs["run_dir"]) / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "prefix_sharing": "off"}))  # as if it had run with TRL's own forward
    try:
        result = run_cli("rerun", "smoke/ipo", "0", "--storage", storage)
    finally:
        path.write_text(json.dumps(config))
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    assert "prefix sharing off" in result.stdout + result.stderr
    summary = json.loads((path.parent / "rerun" / "rerun.json").read_text())
    assert summary["max_abs_difference"] < 1e-3  # TRL's forward and the packed one agree up to float rounding
