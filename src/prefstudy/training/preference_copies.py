"""Preference determinism as a factor (claim (a), docs/claims.md): each training instance shown as ``copies`` rows, a
share ``1 - p`` of them with the answers swapped, so the instance's preferred answer wins with probability ``p``.

The copies are built from the tokenized training split after the data's hygiene checks (deliberate copies, never
read as accidental duplicates), and their reference log-probs are the instance's own: a flipped copy gets the
rejected answer's reference as its chosen one and the other way round (a cache keyed by pair id alone would hand it
the unswapped ones). Rows are instance-major (row ``i * copies + c``), and :class:`CopyGroupSampler` can keep an
instance's copies together in one batch, so a step sees that instance's exact expected gradient.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from datasets import Dataset

@dataclass(frozen=True)
class Copies:
    """A run's training rows: ``copies`` per instance, a share ``1 - p`` flipped, kept in one batch (``together``)."""

    p: float = 1.0
    copies: int = 1
    together: bool = True


#: the columns whose chosen and rejected versions a flipped copy swaps
SWAPPED = (("chosen_ids", "rejected_ids"), ("ref_chosen_logps", "ref_rejected_logps"))


def flipped_count(p: float, copies: int) -> int:
    """How many of an instance's ``copies`` are flipped at preference probability ``p``: exactly ``(1 - p) *
    copies``, which must be a whole number (ValueError otherwise)."""
    if not 0.5 < p <= 1.0:
        raise ValueError(f"preference probability {p}: must be in (0.5, 1]")
    flipped = (1.0 - p) * copies
    if copies < 1 or not math.isclose(flipped, round(flipped), abs_tol=1e-9):
        raise ValueError(f"p={p} with {copies} copies per instance: (1 - p) * copies = {flipped:g} is not a whole "
                         "number of flipped copies; choose copies so that it is (e.g. 4 copies for p = 0.75)")
    return int(round(flipped))


def expand(dataset: Dataset, p: float, copies: int) -> Dataset:
    """``copies`` rows per row of ``dataset`` (instance-major), the first ``(1 - p) * copies`` of each instance's
    copies flipped; adds ``instance`` (the row's index in ``dataset``) and ``flipped`` columns."""
    flipped = flipped_count(p, copies)
    if copies == 1:
        return dataset.add_column("instance", list(range(len(dataset)))).add_column("flipped", [False] * len(dataset))
    rows = [i for i in range(len(dataset)) for _ in range(copies)]
    out = dataset.select(rows)
    flags = [c < flipped for _ in range(len(dataset)) for c in range(copies)]

    def swap(row: dict[str, Any], index: int) -> dict[str, Any]:
        if not flags[index]:
            return row
        for first, second in SWAPPED:
            row[first], row[second] = row[second], row[first]
        return row

    out = out.map(swap, with_indices=True, keep_in_memory=True)  # never beside the reference cache
    return out.add_column("instance", rows).add_column("flipped", flags)


class CopyGroupSampler(torch.utils.data.Sampler[int]):
    """Instances in a seeded random order each epoch, each instance's ``copies`` consecutive rows kept together (the
    rows of :func:`expand`); the Trainer calls :meth:`set_epoch` at every epoch."""

    def __init__(self, rows: int, copies: int, seed: int) -> None:
        if rows % copies:
            raise ValueError(f"{rows} rows are not whole groups of {copies} copies")
        self.rows, self.copies, self.seed, self.epoch = rows, copies, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.rows

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for instance in torch.randperm(self.rows // self.copies, generator=generator).tolist():
            yield from range(instance * self.copies, (instance + 1) * self.copies)
