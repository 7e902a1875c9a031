"""The reference cache: values read back equal a fresh computation exactly, and two workers preparing the same
fingerprint at once compute it once and read identical values."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from prefstudy.data.sources import load_splits
from prefstudy.evaluation.logprobs import sequence_logps
from prefstudy.spec import DataSpec, SyntheticData, TrainingSpec
from prefstudy.training.refcache import REF_KEYS, model_identity, prepare
from prefstudy.training.trl_seams import tokenize_records


@pytest.fixture(scope="module")
def splits() -> dict:
    return load_splits(DataSpec(synthetic=SyntheticData(n_train=6, n_val=4, n_test=4, n_ood=2))).splits


def _prepare(tiny, splits, root: Path):
    tokenizer, model = tiny
    return prepare(root, model, tokenizer, splits, TrainingSpec(max_length=256),
                   model_identity("tiny-random-mistral", None), 4, log=lambda _m: None)


def test_cached_values_equal_a_fresh_computation_exactly(tiny, splits, tmp_path: Path) -> None:
    tokenizer, model = tiny
    first = _prepare(tiny, splits, tmp_path)
    again = _prepare(tiny, splits, tmp_path)
    assert first.computed and not again.computed and again.fingerprint == first.fingerprint
    for name in ("train", "val", "test", "ood"):
        dataset, _ = tokenize_records(splits[name], tokenizer, 256)
        fresh = sequence_logps(model, dataset, tokenizer.pad_token_id, 4, "fp32", 256)
        for key in REF_KEYS:
            assert np.array_equal(again.ref[name][key], fresh[key]), (name, key)
        assert again.tokenized[name]["ref_chosen_logps"] == fresh["chosen"].tolist()
        assert again.tokenized[name]["prompt_ids"] == dataset["prompt_ids"]


def test_two_workers_at_once_compute_once(tiny, splits, tmp_path: Path) -> None:
    results = []
    threads = [threading.Thread(target=lambda: results.append(_prepare(tiny, splits, tmp_path))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.computed for r in results) == [False, True]
    a, b = results
    for name in a.ref:
        for key in REF_KEYS:
            assert np.array_equal(a.ref[name][key], b.ref[name][key])
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [f"ref-{a.fingerprint}"]  # no temp dir left
