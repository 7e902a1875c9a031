"""Shared fixtures: a session-wide cache for the tiny model, offline Hugging Face, one torch thread, and a private
PostgreSQL cluster (tests/pgcluster.py) for the tests that need a real PostgreSQL storage."""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgcluster import PostgresCluster

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
    """A private PostgreSQL cluster on 127.0.0.1 for the session (tests/pgcluster.py): skips without the server
    binaries, fails instead where PREFSTUDY_REQUIRE_POSTGRES=1 (CI)."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres: PostgresCluster, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database per test on the session's cluster; the URL carries the role's password."""
    stem = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")[:40]
    return postgres.create_database(f"t_{stem}_{uuid.uuid4().hex[:8]}")
