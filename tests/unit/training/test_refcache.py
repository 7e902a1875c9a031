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


def test_bf16_scoring_precision_keeps_training_columns_in_fp32(tiny, splits, tmp_path: Path) -> None:
    """evaluation.precision bf16 with fp32 training: the reference arrays every metric compares with are scored in
    bf16, the train split's TRL columns in fp32 (the loss is trained as before), held-out columns are the arrays;
    the cache key differs from the fp32 one, and naming the training precision keeps the old key."""
    tokenizer, model = tiny
    training, identity = TrainingSpec(max_length=256), model_identity("tiny-random-mistral", None)
    fp32 = prepare(tmp_path, model, tokenizer, splits, training, identity, 4, log=lambda _m: None)
    same = prepare(tmp_path, model, tokenizer, splits, training, identity, 4, log=lambda _m: None,
                   score_precision="fp32")
    bf16 = prepare(tmp_path, model, tokenizer, splits, training, identity, 4, log=lambda _m: None,
                   score_precision="bf16")
    assert same.fingerprint == fp32.fingerprint and not same.computed
    assert bf16.fingerprint != fp32.fingerprint and bf16.computed
    for name in ("train", "val"):
        dataset, _ = tokenize_records(splits[name], tokenizer, 256)
        low = sequence_logps(model, dataset, tokenizer.pad_token_id, 4, "bf16", 256)
        high = sequence_logps(model, dataset, tokenizer.pad_token_id, 4, "fp32", 256)
        assert not np.array_equal(low["chosen"], high["chosen"])  # the two precisions do differ here
        assert np.array_equal(bf16.ref[name]["chosen"], low["chosen"])
        columns = high if name == "train" else low
        assert bf16.tokenized[name]["ref_chosen_logps"] == columns["chosen"].tolist()
        assert bf16.tokenized[name]["ref_rejected_logps"] == columns["rejected"].tolist()
