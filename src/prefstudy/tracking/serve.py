"""``prefstudy tensorboard``: TensorBoard over a study's run directories, bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType


def tensorboard_command(run_root: Path, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "tensorboard.main", "--logdir", str(run_root), "--host", host, "--port", str(port)]


def serve_tensorboard(run_root: Path, host: str, port: int) -> int:
    if importlib.util.find_spec("tensorboard") is None:
        print("error: TensorBoard is not installed: nox -s tensorboard installs it (or pip install "
              "'prefstudy[tensorboard]')", file=sys.stderr)
        return 2
    if not any(run_root.glob("**/tensorboard")):
        print(f"note: no event files under {run_root} yet (tracking.tensorboard: true writes them per trial)",
              file=sys.stderr)
    print(f"TensorBoard: http://{host}:{port}/ (logdir {run_root}); Ctrl-C stops it", flush=True)
    server = subprocess.Popen(tensorboard_command(run_root, host, port))

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)  # SIGTERM stops TensorBoard too, not only this process
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
