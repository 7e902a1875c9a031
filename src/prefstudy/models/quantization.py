"""bitsandbytes 4-bit NF4 (QLoRA): the only code that knows bitsandbytes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def nf4_config(compute_dtype: torch.dtype) -> Any:
    """The BitsAndBytesConfig of QLoRA: 4-bit NF4 weights with double quantization, computing in ``compute_dtype``."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def disable_cpu_4bit_repack(model: torch.nn.Module) -> int:
    """bitsandbytes 0.50 on CPU repacks 4-bit weights on the first no-grad forward into a layout with no
    autograd, silently corrupting later gradients. Turning the AVX512-bf16 path off keeps gradients right."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    count = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


