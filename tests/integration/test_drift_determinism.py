"""``--stage drift`` with preference determinism as a factor (drift.preference_p, drift.copies) on the smoke spec:
each p trains on 4 copies per instance (none flipped at p = 1, one at p = 0.75) for whole epochs of the copies, and
every training instance is scored at every eval point beside the fixed val pairs (pairs.jsonl, train/<key>); the
claim's entry on the training preferences lands in claims.json and the report draws the margins with the closed
forms dashed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from support import SMOKE, cli_env

pytestmark = pytest.mark.slow

ARGS = ["search.n_trials=1", "evaluation.lm_eval.tasks=[]", "drift.val_pairs=4", "drift.generation_pairs=0",
        "drift.preference_p=[1.0, 0.75]", "drift.copies=4", "drift.n_boot=100"]


def test_both_arms_train_on_copies_and_score_every_training_instance(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "prefstudy", "study", str(SMOKE), *ARGS, "--stage", "drift"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    storage = f"sqlite:///{tmp_path}/runs/smoke/optuna.db"
    study = optuna.load_study(study_name="smoke/dpo/drift", storage=storage)
    runs = [t for t in study.trials if t.state == TrialState.COMPLETE]
    cells = sorted((t.user_attrs["stage_params"]["beta"], t.user_attrs["preference_p"], t.user_attrs["stage_seed"])
                   for t in runs)
    assert len(cells) == 12 and len(set(cells)) == 12  # 3 betas x 2 p x 2 seeds
    finals: dict[tuple, list[float]] = {}
    for trial in runs:
        run_dir = Path(trial.user_attrs["run_dir"])
        config = json.loads((run_dir / "config.json").read_text())
        assert config["design"] == {"preference_p": trial.user_attrs["preference_p"], "copies": 4}
        assert trial.user_attrs["steps"] == 16  # 16 instances x 4 copies / batch 4 = 16 steps: one whole epoch
        rows = [json.loads(line) for line in (run_dir / "pairs.jsonl").read_text().splitlines()]
        assert rows[0]["step"] == 0 and rows[-1]["step"] == 16 and len(rows) >= 6
        for row in rows:  # every training instance (16, in the data's own orientation) at every point
            assert all(len(row[f"train/{k}"]) == 16 for k in ("margin", "margin_per_token", "chosen_ratio",
                                                              "rejected_ratio", "drift", "wins"))
            assert len(row["val/margin"]) == 4 and len(row["margin_per_token"]) == 4
            np.testing.assert_allclose(row["train/margin"], np.subtract(row["train/chosen_ratio"],
                                                                       row["train/rejected_ratio"]), atol=1e-5)
        assert rows[0]["train/margin"] == [0.0] * 16  # step 0 is the base model
        logged = [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]
        lrs = [e["learning_rate"] for e in logged if "learning_rate" in e]
        assert len(lrs) == 16 and lrs[:8] == pytest.approx([5e-4] * 8)  # drift.lr_decay 0.5: constant for 8 steps,
        assert lrs[8:] == pytest.approx([5e-4 * (8 - i) / 8 for i in range(8)])  # then linear to 0 over the last 8
        key = (trial.user_attrs["stage_params"]["beta"], trial.user_attrs["stage_seed"])
        finals.setdefault(key, []).append(float(np.mean(rows[-1]["train/margin"])))
    assert all(len(v) == 2 and v[0] != v[1] for v in finals.values())  # the two arms trained on different rows
    assert "claim (a) drift (secondary: held-out pairs, one horizon):" in done.stdout
    assert "claim (a) on the training preferences (primary):" in done.stdout
    entries = {e["id"]: e for e in json.loads((tmp_path / "reports" / "smoke" / "claims.json").read_text())}
    entry = entries["fixed_points"]
    assert entry["primary"] is True and entries["drift"]["primary"] is False  # p < 1 arms: the rules on train lead
    assert entry["verdict"] in ("supported", "contradicted", "not converged", "inconsistent")
    assert len(entry["cells"]) == 12 and len(entry["contrasts"]) == 3  # 2 methods x 3 betas x 2 p; DPO per beta
    names = [sec["name"] for sec in entry["secondary"]]  # per method and beta: val fall p 1 - p 0.75; per cell and
    assert sum("fall from its peak" in n for n in names) == 6  # split: the chosen answer's log-ratio (displacement)
    assert sum("likelihood displacement" in n for n in names) == 24
    for sec in entry["secondary"]:  # each estimated (Holm-adjusted with the family when it has a p) or says why not
        if sec.get("p_value") is not None:
            assert "p_adjusted" in sec, sec
        else:
            assert sec.get("estimate") is not None or sec.get("reason"), sec
    for c in entry["cells"]:
        assert c["stopped"] in ("bounded", "growing", "not converged")
        assert (c["target"] is None) == (c["loss_type"] == "sigmoid" and c["p"] == 1.0)
        assert c["growth"]["ci_low"] <= c["growth"]["estimate"] <= c["growth"]["ci_high"]
    page = (tmp_path / "reports" / "smoke" / "index.html").read_text()
    assert "fig-claim-train-margin" in page and "cell (training instances)" in page
    assert 'href="#fig-claim-train-margin"' in page  # section 6 (overfitting) points at the margins
