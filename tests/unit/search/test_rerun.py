"""curve_differences: how `prefstudy rerun` decides that two curves.jsonl files agree."""

from __future__ import annotations

import math

from prefstudy.search.rerun import curve_differences


def test_identical_curves_differ_by_zero_and_timings_are_ignored() -> None:
    rows = [{"step": 2, "loss": 0.5, "val/accuracy": 0.75, "train_seconds": 1.0, "final": False}]
    again = [{"step": 2, "loss": 0.5, "val/accuracy": 0.75, "train_seconds": 9.0, "final": False}]
    assert curve_differences(rows, again) == {"step": 0.0, "loss": 0.0, "val/accuracy": 0.0}


def test_largest_difference_per_column() -> None:
    rows = [{"step": 2, "loss": 0.5}, {"step": 4, "loss": 0.25}]
    again = [{"step": 2, "loss": 0.5 + 1e-7}, {"step": 4, "loss": 0.25 - 3e-7}]
    diffs = curve_differences(rows, again)
    assert math.isclose(diffs["loss"], 3e-7, rel_tol=1e-6)


def test_missing_steps_or_columns_are_infinite() -> None:
    assert curve_differences([{"step": 2}], [{"step": 2}, {"step": 4}]) == {"step": math.inf}
    assert curve_differences([{"step": 2, "loss": 1.0}], [{"step": 2}])["loss"] == math.inf
    assert curve_differences([{"step": 2, "kl": float("nan")}], [{"step": 2, "kl": float("nan")}])["kl"] == 0.0
