"""Executed-FLOP counts of the benchmark (benchmarks.flops), worked out by hand."""

from __future__ import annotations

import torch

from benchmarks.flops import Shape, matmul_peak, model_shape, score_flops, train_flops

# one layer: linear weights of 10 multiply-adds per token, LoRA r*(in+out) = 2, 1 head of dim 2, hidden 3, vocab 5
TOY = Shape(layers=1, linear=10, lora=2, heads=1, head_dim=2, hidden=3, vocab=5)


def test_trl_layout_step_by_hand() -> None:
    # TRL's batch: 2 rows x 4 tokens = 8 tokens; its CPU fused head scores every shifted position: 2 x 3 = 6
    # forward: base 2*10*8 = 160, LoRA 2*2*8 = 32, attention 4*1*2*4 keys*8 = 256, head 2*3*5*6 = 180
    # backward: base 1x, LoRA 2x, attention 2x, head 1x -> 160*2 + 32*3 + 256*3 + 180*2 = 1544
    batch = {"input_ids": torch.zeros((2, 4), dtype=torch.long)}
    assert train_flops(TOY, batch, checkpointing=False) == 1544


def test_packed_step_by_hand_with_and_without_checkpointing() -> None:
    # one packed row of 6 tokens, 3 answer tokens scored: base 120, LoRA 24, attention 4*2*6*6 = 288, head 90
    # 120*2 + 24*3 + 288*3 + 90*2 = 1356; checkpointing recomputes the layers once: + 120 + 24 + 288 = 1788
    batch = {"input_ids": torch.zeros((2, 4), dtype=torch.long), "packed_input_ids": torch.zeros((1, 6)),
             "packed_labels": torch.zeros(3)}
    assert train_flops(TOY, batch, checkpointing=False) == 1356
    assert train_flops(TOY, batch, checkpointing=True) == 1788


def test_scoring_pass_by_hand() -> None:
    # 2 pairs in one batch and one row: prompts [1 2 3] and [1 2 4 5] share [1 2], kept once;
    # pair 0 answers [6] / [9 7] share nothing, pair 1 answers [8 7] / [8 10] share the stem [8]
    # row: prefix 2 + pair 0 (1 + 1 + 2) + pair 1 (2 + 1 stem + 1 + 1) = 11 tokens over 11 keys:
    # base 2*10*11 = 220, LoRA 2*2*11 = 44, attention 4*1*2*11*11 = 968
    # head: pair 0 scores 6, 9, 7; pair 1 scores 8 (once for both), 7, 10: 6 positions, 2*3*5*6 = 180
    total = score_flops(TOY, [[1, 2, 3], [1, 2, 4, 5]], [[6], [8, 7]], [[9, 7], [8, 10]], batch_size=2,
                        max_length=50)
    assert total == 220 + 44 + 968 + 180


def test_model_shape_of_the_tiny_mistral(tiny) -> None:
    _, model = tiny
    shape = model_shape(model, 4, ["q_proj", "v_proj"])
    # q, o 64x64; k, v 64x32 (2 kv heads of 16); gate, up 64x128; down 128x64
    assert shape.linear == 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128
    assert shape.lora == 4 * (64 + 64) + 4 * (64 + 32)
    assert (shape.layers, shape.heads, shape.head_dim, shape.hidden) == (2, 4, 16, 64)


def test_matmul_peak_is_measured() -> None:
    threads = torch.get_num_threads()
    peaks = matmul_peak(1, seconds=0.2, shapes=((64, 64, 64),))
    assert set(peaks) == {"64x64x64"} and peaks["64x64x64"] > 0.01
    assert torch.get_num_threads() == threads  # the measurement leaves the process's threads as they were
