"""Tokenized splits and reference log-probs, computed once per fingerprint and cached on disk.

The fingerprint covers the model (name, revision, weight files), the tokenizer and chat template, the exact pairs,
max_length, precision and quantization. Every trial of every method and every worker reads the same cache; a
file lock makes two workers that start together compute it once.

The reference arrays (``ref-<split>.npz``, what held-out metrics compare a policy with) are scored in the scoring
precision (``StudySpec.score_precision``); the ``ref_*_logps`` columns TRL's loss reads are in the training
precision. Where the two differ, the train split is scored once more for its columns (held-out splits are never
trained on, so their columns are the arrays').
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prefstudy.core.console import Log
from prefstudy.evaluation.heldout import Arrays, Prepared
from prefstudy.evaluation.logprobs import sequence_logps
from prefstudy.spec import TrainingSpec
from prefstudy.training.trl_seams import tokenize_records

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

REF_KEYS = ("chosen", "rejected", "chosen_tokens", "rejected_tokens", "chosen_token_logps", "chosen_token_mask")


def model_identity(model_path: str, revision: str | None) -> dict[str, Any]:
    folder = Path(model_path)
    files = []
    if folder.is_dir():
        for item in sorted(folder.iterdir()):
            if item.suffix in (".safetensors", ".bin", ".json", ".model", ".txt", ".jinja"):
                files.append((item.name, item.stat().st_size))
    return {"path": str(model_path), "revision": revision, "files": files}


def fingerprint(identity: dict[str, Any], tokenizer: PreTrainedTokenizerBase, splits: dict[str, list],
                training: TrainingSpec, score_precision: str | None = None) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(identity, sort_keys=True).encode())
    digest.update(str(tokenizer.chat_template).encode())
    digest.update(str(len(tokenizer)).encode())
    digest.update(json.dumps(splits, sort_keys=True).encode())
    digest.update(f"{training.max_length}|{training.precision}|{training.quantization}".encode())
    if training.truncation != "drop":  # "drop" was the only rule before the setting: those caches keep their key
        digest.update(f"|{training.truncation}".encode())
    if score_precision not in (None, training.precision):  # caches scored in the training precision keep their key
        digest.update(f"|score {score_precision}".encode())
    return digest.hexdigest()[:16]


def _load(folder: Path, names: list[str]) -> tuple[dict[str, Dataset], dict[str, Arrays], dict[str, Any]]:
    from datasets import load_from_disk

    tokenized = {name: load_from_disk(str(folder / f"tokenized-{name}")) for name in names}
    ref = {}
    for name in names:
        with np.load(folder / f"ref-{name}.npz") as arrays:
            ref[name] = {key: arrays[key] for key in REF_KEYS}
    meta = json.loads((folder / "meta.json").read_text())
    return tokenized, ref, meta


def prepare(
    cache_root: Path,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    splits: dict[str, list],
    training: TrainingSpec,
    identity: dict[str, Any],
    batch_size: int,
    log: Log = print,
    score_precision: str | None = None,
) -> Prepared:
    """Return the cached tokenized splits + reference log-probs, computing them once if absent. ``score_precision``:
    that of the reference arrays (None: the training precision; module docstring)."""
    names = [name for name, rows in splits.items() if rows]
    scoring = score_precision or training.precision
    key = fingerprint(identity, tokenizer, {n: splits[n] for n in names}, training, scoring)
    folder = cache_root / f"ref-{key}"
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f"ref-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "meta.json").exists():
            tokenized, ref, meta = _load(folder, names)
            return Prepared(tokenized, ref, key, meta["over_length"], computed=False,
                            truncated=meta.get("truncated", {}), identical=meta.get("identical", {}))
        started = time.perf_counter()
        log(f"reference pass: tokenizing and scoring {sum(len(splits[n]) for n in names)} pairs once ...")
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        over_length: dict[str, int] = {}
        truncated: dict[str, int] = {}
        identical: dict[str, int] = {}
        for name in names:
            dataset, counts = tokenize_records(splits[name], tokenizer, training.max_length, training.truncation)
            over_length[name], truncated[name], identical[name] = counts.dropped, counts.truncated, counts.identical
            if len(dataset) == 0:
                from prefstudy.data.sources import DataError

                raise DataError(
                    f"split '{name}': every pair is longer than training.max_length={training.max_length}; raise it"
                )
            arrays = sequence_logps(model, dataset, tokenizer.pad_token_id, batch_size, scoring, training.max_length)
            columns = arrays
            if name == "train" and scoring != training.precision:  # TRL's loss: the training precision
                columns = sequence_logps(model, dataset, tokenizer.pad_token_id, batch_size, training.precision,
                                         training.max_length)
            dataset = dataset.add_column("ref_chosen_logps", columns["chosen"].tolist())
            dataset = dataset.add_column("ref_rejected_logps", columns["rejected"].tolist())
            dataset.save_to_disk(str(tmp / f"tokenized-{name}"))
            np.savez(tmp / f"ref-{name}.npz", **arrays)
        seconds = time.perf_counter() - started
        meta = {"fingerprint": key, "over_length": over_length, "truncated": truncated, "identical": identical,
                "seconds": seconds}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        tmp.rename(folder)
        tokenized, ref, _ = _load(folder, names)
        return Prepared(tokenized, ref, key, over_length, computed=True, seconds=seconds, truncated=truncated,
                        identical=identical)
