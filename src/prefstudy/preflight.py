"""Check a study's inputs before anything is written: data, model, storage, and pairs that fit max_length.

``check_inputs`` is called before the storage is opened, so a bad input is refused with one line naming the file,
field or URL and what to do, and leaves no SQLite file, no study in a server storage and no ``runs/`` folder.
Cheap checks come first; the last one (pairs longer than ``training.max_length``) needs the tokenizer, which is
loaded only when that writes and downloads nothing (see ``model.load_tokenizer_offline``). What it loads (splits,
tokenizer) is returned as ``search.worker.Inputs`` and used by the worker of the same process: loaded once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefstudy.core.console import Log
from prefstudy.core.secrets import redact
from prefstudy.data.sources import DataError, PreferenceSplits, load_splits
from prefstudy.models.loading import cached_tokenizer, check_model, is_local_model, load_tokenizer_offline
from prefstudy.search.worker import Inputs
from prefstudy.spec import SpecError, StudySpec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CONNECT_TIMEOUT_S = 5
EXAMPLES = "e.g. sqlite:///runs/NAME/optuna.db or postgresql+psycopg2://USER@HOST:5432/DB"
SQLITE_HEADER = b"SQLite format 3\x00"


def check_inputs(spec: StudySpec, storage_url: str, log: Log | None = None) -> Inputs:
    """Validate every input of ``spec`` without writing anything; returns what was loaded for it (the splits, the
    tokenizer where it could be read from files), which the worker of this process then uses as it is.

    Raises DataError, ModelError or StorageError (the exceptions the CLI maps to exit code 2), each one line.
    """
    url = parse_storage_url(storage_url)
    check_trackers(spec)
    check_model(spec.model)
    splits = load_splits(spec.data)
    check_not_empty(spec, splits)
    check_storage(storage_url, url)
    tokenizer = cached_tokenizer(spec.model)
    check_lengths(spec, splits, tokenizer or load_tokenizer_offline(spec.model), log)
    note = bf16_cpu_note(spec, cpu_flags())
    if note and log is not None:
        log(note)
    local = is_local_model(spec.model.name_or_path)
    return Inputs(splits, tokenizer if local else None)  # a hub model's tokenizer loads with it, same revision


def check_trackers(spec: StudySpec) -> None:
    """Every tracker the spec turns on is installed (they are optional extras) and a remote MLflow server answers,
    before any model loads: a study does not start its hours of trials with a tracker that cannot take them."""
    from prefstudy.tracking.trial import missing_modules

    missing = missing_modules(spec)
    if missing:
        raise SpecError(f"tracking: not installed: {'; '.join(missing)}. `nox -s study` installs TensorBoard and "
                         f"MLflow itself when the spec turns them on")
    uri = spec.mlflow_uri()
    if uri is not None:
        from prefstudy.tracking.mlflow_sink import check_server

        why = check_server(uri)
        if why is not None:
            raise SpecError(_one_line(redact(
                f"tracking.mlflow: no MLflow server answers at {uri} ({why}). Start it (e.g. `mlflow server --host "
                f"127.0.0.1 --port 5000`), fix the URI, or use tracking.mlflow=local")))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _storage_error(message: str) -> Exception:
    from prefstudy.search.storage import StorageError

    return StorageError(_one_line(redact(message)))


def parse_storage_url(storage_url: str) -> Any:
    """The SQLAlchemy URL, or StorageError for a malformed one or an unknown database dialect."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(storage_url)
    except Exception as exc:  # noqa: BLE001 - ArgumentError, ValueError (a port that is not a number), ...
        raise _storage_error(
            f"storage URL '{storage_url}' is malformed ({exc}); fix --storage or the spec's storage ({EXAMPLES})"
        ) from None
    try:
        url.get_dialect()
    except Exception as exc:  # noqa: BLE001 - NoSuchModuleError
        raise _storage_error(
            f"storage URL '{storage_url}': unknown database '{url.drivername}' ({exc}); use sqlite or "
            f"postgresql+psycopg2 ({EXAMPLES})"
        ) from None
    return url


def check_storage(storage_url: str, url: Any) -> None:
    """SQLite: the file (or the folder it would go in) is usable; it is NOT created. Servers: one connection."""
    if url.get_backend_name() == "sqlite":
        _check_sqlite(storage_url, url.database)
        return
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    connect_args = {}
    if url.get_backend_name() in ("postgresql", "mysql") and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S  # a URL's own connect_timeout wins
    engine = None
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        with engine.connect():
            pass
    except ImportError as exc:
        raise _storage_error(
            f"storage '{storage_url}': the driver of '{url.drivername}' is not installed ({exc}); install it or "
            f"use postgresql+psycopg2 ({EXAMPLES})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - driver errors of every kind
        text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
        reason = ". ".join(line.strip().rstrip(".") for line in text.splitlines() if line.strip())
        if url.password and len(str(url.password)) >= 4:  # drivers rarely echo it; never let one through
            reason = reason.replace(str(url.password), "***")
        raise _storage_error(
            f"storage '{storage_url}' cannot be reached: {reason}; check that the server runs and that host, port, "
            f"user, password and database name are right (or leave --storage out to use SQLite under runs/)"
        ) from None
    finally:
        if engine is not None:
            engine.dispose()


def _check_sqlite(storage_url: str, database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in-memory (or a URI filename): nothing on disk to check
    path = Path(database).expanduser()
    if path.exists():
        if not path.is_file():
            raise _storage_error(f"storage '{storage_url}': '{path}' is not a file; point the URL at a .db file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise _storage_error(f"storage '{storage_url}': '{path}' is not readable and writable; fix its "
                                 "permissions or use another --storage")
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:
            raise _storage_error(f"storage '{storage_url}': '{path}' exists but is not an SQLite database; "
                                 "point --storage at another file")
        return
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        why = "is not a folder" if not ancestor.is_dir() else "is not writable"
        raise _storage_error(
            f"storage '{storage_url}': the folder for '{path}' cannot be created ('{ancestor}' {why}); "
            "use a path under a writable folder"
        )


def _where(spec: StudySpec, split: str) -> str:
    data = spec.data
    if data.source == "synthetic":
        return f"data.synthetic.n_{split}"
    if data.source == "hf":
        name = data.train_split if split == "train" else data.heldout_split
        return f"{data.hf_name}:{name}"
    path = {"train": data.train, "val": data.heldout, "test": data.heldout, "ood": data.ood}[split]
    return f"{path} (data.{'train' if split == 'train' else 'ood' if split == 'ood' else 'heldout'})"


def check_not_empty(spec: StudySpec, splits: PreferenceSplits) -> None:
    for split in ("train", "val", "test"):
        if not splits.splits.get(split):
            raise DataError(f"{_where(spec, split)}: the {split} split is empty; add preference pairs to it")


def check_lengths(spec: StudySpec, splits: PreferenceSplits, tokenizer: PreTrainedTokenizerBase | None,
                  log: Log | None = None) -> None:
    """Refuse a split in which every pair would be dropped by the length rule (``training.truncation``: ``drop``,
    every pair longer than training.max_length; ``keep_start``, every prompt alone reaching it), by TRL's own rule
    (``training.trl_seams.pair_length``).

    Stops at the first pair that fits, so a good split costs one tokenization; skipped (the reference pass still
    refuses it later) when the tokenizer cannot be had without building or downloading the model.
    """
    if tokenizer is None:
        if log is not None:
            log(f"preflight: pairs longer than training.max_length are checked once {spec.model.name_or_path} "
                "is converted or downloaded")
        return
    from prefstudy.training.trl_seams import pair_length

    max_length = spec.training.max_length
    for split, records in splits.splits.items():
        shortest = None
        for record in records:
            length = pair_length(record, tokenizer, max_length, spec.training.truncation)
            if length is None:
                break
            shortest = length if shortest is None else min(shortest, length)
        else:
            if records:
                what = ("has a prompt that alone reaches" if spec.training.truncation == "keep_start"
                        else "is longer than")
                raise DataError(
                    f"{_where(spec, split)}: every pair of the {split} split ({len(records)}) {what} "
                    f"training.max_length={max_length} tokens (shortest {shortest}); raise training.max_length "
                    f"to at least {shortest} or shorten the pairs"
                )


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags (Linux), None where they cannot be read."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def bf16_cpu_note(spec: StudySpec, flags: set[str] | None) -> str | None:
    """A note where bf16 work will run on a CPU without native bf16 (avx512_bf16, amx_bf16): it is emulated there,
    slower than fp32 (the numbers are still valid). None on a GPU, with fp32, or where the flags are unknown."""
    from prefstudy.search.processes import visible_gpus

    wanted = {spec.score_precision(), spec.training.precision}
    if "bf16" not in wanted or flags is None or flags & {"avx512_bf16", "amx_bf16"} or visible_gpus():
        return None
    return ("note: evaluation.precision / training.precision bf16 on a CPU without native bf16 (no avx512_bf16 or "
            "amx_bf16): emulated, likely slower than fp32; set evaluation.precision=fp32 to score in fp32")
