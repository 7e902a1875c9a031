"""Inference with the LoRA adapter folded into the weights, for the blocks that only score (held-out pairs, lm-eval).

An unmerged LoRA layer runs the base matmul plus two thin ones (``x A^T B^T``): on this CPU a scoring forward of
SmolLM2 with r=16 on every projection takes ~20-35% longer than the base model's, for ~5% more FLOPs. Inside
:func:`merged_adapter` each adapted linear layer computes ``(W + s B A) x`` with one matmul instead.

The base model is shared by every trial, so merging in place (``W += s B A``, later ``W -= s B A``) would leave
float rounding in it after each trial. Here the merged weight is a NEW tensor swapped in for the block; the original
weight tensor is put back untouched, so the base model is bit-for-bit what it was (tested). Skipped (the block runs
unmerged) where it cannot be exact or cheap: 4-bit/8-bit base layers, DoRA and other LoRA variants, several active
adapters, adapters already merged, or when the merged copies would take more than a quarter of the free memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

#: share of the free memory the merged copies may take
MEMORY_SHARE = 0.25


def _lora_layers(model: Any) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0  # unknown: do not merge


def mergeable(model: Any) -> bool:
    """Whether :func:`merged_adapter` folds ``model``'s adapter in (see the module docstring for what it skips)."""
    layers = _lora_layers(model)
    if not layers or not hasattr(model, "disable_adapter"):
        return False
    extra = 0
    for layer in layers:
        base = layer.get_base_layer()
        weight = getattr(base, "weight", None)
        if (type(base) is not torch.nn.Linear or weight is None or not weight.is_floating_point()
                or layer.merged or layer.disable_adapters or len(layer.active_adapters) != 1
                or getattr(layer, "lora_variant", {}) or any(getattr(layer, "use_dora", {}).values())):
            return False
        extra += weight.numel() * weight.element_size()
    device = layers[0].get_base_layer().weight.device
    return extra < MEMORY_SHARE * _free_bytes(device)


@contextlib.contextmanager
def merged_adapter(model: Any) -> Iterator[bool]:
    """Run the block with the active LoRA adapter folded into copies of the base weights (yields True), or as it
    is where :func:`mergeable` says no (yields False). No gradients flow through the merged weights; the original
    weight tensors, and the adapter, are back in place afterwards."""
    if not mergeable(model):
        yield False
        return
    swapped: list[tuple[torch.nn.Module, torch.nn.Parameter]] = []
    try:
        with torch.no_grad():
            for layer in _lora_layers(model):
                base = layer.get_base_layer()
                weight = base.weight
                delta = layer.get_delta_weight(layer.active_adapters[0]).to(weight.dtype)
                base.weight = torch.nn.Parameter(weight + delta, requires_grad=False)
                swapped.append((base, weight))
        with model.disable_adapter():  # the LoRA branch off: each layer runs its (merged) base layer alone
            yield True
    finally:
        for base, weight in swapped:
            base.weight = weight
