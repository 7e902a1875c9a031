"""--workers N: each worker is pinned to one GPU, round robin; the storage URL travels in the environment."""

from __future__ import annotations

import pytest

from prefstudy.search.processes import STORAGE_ENV, visible_gpus, worker_env


def test_round_robin_over_the_visible_gpus() -> None:
    pinned = [worker_env(i, ["0", "1", "3"], "sqlite:///x.db")["CUDA_VISIBLE_DEVICES"] for i in range(5)]
    assert pinned == ["0", "1", "3", "0", "1"]


def test_no_gpu_leaves_cuda_visible_devices_alone_and_tags_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = worker_env(2, [], "postgresql+psycopg2://u:pw@127.0.0.1/db")
    assert "CUDA_VISIBLE_DEVICES" not in env
    assert env["PREFSTUDY_WORKER_TAG"] == "w2" and env[STORAGE_ENV] == "postgresql+psycopg2://u:pw@127.0.0.1/db"


@pytest.mark.parametrize(("listed", "expected"), [("2,5", ["2", "5"]), ("", []), ("-1", []), (" 1 , 4 ", ["1", "4"])])
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch, listed: str, expected: list) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert visible_gpus() == expected
