"""Faults inside a trial: NaN loss, CUDA out-of-memory, MemoryError. Each trial is FAIL with the reason in a user
attribute, the base model is left without LoRA layers, the worker goes on, and a failed trial is never best."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from support import ROOT

from prefstudy.search.loop import run_trials
from prefstudy.search.objective import Objective
from prefstudy.search.selection import best_trial
from prefstudy.search.storage import create_studies, open_storage
from prefstudy.search.worker import load_worker
from prefstudy.spec import load_spec
from prefstudy.training.trl_seams import CachedRefDPOTrainer

pytestmark = pytest.mark.slow


def test_faults_fail_the_trial_and_the_worker_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(ROOT / "study" / "smoke.yaml", [
        f"runs_dir={tmp_path}", "evaluation.lm_eval.tasks=[]",
        "methods={dpo: {loss_type: sigmoid, beta: {low: 0.05, high: 0.5}}}"])
    storage_url = f"sqlite:///{tmp_path}/optuna.db"
    storage = open_storage(storage_url, spec)
    studies = create_studies(spec, storage)
    worker = load_worker(spec, storage_url, studies)
    weights = {k: v.clone() for k, v in worker.base_model.state_dict().items()}

    real_train, real_loss = CachedRefDPOTrainer.train, CachedRefDPOTrainer.compute_loss
    faults = iter(["nan", "cuda_oom", "memory", None])
    current = {"fault": None}

    def train(self, *args, **kwargs):
        current["fault"] = next(faults, None)
        if current["fault"] == "cuda_oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if current["fault"] == "memory":
            raise MemoryError()
        return real_train(self, *args, **kwargs)

    def compute_loss(self, *args, **kwargs):
        loss = real_loss(self, *args, **kwargs)
        if current["fault"] == "nan":
            loss = loss * float("nan")
        return loss

    monkeypatch.setattr(CachedRefDPOTrainer, "train", train)
    monkeypatch.setattr(CachedRefDPOTrainer, "compute_loss", compute_loss)
    failures = run_trials(studies, lambda m: Objective(worker, m), 4, print)  # 3 faults, then 4 finished trials

    trials = studies["dpo"].get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL] * 3 + [TrialState.COMPLETE] * 4
    reasons = [t.user_attrs["fail_reason"] for t in trials[:3]]
    assert reasons[0].startswith("non-finite loss") and "nan" in reasons[0]
    assert reasons[1].startswith("out of memory (OutOfMemoryError")
    assert reasons[2].startswith("out of memory (MemoryError")
    assert failures == {"dpo": 3}
    assert best_trial(studies["dpo"]).number >= 3
    for trial in trials[:3]:
        assert '"status": "failed"' in (Path(trial.user_attrs["run_dir"]) / "metrics.json").read_text()
    assert not any("lora" in name for name, _ in worker.base_model.named_modules())
    after = worker.base_model.state_dict()
    assert set(after) == set(weights) and all(torch.equal(after[k], weights[k]) for k in weights)
    assert optuna.load_study(study_name="smoke/dpo", storage=storage_url).best_trial.number >= 3
