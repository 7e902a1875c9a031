"""Run directories: atomic JSON files, append-only curves, and the environment record of a trial."""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "prefstudy", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes", "lm-eval",
    "optuna", "optuna-dashboard", "plotly", "pandas", "numpy", "pydantic",
)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_default) + "\n")
    tmp.replace(path)


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, default=_default) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def environment(seed: int) -> dict[str, Any]:
    import torch

    cpu = f"cpu ({platform.processor() or platform.machine()})"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu
    return {
        "seed": seed,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "packages": versions(),
    }


def trial_dir(run_root: Path, method: str, number: int) -> Path:
    return run_root / method / f"trial-{number:04d}"


#: files of an earlier attempt at the same trial number: a retried trial starts without them
RESULT_FILES = ("curves.jsonl", "heldout.json", "lm_eval.json", "pairs.jsonl")


def start_trial_dir(run_root: Path, stage_path: str, number: int, config: dict[str, Any], seed: int) -> Path:
    """Create ``<run_root>/<stage_path>/trial-NNNN`` and write the resolved config, the environment and a 'running'
    metrics.json into it BEFORE any work, so a crash always leaves a run directory that says what it was."""
    run_dir = trial_dir(run_root, stage_path, number)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in RESULT_FILES:
        (run_dir / stale).unlink(missing_ok=True)
    write_json(run_dir / "config.json", config)
    write_json(run_dir / "env.json", environment(seed))
    write_json(run_dir / "metrics.json", {"status": "running", "started": time.time()})
    return run_dir


def rss_mb() -> float:
    """This process's resident memory now (Linux), in MiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
