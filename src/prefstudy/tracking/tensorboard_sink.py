"""TensorBoard event files per trial, under ``<run dir>/tensorboard`` (``nox -s tensorboard`` serves them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class TensorBoardSink:
    """Per-step scalars under ``train/``, eval-point scalars under ``eval/``, final metrics under ``final/``."""

    def __init__(self, run_dir: Path, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard extra (preflight checks it)

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("params", f"```\n{json.dumps(params, indent=1, sort_keys=True)}\n```", 0)

    def scalars(self, prefix: str, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, state: str, final: dict[str, float], step: int) -> None:
        self.scalars("final", step, final)
        self.writer.add_text("state", state, step)
        self.writer.close()
