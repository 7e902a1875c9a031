"""``--workers N``: N worker processes on this machine, one GPU each when there are GPUs.

The launching process (``prefstudy.pipeline.run_workers``) prepares everything once, then starts N copies of the
same command as workers (``--role search`` or ``--role confirm``), each pinned to one GPU (CUDA_VISIBLE_DEVICES
round robin over the visible GPUs). The storage URL reaches the workers through the environment, never their
command line (``ps`` would show a password). SIGINT/SIGTERM are passed on: each worker records its running trial
as interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from types import FrameType

from prefstudy.core.console import WORKER_TAG_ENV, log, terminal_fds

STORAGE_ENV = "PREFSTUDY_STORAGE_URL"

#: exit codes of a worker that was interrupted (its running trial is recorded as such and re-run next time)
INTERRUPTED = (130, -signal.SIGINT, -signal.SIGTERM)


def visible_gpus() -> list[str]:
    """GPU ids to hand out: CUDA_VISIBLE_DEVICES when set, else every CUDA device torch sees (none on a CPU box)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def worker_env(index: int, gpus: list[str], storage_url: str) -> dict[str, str]:
    env = dict(os.environ, **{WORKER_TAG_ENV: f"w{index}", STORAGE_ENV: storage_url})
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    return env


def start(command: list[str], role: str, n: int, gpus: list[str], storage_url: str) -> list[subprocess.Popen[bytes]]:
    """Start ``n`` workers running ``command --role ROLE``; their stdout/stderr are this process's terminal."""
    out, err = terminal_fds()
    processes = []
    for index in range(n):
        processes.append(subprocess.Popen([*command, "--role", role], env=worker_env(index, gpus, storage_url),
                                          stdout=out, stderr=err))
        log(f"worker w{index} started: pid {processes[-1].pid}"
            + (f", CUDA_VISIBLE_DEVICES={gpus[index % len(gpus)]}" if gpus else ""))
    return processes


def wait(processes: list[subprocess.Popen[bytes]]) -> list[int]:
    """Wait for every worker; Ctrl-C/SIGTERM here is passed on to them (they record 'interrupted')."""
    def forward(signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(p.poll() is None for p in processes):
            time.sleep(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [p.returncode for p in processes]
    for process, code in zip(processes, codes, strict=True):
        if code != 0:
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            log(f"worker pid {process.pid} ended with {how}")
    return codes
