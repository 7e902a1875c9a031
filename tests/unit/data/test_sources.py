"""Local preference data: formats, column mapping, and bad data refused or counted."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from prefstudy.data.sources import DataError, load_splits
from prefstudy.spec import DataSpec


def _jsonl(path: Path, rows: list, extra_lines: tuple[str, ...] = ()) -> str:
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        for line in extra_lines:
            handle.write(line + "\n")
    return str(path)


def _pairs(n: int, offset: int = 0) -> list[dict]:
    return [{"prompt": f"What is {i} + 1?", "chosen": f"{i + 1}.", "rejected": f"{i + 2}."} for i in
            range(offset, offset + n)]


def test_jsonl_strings_become_conversations_and_heldout_is_split(tmp_path: Path) -> None:
    spec = DataSpec(source="jsonl", train=_jsonl(tmp_path / "t.jsonl", _pairs(6)),
                    heldout=_jsonl(tmp_path / "h.jsonl", _pairs(10, 100)), val_fraction=0.4)
    splits = load_splits(spec)
    assert splits.sizes() == {"train": 6, "val": 4, "test": 6, "ood": 0, "profile": 0}  # profile: synthetic only
    first = splits["train"][0]
    assert first["prompt"] == [{"role": "user", "content": "What is 0 + 1?"}]
    assert first["chosen"] == [{"role": "assistant", "content": "1."}]
    val_prompts = {r["prompt"][0]["content"] for r in splits["val"]}
    test_prompts = {r["prompt"][0]["content"] for r in splits["test"]}
    assert not val_prompts & test_prompts
    assert load_splits(spec).splits == splits.splits  # deterministic


def test_column_mapping_and_parquet(tmp_path: Path) -> None:
    def rows(offset: int) -> list[dict]:
        return [{"question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]} for r in _pairs(4, offset)]

    pd.DataFrame(rows(0)).to_parquet(tmp_path / "t.parquet")
    pd.DataFrame(rows(100)).to_parquet(tmp_path / "h.parquet")  # held-out pairs must differ (no leakage)
    spec = DataSpec(source="parquet", train=str(tmp_path / "t.parquet"), heldout=str(tmp_path / "h.parquet"),
                    columns={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert load_splits(spec).sizes()["train"] == 4


def test_ultrafeedback_schema_moves_the_shared_turn_into_the_prompt(tmp_path: Path) -> None:
    row = {
        "prompt": "Name a prime.", "prompt_id": "abc",
        "chosen": [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"}],
        "rejected": [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "8"}],
        "score_chosen": 9.0, "score_rejected": 2.0,
    }
    def other(n: int) -> dict:
        question = f"Name a number above {n}."
        return dict(row, prompt=question, prompt_id=f"h{n}",
                    chosen=[{"role": "user", "content": question}, {"role": "assistant", "content": str(n + 1)}],
                    rejected=[{"role": "user", "content": question}, {"role": "assistant", "content": str(n - 1)}])

    path = _jsonl(tmp_path / "u.jsonl", [row, other(1)])
    heldout = _jsonl(tmp_path / "uh.jsonl", [other(10), other(20)])  # held-out pairs must differ (no leakage)
    splits = load_splits(DataSpec(source="jsonl", train=path, heldout=heldout))
    record = splits["train"][0]
    assert record["id"] == "abc"
    assert record["prompt"] == [{"role": "user", "content": "Name a prime."}]
    assert record["chosen"] == [{"role": "assistant", "content": "7"}]
    assert record["rejected"] == [{"role": "assistant", "content": "8"}]


def test_the_hf_source_reads_ultrafeedbacks_split_names(tmp_path: Path) -> None:
    """data.source hf with train_prefs / test_prefs, read here from a local folder laid out as the hub's
    (data/<split>-00000-of-00001.parquet): conversations, a string prompt column and the extra columns."""
    import random

    import pandas as pd
    from ultrafeedback_shape import row

    rng = random.Random(0)
    folder = tmp_path / "ultrafeedback_binarized" / "data"
    folder.mkdir(parents=True)
    pd.DataFrame([row(rng, i) for i in range(12)]).to_parquet(folder / "train_prefs-00000-of-00001.parquet")
    pd.DataFrame([row(rng, 100 + i) for i in range(8)]).to_parquet(folder / "test_prefs-00000-of-00001.parquet")
    spec = DataSpec(source="hf", hf_name=str(folder.parent), train_split="train_prefs", heldout_split="test_prefs")
    splits = load_splits(spec)
    assert len(splits["train"]) == 12 and len(splits["val"]) + len(splits["test"]) == 8
    first = splits["train"][0]
    assert first["id"] == "uf-00000" and first["prompt"][-1]["role"] == "user" and len(first["prompt"]) == 3
    assert [m["role"] for m in first["chosen"]] == ["assistant"]


def test_score_ties_are_dropped_and_counted(tmp_path: Path) -> None:
    """UltraFeedback's score columns: a pair whose answers scored the same states no preference."""
    def pair(i: int, chosen: float, rejected: float) -> dict:
        return {"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}", "score_chosen": chosen,
                "score_rejected": rejected}

    train = _jsonl(tmp_path / "t.jsonl", [pair(0, 8.0, 3.0), pair(1, 5.0, 5.0), pair(2, 7, 7), pair(3, 9, 1)])
    heldout = _jsonl(tmp_path / "h.jsonl", [pair(10 + i, 6.0, 2.0) for i in range(4)])
    splits = load_splits(DataSpec(source="jsonl", train=train, heldout=heldout))
    assert [r["prompt"][0]["content"] for r in splits["train"]] == ["q0", "q3"]
    assert splits.dropped["score_tie"] == 2


def test_bad_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = _pairs(4) + [{"prompt": "p", "chosen": "same", "rejected": "same"}, {"prompt": "p", "chosen": 3,
                                                                                 "rejected": "x"}]
    train = _jsonl(tmp_path / "t.jsonl", rows, extra_lines=("{not json", "[1, 2]"))
    splits = load_splits(DataSpec(source="jsonl", train=train, heldout=_jsonl(tmp_path / "h.jsonl", _pairs(4, 100))))
    assert splits.sizes()["train"] == 4
    assert splits.dropped == {"undecodable": 2, "chosen_equals_rejected": 1, "malformed": 1}


@pytest.mark.parametrize(
    ("train_rows", "heldout_rows", "message"),
    [
        ([{"prompt": "p", "answer": "a"}], _pairs(4), "missing column"),
        ([], _pairs(4), "empty split"),
        (_pairs(3), [{"prompt": "p", "chosen": "x", "rejected": "x"}], "every row was dropped"),
        (_pairs(3), _pairs(1), "at least 2 pairs"),
    ],
)
def test_structural_problems_raise(tmp_path: Path, train_rows, heldout_rows, message: str) -> None:
    spec = DataSpec(source="jsonl", train=_jsonl(tmp_path / "t.jsonl", train_rows),
                    heldout=_jsonl(tmp_path / "h.jsonl", heldout_rows))
    with pytest.raises(DataError, match=message):
        load_splits(spec)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    spec = DataSpec(source="jsonl", train=str(tmp_path / "nope.jsonl"), heldout=str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="nope.jsonl' does not exist"):
        load_splits(spec)


def test_synthetic_splits_are_conversations_with_a_system_turn() -> None:
    splits = load_splits(DataSpec())
    assert splits.sizes() == {"train": 64, "val": 64, "test": 64, "ood": 32, "profile": 0}
    record = splits["val"][0]
    assert [m["role"] for m in record["prompt"]] == ["system", "user"]
    assert {r["family"] for r in splits["ood"]} == {"subtraction", "multiplication"}
    assert not {"subtraction", "multiplication"} & {r["family"] for r in splits["train"]}


def test_a_profile_split_leaves_the_other_splits_and_an_empty_one_the_fingerprint() -> None:
    import hashlib

    plain = load_splits(DataSpec())
    extended = load_splits(DataSpec(synthetic={"n_profile": 10}))
    assert extended.sizes()["profile"] == 10
    assert all(extended[name] == plain[name] for name in ("train", "val", "test", "ood"))
    # a study made before the split existed hashed its four splits; an empty fifth one leaves that hash alone
    four = {name: plain[name] for name in ("train", "val", "test", "ood")}
    assert plain.fingerprint() == hashlib.sha256(json.dumps(four, sort_keys=True, ensure_ascii=False).encode()
                                                 ).hexdigest()[:16]
    assert extended.fingerprint() != plain.fingerprint()  # the pairs a stage reads are part of the study


def test_held_out_prompts_seen_in_training_are_reported_not_refused(tmp_path: Path) -> None:
    """The same question with other answers in train and held-out is common in preference data: counted per split
    (it flatters held-out accuracy), never an error; the whole pair repeated is still leakage."""
    train = _pairs(6)
    same_prompt = [{"prompt": "What is 2 + 1?", "chosen": "Three.", "rejected": "Four."},
                   {"prompt": "  what is 3 + 1?", "chosen": "Four.", "rejected": "Five."}]  # normalised: the same
    spec = DataSpec(source="jsonl", train=_jsonl(tmp_path / "t.jsonl", train),
                    heldout=_jsonl(tmp_path / "h.jsonl", _pairs(6, 100) + same_prompt), val_fraction=0.5)
    splits = load_splits(spec)
    assert sum(splits.prompt_overlap.values()) == 2 and set(splits.prompt_overlap) <= {"val", "test"}
    assert not splits.leakage
    clean = DataSpec(source="jsonl", train=spec.train, heldout=_jsonl(tmp_path / "c.jsonl", _pairs(6, 100)))
    assert load_splits(clean).prompt_overlap == {}
    leaky = DataSpec(source="jsonl", train=spec.train, heldout=_jsonl(tmp_path / "l.jsonl", _pairs(6, 100) + train[:1]))
    with pytest.raises(DataError, match="also stand in the held-out"):
        load_splits(leaky)
