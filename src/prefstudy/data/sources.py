"""Preference data: the built-in generator, local jsonl/parquet files and Hugging Face datasets.

Every source is turned into the same conversational records::

    {"id": str, "family": str, "prompt": [messages], "chosen": [messages], "rejected": [messages]}

and split into ``train``, ``val`` (objective, pruning, sampler), ``test`` (reported only) and ``ood``
(optional, reported separately). Bad rows are dropped and counted; structural problems raise DataError.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefstudy.data import synthetic
from prefstudy.data.hygiene import drop_duplicates, overlaps, prompt_overlaps
from prefstudy.spec import Columns, DataSpec

SPLITS = ("train", "val", "test", "ood", "profile")  # profile: synthetic data only (data.synthetic.n_profile)
Message = dict[str, str]


class DataError(ValueError):
    """The preference data named in the spec is unusable; the message names the file and what to fix."""


@dataclass
class PreferenceSplits:
    splits: dict[str, list[dict[str, Any]]]
    dropped: dict[str, int] = field(default_factory=dict)
    leakage: dict[str, int] = field(default_factory=dict)  # training pairs also in each held-out split (warn mode)
    prompt_overlap: dict[str, int] = field(default_factory=dict)  # held-out pairs whose prompt is a training one's

    def __getitem__(self, name: str) -> list[dict[str, Any]]:
        return self.splits[name]

    def sizes(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.splits.items()}

    def fingerprint(self) -> str:
        """A hash of every pair of every split: a resumed study must see exactly the pairs it started with. An
        empty split is left out, so a study made before a split existed keeps its fingerprint."""
        blob = json.dumps({k: v for k, v in self.splits.items() if v}, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def save(self, folder: Path) -> None:
        """Write the exact pairs a study used, one jsonl per split (atomic, written once)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in self.splits.items():
            target = folder / f"{name}.jsonl"
            tmp = target.with_suffix(".jsonl.tmp")
            with open(tmp, "w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            tmp.replace(target)
        (folder / "dropped.json").write_text(json.dumps(self.dropped, indent=2))


def _synthetic(spec: DataSpec) -> PreferenceSplits:
    sizes = spec.synthetic
    generated = synthetic.generate(sizes.n_train, sizes.n_val, sizes.n_test, sizes.n_ood, seed=spec.seed,
                                   n_profile=sizes.n_profile)
    splits: dict[str, list[dict[str, Any]]] = {}
    for name in SPLITS:
        splits[name] = [
            {
                "id": pair.id,
                "family": pair.family,
                "prompt": [
                    {"role": "system", "content": synthetic.SYSTEM_PROMPT},
                    {"role": "user", "content": pair.question},
                ],
                "chosen": [{"role": "assistant", "content": pair.chosen}],
                "rejected": [{"role": "assistant", "content": pair.rejected}],
            }
            for pair in generated.get(name, [])
        ]
    return PreferenceSplits(splits)


def _as_messages(value: Any, role: str) -> list[Message] | None:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    return None


def to_record(row: dict[str, Any], columns: Columns, index: int, family: str) -> dict[str, Any] | None:
    """One raw row -> a conversational record, or None when it is not a usable pair."""
    prompt = _as_messages(row.get(columns.prompt), "user")
    chosen = _as_messages(row.get(columns.chosen), "assistant")
    rejected = _as_messages(row.get(columns.rejected), "assistant")
    if chosen is None or rejected is None:
        return None
    # Chosen/rejected given as whole conversations (e.g. ultrafeedback_binarized): move the shared leading
    # turns into the prompt so only the answers differ.
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    if shared:
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if prompt is None or not chosen or not rejected:
        return None
    ident = row.get("id", row.get("prompt_id", f"{family}-{index:06d}"))
    roles = {"chosen": chosen[-1]["role"], "rejected": rejected[-1]["role"], "prompt": prompt[-1]["role"]}
    if roles["chosen"] != "assistant" or roles["rejected"] != "assistant" or roles["prompt"] != "user":
        raise RoleError(f"row {index} (id {ident}): the prompt ends on a '{roles['prompt']}' turn and the answers "
                        f"on '{roles['chosen']}' (chosen) and '{roles['rejected']}' (rejected) turns; the last "
                        "message of chosen and rejected must be the answer (role 'assistant') and the prompt (or "
                        "the turns both conversations share) must end on a 'user' turn")
    return {"id": str(ident), "family": family, "prompt": prompt, "chosen": chosen, "rejected": rejected}


class RoleError(ValueError):
    """A conversation whose turns are not prompt (ending on the user) then the assistant's answer."""


def _read_rows(path: Path, fmt: str, dropped: dict[str, int], field: str = "data") -> list[dict[str, Any]]:
    if not path.exists():
        raise DataError(
            f"{field}: data file '{path}' does not exist; fix the path in the spec "
            f"(relative paths start from the working directory {Path.cwd()})"
        )
    if not path.is_file():
        raise DataError(f"{field}: '{path}' is not a file; point {field} at a .{fmt} file")
    if fmt == "parquet":
        import pandas as pd

        try:
            return pd.read_parquet(path).to_dict(orient="records")
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"{path} ({field}): not a readable parquet file ({reason}); check the path or rewrite the file"
            ) from None
    rows, bad, first_bad = [], 0, 0
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    value = None
                if isinstance(value, dict):
                    rows.append(value)
                else:
                    bad += 1
                    first_bad = first_bad or number
    except OSError as exc:
        raise DataError(
            f"{field}: data file '{path}' cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    if bad and not rows:
        raise DataError(
            f"{path} ({field}): none of its {bad} line(s) is a JSON object (first bad line {first_bad}); "
            "write one JSON object per line (jsonl) with the prompt, chosen and rejected keys named in data.columns"
        )
    if bad:
        dropped["undecodable"] = dropped.get("undecodable", 0) + bad
    return rows


def _score_tie(row: dict[str, Any]) -> bool:
    """A row with UltraFeedback's score columns whose two answers scored the same: no preference to learn."""
    a, b = row.get("score_chosen"), row.get("score_rejected")
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b


def _records(rows: list[dict[str, Any]], columns: Columns, where: str, family: str, dropped: dict[str, int]) -> list:
    if not rows:
        raise DataError(
            f"{where}: no rows (empty split); add preference pairs with columns "
            f"{columns.prompt}, {columns.chosen} and {columns.rejected}"
        )
    names = (columns.prompt, columns.chosen, columns.rejected)
    missing = [name for name in names if name not in rows[0]]
    if missing:
        have = ", ".join(sorted(str(key) for key in rows[0])[:12])
        raise DataError(f"{where}: missing column(s) {missing}; it has {have}. Map them under data.columns")
    out = []
    here: dict[str, int] = {}
    for index, row in enumerate(rows):
        try:
            record = to_record(row, columns, index, family)
        except RoleError as exc:
            raise DataError(f"{where}: {exc}") from None
        if record is None:
            here["malformed"] = here.get("malformed", 0) + 1
        elif record["chosen"] == record["rejected"]:
            here["chosen_equals_rejected"] = here.get("chosen_equals_rejected", 0) + 1
        elif _score_tie(row):
            here["score_tie"] = here.get("score_tie", 0) + 1
        else:
            out.append(record)
    for reason, count in here.items():
        dropped[reason] = dropped.get(reason, 0) + count
    if not out:
        fixes = []
        if here.get("chosen_equals_rejected"):
            fixes.append("each pair needs a chosen answer that differs from its rejected answer")
        if here.get("score_tie"):
            fixes.append("score_chosen equals score_rejected: such a pair states no preference")
        if here.get("malformed"):
            fixes.append(f"{columns.prompt}, {columns.chosen} and {columns.rejected} must be non-empty text or "
                         "lists of {role, content} messages")
        raise DataError(
            f"{where}: every row was dropped ({here}); nothing left to train or score on: {'; '.join(fixes)}"
        )
    return out


def _split_heldout(records: list, spec: DataSpec, where: str) -> tuple[list, list]:
    if len(records) < 2:
        raise DataError(
            f"{where}: held-out data needs at least 2 pairs to form val and test; add more pairs to it"
        )
    shuffled = list(records)
    random.Random(spec.seed).shuffle(shuffled)
    if spec.max_heldout:
        shuffled = shuffled[: spec.max_heldout]
    cut = min(max(1, round(len(shuffled) * spec.val_fraction)), len(shuffled) - 1)
    return shuffled[:cut], shuffled[cut:]


def _hf_rows(spec: DataSpec, split: str) -> list[dict[str, Any]]:
    try:
        from datasets import load_dataset

        dataset = load_dataset(spec.hf_name, spec.hf_config, split=split)
    except Exception as exc:  # noqa: BLE001 - network, missing split, ...
        raise DataError(
            f"dataset '{spec.hf_name}' split '{split}' could not be loaded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check the name or download it to a local file"
        ) from None
    return [dict(row) for row in dataset]


def load_splits(spec: DataSpec) -> PreferenceSplits:
    """Build the study's splits from ``spec.data`` (a DataSpec), duplicates dropped and leakage checked
    (data/hygiene.py): training pairs that also stand in a held-out split are an error unless data.leakage=warn."""
    splits = _synthetic(spec) if spec.source == "synthetic" else _from_files(spec)
    for name in SPLITS:
        splits.splits[name] = drop_duplicates(splits.splits.get(name, []), name, splits.dropped)
    splits.prompt_overlap = prompt_overlaps(splits.splits)
    leaked = overlaps(splits.splits)
    if leaked:
        where = ", ".join(f"{n} in {split}" for split, n in leaked.items())
        if spec.leakage == "error":
            raise DataError(
                f"data: training pairs also stand in the held-out data ({where}); the verdicts would be computed "
                "on pairs the model was trained on. Remove them from one side, or set data.leakage=warn to go on "
                "(recorded in the study)")
        splits.leakage = leaked
    return splits


def _from_files(spec: DataSpec) -> PreferenceSplits:
    dropped: dict[str, int] = {}
    if spec.source == "hf":
        train_rows, heldout_rows = _hf_rows(spec, spec.train_split), _hf_rows(spec, spec.heldout_split)
        where_train, where_heldout = f"{spec.hf_name}:{spec.train_split}", f"{spec.hf_name}:{spec.heldout_split}"
        ood_rows, where_ood = [], ""
    else:
        train_path, heldout_path = Path(spec.train or ""), Path(spec.heldout or "")  # both set (validated)
        train_rows = _read_rows(train_path, spec.source, dropped, "data.train")
        heldout_rows = _read_rows(heldout_path, spec.source, dropped, "data.heldout")
        where_train, where_heldout = f"{train_path} (data.train)", f"{heldout_path} (data.heldout)"
        ood_rows = _read_rows(Path(spec.ood), spec.source, dropped, "data.ood") if spec.ood else []
        where_ood = f"{spec.ood} (data.ood)"
    train = drop_duplicates(_records(train_rows, spec.columns, where_train, "train", dropped), "train", dropped)
    if spec.max_train:
        rng = random.Random(spec.seed)
        train = rng.sample(train, min(spec.max_train, len(train)))
    heldout = drop_duplicates(_records(heldout_rows, spec.columns, where_heldout, "heldout", dropped), "heldout",
                              dropped)  # before the split: a repeat must not land in val and test at once
    val, test = _split_heldout(heldout, spec, where_heldout)
    ood = _records(ood_rows, spec.columns, where_ood, "ood", dropped) if ood_rows else []
    return PreferenceSplits({"train": train, "val": val, "test": test, "ood": ood}, dropped)
