"""runs/<name>/data/ holds exactly the pairs the study used: pairs the reference pass dropped for length are not in
its jsonl files, and dropped.json counts them (beside the duplicates the loader dropped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import SMOKE

from prefstudy.spec import load_spec
from prefstudy.spec.stages import Request

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("truncation", ["drop", "keep_start"])
def test_the_data_folder_is_the_pairs_used_and_every_drop_is_counted(tmp_path: Path, tiny, truncation: str) -> None:
    from prefstudy import pipeline
    from prefstudy.search.registry import for_request

    short = [{"prompt": f"What is {i} + 1?", "chosen": f"{i + 1}.", "rejected": f"{i + 2}."} for i in range(12)]
    long = [{"prompt": f"Say {i}.", "chosen": " ".join(["word"] * 80), "rejected": f"{i}."} for i in range(3)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in short[:8] + long + short[:1]))
    (tmp_path / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in short[8:] + [
        {"prompt": f"What is {i} + 2?", "chosen": f"{i + 2}.", "rejected": f"{i + 3}."} for i in range(20, 26)]))
    spec = load_spec(SMOKE, [f"runs_dir={tmp_path / 'runs'}", "evaluation.lm_eval.tasks=[]", "data.source=jsonl",
                             f"data.train={tmp_path / 'train.jsonl'}", f"data.heldout={tmp_path / 'heldout.jsonl'}",
                             "training.max_length=64", f"training.truncation={truncation}"])
    ctx = pipeline.prepare(spec, f"sqlite:///{tmp_path}/optuna.db", for_request(spec, Request()))
    worker = ctx.worker()
    folder = spec.run_root() / "data"
    train = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    dropped = json.loads((folder / "dropped.json").read_text())
    assert dropped["duplicate/train"] == 1  # the repeat is never used
    if truncation == "drop":
        assert len(train) == 8 == len(worker.prepared.tokenized["train"])  # 3 too long: not in the folder
        assert not any("word word" in r["chosen"][0]["content"] for r in train)
        assert dropped["over_length/train"] == 3 and not (folder / "truncated.json").exists()
    else:  # kept, whole in the folder (TRL cuts them again), cut to 64 tokens in what trains
        assert len(train) == 11 == len(worker.prepared.tokenized["train"])
        assert sum("word word" in r["chosen"][0]["content"] for r in train) == 3
        assert "over_length/train" not in dropped
        assert json.loads((folder / "truncated.json").read_text())["truncated"] == {"train": 3}
        tokenized = worker.prepared.tokenized["train"]
        assert max(len(p) + len(c) for p, c in zip(tokenized["prompt_ids"], tokenized["chosen_ids"], strict=True)) == 64
