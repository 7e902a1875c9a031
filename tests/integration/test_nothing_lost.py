"""Nothing lost: a second storage's study of the same name cannot overwrite the first one's run directories, and
a resumed study refuses data files that changed under it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import optuna
from support import run_cli

FAST = ["evaluation.lm_eval.tasks=[]", "search.n_trials=1"]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_storage_with_the_same_name_is_refused_and_the_first_study_is_untouched(tmp_path: Path) -> None:
    first = run_cli("study", "smoke", "name=badcli", *FAST, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    runs = tmp_path / "runs" / "badcli"
    owners = json.loads((runs / "owners.json").read_text())
    assert set(owners) == {"badcli/dpo", "badcli/ipo"}
    config = json.loads((runs / "dpo" / "trial-0000" / "config.json").read_text())
    assert config["study_uuid"] == owners["badcli/dpo"]["study_uuid"]  # every run directory names its study
    before = _snapshot(runs)
    other = tmp_path / "other.db"
    second = run_cli("study", "smoke", "name=badcli", *FAST, "--storage", f"sqlite:///{other}", cwd=tmp_path)
    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert "badcli/dpo" in lines[0] and str(other) in lines[0] and "runs/badcli/optuna.db" in lines[0]
    assert "another `name`" in lines[0] and "`runs_dir`" in lines[0]
    assert _snapshot(runs) == before, "the first study's files changed"
    assert not other.exists(), "the refused storage was created"

    # the same study carried to another storage (optuna.copy_study keeps user attributes): accepted
    copied = tmp_path / "copied.db"
    for method in ("dpo", "ipo"):
        optuna.copy_study(from_study_name=f"badcli/{method}", from_storage=f"sqlite:///{runs}/optuna.db",
                          to_storage=f"sqlite:///{copied}")
    resumed = run_cli("study", "smoke", "name=badcli", *FAST, "--storage", f"sqlite:///{copied}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "'dpo': 0, 'ipo': 0" in resumed.stdout  # nothing to redo there


def test_resume_refuses_data_files_that_changed(tmp_path: Path) -> None:
    rows = [{"prompt": f"What is {i} + 1?", "chosen": f"{i + 1}.", "rejected": f"{i + 2}."} for i in range(24)]
    for name, part in (("train", rows[:12]), ("heldout", rows[12:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    data = ["data.source=jsonl", "data.train=train.jsonl", "data.heldout=heldout.jsonl"]
    first = run_cli("study", "smoke", "name=edited", *FAST, *data, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    rows[0]["chosen"] = "1 (edited)."
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:12]))
    again = run_cli("study", "smoke", "name=edited", "search.n_trials=2", *FAST[:1], *data, cwd=tmp_path)
    assert again.returncode == 2, again.stdout[-2000:]
    line = again.stderr.strip().splitlines()
    assert len(line) == 1 and "edited/dpo" in line[0] and "other preference pairs" in line[0], again.stderr
    study = optuna.load_study(study_name="edited/dpo", storage=f"sqlite:///{tmp_path}/runs/edited/optuna.db")
    assert len(study.trials) == 1  # nothing ran on the mixed data
