"""The private lm-eval seams (evaluation/lmeval_seams.py) against the pinned lm-eval: HFLM's ``_model_call`` is the
forward it scores with, and ``simple_evaluate`` looks ``add_env_info`` up in its module at call time."""

from __future__ import annotations

import inspect


def test_model_logits_is_hflms_own_forward(tiny) -> None:
    """lm-eval's private model call on a model object gives that model's logits (the adapter check relies on it)."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from prefstudy.evaluation.lmeval_seams import model_logits

    tokenizer, model = tiny
    params = list(inspect.signature(HFLM._model_call).parameters)
    assert params[:2] == ["self", "inps"], params
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1, device="cpu")
    ids = torch.tensor([tokenizer("7 times 8 is 56")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model_logits(lm, ids), model(ids).logits)


def test_no_env_probe_replaces_lm_evals_collect_env_and_restores_it(monkeypatch) -> None:
    """simple_evaluate (pinned lm-eval) looks add_env_info up in its module at call time, so replacing it there skips
    torch's collect_env (pip/conda/nvidia-smi subprocesses, seconds per task); outside the block it is lm-eval's own."""
    import inspect

    import torch.utils.collect_env
    from lm_eval import evaluator

    from prefstudy.evaluation.lmeval_seams import no_env_probe

    assert "add_env_info" in inspect.unwrap(evaluator.simple_evaluate).__code__.co_names  # a module-global lookup
    original = evaluator.add_env_info

    def fail() -> str:
        raise AssertionError("collect_env ran")

    monkeypatch.setattr(torch.utils.collect_env, "get_pretty_env_info", fail)
    results: dict = {}
    with no_env_probe():
        evaluator.add_env_info(results)
    assert results["pretty_env_info"].startswith("not collected") and results["lm_eval_version"]
    assert evaluator.add_env_info is original


def test_resolved_config_follows_include_with_local_keys_winning(tmp_path) -> None:
    from prefstudy.evaluation.lmeval_seams import resolved_config

    (tmp_path / "_base.yaml").write_text("dataset_path: json\noutput_type: multiple_choice\ntest_split: test\n")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "t.yaml").write_text("include: ../_base.yaml\ntask: t\ntest_split: validation\n")
    assert resolved_config(tmp_path / "t" / "t.yaml") == {
        "dataset_path": "json", "output_type": "multiple_choice", "test_split": "validation", "task": "t"}
