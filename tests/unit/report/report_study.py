"""A hand-made study for the report tests: an in-memory Optuna storage and fake run directories (no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.storages import BaseStorage
from optuna.trial import TrialState, create_trial
from support import ROOT

from prefstudy.spec import StudySpec, load_spec

SECRETS = ("hunter2secret", "pw-in-spec", "s3cr3t-in-reason")
LABEL = "postgresql+psycopg2://alice:hunter2secret@db.example:5432/prefstudy"

# (number, state, sampling, beta, lr, final val, val curve over steps 2/4/6 or None, extra attrs)
DPO = [
    (0, "COMPLETE", "enqueued", 0.1, 1e-4, 0.85, [0.5, 0.75, 0.85], {}),
    (1, "COMPLETE", "random", 0.05, 2e-4, 0.75, [0.5, 0.875, 0.75], {}),  # peak at step 4, drop 0.125
    (2, "COMPLETE", "random", 0.2, 5e-4, 0.70, [0.7, 0.7, 0.7], {"clipped_fraction": 1.0}),  # inside (edge)
    (3, "COMPLETE", "random", 0.3, 8e-4, 0.60, [0.6, 0.6, 0.6], {}),  # outside the interval
    (4, "PRUNED", "random", 0.4, 1e-3, None, None, {}),  # counts as outside
    (5, "COMPLETE", "adaptive", 0.15, 9e-4, 0.84, [0.8, 0.8, 0.84], {}),  # not a random sample: left out
    (6, "FAIL", "random", 0.1, 3e-4, None, None, {"fail_reason": "interrupted"}),  # left out
    (7, "FAIL", "adaptive", 0.5, 1e-3, None, None,
     {"fail_reason": "OperationalError: postgresql://bob:s3cr3t-in-reason@h/db unreachable"}),
]
IPO = [
    (0, "COMPLETE", "random", 0.5, 2e-4, 0.80, [0.6, 0.7, 0.8], {}),
    (1, "COMPLETE", "random", 1.0, 6e-4, 0.65, [0.7, 0.6, 0.65], {}),
]


def _attrs(method: str, number: int, val: float, run_dir: Path, lm_eval: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {"run_dir": str(run_dir), "seed": number, "steps": 6, "clipped_fraction": 0.25,
                             "generalization_gap": 0.9 - val, "val_accuracy_ci_low": val - 0.15,
                             "val_accuracy_ci_high": val + 0.10, "test_accuracy_ci_low": 0.5,
                             "test_accuracy_ci_high": 0.9, "test_gain_vs_base": 0.1, "test_gain_ci_low": 0.02,
                             "test_gain_ci_high": 0.2, "seconds/train": 1.5}
    for split in ("train", "val", "test", "ood"):
        attrs.update({f"{split}/accuracy": val if split == "val" else 0.7, f"{split}/margin": 0.5,
                      f"{split}/chosen_log_ratio": -0.3, f"{split}/kl_proxy": 0.01, f"{split}/n": 8.0})
    if lm_eval:
        attrs.update({"lm_eval/arith/acc": 0.4, "lm_eval/arith/acc_stderr": 0.05, "lm_eval/mean": 0.4,
                      "lm_eval/delta_vs_base": -0.05 + 0.01 * number, "lm_eval/delta_ci_low": -0.1,
                      "lm_eval/delta_ci_high": 0.01})
    return attrs


def _curves(run_dir: Path, vals: list[float]) -> None:
    rows = []
    for i, v in enumerate(vals):
        step = 2 * (i + 1)
        rows.append({"step": step, "final": step == 6, "objective": v, "val/accuracy": v, "train/accuracy": 0.9,
                     "val/chosen_log_ratio": -0.1 * step, "val/margin": 0.2 * step, "val/kl_proxy": 0.001 * step})
    (run_dir / "curves.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "trainer_log.jsonl").write_text("".join(
        json.dumps({"step": step, "loss": 1.0 / step, "grad_norm": 0.5}) + "\n" for step in range(1, 7)))


def make_study(tmp_path: Path, lm_eval: bool = True, *, name: str | None = None,
               labels: tuple[str, str] = ("dpo", "ipo"), heldout: bool = False) -> tuple[StudySpec, BaseStorage]:
    """The smoke spec and an in-memory storage with the DPO and IPO trials above (run directories under
    ``tmp_path/runs``). ``name`` and ``labels`` replace the study name and the method labels without validation, so
    a test can use names the spec would refuse; ``heldout`` writes per-pair test scores (heldout.json) to the
    complete trials, which makes the paired comparison possible."""
    overrides = [f"runs_dir={tmp_path / 'runs'}"] + ([] if lm_eval else ["evaluation.lm_eval.tasks=[]"])
    spec = load_spec(ROOT / "study" / "smoke.yaml", overrides)
    if name is not None or labels != ("dpo", "ipo"):
        spec = spec.model_copy(update={"name": name or spec.name, "methods": {
            labels[0]: spec.methods["dpo"], labels[1]: spec.methods["ipo"]}})
    storage = optuna.storages.InMemoryStorage()
    for index, (method, table) in enumerate(zip(labels, (DPO, IPO), strict=True)):
        study = optuna.create_study(study_name=spec.study_name(method), storage=storage, direction="maximize")
        study.set_user_attr("spec_yaml", "name: smoke\nstorage: postgresql://bob:pw-in-spec@h/db\n")
        for split, acc in (("train", 0.55), ("val", 0.5), ("test", 0.6), ("ood", 0.4)):
            study.set_user_attr(f"base/{split}/accuracy", acc)
        # per data family: addition at chance; letter_count far above it on test (18 of 20 right)
        study.set_user_attr("base/test/family", {"addition": 0.5, "letter_count": 0.9})
        study.set_user_attr("base/test/family_n", {"addition": 20, "letter_count": 20})
        if lm_eval:
            study.set_user_attr("lm_eval_base/arith/acc", 0.45)
            study.set_user_attr("lm_eval_base/arith/acc_stderr", 0.05)
            study.set_user_attr("lm_eval_base/mean", 0.45)
        beta = spec.methods[method].beta
        dists = {"beta": FloatDistribution(beta.low / 10, beta.high * 10, log=True),
                 "learning_rate": FloatDistribution(1e-5, 1e-2, log=True)}
        folder = method if method in ("dpo", "ipo") else f"method-{index}"
        for number, state, sampling, b, lr, val, curve, extra in table:
            run_dir = tmp_path / "runs" / "smoke" / folder / f"trial-{number:04d}"
            run_dir.mkdir(parents=True)
            (run_dir / "env.json").write_text(json.dumps({"device": "cpu", "packages": {"trl": "1.16.0"}}))
            attrs = {"run_dir": str(run_dir), "sampling": sampling, "clipped_fraction": 0.5}
            if state == "COMPLETE":
                attrs = {**_attrs(method, number, val, run_dir, lm_eval), "sampling": sampling}
                _curves(run_dir, curve)
                if heldout:
                    _heldout(run_dir, index)
            attrs.update(extra)
            study.add_trial(create_trial(
                state=TrialState[state], value=val, params={"beta": b, "learning_rate": lr}, distributions=dists,
                user_attrs=attrs, intermediate_values={2: 0.3} if state == "PRUNED" else None))
    return spec, storage


def _heldout(run_dir: Path, index: int) -> None:
    """Per-pair log-probabilities of 8 test pairs: method 0 ranks 6 of them right, method 1 ranks 4."""
    right = 6 if index == 0 else 4
    chosen = [-1.0] * 8
    rejected = [-2.0 if i < right else -0.5 for i in range(8)]
    test = {"chosen": chosen, "rejected": rejected, "ids": [f"t{i}" for i in range(8)]}
    (run_dir / "heldout.json").write_text(json.dumps({"test": test}))
