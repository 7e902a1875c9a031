"""The 4-bit (QLoRA) path on the CPU: bitsandbytes NF4 base + LoRA, the same code the GPU recipe runs.

bitsandbytes 0.50 on CPU can repack 4-bit weights on the first no-grad forward into a layout without autograd,
silently corrupting later gradients; model.load_base_model switches that path off. Guarded here: gradients after
an eval pass equal the gradients without one.
"""

from __future__ import annotations

import pytest
import torch

from prefstudy.data.sources import load_splits
from prefstudy.evaluation.logprobs import sequence_logps, shared_prompt_logps
from prefstudy.spec import DataSpec, ModelSpec, SyntheticData, TrainingSpec
from prefstudy.training.trl_seams import tokenize_records

pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def qlora():
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model

    from prefstudy.models.loading import load_base_model, load_tokenizer

    torch.set_num_threads(1)
    spec_model = ModelSpec(name_or_path="tiny-random-mistral")
    tokenizer = load_tokenizer(spec_model)
    base = load_base_model(spec_model, TrainingSpec(quantization="nf4", max_length=256))
    layers = [m for m in base.modules() if isinstance(m, bnb.nn.Linear4bit)]
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    records = load_splits(DataSpec(synthetic=SyntheticData(n_train=4, n_val=2, n_test=2, n_ood=0)))["train"]
    dataset, _ = tokenize_records(records, tokenizer, 256)
    yield tokenizer, model, layers, dataset
    model.unload()


def _lora_grads(model, tokenizer, dataset) -> dict[str, torch.Tensor]:
    model.train()
    model.zero_grad()
    rows = dataset[:4]
    chosen, _, rejected, _ = shared_prompt_logps(
        model, rows["prompt_ids"], rows["chosen_ids"], rows["rejected_ids"], tokenizer.pad_token_id
    )
    loss = -torch.nn.functional.logsigmoid(0.1 * (chosen.sum(1) - rejected.sum(1))).mean()
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_base_is_4bit_and_the_cpu_repack_is_off(qlora) -> None:
    _, _, layers, _ = qlora
    assert layers, "the base model has no 4-bit layers"
    assert all(layer.weight.dtype == torch.uint8 for layer in layers)
    assert all(getattr(layer, "support_avx512bf16_for_cpu", True) is False for layer in layers)


def test_gradients_after_an_eval_pass_equal_gradients_without_one(qlora) -> None:
    tokenizer, model, _, dataset = qlora
    before = _lora_grads(model, tokenizer, dataset)
    sequence_logps(model, dataset, tokenizer.pad_token_id, 4, "fp32", 256)  # eval mode + no_grad forward
    after = _lora_grads(model, tokenizer, dataset)
    assert before and set(before) == set(after)
    assert any(g.abs().sum() > 0 for g in before.values())
    for name, grad in before.items():
        torch.testing.assert_close(after[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_a_4bit_base_is_not_merged(qlora) -> None:
    """Folding LoRA into NF4 weights cannot be exact: the 4-bit path scores unmerged (models.merged_adapter)."""
    from prefstudy.models.merged_adapter import _lora_layers, mergeable, merged_adapter

    _, model, layers, _ = qlora
    before = [layer.weight for layer in layers]
    assert not mergeable(model)
    with merged_adapter(model) as merged:
        assert merged is False
        assert _lora_layers(model) and not any(layer.disable_adapters for layer in _lora_layers(model))
    assert all(layer.weight is weight for layer, weight in zip(layers, before, strict=True))
