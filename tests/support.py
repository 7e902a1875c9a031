"""Helpers every test file shares (the fixtures in conftest.py wrap them): paths, the CLI in a subprocess, ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
SPECS = SRC / "prefstudy" / "studies"  # also reachable as study/ from the repository root
SMOKE = SPECS / "smoke.yaml"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a prefstudy subprocess: this checkout's src first (then its root, for ``benchmarks``),
    Hugging Face offline."""
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            **extra}


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m prefstudy ARGS`` in a subprocess (captured, text)."""
    return subprocess.run([sys.executable, "-m", "prefstudy", *args], cwd=cwd, env=cli_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def run_python(*args: str, cwd: Path = ROOT, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` (e.g. ``-m benchmarks.toy``) in a subprocess with this checkout's src."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (closed again at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_json(url: str, attempts: int = 60, pause: float = 0.5) -> Any:
    """GET ``url`` until it answers (a server starting up), then its JSON body; None if it never answers."""
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(pause)
    return None
