"""models.merged_adapter: scoring blocks run with the LoRA adapter folded into copies of the base weights.

The merged forward equals the unmerged one up to float rounding, the shared base model's weight tensors come back
bit-for-bit (the same objects), the adapter is active again afterwards, and what cannot be merged exactly or
cheaply runs unmerged.
"""

from __future__ import annotations

import pytest
import torch

from prefstudy.models import merged_adapter as module
from prefstudy.models.merged_adapter import mergeable, merged_adapter


@pytest.fixture
def adapted(tiny):
    from peft import LoraConfig, get_peft_model

    tokenizer, base = tiny
    originals = {n: p.detach().clone() for n, p in base.named_parameters()}
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():  # lora_B starts at zero: move it so the adapter changes the outputs
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    model.eval()
    ids = torch.tensor([tokenizer("Question: what is 7 times 8?\nAnswer: 56")["input_ids"]] * 2)
    yield model, ids, originals
    model.unload()
    for param in base.parameters():
        param.requires_grad_(False)


def _bases(model):
    return [m.get_base_layer() for m in module._lora_layers(model)]


def test_merged_equals_unmerged_and_the_base_comes_back_exactly(adapted) -> None:
    model, ids, originals = adapted
    weights = [b.weight for b in _bases(model)]
    with torch.no_grad():
        unmerged = model(ids).logits
        with model.disable_adapter():
            base_logits = model(ids).logits
        assert (unmerged - base_logits).abs().max() > 1e-3  # the adapter really changes the outputs
        assert mergeable(model)
        with merged_adapter(model) as merged:
            assert merged is True
            assert all(b.weight is not w for b, w in zip(_bases(model), weights, strict=True))  # copies swapped in
            inside = model(ids).logits
        after = model(ids).logits
    torch.testing.assert_close(inside, unmerged, rtol=1e-5, atol=1e-5)
    assert torch.equal(after, unmerged)  # the LoRA branch is on again, on the very same weights
    assert all(b.weight is w for b, w in zip(_bases(model), weights, strict=True))
    base_state = dict(model.get_base_model().named_parameters())
    for name, value in originals.items():  # the shared base model, bit for bit
        key = next(k for k in base_state if k.replace(".base_layer", "") == name)
        assert torch.equal(base_state[key], value), name


def test_weights_come_back_when_the_block_raises(adapted) -> None:
    model, _, _ = adapted
    weights = [b.weight for b in _bases(model)]
    with pytest.raises(RuntimeError, match="boom"), merged_adapter(model):
        raise RuntimeError("boom")
    assert all(b.weight is w for b, w in zip(_bases(model), weights, strict=True))
    assert not any(m.disable_adapters for m in module._lora_layers(model))


def test_what_cannot_be_merged_runs_unmerged(adapted, tiny, monkeypatch) -> None:
    model, ids, _ = adapted
    _, base = tiny
    assert not mergeable(base.get_decoder())  # no adapter at all
    monkeypatch.setattr(module, "_free_bytes", lambda _device: 0)  # the copies would not fit
    weights = [b.weight for b in _bases(model)]
    with torch.no_grad():
        expected = model(ids).logits
        with merged_adapter(model) as merged:
            assert merged is False
            assert torch.equal(model(ids).logits, expected)
    assert all(b.weight is w for b, w in zip(_bases(model), weights, strict=True))
