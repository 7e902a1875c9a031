"""Executed FLOPs of a training step and a scoring pass, and the machine's matmul peak, for ``nox -s bench``.

Counted per batch from the tensors that really run, padding included (it is computed too), with a multiply-add
as 2 FLOPs. Per token and decoder layer, with ``S`` the frozen linear weights' sizes (in x out), LoRA rank ``r``
on the targeted ones and ``K`` the keys a query attends over (the padded row width: sdpa with a mask computes
every key, masked or not):

- forward: ``2 * sum(S)`` (base) + ``2 * r * (in + out)`` per LoRA module + ``4 * heads * head_dim * K``
  (scores and the weighted sum);
- backward: base linears 1x their forward (input gradients only: the weights are frozen), LoRA 2x (input and
  weight gradients), attention 2x; gradient checkpointing adds one more forward of the layers;
- LM head: ``2 * hidden * vocab`` per scored position, forward + input gradient in training. TRL's fused head
  scores every position on the CPU (its compact path needs Triton); the packed forward scores answer tokens only.

A scoring pass (``evaluation.logprobs.sequence_logps``) is forward only, over packed rows as in training (several
pairs a row, the row's shared prefix, each prompt and each pair's common answer start once), the head at each
distinct answer position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Shape:
    layers: int
    linear: int  # sum of in*out over one layer's frozen linear weights
    lora: int  # sum of r*(in+out) over one layer's LoRA modules
    heads: int
    head_dim: int
    hidden: int
    vocab: int


def model_shape(model: Any, lora_r: int, targets: tuple[str, ...] | list[str]) -> Shape:
    """The sizes that set a step's FLOPs, read from the base model's first decoder layer (before any adapter)."""
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    linear = lora = 0
    for name, module in decoder.layers[0].named_modules():
        if hasattr(module, "in_features") and hasattr(module, "out_features"):  # nn.Linear and bnb Linear4bit
            linear += module.in_features * module.out_features
            if name.split(".")[-1] in targets:
                lora += lora_r * (module.in_features + module.out_features)
    config = model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return Shape(len(decoder.layers), linear, lora, heads, head_dim, head.in_features, head.out_features)


def _layer_forward(shape: Shape, tokens: int, keys: int) -> tuple[float, float, float]:
    """(base linear, LoRA, attention) forward FLOPs of ``tokens`` queries over ``keys`` keys each, all layers."""
    return (2.0 * shape.linear * tokens * shape.layers, 2.0 * shape.lora * tokens * shape.layers,
            4.0 * shape.heads * shape.head_dim * keys * tokens * shape.layers)


def train_flops(shape: Shape, batch: dict[str, torch.Tensor], checkpointing: bool) -> float:
    """Executed FLOPs of forward + backward on one collated batch, TRL's layout or the packed one."""
    if "packed_input_ids" in batch:
        rows, width = batch["packed_input_ids"].shape
        head_rows = int(batch["packed_labels"].numel())
    else:
        rows, width = batch["input_ids"].shape
        head_rows = rows * (width - 1)
    base, lora, attention = _layer_forward(shape, rows * width, width)
    recompute = 1.0 if checkpointing else 0.0
    head = 2.0 * shape.hidden * shape.vocab * head_rows
    return base * (2 + recompute) + lora * (3 + recompute) + attention * (3 + recompute) + head * 2


def score_flops(shape: Shape, prompts: list[list[int]], chosen: list[list[int]], rejected: list[list[int]],
                batch_size: int, max_length: int) -> float:
    """Executed forward FLOPs of one packed ``sequence_logps`` pass over these pairs: its own batches and rows
    (:func:`~prefstudy.evaluation.logprobs.scoring_batches`, ``packed_row_tokens(max_length)``), padding included."""
    from prefstudy.evaluation.logprobs import packed_row_tokens, scoring_batches
    from prefstudy.models.packed_forward import pack_pairs

    total = 0.0
    for picked in scoring_batches(prompts, chosen, rejected, batch_size):
        packed = pack_pairs([prompts[i] for i in picked], [chosen[i] for i in picked],
                            [rejected[i] for i in picked], 0, packed_row_tokens(max_length), answer_layout=True)
        rows, width = packed["packed_input_ids"].shape
        total += sum(_layer_forward(shape, rows * width, width))
        total += 2.0 * shape.hidden * shape.vocab * int(packed["packed_labels"].numel())
    return total


def matmul_peak(threads: int, dtype: torch.dtype = torch.float32, seconds: float = 2.0,
                shapes: tuple[tuple[int, int, int], ...] = ((2048, 2048, 2048),)) -> dict[str, float]:
    """Best sustained GFLOP/s of ``torch.mm`` at each (m, k, n), with ``threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    out: dict[str, float] = {}
    try:
        for m, k, n in shapes:
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            for _ in range(3):
                torch.mm(a, b)
            best = 0.0
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                torch.mm(a, b)
                best = max(best, 2.0 * m * k * n / (time.perf_counter() - started) / 1e9)
            out[f"{m}x{k}x{n}"] = round(best, 1)
    finally:
        torch.set_num_threads(previous)
    return out
