"""The inputs preflight validates are the ones the worker uses: a study process loads its data splits and its
tokenizer once (preflight), and a worker process started by --workers loads them once too (no preflight there)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import SMOKE

from prefstudy.spec import load_spec
from prefstudy.spec.stages import Request

pytestmark = pytest.mark.slow


def _count_loads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    from prefstudy import preflight
    from prefstudy.data import sources
    from prefstudy.models import loading

    calls = {"splits": 0, "tokenizer": 0}
    real_splits, real_tokenizer = sources.load_splits, loading.load_tokenizer

    def splits(data):  # noqa: ANN001, ANN202
        calls["splits"] += 1
        return real_splits(data)

    def tokenizer(model):  # noqa: ANN001, ANN202
        calls["tokenizer"] += 1
        return real_tokenizer(model)

    monkeypatch.setattr(preflight, "load_splits", splits)
    monkeypatch.setattr(sources, "load_splits", splits)
    monkeypatch.setattr(loading, "load_tokenizer", tokenizer)
    return calls


@pytest.mark.parametrize("launcher", [True, False], ids=["study-process", "worker-process"])
def test_inputs_are_loaded_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny,
                                            launcher: bool) -> None:
    from prefstudy import pipeline
    from prefstudy.search.registry import for_request

    spec = load_spec(SMOKE, [f"runs_dir={tmp_path}", "evaluation.lm_eval.tasks=[]"])
    storage_url = f"sqlite:///{tmp_path}/optuna.db"
    if not launcher:  # the launching process created the studies; the worker only joins them
        pipeline.prepare(spec, storage_url, for_request(spec, Request()))
    calls = _count_loads(monkeypatch)
    role = None if launcher else "search"
    ctx = pipeline.prepare(spec, storage_url, for_request(spec, Request(role=role)), launcher=launcher)
    worker = ctx.worker()
    assert ctx.worker() is worker  # the worker itself is loaded once, on first use
    assert calls["splits"] == 1
    if launcher:  # the tiny model's folder exists (the `tiny` fixture built it): preflight read its tokenizer
        assert ctx.inputs is not None and worker.tokenizer is ctx.inputs.tokenizer and calls["tokenizer"] == 0
        assert len(worker.prepared.tokenized["train"]) == len(ctx.inputs.splits.splits["train"])
    else:
        assert ctx.inputs is None and calls["tokenizer"] == 1
