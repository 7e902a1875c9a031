"""Every private Optuna seam, in one file (Optuna is pinned in the lock; tests/unit/search/test_optuna_seams.py
checks it against the installed version).

- :func:`storage_failure`: when the storage goes away while ``study.optimize`` tells a trial's result (a database
  restarting), Optuna 5.0's ``_run_trial`` raises ``UnboundLocalError`` from its ``finally`` block, the database
  error as its context. That internal error is recognised here, and only here.
"""

from __future__ import annotations

#: what ``study.optimize`` raises when the storage fails while it records a trial's result
TELL_FAILURE = UnboundLocalError


def storage_failure(exc: BaseException) -> BaseException | None:
    """The storage's own error behind ``exc`` (a :data:`TELL_FAILURE` raised by Optuna), or None when ``exc`` is
    something else (a real programming error, to be raised as it is)."""
    cause = exc.__context__
    if not isinstance(exc, TELL_FAILURE) or cause is None or "sqlalchemy" not in type(cause).__module__:
        return None
    return cause
