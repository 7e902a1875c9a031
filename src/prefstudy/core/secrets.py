"""Keep secrets (storage passwords, tokens) out of logs, run directories, study attributes and reports."""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<secret>[^@\s]+)@")
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|token|secret)=)[^&\s]+", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace passwords in URLs (``user:pass@``) and ``password=``/``token=`` query values with ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group('head')}***", text)
