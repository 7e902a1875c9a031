"""``--workers N``: N worker processes on this machine, one GPU each when there are GPUs.

The launching process prepares everything once (inputs, lm-eval tasks, storage schema, studies), then starts N
copies of the same command as workers (``--role search``), each pinned to one GPU (CUDA_VISIBLE_DEVICES round
robin over the visible GPUs). Every worker tops the studies up to ``search.n_trials`` finished trials, so the
target holds across workers and machines (overshoot at most workers - 1). With confirmation, the launcher enqueues
the runs once and starts the workers again (``--role confirm``). Then it prints the summary and builds the report.
The storage URL reaches the workers through the environment, never their command line (``ps`` would show a
password). SIGINT/SIGTERM are passed on: each worker records its running trial as interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from prefstudy.runner import finish, log, prepare
from prefstudy.spec import StudySpec

STORAGE_ENV = "PREFSTUDY_STORAGE_URL"


def visible_gpus() -> list[str]:
    """GPU ids to hand out: CUDA_VISIBLE_DEVICES when set, else every CUDA device torch sees (none on a CPU box)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def worker_env(index: int, gpus: list[str], storage_url: str) -> dict[str, str]:
    env = dict(os.environ, PREFSTUDY_WORKER_TAG=f"w{index}", **{STORAGE_ENV: storage_url})
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    return env


def _launch(command: list[str], role: str, n: int, gpus: list[str], storage_url: str) -> list[subprocess.Popen]:
    processes = []
    for index in range(n):
        processes.append(subprocess.Popen([*command, "--role", role], env=worker_env(index, gpus, storage_url)))
        log(f"worker w{index} started: pid {processes[-1].pid}"
            + (f", CUDA_VISIBLE_DEVICES={gpus[index % len(gpus)]}" if gpus else ""))
    return processes


def _wait(processes: list[subprocess.Popen]) -> list[int]:
    """Wait for every worker; Ctrl-C/SIGTERM here is passed on to them (they record 'interrupted')."""
    def forward(signum: int, _frame: Any) -> None:
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


def launch(spec: StudySpec, storage_url: str, n: int, command: list[str], confirm: bool) -> int:
    """Run ``command`` (this CLI call without --workers) as ``n`` workers; returns the exit code."""
    from prefstudy import confirm as confirmation
    from prefstudy.study import finished, waiting

    confirm = confirm or spec.confirm.auto
    storage, studies, _ = prepare(spec, storage_url, confirm)
    gpus = visible_gpus()
    log(f"study '{spec.name}': {n} workers on this machine" + (f", GPUs {gpus}" if gpus else " (no GPU)"))
    codes = _wait(_launch(command, "search", n, gpus, storage_url))
    interrupted = any(c in (130, -signal.SIGINT, -signal.SIGTERM) for c in codes)
    if confirm and not interrupted:
        runs = {m: todo for m, (_, todo) in confirmation.create(spec, storage, studies).items()}
        log(f"confirmation: runs to do per method: {runs}")
        if any(runs.values()):
            codes += _wait(_launch(command, "confirm", n, gpus, storage_url))
    finish(spec, storage_url, storage, studies)
    target = spec.search.n_trials
    done = {m: finished(s) for m, s in studies.items()}
    over = {m: d - target for m, d in done.items() if d > target}
    if over:
        log(f"finished trials above the target of {target} per method (concurrent workers): {over}")
    if interrupted or any(c == 130 for c in codes):
        return 130
    complete = all(d >= target and not waiting(s) for (m, d), s in zip(done.items(), studies.values(), strict=True))
    return 0 if complete else 1

