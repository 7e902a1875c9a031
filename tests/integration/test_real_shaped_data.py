"""UltraFeedback-shaped pairs end to end (issue #34): conversations with a string prompt column and extra columns,
multi-turn prompts, answers of very different lengths (the chosen one usually longer, many over max_length). The
study trains on the pairs cut as TRL cuts them, prints the spec's metric everywhere, records the cut pairs and the
answer lengths, the report shows the length diagnostics, and the export trains the same cut pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support import SMOKE, run_cli
from ultrafeedback_shape import write

pytestmark = pytest.mark.slow


def test_ultrafeedback_shaped_pairs_end_to_end(tmp_path: Path) -> None:
    train, heldout = write(tmp_path)
    result = run_cli("study", str(SMOKE), "name=uf", "data.source=jsonl", f"data.train={train}",
                     f"data.heldout={heldout}", "training.max_length=256", "evaluation.metric=accuracy_per_token",
                     "search.n_trials=1", "training.max_steps=4", "evaluation.eval_steps=2",
                     "evaluation.val_subset=8", "evaluation.train_subset=8", "evaluation.lm_eval.tasks=[]",
                     cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    steps = [line for line in out.splitlines() if " step " in line and "loss" in line]
    assert steps and all("val acc/token" in line for line in steps), steps[:2]
    assert "base model:" in out and "acc/token" in out.split("base model:")[1].splitlines()[0]
    assert "answers cut at training.max_length=256 (keep_start, as TRL)" in out
    data = tmp_path / "runs" / "uf" / "data"
    assert len((data / "train.jsonl").read_text().splitlines()) == 24  # cut, not dropped: every pair kept whole here
    cut = json.loads((data / "truncated.json").read_text())
    assert cut["truncation"] == "keep_start" and cut["truncated"]["train"] > 0
    lengths = json.loads((data / "lengths.json").read_text())
    longer = sum(c > r for c, r in zip(lengths["train"]["chosen_tokens"], lengths["train"]["rejected_tokens"],
                                       strict=True))
    assert longer >= 12 and max(lengths["train"]["chosen_tokens"]) < 256  # counted as trained: cut answers
    page = (tmp_path / "reports" / "uf" / "index.html").read_text()
    assert "accuracy, per token" in page and "share with the chosen answer longer" in page
    exported = run_cli("export", "uf/dpo", "--best", "--out", str(tmp_path / "exports"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    config = yaml.safe_load((tmp_path / "exports" / "uf-dpo" / "trl_dpo.yaml").read_text())
    assert config["max_length"] == 256 and config.get("truncation_mode", "keep_start") == "keep_start"
    assert Path(config["datasets"][0]["data_files"]) == data / "train.jsonl"
