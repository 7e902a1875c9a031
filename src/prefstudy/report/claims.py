"""The claims the tool exists to test, read from their stages' studies and run directories: ``claims.json``, one
entry per claim stage that has runs, each built by its claim's module:

- claim (a) on the training preferences, ``fixed_points``: ``report.claim_a_train``;
- claim (a) on held-out pairs, ``drift``: ``report.claim_a_held_out``;
- claim (b), ``lr_tolerance``: ``report.claim_b``.

A primary statistic is tested at 5% on its own (its stage is designed for it); secondary statistics join the study's
verdict family (``report.verdicts``), are Holm-adjusted with it, and carry their adjusted p here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prefstudy.report import claim_a_held_out, claim_a_train, claim_b
from prefstudy.report.claim_a_held_out import MethodRuns
from prefstudy.spec import StudySpec


def build(spec: StudySpec, storage: Any) -> tuple[list[dict[str, Any]], dict[str, MethodRuns], dict[str, Any],
                                                  dict[str, Any]]:
    """Every claim entry (one per claim stage that has runs; claim (a) on the training instances where the drift
    runs scored them) and the loaded runs of each (for the figures): drift (val), drift (train), lr-profile."""
    runs = claim_a_held_out.load_drift(spec, storage)
    train = claim_a_train.load(spec, storage)
    profile = claim_b.load_profile(spec, storage)
    held_out = [claim_a_held_out.drift_claim(spec, runs)] if runs else []
    on_train = [claim_a_train.fixed_points_claim(spec, train)] if train else []
    # claim (a)'s primary: the rules on the training preferences where the design has p < 1 arms (docs/claims.md);
    # the held-out slope across beta (the 2026-12-02 design) is then secondary, and primary only without them
    decides = bool(on_train) and "reason" not in on_train[0]
    for entry in on_train:
        entry["primary"] = decides
    for entry in held_out:
        entry["primary"] = not decides
    entries = on_train + held_out + ([claim_b.lr_claim(spec, profile)] if profile else [])
    return entries, runs, profile, train


def sentence(entry: dict[str, Any]) -> str:
    """The entry's one line, by its claim's module."""
    if entry["id"] == "lr_tolerance":
        return claim_b.sentence(entry)
    if entry["id"] == "fixed_points":
        return claim_a_train.sentence(entry)
    return claim_a_held_out.sentence(entry)


def write(entries: list[dict[str, Any]], out_dir: Path) -> Path:
    """``<out_dir>/claims.json`` (atomically)."""
    path = out_dir / "claims.json"
    tmp = out_dir / f".claims.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path

