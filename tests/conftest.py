"""Shared fixtures: a session-wide cache for the tiny model, offline Hugging Face, one torch thread, the CLI in a
subprocess, free ports, and a private PostgreSQL cluster (benchmarks/pgcluster.py) for the tests that need one.

Everything under tests/integration/ is marked ``slow`` (``nox -s tests -- -m "not slow"`` runs the unit tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import ROOT, SRC, free_port, run_cli

from benchmarks.pgcluster import REQUIRE_ENV, PostgresCluster, PostgresMissing

sys.path.insert(0, str(SRC))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `-n 2`: one torch thread per worker, so two workers share 2 cores evenly
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    integration = ROOT / "tests" / "integration"
    for item in items:
        if integration in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli("study", "study/smoke.yaml", ..., cwd=...)``: prefstudy's CLI in a subprocess (support.run_cli)."""
    return run_cli


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny models are built once per test session into a private cache."""
    folder = tmp_path_factory.mktemp("model-cache")
    os.environ["PREFSTUDY_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def tiny() -> tuple:
    """(tokenizer, model) of the tiny random Mistral, loaded once per session."""
    import torch

    from prefstudy.models.loading import load_base_model, load_tokenizer
    from prefstudy.spec import ModelSpec, TrainingSpec

    torch.set_num_threads(1)
    spec_model = ModelSpec(name_or_path="tiny-random-mistral")
    return load_tokenizer(spec_model), load_base_model(spec_model, TrainingSpec(max_length=256))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster on 127.0.0.1 for the session (benchmarks/pgcluster.py): skips without the server
    binaries, fails instead where PREFSTUDY_REQUIRE_POSTGRES=1 (CI)."""
    try:
        cluster = PostgresCluster()
    except PostgresMissing as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{exc} ({REQUIRE_ENV}=1: a real PostgreSQL is required here)", pytrace=False)
        pytest.skip(str(exc))
    with cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres: PostgresCluster, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database per test on the session's cluster; the URL carries the role's password."""
    stem = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")[:40]
    return postgres.create_database(f"t_{stem}_{uuid.uuid4().hex[:8]}")
