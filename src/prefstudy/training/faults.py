"""How a trial can fail, in words a user can act on: non-finite loss, out of memory, interrupted."""

from __future__ import annotations


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


def failure_reason(exc: BaseException) -> str:
    """The ``fail_reason`` user attribute: 'interrupted', 'out of memory (...)', 'non-finite loss: ...' or the error."""
    import torch

    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(exc).lower():
        return f"out of memory ({type(exc).__name__}: {str(exc)[:300]})"
    if isinstance(exc, NonFiniteLoss):
        return f"non-finite loss: {exc}"
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
