"""open_storage and create_studies against a real PostgreSQL (the private cluster of benchmarks/pgcluster.py).

Also the failures a user meets first with a server storage: nothing listening, a wrong password, a malformed
URL. Each must be a StorageError of one line, quickly, and never show the password.
"""

from __future__ import annotations

import socket
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from support import ROOT

from benchmarks.pgcluster import PostgresCluster, free_port
from prefstudy.core.secrets import redact
from prefstudy.search.storage import StorageError, create_studies, open_storage
from prefstudy.spec import load_spec

SECRET = "Sup3r-s3cret_pw"  # a password that must never appear in an error
#: the smoke spec has no enqueued points; these make the "enqueued once" check meaningful
ENQUEUE = "search.enqueue={dpo: [{beta: 0.1, learning_rate: 3.0e-4}], ipo: [{beta: 0.5, learning_rate: 3.0e-4}]}"
FAST = 5.0  # seconds: "fails fast"
SILENT_DEADLINE = 8.0  # seconds: the patched connect timeout of 2 s plus slack


@pytest.fixture(scope="module")
def spec():
    return load_spec(ROOT / "study" / "smoke.yaml")


def _open_fails(url: str, spec) -> tuple[str, float]:
    """open_storage(url) must raise StorageError; returns (message, seconds taken)."""
    start = time.monotonic()
    with pytest.raises(StorageError) as caught:
        open_storage(url, spec)
    return str(caught.value), time.monotonic() - start


def _waiting(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def test_create_studies_on_postgres_twice_loads_the_same_studies(postgres_url: str) -> None:
    spec = load_spec(ROOT / "study" / "smoke.yaml", [ENQUEUE, f"storage={postgres_url}"])
    storage = open_storage(postgres_url, spec)
    assert storage.engine.dialect.name == "postgresql"
    first = create_studies(spec, storage)
    assert set(first) == {"dpo", "ipo"}
    for method, study in first.items():
        assert study.study_name == f"smoke/{method}"
        assert study.user_attrs["spec_fingerprint"] == spec.fingerprint()
        assert [t.system_attrs["fixed_params"] for t in _waiting(study)] == [dict(spec.search.enqueue[method][0])]
        assert len(study.trials) == 1

    # a second process: its own storage (engine) on the same database
    again = create_studies(spec, open_storage(postgres_url, spec))
    summaries = optuna.get_all_study_summaries(open_storage(postgres_url, spec), include_best_trial=False)
    assert sorted(s.study_name for s in summaries) == ["smoke/dpo", "smoke/ipo"]
    for method, study in again.items():
        assert study._study_id == first[method]._study_id
        assert len(study.trials) == 1, "the enqueued point was enqueued again"
        assert len(_waiting(study)) == 1
    # the spec names the storage; the spec stored with the study keeps its URL, not its password
    stored = again["dpo"].user_attrs["spec_yaml"]
    assert redact(postgres_url) in stored
    assert make_url(postgres_url).password not in stored


def test_the_role_really_needs_its_password(postgres: PostgresCluster, postgres_url: str, spec) -> None:
    """The fixture's URL is only useful to redaction tests if the server checks the password."""
    database = postgres_url.rsplit("/", 1)[1]
    message, seconds = _open_fails(postgres.url(database, password=SECRET), spec)
    assert "password authentication failed" in message
    assert SECRET not in message and postgres.password not in message
    assert len(message.splitlines()) == 1
    assert seconds < FAST
    open_storage(postgres.trust_url(database), spec)  # the superuser needs none from 127.0.0.1


def test_nothing_listening_fails_fast_without_the_password(spec) -> None:
    url = f"postgresql+psycopg2://prefstudy:{SECRET}@127.0.0.1:{free_port()}/prefstudy"
    message, seconds = _open_fails(url, spec)
    assert seconds < FAST, f"took {seconds:.1f}s"
    assert SECRET not in message
    assert len(message.splitlines()) == 1
    assert "cannot be opened" in message and "Connection refused" in message
    assert "prefstudy:***@127.0.0.1" in message  # the URL is shown, redacted


@pytest.mark.parametrize("url", [
    "postgresql+psycopg2://user@:notaport/db",
    f"postgresql+psycopg2://user:{SECRET}@localhost:notaport/db",
    "nosuchdialect://x",
    f"nosuchdialect://user:{SECRET}@x/db",
    f"postgresql://user:{SECRET}@127.0.0.1/db",  # SQLAlchemy 2.1: psycopg 3, which is not installed
    "not a url",
])
def test_malformed_url_is_a_storage_error(url: str, spec) -> None:
    message, seconds = _open_fails(url, spec)
    assert seconds < FAST
    assert SECRET not in message
    assert len(message.splitlines()) == 1
    assert message.startswith("storage '")


def test_silent_server_fails_within_a_connect_timeout(spec, monkeypatch) -> None:
    """A server that accepts the TCP connection but never answers (firewall, wrong service, hung server)."""
    import prefstudy.search.storage

    monkeypatch.setattr(prefstudy.search.storage, "CONNECT_TIMEOUT", 2)
    outcome: dict[str, BaseException] = {}

    def attempt(url: str) -> None:
        try:
            open_storage(url, spec)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            outcome["error"] = exc

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake; nobody ever reads or answers
        url = f"postgresql+psycopg2://prefstudy:{SECRET}@127.0.0.1:{silent.getsockname()[1]}/prefstudy"
        thread = threading.Thread(target=attempt, args=(url,), daemon=True)
        thread.start()
        thread.join(SILENT_DEADLINE)
        hung = thread.is_alive()
    thread.join(10)  # closing the listener resets the queued connection, which ends the attempt
    assert not hung, f"open_storage still connecting after {SILENT_DEADLINE:.0f}s"
    assert isinstance(outcome.get("error"), StorageError)
    assert SECRET not in str(outcome["error"])


def test_dashboard_gets_the_url_through_its_environment_never_a_command_line(postgres_url: str) -> None:
    """`prefstudy dashboard URL`: while it serves, no process's command line holds the storage password."""
    import subprocess
    import sys
    from pathlib import Path

    from support import cli_env, wait_for_json

    password = make_url(postgres_url).password
    assert password
    optuna.create_study(study_name="shown", storage=postgres_url)  # the dashboard serves an existing schema
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "prefstudy", "dashboard", postgres_url, "--port", str(port)],
                              cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        answer = wait_for_json(f"http://127.0.0.1:{port}/api/studies")
        if answer is None:
            server.terminate()
            pytest.fail(f"the dashboard did not answer: {server.communicate(timeout=10)[0][-2000:]}")
        assert [s["study_name"] for s in answer["study_summaries"]] == ["shown"]
        table = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True, check=True).stdout
        assert "prefstudy.search.dashboard" in table  # the server we look at is in the table
        assert password not in table
        cmdlines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
        assert not [c for c in cmdlines if password.encode() in c]
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert password not in (server.stdout.read() if server.stdout else "")
