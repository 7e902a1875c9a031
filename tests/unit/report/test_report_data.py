"""The report's data layer and verdicts on a hand-made study (in-memory Optuna storage + fake run directories)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from support import ROOT

from prefstudy.report import build_report
from prefstudy.report import data as rd
from prefstudy.spec import load_spec

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


def make_study(tmp_path: Path, lm_eval: bool = True) -> tuple[Any, Any]:
    overrides = [f"runs_dir={tmp_path / 'runs'}"] + ([] if lm_eval else ["evaluation.lm_eval.tasks=[]"])
    spec = load_spec(ROOT / "study" / "smoke.yaml", overrides)
    storage = optuna.storages.InMemoryStorage()
    for method, table in (("dpo", DPO), ("ipo", IPO)):
        study = optuna.create_study(study_name=spec.study_name(method), storage=storage, direction="maximize")
        study.set_user_attr("spec_yaml", "name: smoke\nstorage: postgresql://bob:pw-in-spec@h/db\n")
        for split, acc in (("train", 0.55), ("val", 0.5), ("test", 0.6), ("ood", 0.4)):
            study.set_user_attr(f"base/{split}/accuracy", acc)
        if lm_eval:
            study.set_user_attr("lm_eval_base/arith/acc", 0.45)
            study.set_user_attr("lm_eval_base/arith/acc_stderr", 0.05)
            study.set_user_attr("lm_eval_base/mean", 0.45)
        beta = spec.methods[method].beta
        dists = {"beta": FloatDistribution(beta.low / 10, beta.high * 10, log=True),
                 "learning_rate": FloatDistribution(1e-5, 1e-2, log=True)}
        for number, state, sampling, b, lr, val, curve, extra in table:
            run_dir = tmp_path / "runs" / "smoke" / method / f"trial-{number:04d}"
            run_dir.mkdir(parents=True)
            (run_dir / "env.json").write_text(json.dumps({"device": "cpu", "packages": {"trl": "1.16.0"}}))
            attrs = {"run_dir": str(run_dir), "sampling": sampling, "clipped_fraction": 0.5}
            if state == "COMPLETE":
                attrs = {**_attrs(method, number, val, run_dir, lm_eval), "sampling": sampling}
                _curves(run_dir, curve)
            attrs.update(extra)
            study.add_trial(create_trial(
                state=TrialState[state], value=val, params={"beta": b, "learning_rate": lr}, distributions=dists,
                user_attrs=attrs, intermediate_values={2: 0.3} if state == "PRUNED" else None))
    return spec, storage


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[rd.ReportData, str]:
    tmp_path = tmp_path_factory.mktemp("report")
    spec, storage = make_study(tmp_path)
    index = build_report(spec, LABEL, tmp_path / "report", storage=storage, toy_results=None)
    return rd.load(spec, LABEL, storage=storage, toy_results=None), index.read_text()


def test_forgiveness_share_counts_random_trials_only(built) -> None:
    data, page = built
    f = rd.forgiveness(data, "dpo")
    assert f.best_number == 0 and f.interval == pytest.approx((0.70, 0.95))
    # random: #1 0.75 (in), #2 0.70 (in, edge), #3 0.60 (out), #4 pruned (out); #6 interrupted and #0/#5/#7 excluded
    assert (f.n_random, f.n_within, f.share) == (4, 2, 0.5)
    assert f.max_lr_within == pytest.approx(5e-4) and f.max_lr_tried == pytest.approx(1e-3)
    assert "2 of 4 random trials (50%)" in page and "5.00e-04" in page
    ipo = rd.forgiveness(data, "ipo")
    assert ipo.share is None and "only 2 randomly sampled" in ipo.reason
    assert "estimate not possible: only 2 randomly sampled trial(s)" in page
    assert "1 of 6 trials clipped every step: those ran normalized gradient descent" in page


def test_peak_step_and_drop_from_curves(built) -> None:
    data, page = built
    peaks = rd.peaks(data).set_index(["method", "number"])
    assert peaks.loc[("dpo", 1), "peak_step"] == 4 and peaks.loc[("dpo", 1), "drop"] == pytest.approx(0.125)
    assert peaks.loc[("dpo", 2), "peak_step"] == 2 and peaks.loc[("dpo", 2), "drop"] == 0.0  # ties: earliest
    assert peaks.loc[("ipo", 1), "peak_step"] == 2 and peaks.loc[("ipo", 1), "drop"] == pytest.approx(0.05)
    assert "val peaked before the final step in 1 of 5 trials" in page
    assert "largest 0.125 at trial 1, peak at step 4" in page


def test_best_trials_table_and_pareto_front(built) -> None:
    data, page = built
    assert data.best == {"dpo": 0, "ipo": 0}
    assert rd.top_trials(data, "dpo") == [0, 5, 1]
    assert rd.pareto_front([(0.0, 0.8), (0.1, 0.7), (-0.1, 0.9), (-0.2, 0.7), (0.1, 0.7)]) == [0, 1, 2, 4]
    assert set(data.trials["state"]) == {"COMPLETE", "PRUNED", "FAIL"} and len(data.trials) == 10
    table = rd.lm_eval_table(data)
    assert table.loc[0, "task"] == "arith" and table.loc[0, "base"] == 0.45 and table.loc[0, "dpo"] == 0.4
    assert "lm-eval mean 0.400 vs base 0.450, Δ -0.050 [-0.100, +0.010] (no measurable change)" in page
    assert "failure reasons: " in page and "interrupted ×1" in page and "OperationalError ×1" in page
    assert 'href="../runs/smoke/dpo/trial-0003/"' in page  # relative link to the run directory


def test_password_never_reaches_the_html(built) -> None:
    _, page = built
    for secret in SECRETS:
        assert secret not in page
    assert "alice:***@db.example" in page


def test_missing_lm_eval_says_not_available(tmp_path: Path) -> None:
    spec, storage = make_study(tmp_path, lm_eval=False)
    page = build_report(spec, LABEL, tmp_path / "report", storage=storage, toy_results=None).read_text()
    assert "lm-eval did not run for this study" in page
    assert "not available: no lm-eval results" in page
    assert "not available: reports/toy/results.json not found (run `nox -s toy`)" in page


def test_empty_storage_builds_a_page_that_says_so(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "study" / "smoke.yaml", [f"runs_dir={tmp_path / 'runs'}"])
    page = build_report(spec, "sqlite:///x.db", tmp_path / "r", storage=optuna.storages.InMemoryStorage(),
                        toy_results=None).read_text()
    assert "no study &#x27;smoke/dpo&#x27; in the storage yet" in page
    assert page.count("not available:") >= 5 and (tmp_path / "r" / "plotly.min.js").stat().st_size > 1_000_000


def test_toy_summary_becomes_the_theory_check(tmp_path: Path) -> None:
    spec, storage = make_study(tmp_path)
    toy = tmp_path / "toy" / "results.json"
    toy.parent.mkdir()
    toy.write_text(json.dumps({
        "settings": {"taus": [0.5, 1.0], "steps": 100},
        "ipo_fixed_point": {"0.5": [0.5, 0.3, 0.2], "1.0": [0.4, 0.33, 0.27]},
        "final_mean_probs": {"dpo": {"0.5": [0.98, 0.01, 0.01], "1.0": [0.95, 0.03, 0.02]},
                             "ipo": {"0.5": [0.51, 0.3, 0.19], "1.0": [0.4, 0.33, 0.27]}},
        "max_abs_dev_from_ipo_fixed_point": {"dpo": {"0.5": 0.48, "1.0": 0.55}, "ipo": {"0.5": 0.01, "1.0": 0.0}},
    }))
    page = build_report(spec, LABEL, tmp_path / "report", storage=storage, toy_results=toy).read_text()
    assert "ends within 0.010 of its closed-form fixed point at every τ (largest deviation at τ = 0.5)" in page
    assert "puts p(a) between 0.950 and 0.980" in page and 'id="fig-toy"' in page
