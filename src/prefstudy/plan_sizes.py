"""Pairs per split for ``--dry-run`` (``prefstudy.plan``, ``prefstudy.plan_stages``), without training anything."""

from __future__ import annotations

from prefstudy.spec import StudySpec

_LOCAL_SIZES: dict[str, dict[str, int]] = {}  # local files read once per dry run (data spec as JSON -> sizes)


def split_sizes(spec: StudySpec) -> dict[str, int | None]:
    """Pairs per split as the data module will build them: counted from local jsonl/parquet files (read, not
    trained on: the same splits, drops and caps as a study), None where only a download or missing files could
    tell."""
    data, s = spec.data, spec.data.synthetic
    if data.source == "synthetic":
        return {"train": s.n_train, "val": s.n_val, "test": s.n_test, "ood": s.n_ood}
    if data.source in ("jsonl", "parquet"):
        from prefstudy.data.sources import DataError, load_splits

        key = data.model_dump_json()
        if key not in _LOCAL_SIZES:
            try:
                _LOCAL_SIZES[key] = dict(load_splits(data).sizes())
            except DataError:  # the study itself refuses it, with the reason; the plan says what it cannot know
                _LOCAL_SIZES[key] = {}
        if _LOCAL_SIZES[key]:
            return dict(_LOCAL_SIZES[key])
    val = test = None
    if data.max_heldout:
        val = min(max(1, round(data.max_heldout * data.val_fraction)), data.max_heldout - 1)
        test = data.max_heldout - val
    ood = 0 if data.source == "hf" or not data.ood else None
    return {"train": data.max_train, "val": val, "test": test, "ood": ood}
