"""The console: prefstudy's own lines on the terminal, everything other libraries print in ``runs/<name>/study.log``.

:func:`diverted` points file descriptors 1 and 2 at the log file for the length of a command (so progress bars,
warnings and log records of transformers, lm-eval, bitsandbytes, ... land there, whatever way they write), while
:func:`log` and :func:`error` keep writing to the terminal through duplicates of the original descriptors, and
copy every line into the log file as well. With ``verbose`` nothing is diverted: everything reaches the terminal.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

WORKER_TAG_ENV = "PREFSTUDY_WORKER_TAG"

#: where progress lines go: console.log, or a test's list.append
Log = Callable[[str], None]
LOG_NAME = "study.log"


@dataclass
class _Streams:
    out: TextIO | None = None  # the terminal's stdout while diverted, else None (= sys.stdout)
    err: TextIO | None = None
    file: TextIO | None = None  # the log file (our lines are copied into it)
    out_fd: int | None = None
    err_fd: int | None = None


_streams = _Streams()


def stdout() -> TextIO:
    """The terminal's stdout (sys.stdout when nothing is diverted)."""
    return _streams.out or sys.stdout


def terminal_fds() -> tuple[int, int]:
    """File descriptors of the terminal's stdout and stderr: child processes get these as their 1 and 2."""
    return (_streams.out_fd if _streams.out_fd is not None else 1,
            _streams.err_fd if _streams.err_fd is not None else 2)


def _copy(line: str) -> None:
    if _streams.file is not None:
        _streams.file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        _streams.file.flush()


def log(message: str) -> None:
    """One line to the terminal (and the log file); under --workers N each worker's lines start with [wK]."""
    tag = os.environ.get(WORKER_TAG_ENV)
    line = f"[{tag}] {message}" if tag else message
    print(line, file=stdout(), flush=True)
    _copy(line)


def error(message: str) -> None:
    """One line to the terminal's stderr (and the log file)."""
    print(message, file=_streams.err or sys.stderr, flush=True)
    _copy(message)


@dataclass
class _Diversion:
    target: Path  # where the log belongs (runs/<name>/study.log)
    fd: int  # what descriptors 1 and 2 point at now: a temporary file until settle()
    temp: Path | None
    verbose: bool


_diversion: list[_Diversion] = []


def _point_at(fd: int) -> None:
    if _streams.file is not None:
        _streams.file.close()
    _streams.file = os.fdopen(os.dup(fd), "a", encoding="utf-8", buffering=1)
    if not _diversion[-1].verbose:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)


def settle() -> Path | None:
    """Move the log of the running command to its place (``runs/<name>/study.log``) and write there from now on.
    Until then it lives in a temporary file, so a command refused for bad input writes nothing under runs/."""
    if not _diversion:
        return None
    current = _diversion[-1]
    temp = current.temp
    if temp is None:
        return current.target
    current.target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(current.target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, temp.read_bytes())
    _point_at(fd)
    os.close(current.fd)
    temp.unlink(missing_ok=True)
    current.fd, current.temp = fd, None
    return current.target


@contextmanager
def diverted(log_path: Path, verbose: bool = False) -> Iterator[Path]:
    """For the block: other libraries' output to ``log_path`` (appended; readable by the user only), ours to both.
    Until :func:`settle` (called once the command's inputs are accepted) the log is a temporary file, dropped at the
    end of the block: a refused command appends nothing to another run's log."""
    import tempfile

    handle, temp = tempfile.mkstemp(prefix="prefstudy-", suffix=".log")
    saved = _Streams(**vars(_streams))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    kept: tuple[int, int] | None = None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if not verbose:
            kept = (os.dup(1), os.dup(2))
            _streams.out_fd, _streams.err_fd = kept
            _streams.out = os.fdopen(os.dup(kept[0]), "w", buffering=1)
            _streams.err = os.fdopen(os.dup(kept[1]), "w", buffering=1)
        _diversion.append(_Diversion(log_path, handle, Path(temp), verbose))
        _streams.file = None
        _point_at(handle)
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
        logging.captureWarnings(True)
        yield log_path
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(previous_level)
        sys.stdout.flush()
        sys.stderr.flush()
        current = _diversion.pop()
        for stream in (_streams.out, _streams.err, _streams.file):
            if stream is not None and stream not in (saved.out, saved.err, saved.file):
                stream.close()
        if kept is not None:
            os.dup2(kept[0], 1)
            os.dup2(kept[1], 2)
            os.close(kept[0])
            os.close(kept[1])
        os.close(current.fd)
        if current.temp is not None:
            current.temp.unlink(missing_ok=True)
        _streams.__dict__.update(vars(saved))
