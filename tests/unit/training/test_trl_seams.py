"""The private TRL 1.16 seams prefstudy relies on, checked on a tiny random Mistral.

- tokenization through DPOTrainer._prepare_dataset (prompt/chosen/rejected ids = the chat template's rendering);
- CachedRefDPOTrainer: skips _prepare_dataset for tokenized data and reads reference log-probs from the batch;
  its loss must equal TRL computing the reference on the fly;
- our sequence_logps must equal TRL's compute_ref_log_probs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefstudy.data.sources import load_splits
from prefstudy.evaluation.logprobs import sequence_logps
from prefstudy.spec import DataSpec, SyntheticData
from prefstudy.training.trl_seams import TRUNCATIONS, LengthCounts, remove_fused_head_patch, tokenize_records

MAX_LENGTH = 256


@pytest.fixture(scope="module")
def records() -> list:
    spec = DataSpec(synthetic=SyntheticData(n_train=8, n_val=2, n_test=2, n_ood=0))
    return load_splits(spec)["train"]


def test_trl_is_the_pinned_version() -> None:
    import trl

    assert trl.__version__ == "1.16.0", "private seams below were verified on TRL 1.16.0 only"


def test_tokenization_matches_the_chat_template(tiny, records) -> None:
    tokenizer, _ = tiny
    dataset, counts = tokenize_records(records, tokenizer, MAX_LENGTH)
    assert counts == LengthCounts() and len(dataset) == len(records)
    for row, record in zip(dataset, records):
        full = tokenizer.apply_chat_template(record["prompt"] + record["chosen"], tokenize=True)
        full = full["input_ids"] if isinstance(full, dict) or hasattr(full, "keys") else full
        assert row["prompt_ids"] + row["chosen_ids"] == list(full)
        assert row["chosen_ids"] != row["rejected_ids"]
        assert record["chosen"][0]["content"] in tokenizer.decode(row["chosen_ids"])


def test_over_length_pairs_are_dropped_and_counted_under_drop(tiny, records) -> None:
    tokenizer, _ = tiny
    lengths = []
    full, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    for row in full:
        lengths.append(len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])))
    cut = sorted(lengths)[len(lengths) // 2]
    kept, counts = tokenize_records(records, tokenizer, cut, "drop")
    assert counts.dropped == sum(length > cut for length in lengths) > 0 and counts.truncated == 0
    assert len(kept) == len(records) - counts.dropped


def test_keep_start_cuts_exactly_what_trls_collator_cuts(tiny, records) -> None:
    """keep_start at tokenization = TRL's DataCollatorForPreference cutting the whole pairs at max_length: the same
    tokens and completion masks, so the reference cache, the packed forward and TRL's forward read the same kept
    tokens; IPO's per-token count is the kept answer tokens; a cut answer has lost its end-of-turn token; a pair
    whose prompt alone reaches max_length is dropped, as TRL does."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    tokenizer, _ = tiny
    full, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    prompts = [len(p) for p in full["prompt_ids"]]
    longest = [p + max(len(c), len(r)) for p, c, r in zip(prompts, full["chosen_ids"], full["rejected_ids"],
                                                         strict=True)]
    cut = max(max(prompts) + 1, sorted(longest)[len(longest) // 2])
    assert any(n > cut for n in longest), "some pairs must be long enough to be cut"
    kept, counts = tokenize_records(records, tokenizer, cut, "keep_start")
    assert counts.dropped == 0 and counts.truncated == sum(n > cut for n in longest) > 0
    columns = ("prompt_ids", "chosen_ids", "rejected_ids")
    trl = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id, max_length=cut)(
        [{c: row[c] for c in columns} for row in full])
    ours = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(
        [{c: row[c] for c in columns} for row in kept])
    width = ours["input_ids"].shape[1]
    assert width <= cut and torch.equal(trl["input_ids"][:, :width], ours["input_ids"])
    assert torch.equal(trl["completion_mask"][:, :width], ours["completion_mask"])
    assert int(trl["attention_mask"].sum()) == int(ours["attention_mask"].sum())
    end_of_turn = full[0]["chosen_ids"][-1]  # every whole answer ends on the template's end-of-turn token
    for whole, row, n in zip(full, kept, longest, strict=True):
        for side in ("chosen_ids", "rejected_ids"):
            assert len(row[side]) == min(len(whole[side]), cut - len(row["prompt_ids"]))  # per-token count: kept
            assert (row[side][-1] == end_of_turn) == (len(row[side]) == len(whole[side]))
    tight, counts = tokenize_records(records, tokenizer, min(prompts), "keep_start")  # shortest prompt fills it
    assert counts.dropped == len(records) and len(tight) == 0


def test_the_reference_pass_on_cut_pairs_scores_what_trl_scores(tiny, records) -> None:
    """sequence_logps (the reference cache; packed rows) on keep_start-cut pairs = the full-sequence forward on TRL's
    own collator cutting the whole pairs at max_length, per pair, summed over the kept answer tokens."""
    from reference_logps import completion_logps
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    tokenizer, model = tiny
    full, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    prompts = [len(p) for p in full["prompt_ids"]]
    cut = max(prompts) + 3
    kept, counts = tokenize_records(records, tokenizer, cut, "keep_start")
    assert counts.truncated > 0
    ours = sequence_logps(model, kept, tokenizer.pad_token_id, 4, "fp32", cut)
    model.eval()
    with torch.no_grad():
        batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id, max_length=cut)(
            [{c: row[c] for c in ("prompt_ids", "chosen_ids", "rejected_ids")} for row in full])
        trl = completion_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]).sum(1)
    n = len(full)
    np.testing.assert_allclose(ours["chosen"], trl[:n].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours["rejected"], trl[n:].numpy(), rtol=0, atol=1e-4)
    assert ours["chosen_tokens"].tolist() == batch["completion_mask"][:n].sum(1).tolist()


def test_answers_identical_once_cut_are_counted(tiny) -> None:
    tokenizer, _ = tiny
    stem = " ".join(f"word{i}" for i in range(40))
    pair = {"prompt": [{"role": "user", "content": "Say it."}],
            "chosen": [{"role": "assistant", "content": stem + " yes"}],
            "rejected": [{"role": "assistant", "content": stem + " no"}], "id": "p0", "family": "f"}
    whole, _ = tokenize_records([pair], tokenizer, 4096)
    prompt = len(whole[0]["prompt_ids"])
    kept, counts = tokenize_records([pair], tokenizer, prompt + 20, "keep_start")
    assert counts == LengthCounts(0, 1, 1) and kept[0]["chosen_ids"] == kept[0]["rejected_ids"]
    with pytest.raises(ValueError, match="truncation 'middle'"):
        tokenize_records([pair], tokenizer, 64, "middle")


def test_pair_length_keeps_what_tokenize_records_keeps(records) -> None:
    """trl_seams.pair_length (preflight's rule: one pair, no dataset built) decides like tokenize_records at every
    cut."""
    from prefstudy.models.builtin import tiny_tokenizer
    from prefstudy.training.trl_seams import pair_length

    tokenizer = tiny_tokenizer()
    full, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    lengths = {row["id"]: len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"]))
               for row in full}
    assert all(pair_length(record, tokenizer, 8, "drop") == lengths[record["id"]] for record in records)
    ordered = sorted(lengths.values()) + sorted(len(p) for p in full["prompt_ids"])
    for mode in TRUNCATIONS:
        for cut in {ordered[0] - 1, ordered[0], ordered[len(ordered) // 4], ordered[len(ordered) // 2], ordered[-1]}:
            kept, _ = tokenize_records(records, tokenizer, cut, mode)
            assert {r["id"] for r in records if pair_length(r, tokenizer, cut, mode) is None} == set(kept["id"]), cut


def _trainer(cls, model, tokenizer, dataset, loss_type: str):
    from peft import LoraConfig, get_peft_model
    from trl import DPOConfig

    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    args = DPOConfig(
        output_dir="/tmp/prefstudy-seam", per_device_train_batch_size=4, max_length=MAX_LENGTH, loss_type=[loss_type],
        beta=0.3, report_to=[], use_cpu=True, bf16=False, save_strategy="no", precompute_ref_log_probs=False,
        gradient_checkpointing=False,
    )
    return peft_model, cls(model=peft_model, args=args, train_dataset=dataset, processing_class=tokenizer)


def _perturb(peft_model) -> None:
    """Make the policy differ from the reference so the loss depends on both."""
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))


def test_trl_reference_pass_equals_ours(tiny, records) -> None:
    from datasets import Dataset
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    tokenizer, model = tiny
    dataset, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    ours = sequence_logps(model, dataset, tokenizer.pad_token_id, 4, "fp32", MAX_LENGTH)
    peft_model, trainer = _trainer(DPOTrainer, model, tokenizer, Dataset.from_list(records), "sigmoid")
    try:
        columns = ["prompt_ids", "chosen_ids", "rejected_ids"]
        batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(
            [{c: row[c] for c in columns} for row in dataset.select(range(4))]
        )
        with torch.no_grad():  # a fresh adapter, as when TRL precomputes its reference
            trl_chosen, trl_rejected = trainer.compute_ref_log_probs(peft_model, batch)
        np.testing.assert_allclose(ours["chosen"][:4], trl_chosen.numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(ours["rejected"][:4], trl_rejected.numpy(), rtol=0, atol=1e-4)
        assert ours["chosen_tokens"][:4].tolist() == [len(r["chosen_ids"]) for r in dataset.select(range(4))]
    finally:
        remove_fused_head_patch(peft_model.unload())


def test_length_sorted_batches_return_rows_in_their_own_order(tiny, records) -> None:
    """Scoring batches rows by length; each row's numbers must come back at its own index, whatever the order."""
    from prefstudy.evaluation.logprobs import length_order

    tokenizer, model = tiny
    dataset, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    order = length_order(list(dataset["prompt_ids"]), list(dataset["chosen_ids"]), list(dataset["rejected_ids"]))
    assert order != list(range(len(dataset)))  # the fixture's rows are not already sorted: the test can fail
    forward = sequence_logps(model, dataset, tokenizer.pad_token_id, 3, "fp32", MAX_LENGTH)
    backward = sequence_logps(model, dataset.select(range(len(dataset) - 1, -1, -1)), tokenizer.pad_token_id, 3,
                              "fp32", MAX_LENGTH)
    for key in ("chosen", "rejected", "chosen_tokens", "rejected_tokens"):
        np.testing.assert_allclose(backward[key][::-1], forward[key], rtol=0, atol=1e-4)
    assert forward["chosen_tokens"].tolist() == [len(ids) for ids in dataset["chosen_ids"]]


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_cached_reference_trainer_optimises_the_loss_on_our_numbers(tiny, records, loss_type: str) -> None:
    """CachedRefDPOTrainer's loss equals the DPO/IPO formula applied to our policy and cached reference."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from prefstudy.training.trl_seams import CachedRefDPOTrainer

    tokenizer, model = tiny
    dataset, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    ref = sequence_logps(model, dataset, tokenizer.pad_token_id, 4, "fp32", MAX_LENGTH)
    cached = dataset.add_column("ref_chosen_logps", ref["chosen"].tolist())
    cached = cached.add_column("ref_rejected_logps", ref["rejected"].tolist())
    peft_model, trainer = _trainer(CachedRefDPOTrainer, model, tokenizer, cached, loss_type)
    try:
        assert trainer.precompute_ref_logps is True
        assert "prompt_ids" in trainer.train_dataset.column_names  # TRL did not re-tokenize
        _perturb(peft_model)
        policy = sequence_logps(peft_model, dataset.select(range(4)), tokenizer.pad_token_id, 4, "fp32", MAX_LENGTH)
        columns = ["prompt_ids", "chosen_ids", "rejected_ids", "ref_chosen_logps", "ref_rejected_logps"]
        batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(
            [{c: row[c] for c in columns} for row in cached.select(range(4))]
        )
        peft_model.eval()
        with torch.no_grad():
            loss = float(trainer.compute_loss(peft_model, batch))
    finally:
        remove_fused_head_patch(peft_model.unload())
    chosen_ratio = policy["chosen"] - ref["chosen"][:4]
    rejected_ratio = policy["rejected"] - ref["rejected"][:4]
    beta = 0.3
    if loss_type == "sigmoid":  # -log sigmoid(beta * (summed chosen ratio - summed rejected ratio))
        expected = float(np.mean(np.log1p(np.exp(-beta * (chosen_ratio - rejected_ratio)))))
    else:  # (per-token averaged chosen ratio - rejected ratio - 1/(2 beta))^2
        delta = chosen_ratio / policy["chosen_tokens"] - rejected_ratio / policy["rejected_tokens"]
        expected = float(np.mean((delta - 1 / (2 * beta)) ** 2))
    assert np.abs(chosen_ratio).max() > 1e-2  # the perturbation really moved the policy
    assert loss == pytest.approx(expected, abs=1e-4)


def test_shared_prompt_pass_equals_full_sequences(tiny, records) -> None:
    """Running each prompt once with a KV cache gives the same answer log-probs as two full sequences."""
    from reference_logps import completion_logps
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from prefstudy.evaluation.logprobs import shared_prompt_logps

    tokenizer, model = tiny
    dataset, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    rows = dataset[:6]
    assert len({len(p) for p in rows["prompt_ids"]}) > 1  # left padding is really exercised
    model.eval()
    with torch.no_grad():
        chosen, chosen_mask, rejected, rejected_mask = shared_prompt_logps(
            model, rows["prompt_ids"], rows["chosen_ids"], rows["rejected_ids"], tokenizer.pad_token_id
        )
        batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(
            [{c: rows[c][i] for c in ("prompt_ids", "chosen_ids", "rejected_ids")} for i in range(6)]
        )
        full = completion_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]).sum(1)
    np.testing.assert_allclose(chosen.sum(1).numpy(), full[:6].numpy(), atol=1e-4)
    np.testing.assert_allclose(rejected.sum(1).numpy(), full[6:].numpy(), atol=1e-4)
    assert chosen_mask.sum(1).tolist() == [len(c) for c in rows["chosen_ids"]]
    assert rejected_mask.sum(1).tolist() == [len(r) for r in rows["rejected_ids"]]


@pytest.mark.parametrize("packed", [True, False], ids=["packed-rows", "kv-cache"])
@pytest.mark.parametrize("batch_size", [3, 8])
def test_scoring_with_the_shared_prefix_equals_full_sequences(tiny, records, batch_size: int, packed: bool,
                                                               monkeypatch) -> None:
    """sequence_logps, both ways: packed rows (the model's attention takes a 4D mask: shared prefix once a row,
    answers' common start once a pair) and the KV-cache path (the prefix every prompt shares once per pass, its
    cache reused in every batch). Per pair each equals the full-sequence computation within 1e-4, and the
    per-token log-probs of the chosen answers match too."""
    from reference_logps import completion_logps
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from prefstudy.evaluation.logprobs import common_prefix
    from prefstudy.models import packed_forward as packing

    tokenizer, model = tiny
    dataset, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    assert common_prefix(dataset["prompt_ids"]) >= 5  # the system prompt and chat header really are shared
    stems = [common_prefix([c, r]) for c, r in zip(dataset["chosen_ids"], dataset["rejected_ids"], strict=True)]
    assert max(stems) >= 1 and min(stems) == 0  # pairs with and without a shared answer start
    assert packing.attention_takes_mask(model)
    if not packed:
        monkeypatch.setattr(packing, "attention_takes_mask", lambda _model: False)
    ours = sequence_logps(model, dataset, tokenizer.pad_token_id, batch_size, "fp32", MAX_LENGTH)
    model.eval()
    with torch.no_grad():
        batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(
            [{c: row[c] for c in ("prompt_ids", "chosen_ids", "rejected_ids")} for row in dataset])
        full = completion_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]).sum(1)
        per_token = completion_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    n = len(dataset)
    np.testing.assert_allclose(ours["chosen"], full[:n].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours["rejected"], full[n:].numpy(), rtol=0, atol=1e-4)
    assert ours["chosen_tokens"].tolist() == [len(c) for c in dataset["chosen_ids"]]
    assert ours["rejected_tokens"].tolist() == [len(r) for r in dataset["rejected_ids"]]
    for i in range(n):  # the chosen answer's per-token log-probs, in order (the KL proxy reads them)
        expected = per_token[i][batch["completion_mask"][i, 1:].bool()].numpy()
        np.testing.assert_allclose(ours["chosen_token_logps"][i, : len(expected)], expected, atol=1e-5)


def test_the_loss_type_list_is_trls_compute_loss_branches() -> None:
    """TRL 1.16 exposes no list of loss types: spec.TRL_LOSS_TYPES is a copy of the branches of its private
    ``_compute_loss`` ("sft" is an auxiliary term added to a preference loss, not a preference loss of its own)."""
    import inspect
    import re

    from trl import DPOTrainer

    from prefstudy.spec import TRL_LOSS_TYPES

    branches = set(re.findall(r'loss_type == "(\w+)"', inspect.getsource(DPOTrainer._compute_loss)))
    assert branches - {"sft"} == set(TRL_LOSS_TYPES), sorted(branches ^ set(TRL_LOSS_TYPES))


def test_removing_trls_fused_head_patch_restores_the_plain_forward(tiny, records) -> None:
    """TRL sets ``forward`` on the model instance for its fused LM head; after a trainer, the shared base model's
    forward must be its class's again (remove_adapter relies on remove_fused_head_patch)."""
    from datasets import Dataset

    from prefstudy.training.trl_seams import DPOTrainer

    tokenizer, model = tiny
    peft_model, trainer = _trainer(DPOTrainer, model, tokenizer, Dataset.from_list(records), "ipo")
    del trainer
    base = peft_model.unload()
    patched = "forward" in base.__dict__
    remove_fused_head_patch(base)
    for param in base.parameters():
        param.requires_grad_(False)
    assert patched, "the pinned TRL no longer patches forward on the instance: re-check remove_fused_head_patch"
    assert "forward" not in base.__dict__ and base.forward.__func__ is type(base).forward


def test_the_drift_probes_per_token_margin_is_trls_ipo_delta(tiny, records) -> None:
    """The per-token margin the drift stage stores (search.probes.pair_values) is TRL's own ``ipo_delta``: each
    answer's log-ratio over its own token count, end-of-turn token included. TRL's IPO loss of one pair at two betas
    gives it exactly: (d - a1)^2 - (d - a2)^2 = 2 d (a2 - a1) + a1^2 - a2^2 with a = 1/(2 beta)."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from prefstudy.search.probes import pair_values
    from prefstudy.training.trl_seams import CachedRefDPOTrainer

    tokenizer, model = tiny
    dataset, _ = tokenize_records(records, tokenizer, MAX_LENGTH)
    rows = [i for i in range(len(dataset)) if len(dataset[i]["chosen_ids"]) != len(dataset[i]["rejected_ids"])][:3]
    rows += [i for i in range(len(dataset)) if i not in rows][: 4 - len(rows)]
    assert any(len(dataset[i]["chosen_ids"]) != len(dataset[i]["rejected_ids"]) for i in rows), "need unequal answers"
    ref = sequence_logps(model, dataset, tokenizer.pad_token_id, 4, "fp32", MAX_LENGTH)
    cached = dataset.add_column("ref_chosen_logps", ref["chosen"].tolist())
    cached = cached.add_column("ref_rejected_logps", ref["rejected"].tolist())
    peft_model, trainer = _trainer(CachedRefDPOTrainer, model, tokenizer, cached, "ipo")
    columns = ["prompt_ids", "chosen_ids", "rejected_ids", "ref_chosen_logps", "ref_rejected_logps"]
    try:
        _perturb(peft_model)
        policy = sequence_logps(peft_model, dataset.select(rows), tokenizer.pad_token_id, 4, "fp32", MAX_LENGTH)
        peft_model.eval()
        deltas = []
        for i in rows:
            batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)([{c: cached[i][c] for c in columns}])
            losses = {}
            for beta in (0.25, 1.0):
                trainer.beta = beta
                with torch.no_grad():
                    losses[beta] = float(trainer.compute_loss(peft_model, batch))
            a1, a2 = 1 / (2 * 0.25), 1 / (2 * 1.0)
            deltas.append((losses[0.25] - losses[1.0] - a1**2 + a2**2) / (2 * (a2 - a1)))
    finally:
        remove_fused_head_patch(peft_model.unload())
    ours = pair_values(policy, {k: np.asarray(v)[rows] for k, v in ref.items()}, "accuracy")["margin_per_token"]
    assert np.abs(ours).max() > 1e-2  # the perturbation moved the policy
    np.testing.assert_allclose(ours, deltas, rtol=0, atol=2e-4)
