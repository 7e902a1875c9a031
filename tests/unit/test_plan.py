"""The cost plan: memory formula on hand-worked numbers, steps/tokens/eval arithmetic on the shipped specs, no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import ROOT

from prefstudy.plan import (
    GIB,
    MISTRAL_7B,
    ModelShape,
    build_plan,
    estimate_memory,
    format_plan,
    shape_for,
    split_sizes,
)
from prefstudy.spec import LoraSpec, StudySpec, TrainingSpec, load_spec

MISTRAL_SPEC = ROOT / "study" / "mistral7b_qlora.yaml"
DEFAULT_SPEC = ROOT / "study" / "default.yaml"

# A toy model whose every part can be worked out by hand:
#   hidden 8, 2 layers, 2 heads of 4 -> 1 kv head = kv_dim 4, intermediate 16, vocab 100
#   embeddings + untied lm_head = 2 * 100 * 8 = 1,600 params; n_params 9,600 -> 8,000 quantized params
TOY = ModelShape(n_params=9_600, hidden_size=8, n_layers=2, n_heads=2, n_kv_heads=1, intermediate_size=16,
                 vocab_size=100, name="toy")


def _toy_training(**changes: object) -> TrainingSpec:
    # micro-batch 1 pair of max_length 8 -> S = 2 * 1 * 8 = 16 tokens; LoRA r 2 on all 7 projections
    base: dict[str, object] = {
        "max_steps": 1, "batch_size": 1, "max_length": 8, "lora": LoraSpec(r=2, alpha=4, dropout=0.0),
        "quantization": "nf4", "precision": "bf16", "gradient_checkpointing": True, "optimizer": "adamw_torch",
    }
    return TrainingSpec(**{**base, **changes})


def test_toy_memory_by_hand() -> None:
    mem = estimate_memory(TOY, _toy_training())
    # base weights: 8,000 quantized params * 4.127 bits / 8 = 4,127 bytes
    assert mem.part("base weights") == 4_127
    # embeddings + lm_head in bf16: 1,600 params * 2 bytes
    assert mem.part("embeddings + lm_head") == 3_200
    # LoRA r * (in + out) per layer: q 2*(8+8)=32, k 2*(8+4)=24, v 24, o 32, gate 2*(8+16)=48, up 48, down 2*(16+8)=48
    #   = 256 per layer * 2 layers = 512 trainable params; fp32 weights and grads 4 bytes each, AdamW m + v 8 bytes
    assert mem.trainable_params == 512
    assert mem.part("LoRA weights") == 2_048
    assert mem.part("LoRA gradients") == 2_048
    assert mem.part("optimizer state") == 4_096
    # checkpoints: S 16 tokens * hidden 8 * 2 bytes * 2 layers
    assert mem.part("activation checkpoints") == 512
    # working set per token (no dropout): 17*8 + 3*4 + 6*16 + 7 targets * r 2 = 136 + 12 + 96 + 14 = 258 values
    #   16 tokens * 258 * 2 bytes = 8,256, + one dequantized weight 8 * max(8, 16) * 2 bytes = 256
    assert mem.part("layer working set") == 8_512
    # logits tile: min(16, 4096) tokens * 32,768 columns * 2 bytes
    assert mem.part("logits tile") == 1_048_576
    assert mem.part("CUDA overhead") == GIB
    assert mem.total_bytes == 4_127 + 3_200 + 2_048 + 2_048 + 4_096 + 512 + 8_512 + 1_048_576 + GIB
    assert mem.skipped_modules == ()


def test_toy_memory_variants_by_hand() -> None:
    # LoRA dropout keeps copies of 6 H-sized inputs and of down_proj's input: 23*8 + 12 + 7*16 + 14 = 322 values/token
    dropout = estimate_memory(TOY, _toy_training(lora=LoraSpec(r=2, dropout=0.05)))
    assert dropout.part("layer working set") == 16 * 322 * 2 + 256
    # no gradient checkpointing: no checkpoints, but every layer's working set is kept (2 * 8,512)
    no_gc = estimate_memory(TOY, _toy_training(gradient_checkpointing=False))
    assert (no_gc.part("activation checkpoints"), no_gc.part("layer working set")) == (0, 17_024)
    # unquantized fp32: every param at 4 bytes, activations at 4 bytes, no dequantized weight
    fp32 = estimate_memory(TOY, _toy_training(quantization="none", precision="fp32"))
    assert (fp32.part("base weights"), fp32.part("embeddings + lm_head")) == (38_400, 0)
    assert fp32.part("activation checkpoints") == 16 * 8 * 4 * 2
    assert fp32.part("layer working set") == 16 * 258 * 4
    assert fp32.part("logits tile") == 16 * 32_768 * 4
    # 8-bit AdamW keeps 2 bytes of state per trainable param; sgd none
    assert estimate_memory(TOY, _toy_training(optimizer="paged_adamw_8bit")).part("optimizer state") == 1_024
    assert estimate_memory(TOY, _toy_training(optimizer="sgd")).part("optimizer state") == 0
    # a target the shape does not know is reported, not guessed: q_proj alone = 32 per layer * 2 layers
    odd = estimate_memory(TOY, _toy_training(lora=LoraSpec(r=2, target_modules=("q_proj", "c_attn"))))
    assert (odd.trainable_params, odd.skipped_modules) == (64, ("c_attn",))
    assert odd.part("layer working set") == 16 * (136 + 12 + 96 + 1 * 2) * 2 + 256


def test_mistral_shape_and_lookup() -> None:
    s = MISTRAL_7B
    # embeddings + lm_head + 32 layers * (q, o: 4096^2; k, v: 4096*1024; 3 MLP: 4096*14336; 2 norms) + final norm
    layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
    assert s.n_params == 2 * 32000 * 4096 + 32 * layer + 4096 == 7_241_732_096
    assert s.kv_dim == 1024
    for name in ("HuggingFaceH4/mistral-7b-sft-beta", "mistralai/Mistral-7B-v0.1", "/models/MISTRAL-7B-instruct"):
        assert shape_for(name) is MISTRAL_7B
    for name in ("tiny-random-mistral", "embedded:smollm2-135m-instruct", "mistralai/Mixtral-8x7B-v0.1"):
        assert shape_for(name) is None


def test_shipped_mistral_plan_arithmetic() -> None:
    plan = build_plan(load_spec(MISTRAL_SPEC), None, None)
    assert (plan.trials_per_method, plan.trials_total, plan.methods) == (12, 24, ("dpo", "ipo"))
    # max_heldout 1000 at val_fraction 0.5 -> 500 val + 500 test; hf has no ood split
    assert plan.splits == {"train": 2000, "val": 500, "test": 500, "ood": 0, "profile": 0}
    # 1 epoch * ceil(2000 / (4 * 4)) = 125 steps of 16 pairs; 2 * 1024 * 16 = 32,768 tokens per step
    assert (plan.steps_per_trial, plan.pairs_per_step, plan.tokens_per_step) == (125, 16, 32_768)
    assert plan.tokens_per_trial == 125 * 32_768 == 4_096_000
    # eval at 50 and 100 on 200 val + 200 train pairs, at 125 on val 500 + the 200 train pairs; test (500) once,
    # for the chosen trial
    assert (plan.eval_points, plan.eval_pairs_per_trial, plan.chosen_pairs) == (3, 2 * 400 + 700, 500)
    assert plan.eval_tokens_per_trial == 1_500 * 2 * 1024
    assert [(t.name, t.num_fewshot) for t in plan.lm_eval_tasks] == [
        ("arc_challenge", 25), ("hellaswag", 10), ("truthfulqa_mc2", 0), ("winogrande", 5)]
    assert all(t.limit is not None for t in plan.lm_eval_tasks)


def test_shipped_mistral_memory_parts() -> None:
    mem = build_plan(load_spec(MISTRAL_SPEC), None, None).memory
    assert mem is not None
    # (7,241,732,096 - 262,144,000 embedding params) * 4.127 / 8; embeddings + lm_head 262,144,000 * 2 bytes
    assert mem.part("base weights") == 3_600_595_009
    assert mem.part("embeddings + lm_head") == 524_288_000
    # r 128 per layer: q, o 128*8192; k, v 128*5120; gate, up, down 128*18432 = 10,485,760; * 32 layers
    assert mem.trainable_params == 335_544_320
    assert mem.part("LoRA weights") == mem.part("LoRA gradients") == 335_544_320 * 4
    assert mem.part("optimizer state") == 335_544_320 * 8 == int(2.5 * GIB)
    # S = 2 * 4 * 1024 = 8192 tokens: 8192 * 4096 * 2 bytes * 32 layers = 2 GiB of checkpoints
    assert mem.part("activation checkpoints") == 2 * GIB
    # (23*4096 + 3*1024 + 7*14336 + 7*128) = 198,528 values/token * 8192 * 2 + dequantized 4096 * 14336 * 2
    assert mem.part("layer working set") == 198_528 * 8192 * 2 + 4096 * 14336 * 2
    assert mem.part("logits tile") == 4096 * 32_768 * 2 == GIB // 4
    assert mem.total_bytes == 16_353_376_321  # ~15.23 GiB


def test_shipped_mistral_total_is_sane_for_one_80gb_gpu() -> None:
    # Lower bound 8 GiB: the NF4 weights (~3.8 GiB with bf16 embeddings) and r=128 LoRA with fp32 AdamW (~5 GiB)
    # alone exceed it, so less means a part went missing. Upper bound 40 GiB (half an 80 GB card): QLoRA exists to
    # fit a 7B on a 24-48 GB GPU at this micro-batch; more means something is double counted or not checkpointed
    # (keeping every layer's working set would be ~100 GiB).
    mem = build_plan(load_spec(MISTRAL_SPEC)).memory
    assert mem is not None
    assert 8 * GIB < mem.total_bytes < 40 * GIB


def test_default_spec_plan_arithmetic() -> None:
    plan = build_plan(load_spec(DEFAULT_SPEC))
    assert (plan.trials_per_method, plan.trials_total) == (6, 12)
    assert plan.splits == {"train": 24, "val": 128, "test": 384, "ood": 96, "profile": 1024}
    # max_steps 24 at batch 4, no accumulation, max_length 128: 2 * 128 * 4 = 1,024 tokens per step
    assert (plan.steps_per_trial, plan.tokens_per_step, plan.tokens_per_trial) == (24, 1_024, 24_576)
    # eval at 8, 16 on 64 val + 16 train, at 24 on all 128 val and the 16 train: 2 * 80 + 144 = 304; test and OOD
    # once per method for its chosen trial: 384 + 96 = 480
    assert (plan.eval_points, plan.eval_pairs_per_trial, plan.eval_tokens_per_trial) == (3, 304, 304 * 256)
    assert plan.chosen_pairs == 480
    every = build_plan(load_spec(DEFAULT_SPEC, ["evaluation.test_scoring=every"]))
    assert (every.eval_pairs_per_trial, every.chosen_pairs) == (304 + 480, 0)
    assert plan.memory is None  # the embedded SmolLM2 has no shape here
    assert "cannot be estimated without a model shape" in format_plan(plan)


def test_the_plan_prints_the_mde_its_sizes_give() -> None:
    """By hand, 30% discordant pairs, 2.801585 = z(0.975) + z(0.8): val 128 -> 2.801585 * sqrt(0.3/128) = 0.136;
    the 64 pairs pruning decides on -> 0.192; test 384 -> 0.078. Confirmation over 2 seeds, seed SD 0.03:
    se^2 = 0.03^2/2 + 0.3/384 = 0.00045 + 0.00078125, se 0.035089; df = 0.00123125^2 / 0.00045^2 = 7.486;
    (t(0.975, 7.486) + t(0.8, 7.486)) * se = (2.3338 + 0.8923) * 0.035089 = 0.113. Over 5 seeds (the default):
    se^2 = 0.00018 + 0.00078125, se 0.031004, df 114.1: (1.9810 + 0.8448) * 0.031004 = 0.088."""
    text = format_plan(build_plan(load_spec(DEFAULT_SPEC, ["confirm.seeds=[1,2]"])))
    assert "between two trials on val (128 pairs): 0.14; at the intermediate evals (64 pairs" in text
    assert "what pruning decides on): 0.19" in text
    assert "search, exploratory (one seed, 384 test pairs): 0.08" in text
    assert "primary endpoint (confirmation, 2 seeds x 384 test pairs): 0.11" in text
    assert "primary endpoint (confirmation, 5 seeds x 384 test pairs): 0.09" in format_plan(
        build_plan(load_spec(DEFAULT_SPEC)))
    no_confirm = format_plan(build_plan(load_spec(DEFAULT_SPEC, ["confirm.top_k=0"])))
    assert "primary endpoint: needs confirm.seeds" in no_confirm


def test_epoch_steps_round_up() -> None:
    # 2001 pairs / 16 per step -> 126 steps per epoch; half an epoch -> ceil(63.0) = 63; two epochs -> 252
    assert build_plan(load_spec(MISTRAL_SPEC, ["data.max_train=2001"])).steps_per_trial == 126
    assert build_plan(load_spec(MISTRAL_SPEC, ["data.max_train=2001", "training.num_epochs=0.5"])).steps_per_trial == 63
    assert build_plan(load_spec(MISTRAL_SPEC, ["training.num_epochs=2"])).steps_per_trial == 250
    fixed = ["training.num_epochs=null", "training.max_steps=40"]
    # eval_steps 50 > 40 steps: only the last step: val 500 + train subset 200 (test: the chosen trial only)
    assert build_plan(load_spec(MISTRAL_SPEC, fixed)).eval_pairs_per_trial == 700
    # eval at 10, 20, 30 on 200 val + 200 train pairs, then 40 on all of val and the train subset: 3 * 400 + 700
    over = build_plan(load_spec(MISTRAL_SPEC, [*fixed, "evaluation.eval_steps=10"]))
    assert (over.steps_per_trial, over.eval_points, over.eval_pairs_per_trial) == (40, 4, 1_900)


def test_unknown_sizes_are_said_not_guessed() -> None:
    raw = {"name": "files", "methods": {"dpo": {"loss_type": "sigmoid", "beta": {"low": 0.01, "high": 0.5}}},
           "learning_rate": {"low": 1e-6, "high": 1e-4},
           "data": {"source": "jsonl", "train": "t.jsonl", "heldout": "h.jsonl"},
           "training": {"max_steps": None, "num_epochs": 1}}
    spec = StudySpec.model_validate(raw)
    assert split_sizes(spec) == {"train": None, "val": None, "test": None, "ood": 0, "profile": 0}
    plan = build_plan(spec, 1000.0)
    assert (plan.steps_per_trial, plan.eval_pairs_per_trial, plan.seconds_per_trial) == (None, None, None)
    assert "unknown" in format_plan(plan) and "data.max_train" in format_plan(plan)


def test_time_needs_a_throughput() -> None:
    spec = load_spec(MISTRAL_SPEC)
    assert "pass --throughput" in format_plan(build_plan(spec))
    plan = build_plan(spec, 1000.0)
    # 4,096,000 training tokens at 1,000/s + 1,500 eval pairs * 2,048 tokens = 3,072,000 eval tokens at 3,000/s
    assert plan.seconds_per_trial == pytest.approx(4_096 + 3_072_000 / 3_000)
    assert "tokens/s" in format_plan(plan)
    for bad in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="throughput"):
            build_plan(spec, bad)


def test_format_plan_mentions_gib_and_every_part() -> None:
    plan = build_plan(load_spec(MISTRAL_SPEC), 3000.0)
    text = format_plan(plan)
    assert plan.memory is not None
    names = [part.name for part in plan.memory.parts]
    assert names == ["base weights", "embeddings + lm_head", "LoRA weights", "LoRA gradients", "optimizer state",
                     "activation checkpoints", "layer working set", "logits tile", "CUDA overhead"]
    for name in names:
        assert name in text, name
    assert "GiB" in text and "15.23 GiB" in text
    for word in ("125 optimizer steps", "4,096,000 tokens", "1,500 pairs", "arc_challenge 25-shot", "250 docs",
                 "1,750 docs", "24"):
        assert word in text, word


def test_importing_plan_does_not_import_torch() -> None:
    code = (
        "import sys; from prefstudy.plan import build_plan, format_plan; from prefstudy.spec import load_spec; "
        "format_plan(build_plan(load_spec('study/mistral7b_qlora.yaml'), 1000.0)); "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    assert out == "[]", f"prefstudy.plan must not import heavy libraries: {out}"


def test_cpu_wall_time_by_hand() -> None:
    """Default spec, costs 0.5 s a pair-step, 0.1 s a scored pair, a reference pair and an lm-eval doc, 30 s load:
    a trial = 24 * 4 * 0.5 + 304 * 0.1 + 320 * 0.1 = 110.4 s; once = 30 + 1656 * 0.1 (the reference pass: every
    split, the 1024 profile pairs too) + 320 * 0.1 + 2 * 480 * 0.1 = 323.6 s; search = 12 * 110.4 + 323.6 = 1648.4 s
    = 27.47 min. Confirmation: 10 runs * (48 + 624 * 0.1) + lm-eval on
    2 runs (the first seed of each method) * 32 + 30 = 1198 s = 19.97 min."""
    from prefstudy.plan import CpuCosts, cpu_minutes

    spec = load_spec(DEFAULT_SPEC)
    costs = CpuCosts(train_per_pair_step=0.5, score_per_pair=0.1, ref_per_pair=0.1, lm_eval_per_doc=0.1, load=30.0)
    search, confirm = cpu_minutes(spec, 24, 304, 480, costs)
    assert search == pytest.approx(1648.4 / 60) and confirm == pytest.approx(1198 / 60)
    text = format_plan(build_plan(spec))
    assert "estimated CPU wall time" in text and "confirmation (--confirm) ~" in text
    assert "estimated CPU wall time" not in format_plan(build_plan(load_spec(MISTRAL_SPEC)))  # no cost model there


def test_local_files_are_counted_so_the_plan_prints_sizes_mdes_and_time(tmp_path) -> None:
    """--dry-run on jsonl files reads them (the same splits and drops as the study) instead of 'unknown'."""
    import json

    rows = [{"prompt": f"What is {i} + 1?", "chosen": f"{i + 1}.", "rejected": f"{i + 2}."} for i in range(300)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:40] + rows[:2]))  # 2 repeats
    (tmp_path / "h.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[100:300]))
    raw = {"name": "files", "methods": {"dpo": {"loss_type": "sigmoid", "beta": {"low": 0.01, "high": 0.5}}},
           "learning_rate": {"low": 1e-6, "high": 1e-4},
           "data": {"source": "jsonl", "train": str(tmp_path / "t.jsonl"), "heldout": str(tmp_path / "h.jsonl")},
           "training": {"max_steps": None, "num_epochs": 1}}
    spec = StudySpec.model_validate(raw)
    # repeats dropped, held-out halved
    assert split_sizes(spec) == {"train": 40, "val": 100, "test": 100, "ood": 0, "profile": 0}
    text = format_plan(build_plan(spec, 1000.0))
    assert "pairs per split: train 40, val 100, test 100, ood 0" in text and "unknown" not in text.split("\n")[2]
    assert "between two trials on val (100 pairs)" in text and "search, exploratory (one seed, 100 test pairs)" in text


def _pairs_file(path, answer_words: int, n: int = 6, first: int = 0):
    import json

    rows = [{"prompt": f"Question {i}?", "chosen": " ".join(["yes"] * answer_words) + f" {i}",
             "rejected": " ".join(["no"] * answer_words) + f" {i}"} for i in range(first, first + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dry_run_time_goes_by_the_datas_tokens(tmp_path) -> None:
    """Local pairs are tokenized with the model's tokenizer (the tiny model's, offline): the counts are TRL's
    (tokenize_records), and the CPU costs scale with the tokens of a pair's two sequences, not with pairs."""
    from prefstudy.data.sources import load_splits
    from prefstudy.models.loading import load_tokenizer_offline
    from prefstudy.plan import CPU_COSTS, costs_for
    from prefstudy.plan_sizes import REFERENCE_PAIR_TOKENS, pair_tokens
    from prefstudy.training.trl_seams import tokenize_records

    def spec_for(words: int) -> StudySpec:
        train = _pairs_file(tmp_path / f"train{words}.jsonl", words)
        heldout = _pairs_file(tmp_path / f"heldout{words}.jsonl", words, n=4, first=100)
        return load_spec("smoke", ["data.source=jsonl", f"data.train={train}", f"data.heldout={heldout}",
                                   "training.max_length=256"])

    short, long = spec_for(2), spec_for(60)
    counted = pair_tokens(long)
    assert counted is not None and counted.sampled == 6
    tokenized, _ = tokenize_records(load_splits(long.data)["train"], load_tokenizer_offline(long.model), 256)
    assert counted.prompt == pytest.approx(sum(len(p) for p in tokenized["prompt_ids"]) / 6)
    assert counted.chosen == pytest.approx(sum(len(c) for c in tokenized["chosen_ids"]) / 6)
    assert counted.chosen > 3 * pair_tokens(short).chosen
    factor = counted.sequences / REFERENCE_PAIR_TOKENS
    assert costs_for(long).train_per_pair_step == pytest.approx(CPU_COSTS.train_per_pair_step * factor)
    assert costs_for(long).lm_eval_per_doc == CPU_COSTS.lm_eval_per_doc
    assert build_plan(long).tokens_per_trial > build_plan(short).tokens_per_trial
    assert "tokens per pair (6 training pairs tokenized" in format_plan(build_plan(long))
    assert pair_tokens(load_spec("smoke")) is None  # built-in data: the costs' own reference


def test_lr_profile_stage_minutes_by_hand() -> None:
    """Default spec, 5 seeds x 4 rates x 2 methods = 40 runs, each 24 steps x 4 pairs at 26.1 s / 96 a pair-step
    (26.1 s) + 5.0 s + (128 val + 16 train + 384 test + 384 profile = 912 pairs) x 0.0763 s = 100.69 s; + 30 s load
    + 8 capability runs x (320 lm-eval docs x 0.075 + 32 answers x 0.09 = 26.88 s) = 4027.7 + 30 + 215.04 s. Two
    workers of one thread: training / (52.2 / 41.6), scoring / (2 x 95.34 / 160.8) (measured in a stage). Scoring in
    bf16 (the default spec's evaluation.precision): each scored pair / 1.87, training, the fixed part and lm-eval as
    they were."""
    from prefstudy.plan_stages import profile_seconds

    bf16 = load_spec(DEFAULT_SPEC)
    assert bf16.score_precision() == "bf16" and bf16.training.precision == "fp32"
    assert profile_seconds(bf16, 4, 5, 768) == pytest.approx(
        40 * (26.1 + 5.0 + 912 * 0.0763 / 1.87) + 30 + 8 * 26.88, rel=1e-6)
    spec = load_spec(DEFAULT_SPEC, ["evaluation.precision=fp32"])
    per_run = 26.1 + 5.0 + 912 * 0.0763
    assert profile_seconds(spec, 4, 5, 768) == pytest.approx(40 * per_run + 30 + 8 * 26.88, rel=1e-6)
    score = 2 * (5.0 + 1184 * 0.0763) / 160.8
    two = 26.1 / (52.2 / 41.6) + (5.0 + 912 * 0.0763) / score
    assert profile_seconds(spec, 4, 5, 768, workers=2) == pytest.approx(40 * two + 30 + 8 * 26.88 / score, rel=1e-6)


def test_lr_profile_reads_the_first_profile_pairs_it_is_told() -> None:
    """``lr_profile.profile_pairs``: None reads the whole profile split with test, k the first k of it (at most the
    split), 0 test alone; the dry run's read pairs and minutes follow."""
    from prefstudy.plan_stages import profile_lines, profile_read_pairs

    assert profile_read_pairs(load_spec(DEFAULT_SPEC)) == (384, 1024)
    assert profile_read_pairs(load_spec(DEFAULT_SPEC, ["lr_profile.profile_pairs=128"])) == (384, 128)
    assert profile_read_pairs(load_spec(DEFAULT_SPEC, ["lr_profile.profile_pairs=0"])) == (384, 0)
    assert profile_read_pairs(load_spec(DEFAULT_SPEC, ["lr_profile.profile_pairs=5000"])) == (384, 1024)
    lines = "\n".join(profile_lines(load_spec(DEFAULT_SPEC, ["lr_profile.profile_pairs=128"]), None))
    assert "384 test + 128 profile-split pairs" in lines and "x 512 read pairs" in lines
    with pytest.raises(ValueError, match="profile_pairs"):
        load_spec(DEFAULT_SPEC, ["lr_profile.profile_pairs=-1"])
