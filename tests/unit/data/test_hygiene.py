"""Data hygiene: duplicates inside a split are dropped and counted (exact and normalised), training pairs found in
a held-out split are refused unless data.leakage=warn, and the built-in generator passes by construction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefstudy.data.hygiene import drop_duplicates, overlaps
from prefstudy.data.sources import DataError, load_splits
from prefstudy.spec import DataSpec, SyntheticData


def _record(prompt: str, chosen: str, rejected: str) -> dict:
    return {"id": prompt, "family": "f", "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def test_exact_and_normalised_duplicates_are_dropped_and_counted() -> None:
    records = [_record("What is 2 + 2?", "4.", "5."), _record("What is 2 + 2?", "4.", "5."),
               _record("what is  2 + 2?", "4.", "5."), _record("What is 2 + 3?", "5.", "6."),
               _record("What is 2 + 2?", "4.", "6.")]  # same prompt, other rejected: another pair
    dropped: dict[str, int] = {}
    kept = drop_duplicates(records, "train", dropped)
    assert [r["prompt"][0]["content"] for r in kept] == ["What is 2 + 2?", "What is 2 + 3?", "What is 2 + 2?"]
    assert dropped == {"duplicate/train": 1, "duplicate_normalized/train": 1}


def test_overlaps_count_training_pairs_per_heldout_split() -> None:
    a, b, c = _record("a?", "1", "2"), _record("b?", "1", "2"), _record("c?", "1", "2")
    splits = {"train": [a, b], "val": [_record("A? ", "1", "2"), c], "test": [c], "ood": [b, a]}
    assert overlaps(splits) == {"val": 1, "ood": 2}


def _files(tmp: Path, train: list[dict], heldout: list[dict]) -> DataSpec:
    for name, rows in (("train", train), ("heldout", heldout)):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return DataSpec(source="jsonl", train=str(tmp / "train.jsonl"), heldout=str(tmp / "heldout.jsonl"))


def _pairs(start: int, n: int) -> list[dict]:
    return [{"prompt": f"What is {i} + 1?", "chosen": f"{i + 1}.", "rejected": f"{i + 2}."}
            for i in range(start, start + n)]


def test_leakage_is_an_error_by_default_and_a_recorded_warning_on_request(tmp_path: Path) -> None:
    spec = _files(tmp_path, _pairs(0, 10), _pairs(5, 10))  # pairs 5..9 in both files
    with pytest.raises(DataError, match=r"training pairs also stand in the held-out data \(.*\).*data.leakage=warn"):
        load_splits(spec)
    splits = load_splits(spec.model_copy(update={"leakage": "warn"}))
    assert sum(splits.leakage.values()) == 5 and set(splits.leakage) <= {"val", "test"}


def test_one_file_given_twice_is_leakage(tmp_path: Path) -> None:
    spec = _files(tmp_path, _pairs(0, 10), [])
    spec = spec.model_copy(update={"heldout": spec.train})
    with pytest.raises(DataError, match="training pairs also stand in the held-out data"):
        load_splits(spec)


def test_duplicates_in_a_file_are_dropped_before_the_split(tmp_path: Path) -> None:
    heldout = _pairs(100, 6) + _pairs(100, 2)  # two exact repeats
    splits = load_splits(_files(tmp_path, _pairs(0, 6), heldout))
    assert splits.dropped == {"duplicate/heldout": 2} and len(splits["val"]) + len(splits["test"]) == 6


@pytest.mark.parametrize("seed", range(5))
def test_the_generator_passes_by_construction(seed: int) -> None:
    splits = load_splits(DataSpec(seed=seed, synthetic=SyntheticData(n_train=300, n_val=200, n_test=400,
                                                                      n_ood=100)))
    assert splits.dropped == {} and splits.leakage == {}
