"""How a trial can fail, in words a user can act on: non-finite loss, out of memory, interrupted, disk full."""

from __future__ import annotations

import errno


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


class DiskFull(Exception):  # noqa: N818 - named for what the user must fix; not a RuntimeError: it stops the worker
    """The run directory's file system is full: the worker stops instead of failing trial after trial."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def failure_reason(exc: BaseException) -> str:
    """The ``fail_reason`` user attribute: 'interrupted', 'out of memory (...)', 'non-finite loss: ...' or the error."""
    import torch

    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(exc).lower():
        return f"out of memory ({type(exc).__name__}: {str(exc)[:300]})"
    if isinstance(exc, NonFiniteLoss):
        return f"non-finite loss: {exc}"
    if is_disk_full(exc):
        assert isinstance(exc, OSError)
        return f"disk full ({exc.strerror}) writing {exc.filename or 'a run file'}"
    from prefstudy.training.adapter_check import AdapterNotApplied

    if isinstance(exc, AdapterNotApplied):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def free_memory() -> None:
    """After an out-of-memory trial: drop what the failed trial left behind so the next one starts clean."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
