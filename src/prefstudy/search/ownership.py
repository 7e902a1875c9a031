"""Run directories belong to one study: ``runs/<name>/owners.json`` names the studies (by ``study_uuid``) whose
trials write there, so a second storage holding a study of the same name cannot overwrite the first one's files.

The check runs before anything is written: it reads the target storage without opening it as an Optuna storage
(which would create its tables), and a SQLite file that does not exist yet holds no study at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from prefstudy.core.rundir import write_json
from prefstudy.core.secrets import redact
from prefstudy.spec import SpecError, StudySpec

OWNERS = "owners.json"


def owners_path(spec: StudySpec) -> Path:
    return spec.run_root() / OWNERS


def stored_ids(storage_url: str, names: list[str]) -> dict[str, str]:
    """``study_uuid`` of each named study in the storage, read-only; {} for a storage that holds none yet."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.pool import NullPool

    if storage_url.startswith("sqlite:///") and not Path(storage_url.removeprefix("sqlite:///")).is_file():
        return {}
    from prefstudy.search.storage import engine_kwargs

    engine = create_engine(storage_url, poolclass=NullPool, **{k: v for k, v in engine_kwargs(storage_url).items()
                                                                 if k == "connect_args"})
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("study_user_attributes"):
                return {}
            rows = connection.execute(text(
                "SELECT s.study_name, a.value_json FROM studies s JOIN study_user_attributes a "
                "ON a.study_id = s.study_id WHERE a.key = 'study_uuid'")).all()
    finally:
        engine.dispose()
    return {name: json.loads(value) for name, value in rows if name in names}


def check_owner(spec: StudySpec, storage_url: str) -> None:
    """Refuse (SpecError, nothing written) when runs/<name>/ belongs to a study this storage does not hold."""
    path = owners_path(spec)
    if not path.is_file():
        return
    owners: dict[str, dict[str, str]] = json.loads(path.read_text())
    here = stored_ids(storage_url, list(owners))
    for name, owner in sorted(owners.items()):
        if here.get(name) == owner["study_uuid"]:
            continue
        found = f"has another study of that name ({here[name][:8]})" if name in here else "has no such study"
        raise SpecError(
            f"{spec.run_root()}/ holds the trials of study '{name}' {owner['study_uuid'][:8]} in storage "
            f"{owner['storage']}; storage {redact(storage_url)} {found}, so its trials would overwrite those run "
            f"directories. Give this study another `name` (name=...) or `runs_dir` (runs_dir=...), or delete "
            f"{spec.run_root()}/ to start over")


def claim(spec: StudySpec, storage_url: str, studies: dict[str, optuna.Study]) -> None:
    """Record the studies writing under runs/<name>/ (after check_owner passed)."""
    path = owners_path(spec)
    owners: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.is_file() else {}
    changed = False
    for study in studies.values():
        if study.study_name not in owners:
            owners[study.study_name] = {"study_uuid": str(study.user_attrs["study_uuid"]),
                                        "storage": redact(storage_url)}
            changed = True
    if changed:
        write_json(path, owners)
