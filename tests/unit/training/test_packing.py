"""The prefix-shared training forward (models.packed_forward + the seam in training.trl_seams).

- the packed layout, worked out by hand on two small pairs;
- through TRL 1.16's own ``_compute_loss``: per-token log-probs, the DPO/IPO loss and the LoRA gradient norm equal
  TRL's own forward (fp32: 1e-5 relative for log-probs and loss, 1e-4 for gradient norms), on the tiny Mistral
  (one pair per row and several pairs per row with the shared prefix, with and without gradient checkpointing),
  on SmolLM2 and on the CPU 4-bit path;
- auto/on/off resolution and the trainer's cached FLOP count.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefstudy.data.sources import load_splits
from prefstudy.evaluation.logprobs import common_prefix
from prefstudy.models.packed_forward import pack_pairs, packed_forward, resolve_prefix_sharing
from prefstudy.spec import DataSpec, ModelSpec, SpecError, SyntheticData, TrainingSpec
from prefstudy.training.trl_seams import PackedPreferenceCollator, tokenize_records

MAX_LENGTH = 256
COLUMNS = ["prompt_ids", "chosen_ids", "rejected_ids", "ref_chosen_logps", "ref_rejected_logps"]


def test_packed_layout_worked_by_hand() -> None:
    # pair 0: prompt [1 2 3], chosen [6 7], rejected [9];  pair 1: prompt [1 2 4 5], chosen [8], rejected [10 11]
    prompts, chosen, rejected = [[1, 2, 3], [1, 2, 4, 5]], [[6, 7], [8]], [[9], [10, 11]]
    # TRL's layout: rows [c0, c1, r0, r1], width max(3+2, 4+2) = 6, shifted width 5
    one = pack_pairs(prompts, chosen, rejected, pad_token_id=0, row_tokens=0)
    assert one["packed_input_ids"].tolist() == [[1, 2, 3, 6, 7, 9, 0], [1, 2, 4, 5, 8, 10, 11]]
    assert one["packed_position_ids"].tolist() == [[0, 1, 2, 3, 4, 3, 0], [0, 1, 2, 3, 4, 4, 5]]
    # chosen 6 <- hidden of 3 (index 2), 7 <- 6 (3); rejected 9 <- 3 (2). Pair 1 (row 1 = flat 7..13):
    # 8 <- 5 (flat 10), 10 <- 5 (flat 10), 11 <- 10 (flat 12)
    assert one["packed_source"].tolist() == [2, 3, 2, 10, 10, 12]
    # targets in the shifted [4, 5] layout: c0 tokens at t=3,4 -> 2,3; r0 (row 2) t=3 -> 12;
    # c1 (row 1) t=4 -> 5+3=8; r1 (row 3) t=4,5 -> 15+3, 15+4
    assert one["packed_target"].tolist() == [2, 3, 12, 8, 18, 19]
    assert one["packed_labels"].tolist() == [6, 7, 9, 8, 10, 11]
    mask = one["packed_attention_mask"][0, 0].int().tolist()
    assert mask[5] == [1, 1, 1, 0, 0, 1, 0]  # rejected 9 sees the prompt and itself, not chosen 6 7
    assert mask[4] == [1, 1, 1, 1, 1, 0, 0]  # chosen 7 sees prompt + chosen
    assert mask[6] == [0, 0, 0, 0, 0, 0, 1]  # padding sees itself only

    # both pairs in one row, the shared prefix [1 2] once
    shared = pack_pairs(prompts, chosen, rejected, pad_token_id=0, row_tokens=100)
    assert shared["packed_input_ids"].tolist() == [[1, 2, 3, 6, 7, 9, 4, 5, 8, 10, 11]]
    assert shared["packed_position_ids"].tolist() == [[0, 1, 2, 3, 4, 3, 2, 3, 4, 4, 5]]
    assert shared["packed_source"].tolist() == [2, 3, 2, 7, 7, 9]
    assert shared["packed_target"].tolist() == one["packed_target"].tolist()
    mask = shared["packed_attention_mask"][0, 0].int().tolist()
    assert mask[6] == [1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]  # pair 1's prompt token 4 sees the prefix, not pair 0
    assert mask[10] == [1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 1]  # rejected 11: prefix, own prompt, own rejected


def test_answers_common_start_runs_once_worked_by_hand() -> None:
    # prompt [1 2], chosen [5 6 7], rejected [5 6 8 9]: both answers start with the stem [5 6]
    one = pack_pairs([[1, 2]], [[5, 6, 7]], [[5, 6, 8, 9]], pad_token_id=0)
    # row [prompt 1 2 | stem 5 6 | chosen tail 7 | rejected tail 8 9]: 7 tokens instead of 9
    assert one["packed_input_ids"].tolist() == [[1, 2, 5, 6, 7, 8, 9]]
    assert one["packed_position_ids"].tolist() == [[0, 1, 2, 3, 4, 4, 5]]
    # scored once each: 5 <- 2 (index 1), 6 <- 5 (2), 7 <- 6 (3), 8 <- 6 (3), 9 <- 8 (5)
    assert one["packed_source"].tolist() == [1, 2, 3, 3, 5]
    assert one["packed_labels"].tolist() == [5, 6, 7, 8, 9]
    # TRL's shifted layout [2, 5]: chosen row 0 at t=2,3,4 -> 1,2,3; rejected row 1 at t=2..5 -> 6,7,8,9;
    # the stem's two log-probs fill both answers
    assert one["packed_target"].tolist() == [1, 2, 3, 6, 7, 8, 9]
    assert one["packed_pick"].tolist() == [0, 1, 2, 0, 1, 3, 4]
    mask = one["packed_attention_mask"][0, 0].int().tolist()
    assert mask[4] == [1, 1, 1, 1, 1, 0, 0]  # chosen 7 sees prompt, stem, itself
    assert mask[5] == [1, 1, 1, 1, 0, 1, 0]  # rejected 8 sees prompt and stem, not chosen 7
    answers = pack_pairs([[1, 2]], [[5, 6, 7]], [[5, 6, 8, 9]], pad_token_id=0, answer_layout=True)
    # answer-aligned [2, 4]: chosen tokens 0..2 -> 0,1,2; rejected tokens 0..3 -> 4..7
    assert answers["packed_target"].tolist() == [0, 1, 2, 4, 5, 6, 7]


def test_rows_respect_the_token_budget_and_the_sliding_window() -> None:
    prompts, chosen, rejected = [[1, 2, 3]] * 3, [[4]] * 3, [[5]] * 3  # 5 tokens a pair
    assert pack_pairs(prompts, chosen, rejected, 0, row_tokens=10)["packed_input_ids"].shape[0] == 2
    assert pack_pairs(prompts, chosen, rejected, 0, row_tokens=15)["packed_input_ids"].shape[0] == 1
    window = pack_pairs([[1, 2, 3, 4]], [[5, 6]], [[7]], 0, sliding_window=2)["packed_attention_mask"][0, 0]
    # row [1 2 3 4 | 5 6 | 7], positions 0..5 and 4 for the rejected 7; a window of 2 positions
    assert window[5].int().tolist() == [0, 0, 0, 0, 1, 1, 0]  # chosen 6 (position 5) sees positions 4 and 5
    assert window[6].int().tolist() == [0, 0, 0, 1, 0, 0, 1]  # rejected 7 (position 4) sees prompt 4 (3) and itself
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # each keeps a token of its own
    assert common_prefix([[1, 2], [3]]) == 0


@pytest.fixture(scope="module")
def records() -> list:
    return load_splits(DataSpec(synthetic=SyntheticData(n_train=8, n_val=2, n_test=2, n_ood=0)))["train"]


def _cached(model, tokenizer, records):
    from prefstudy.evaluation.logprobs import sequence_logps

    dataset, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    ref = sequence_logps(model, dataset, tokenizer.pad_token_id, 4, "fp32", MAX_LENGTH)
    dataset = dataset.add_column("ref_chosen_logps", ref["chosen"].tolist())
    return dataset.add_column("ref_rejected_logps", ref["rejected"].tolist())


def _compare(model, tokenizer, records, loss_type: str, row_tokens: int, checkpointing: bool) -> None:
    """TRL's collator + forward vs ours, through the same trainer's compute_loss and backward."""
    from peft import LoraConfig, get_peft_model
    from trl import DPOConfig

    from prefstudy.training.trl_seams import CachedRefDPOTrainer

    dataset = _cached(model, tokenizer, records)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]))
    try:
        with torch.no_grad():  # a policy away from the reference, so the loss depends on both
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
        args = DPOConfig(output_dir="/tmp/prefstudy-packing", per_device_train_batch_size=4, max_length=MAX_LENGTH,
                         loss_type=[loss_type], beta=0.3, report_to=[], use_cpu=True, bf16=False,
                         save_strategy="no", precompute_ref_log_probs=False, gradient_checkpointing=False)
        trainer = CachedRefDPOTrainer(model=peft_model, args=args, train_dataset=dataset, processing_class=tokenizer)
        for param in peft_model.parameters():  # TRL casts QLoRA adapters to bf16: compare in fp32
            if param.requires_grad:
                param.data = param.data.float()
        if checkpointing:
            peft_model.get_base_model().gradient_checkpointing_enable()
            peft_model.enable_input_require_grads()
        examples = [{c: row[c] for c in COLUMNS} for row in dataset.select(range(4))]
        ours = PackedPreferenceCollator(tokenizer.pad_token_id, MAX_LENGTH, row_tokens=row_tokens)(examples)
        theirs = trainer.data_collator(examples)
        assert set(theirs) <= set(ours) and all(torch.equal(theirs[k], ours[k]) for k in theirs)
        peft_model.train()
        results = []
        for batch in (theirs, ours):
            peft_model.zero_grad()
            loss = trainer.compute_loss(peft_model, batch)
            loss.backward()
            grads = [p.grad.double() for p in peft_model.parameters() if p.grad is not None]
            norm = float(torch.sqrt(sum((g ** 2).sum() for g in grads)))
            results.append((float(loss), norm, {k: v[-1] for k, v in trainer._metrics["train"].items()}))
        labels = theirs["input_ids"].masked_fill(theirs["completion_mask"] == 0, -100)
        with torch.no_grad():
            full = peft_model(input_ids=theirs["input_ids"], attention_mask=theirs["attention_mask"],
                              labels=labels, fused_lm_head=True).log_probs
            packed = packed_forward(peft_model, ours, tuple(full.shape))["log_probs"]
    finally:
        if checkpointing:
            peft_model.get_base_model().gradient_checkpointing_disable()
        peft_model.unload().__dict__.pop("forward", None)
        for param in model.parameters():
            param.requires_grad_(False)
    np.testing.assert_allclose(packed.sum(1).numpy(), full.sum(1).numpy(), rtol=1e-5)  # per-pair log-probs
    assert torch.equal(packed != 0, full != 0)  # the same completion positions
    np.testing.assert_allclose(packed.numpy(), full.numpy(), rtol=1e-4, atol=1e-5)  # per token
    (loss_trl, norm_trl, logged_trl), (loss_ours, norm_ours, logged_ours) = results
    assert norm_trl > 1e-3
    assert loss_ours == pytest.approx(loss_trl, rel=1e-5)
    assert norm_ours == pytest.approx(norm_trl, rel=1e-4)
    for key in ("rewards/chosen", "rewards/margins", "logps/chosen", "logps/rejected", "entropy",
                "logits/chosen", "mean_token_accuracy"):  # what TRL logs per step is ours too
        # a margin is a difference of two rewards of ~beta * 30 nats each: when the answers differ by one character
        # it is ~1e-3, and fp32 summation order alone moves it by ~1e-6, so it gets an absolute floor of 1e-5
        floor = 1e-5 if key == "rewards/margins" else 1e-6
        assert logged_ours[key] == pytest.approx(logged_trl[key], rel=1e-4, abs=floor), key


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
@pytest.mark.parametrize(("row_tokens", "checkpointing"), [(0, False), (4 * MAX_LENGTH, False), (4 * MAX_LENGTH, True)])
def test_packed_forward_equals_trl_on_the_tiny_mistral(tiny, records, loss_type, row_tokens, checkpointing) -> None:
    tokenizer, model = tiny
    _compare(model, tokenizer, records, loss_type, row_tokens, checkpointing)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_packed_forward_equals_trl_on_the_4bit_cpu_path(records, loss_type) -> None:
    pytest.importorskip("bitsandbytes")
    from prefstudy.models.loading import load_base_model, load_tokenizer

    spec_model = ModelSpec(name_or_path="tiny-random-mistral")
    model = load_base_model(spec_model, TrainingSpec(max_length=MAX_LENGTH, quantization="nf4"))
    _compare(model, load_tokenizer(spec_model), records, loss_type, 4 * MAX_LENGTH, False)


@pytest.mark.slow
@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_packed_forward_equals_trl_on_smollm2(records, loss_type) -> None:
    from prefstudy.models.loading import load_base_model, load_tokenizer

    spec_model = ModelSpec(name_or_path="embedded:smollm2-135m-instruct")
    model = load_base_model(spec_model, TrainingSpec(max_length=MAX_LENGTH))
    _compare(model, load_tokenizer(spec_model), records, loss_type, 4 * MAX_LENGTH, True)


def test_auto_follows_the_attention_and_on_refuses_what_cannot_be_packed(tiny) -> None:
    _, model = tiny
    assert model.config._attn_implementation == "sdpa"
    assert resolve_prefix_sharing("auto", model) and not resolve_prefix_sharing("off", model)
    implementation = model.config._attn_implementation
    try:
        model.config._attn_implementation = "flash_attention_2"
        assert resolve_prefix_sharing("auto", model) is False
        with pytest.raises(SpecError, match="prefix_sharing: on"):
            resolve_prefix_sharing("on", model)
    finally:
        model.config._attn_implementation = implementation


def test_eager_attention_gets_an_additive_mask(tiny, records) -> None:
    """Eager attention adds the mask to the scores: the packed forward still equals the full sequences."""
    tokenizer, model = tiny
    implementation = model.config._attn_implementation
    try:
        model.config._attn_implementation = "eager"
        _compare(model, tokenizer, records, "sigmoid", 4 * MAX_LENGTH, False)
    finally:
        model.config._attn_implementation = implementation


def test_the_trainer_counts_parameters_once(tiny, records) -> None:
    """floating_point_ops keeps Trainer's formula (6 x tokens x non-embedding parameters) without a walk a step."""
    from peft import LoraConfig, get_peft_model
    from trl import DPOConfig

    from prefstudy.training.trl_seams import CachedRefDPOTrainer

    tokenizer, model = tiny
    dataset = _cached(model, tokenizer, records)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"]))
    try:
        args = DPOConfig(output_dir="/tmp/prefstudy-packing", report_to=[], use_cpu=True, bf16=False,
                         precompute_ref_log_probs=False, gradient_checkpointing=False, max_length=MAX_LENGTH)
        trainer = CachedRefDPOTrainer(model=peft_model, args=args, train_dataset=dataset, processing_class=tokenizer)
        batch = {"input_ids": torch.zeros((8, 10), dtype=torch.long)}
        expected = 6 * 80 * peft_model.num_parameters(exclude_embeddings=True)
        assert trainer.floating_point_ops(batch) == expected
        calls = []
        peft_model.num_parameters = lambda **kw: calls.append(kw) or 0  # type: ignore[method-assign]
        assert trainer.floating_point_ops(batch) == expected and calls == []
    finally:
        del peft_model.num_parameters
        peft_model.unload().__dict__.pop("forward", None)
