"""lm-eval delta to the base: the macro mean, its stratified standard error and interval, worked out by hand; and the
digest that stops a resumed study from comparing trials with a base scored on other task files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from support import ROOT

from prefstudy.evaluation.lmeval import LmEvalError, compare_to_base, tasks_digest
from prefstudy.spec import LmEvalTask


def _result(per_task: dict[str, list[float]]) -> dict:
    return {"tasks": {name: {"per_doc": scores, "doc_ids": list(range(len(scores)))}
                      for name, scores in per_task.items()}}


def test_delta_and_standard_error_by_hand() -> None:
    # task a (4 docs): trial - base = [1, 0, 0, -1] -> mean 0,    var (ddof 1) = 2/3
    # task b (2 docs): trial - base = [-1, -1]      -> mean -1,   var 0
    # macro delta = (0 + -1) / 2 = -0.5; SE = sqrt(var_a / 4 + var_b / 2) / 2 = sqrt(1/6) / 2
    base = _result({"a": [0.0, 1.0, 0.0, 1.0], "b": [1.0, 1.0]})
    trial = _result({"a": [1.0, 1.0, 0.0, 0.0], "b": [0.0, 0.0]})
    out = compare_to_base(trial, base, seed=0)
    assert out["delta_vs_base"] == pytest.approx(-0.5)
    assert out["delta_se"] == pytest.approx(np.sqrt(1 / 6) / 2)
    # task b is constant: resampled within its task it stays -1, so the interval comes from task a alone. The sum of
    # 4 draws from {1, 0, 0, -1} is Binomial(8, 1/2) - 4: P(sum <= -4) = 1/256, P(sum <= -3) = 9/256 ~ 0.035, so the
    # 2.5% quantile is sum -3 (mean_a -0.75, macro (-0.75 - 1) / 2) and, symmetrically, the 97.5% one is sum +3.
    assert (out["delta_ci_low"], out["delta_ci_high"]) == (pytest.approx(-0.875), pytest.approx(-0.125))


def test_a_collapsed_task_does_not_widen_the_interval() -> None:
    # one task fails everywhere, three are unchanged: the delta is exact (-0.25), its SE and interval zero
    base = _result({name: [1.0] * 20 for name in "abcd"})
    trial = _result({"a": [0.0] * 20, **{name: [1.0] * 20 for name in "bcd"}})
    out = compare_to_base(trial, base, seed=0)
    assert (out["delta_vs_base"], out["delta_se"], out["delta_ci_low"], out["delta_ci_high"]) == (
        pytest.approx(-0.25), 0.0, pytest.approx(-0.25), pytest.approx(-0.25))


def test_different_documents_are_refused() -> None:
    base = _result({"a": [1.0, 0.0]})
    trial = {"tasks": {"a": {"per_doc": [1.0, 0.0], "doc_ids": [0, 2]}}}
    with pytest.raises(LmEvalError, match="different documents"):
        compare_to_base(trial, base, seed=0)


def test_digest_follows_the_resolved_config_documents_and_settings_not_the_layout(tmp_path: Path) -> None:
    folder = tmp_path / "mytask"
    folder.mkdir()
    data = "dataset_kwargs:\n  data_files:\n    test: test.jsonl\n"
    (folder / "mytask.yaml").write_text("task: mytask\noutput_type: multiple_choice\n" + data)
    (folder / "test.jsonl").write_text('{"q": 1}\n')
    tasks = (LmEvalTask(name="mytask", limit=10),)
    first = tasks_digest(tasks, tmp_path)
    assert tasks_digest(tasks, tmp_path) == first
    assert tasks_digest((LmEvalTask(name="mytask", limit=11),), tmp_path) != first  # a setting
    # the same config laid out as a shared template plus include: the same digest
    (tmp_path / "_shared.yaml").write_text("output_type: multiple_choice\n")
    (folder / "mytask.yaml").write_text("include: ../_shared.yaml\ntask: mytask\n" + data)
    assert tasks_digest(tasks, tmp_path) == first
    (tmp_path / "_shared.yaml").write_text("output_type: generate_until\n")  # the template changed: another task
    assert tasks_digest(tasks, tmp_path) != first
    (tmp_path / "_shared.yaml").write_text("output_type: multiple_choice\n")
    (folder / "test.jsonl").write_text('{"q": 2}\n')  # other documents
    assert tasks_digest(tasks, tmp_path) != first


def test_resume_refuses_a_base_scored_on_other_tasks(tmp_path: Path, monkeypatch) -> None:
    from prefstudy.core.rundir import write_json
    from prefstudy.search.worker import base_lm_eval
    from prefstudy.spec import load_spec

    monkeypatch.chdir(ROOT)
    spec = load_spec("study/smoke.yaml", [f"runs_dir={tmp_path}"])
    worker = SimpleNamespace(spec=spec)
    path = spec.run_root() / "base" / "lm_eval.json"
    write_json(path, {"tasks": {}, "tasks_digest": "0123456789abcdef"})
    with pytest.raises(LmEvalError, match="other lm-eval task files"):
        base_lm_eval(worker, {})
    now = tasks_digest(spec.evaluation.lm_eval.tasks)
    write_json(path, {"tasks": {}, "tasks_digest": now})
    assert base_lm_eval(worker, {})["tasks_digest"] == now  # same tasks: reused, not recomputed
