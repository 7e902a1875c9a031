"""Data hygiene before training: duplicates inside a split are dropped and counted; pairs of the training split that
also stand in a held-out split (val, test, ood) are leakage -- an error unless ``data.leakage: warn``. Held-out
pairs whose prompt alone stands in the training split are reported (:func:`prompt_overlaps`), never an error: the
same question with other answers is common in preference data, but it flatters held-out accuracy.

Two pairs are the same when their prompt, chosen and rejected messages are equal exactly, or after normalisation
(whitespace collapsed, case folded): a pasted copy with other spacing or capitals is still the same pair.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
HELDOUT = ("val", "test", "ood", "profile")


def _text(messages: list[dict[str, str]], fold: bool) -> str:
    parts = [f"{m['role']}:{' '.join(m['content'].split()) if fold else m['content']}" for m in messages]
    joined = "\x1f".join(parts)
    return joined.casefold() if fold else joined


def exact_key(record: Record) -> tuple[str, str, str]:
    return tuple(_text(record[k], False) for k in ("prompt", "chosen", "rejected"))  # type: ignore[return-value]


def normalized_key(record: Record) -> tuple[str, str, str]:
    return tuple(_text(record[k], True) for k in ("prompt", "chosen", "rejected"))  # type: ignore[return-value]


def drop_duplicates(records: list[Record], name: str, dropped: dict[str, int]) -> list[Record]:
    """The records without repeats (the first of each kept); counts ``duplicate/<name>`` (exact repeats) and
    ``duplicate_normalized/<name>`` (equal only after normalisation) in ``dropped``."""
    exact: set[tuple[str, str, str]] = set()
    normal: set[tuple[str, str, str]] = set()
    kept = []
    for record in records:
        e, n = exact_key(record), normalized_key(record)
        if e in exact or n in normal:
            reason = f"duplicate/{name}" if e in exact else f"duplicate_normalized/{name}"
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        exact.add(e)
        normal.add(n)
        kept.append(record)
    return kept


def overlaps(splits: dict[str, list[Record]], key: Callable[[Record], tuple[str, str, str]] = normalized_key,
             ) -> dict[str, int]:
    """How many training pairs also stand in each held-out split (``{"val": 3}``; empty when there are none)."""
    train = {key(r) for r in splits.get("train", [])}
    counts = {name: sum(key(r) in train for r in splits.get(name, [])) for name in HELDOUT}
    return {name: n for name, n in counts.items() if n}


def prompt_key(record: Record) -> str:
    """A pair's prompt, normalised as in :func:`normalized_key`."""
    return _text(record["prompt"], True)


def prompt_overlaps(splits: dict[str, list[Record]]) -> dict[str, int]:
    """How many pairs of each held-out split have a prompt that a training pair has too (``{"test": 5}``)."""
    train = {prompt_key(r) for r in splits.get("train", [])}
    counts = {name: sum(prompt_key(r) in train for r in splits.get(name, [])) for name in HELDOUT}
    return {name: n for name, n in counts.items() if n}
