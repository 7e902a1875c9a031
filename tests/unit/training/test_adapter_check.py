"""The adapter-is-applied checks: held-out scoring and the lm-eval wrapper both refuse to score a model whose
log-probs equal the base model's (forced here with a fresh LoRA adapter, whose B matrices are zero)."""

from __future__ import annotations

import pytest
import torch

from prefstudy.data.sources import load_splits
from prefstudy.evaluation.heldout import Prepared
from prefstudy.evaluation.lmeval import LmEvalError, check_wrapper_applies_adapter
from prefstudy.spec import load_spec
from prefstudy.training.adapter_check import AdapterNotApplied, check_adapter_applied
from prefstudy.training.faults import failure_reason
from prefstudy.training.trl_seams import tokenize_records


@pytest.fixture
def peft_model(tiny):
    from peft import LoraConfig, get_peft_model

    tokenizer, base = tiny
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))
    yield tokenizer, model
    model.unload()


def _prepared(tokenizer) -> tuple[object, Prepared]:
    spec = load_spec("smoke")
    val, _ = tokenize_records(load_splits(spec.data)["val"], tokenizer, 256)
    return spec, Prepared(tokenized={"val": val}, ref={}, fingerprint="test")


def _perturb(model) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(0.05)


def test_a_zero_effect_adapter_fails_the_heldout_check_and_a_trained_one_passes(peft_model) -> None:
    tokenizer, model = peft_model
    spec, prepared = _prepared(tokenizer)
    with pytest.raises(AdapterNotApplied, match="adapter not applied") as caught:
        check_adapter_applied(model, spec, tokenizer.pad_token_id, prepared)
    assert failure_reason(caught.value).startswith("adapter not applied")  # the trial's fail_reason
    _perturb(model)
    assert check_adapter_applied(model, spec, tokenizer.pad_token_id, prepared) > 0.0


def test_the_lm_eval_wrapper_check_fails_without_an_effective_adapter(peft_model) -> None:
    from lm_eval.models.huggingface import HFLM

    tokenizer, model = peft_model
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=2, device="cpu")
    with pytest.raises(LmEvalError, match="adapter not applied"):
        check_wrapper_applies_adapter(lm, model, tokenizer)
    _perturb(model)
    check_wrapper_applies_adapter(lm, model, tokenizer)  # passes: lm-eval scores the adapter
