"""Every private transformers seam, in one file (transformers is pinned in the lock;
tests/unit/models/test_transformers_seams.py checks each one against the installed version).

- :func:`attention_implementation`: the attention kernel a loaded model runs (``config._attn_implementation``:
  "sdpa", "eager", "flash_attention_2", ...), which decides whether it takes the 4D masks of packed rows.
"""

from __future__ import annotations

from typing import Any


def attention_implementation(model_or_config: Any) -> str | None:
    """The attention implementation of a model (or of its config); None when it has none."""
    config = getattr(model_or_config, "config", model_or_config)
    value = getattr(config, "_attn_implementation", None)
    return str(value) if value is not None else None
