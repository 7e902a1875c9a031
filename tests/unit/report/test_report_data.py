"""The report's data layer and verdicts on a hand-made study (in-memory Optuna storage + fake run directories)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from report_study import LABEL, SECRETS, make_study
from support import ROOT

from prefstudy.report import build_report
from prefstudy.report import data as rd
from prefstudy.spec import load_spec


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[rd.ReportData, str]:
    tmp_path = tmp_path_factory.mktemp("report")
    spec, storage = make_study(tmp_path)
    index = build_report(spec, LABEL, tmp_path / "report", storage=storage, toy_results=None)
    return rd.load(spec, LABEL, storage=storage, toy_results=None), index.read_text()


def test_the_lr_profile_section_says_what_to_run_and_keeps_the_clipped_steps(built) -> None:
    _, page = built
    assert '<section id="lr-profile">' in page and "nox -s study -- --stage lr-profile" in page
    assert "1 of 6 trials clipped every step: those ran normalized gradient descent" in page


def test_per_step_training_loss_is_loaded_and_drawn(built) -> None:
    data, page = built
    steps = data.steps[(data.steps["method"] == "dpo") & (data.steps["number"] == 1)]
    assert list(steps["step"]) == [1, 2, 3, 4, 5, 6] and steps["loss"].iloc[1] == pytest.approx(0.5)
    assert 'id="fig-train-loss"' in page and "IPO's floor" in page


def test_peak_step_and_drop_from_curves(built) -> None:
    data, page = built
    peaks = rd.peaks(data).set_index(["method", "number"])
    assert peaks.loc[("dpo", 1), "peak_step"] == 4 and peaks.loc[("dpo", 1), "drop"] == pytest.approx(0.125)
    assert peaks.loc[("dpo", 2), "peak_step"] == 2 and peaks.loc[("dpo", 2), "drop"] == 0.0  # ties: earliest
    assert peaks.loc[("ipo", 1), "peak_step"] == 2 and peaks.loc[("ipo", 1), "drop"] == pytest.approx(0.05)
    assert "val peaked before the final step in 1 of 5 trials" in page
    assert "largest +0.125 at trial 1, peak at step 4" in page


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
    assert "no study &#39;smoke/dpo&#39; in the storage yet" in page  # escaped once, by the template
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


def test_the_peak_is_chosen_on_one_half_and_the_drop_read_on_the_other() -> None:
    """Half a peaks at step 12 (0.8); half b is read there: 0.65 at the peak, 0.60 at the end, drop +0.05. Reading
    half b alone would pick its own maximum (0.70 at step 18) and report a drop of 0.10."""
    from types import SimpleNamespace

    import pandas as pd

    steps = [0, 6, 12, 18, 24]
    curves = pd.DataFrame({
        "method": "dpo", "number": 3, "state": "COMPLETE", "step": steps,
        "curve/val_a/accuracy": [0.5, 0.6, 0.8, 0.7, 0.6], "curve/val_b/accuracy": [0.5, 0.55, 0.65, 0.7, 0.6],
        "val/accuracy": [None, 0.6, 0.7, 0.7, 0.6]})
    row = rd.peaks(SimpleNamespace(curves=curves, metric="accuracy")).iloc[0]  # type: ignore[arg-type]
    assert (row["peak_step"], row["final_step"], bool(row["split"])) == (12, 24, True)
    assert row["peak"] == pytest.approx(0.65) and row["drop"] == pytest.approx(0.05)


def test_the_primary_mde_before_confirmation_adds_seed_variance_by_hand() -> None:
    """Search interval ±0.0196 -> pair SE 0.0392 / 3.92 = 0.01; 5 seeds at seed SD 0.03: SE^2 = 0.00018 + 0.0001,
    SE 0.016733; df = 0.00028^2 / (0.00018^2 / 4) = 9.679; (t(0.975) 2.2382 + t(0.8) 0.8804) * 0.016733 = 0.0522.
    Without seed variance (one seed) it would be the search's own MDE."""
    from types import SimpleNamespace

    from prefstudy.report.verdicts import projected_primary_mde
    from prefstudy.spec import load_spec

    spec = load_spec("default")
    c = SimpleNamespace(heldout=(0.01, 0.01 - 0.0196, 0.01 + 0.0196), heldout_mde=0.028)
    mde, how = projected_primary_mde(spec, c)
    assert mde == pytest.approx(0.05218, abs=2e-5) and "5 seeds" in how
    one = load_spec("default", ["confirm.seeds=[1]"])
    assert projected_primary_mde(one, c)[0] == 0.028
    assert projected_primary_mde(spec, None) == (None, "no search comparison yet to project from")


def test_a_verdict_sentence_never_prints_a_bare_zero_p() -> None:
    from prefstudy.report.verdicts import Verdict

    decided = Verdict("DPO − IPO, lm-eval mean", False, True, -0.21, -0.26, -0.17, 0.1, 1e-9, "s", 4e-9, True)
    assert decided.sentence() == ("DPO − IPO, lm-eval mean = -0.210 [95% -0.260, -0.170], p < 0.001 (Holm < 0.001): "
                                  "decided: the interval lies below 0")
    open_one = Verdict("x", False, True, 0.0, -0.05, 0.05, 0.07, 1.0, "s", 1.0, False)
    assert open_one.sentence().endswith("p 1 (Holm 1): not decided; this design cannot detect differences below "
                                        "0.07 (80% power, two-sided 5%)")
