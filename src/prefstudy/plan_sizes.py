"""Pairs per split for ``--dry-run`` (``prefstudy.plan``, ``prefstudy.plan_stages``), without training anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefstudy.spec import DataSpec, StudySpec

if TYPE_CHECKING:
    from prefstudy.data.sources import PreferenceSplits

_LOCAL_SPLITS: dict[str, PreferenceSplits | None] = {}  # local files read once per dry run (data spec as JSON)
_TOKENS: dict[str, PairTokens | None] = {}

#: tokens of one pair's two sequences (prompt + chosen, prompt + rejected) in the default study's data, on which
#: plan.CPU_COSTS was measured: ~38-token prompts, ~13-token answers
REFERENCE_PAIR_TOKENS = 2 * (38 + 13)


@dataclass(frozen=True)
class PairTokens:
    """Mean tokens of a sample of training pairs, as TRL tokenizes them, answers cut at ``max_length``."""

    prompt: float
    chosen: float
    rejected: float
    sampled: int

    @property
    def sequences(self) -> float:
        """Tokens of a pair's two training sequences (prompt + chosen, prompt + rejected)."""
        return 2 * self.prompt + self.chosen + self.rejected


def pair_tokens(spec: StudySpec, sample: int = 64) -> PairTokens | None:
    """Token counts of up to ``sample`` training pairs of local files (jsonl/parquet) with the model's tokenizer
    where it can be had offline; None for the built-in data (its costs are the reference) or when the data or the
    tokenizer needs a download or a build."""
    if spec.data.source not in ("jsonl", "parquet"):
        return None
    key = spec.data.model_dump_json() + spec.model.model_dump_json() + str(spec.training.max_length)
    if key not in _TOKENS:
        _TOKENS[key] = _count(spec, sample)
    return _TOKENS[key]


def _local_splits(data: DataSpec) -> PreferenceSplits | None:
    """The local files' splits as a study builds them (None where the study itself refuses them, with the reason),
    read once per dry run for the sizes and the token counts alike."""
    from prefstudy.data.sources import DataError, load_splits

    key = data.model_dump_json()
    if key not in _LOCAL_SPLITS:
        try:
            _LOCAL_SPLITS[key] = load_splits(data)
        except DataError:
            _LOCAL_SPLITS[key] = None
    return _LOCAL_SPLITS[key]


def _count(spec: StudySpec, sample: int) -> PairTokens | None:
    from prefstudy.models.loading import load_tokenizer_offline

    splits = _local_splits(spec.data)
    try:
        tokenizer = load_tokenizer_offline(spec.model)
    except (OSError, ValueError):
        return None
    records = splits["train"][:sample] if splits is not None else []
    if tokenizer is None or not records:
        return None
    from prefstudy.training.trl_seams import pair_token_counts

    limit = spec.training.max_length
    counts = [pair_token_counts(r, tokenizer) for r in records]
    kept = [(p, min(c, limit) - p, min(r, limit) - p) for p, c, r in counts if p < limit]
    if not kept:
        return None
    n = len(kept)
    return PairTokens(sum(k[0] for k in kept) / n, sum(k[1] for k in kept) / n, sum(k[2] for k in kept) / n, n)


def split_sizes(spec: StudySpec) -> dict[str, int | None]:
    """Pairs per split as the data module will build them: counted from local jsonl/parquet files (read, not
    trained on: the same splits, drops and caps as a study), None where only a download or missing files could
    tell."""
    data, s = spec.data, spec.data.synthetic
    if data.source == "synthetic":
        return {"train": s.n_train, "val": s.n_val, "test": s.n_test, "ood": s.n_ood, "profile": s.n_profile}
    if data.source in ("jsonl", "parquet"):
        splits = _local_splits(data)  # None: the study itself refuses it; the plan says what it cannot know
        if splits is not None:
            return dict(splits.sizes())
    val = test = None
    if data.max_heldout:
        val = min(max(1, round(data.max_heldout * data.val_fraction)), data.max_heldout - 1)
        test = data.max_heldout - val
    ood = 0 if data.source == "hf" or not data.ood else None
    return {"train": data.max_train, "val": val, "test": test, "ood": ood, "profile": 0}
