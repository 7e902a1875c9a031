"""What a study will cost: trials, steps, tokens, eval and lm-eval work per trial, time, and peak GPU memory.

Imports the standard library, ``prefstudy.spec`` and ``evaluation.power`` (scipy); no torch (``plan_stages`` adds a
stage's lines). Every number is an upper bound for a finished trial (pruned ones stop early; real pairs are shorter).

Work per trial
  steps        = max_steps, or ceil(num_epochs * ceil(n_train / (batch_size * accumulation))); n_train = data.max_train
                 (a cap: over-length pairs are dropped later) or data.synthetic.n_train
  tokens/step  = 2 sequences per pair * max_length * batch_size * accumulation
  eval pairs   = k * (min(val_subset, n_val) + min(train_subset, n_train)) + n_val + min(train_subset, n_train)
                 [+ n_test + n_ood with evaluation.test_scoring 'every'], with k = eval points before the last step
                 (multiples of eval_steps); the last one scores val fully and the same train subset. With 'chosen'
                 (default) test and OOD are scored once per method, for its chosen trial: n_test + n_ood pairs each
  seconds      = tokens/step * steps / throughput + eval pairs * 2 * max_length / (3 * throughput); throughput =
                 tokens/step / measured seconds per step (the padding bound cancels); a forward-only eval costs ~1/3
                 of a forward + backward (~1/4 with checkpointing recompute, so 3 is conservative)

CPU wall time, for the embedded SmolLM2-135M only: costs measured on the reference machine (2-core AMD EPYC, 2 torch
threads, LoRA r16 on every projection, the default data's ~38-token prompts and ~13-token answers), CPU_COSTS:
  search       trials * (steps * pairs/step * train + eval pairs * score + lm-eval docs * lm_eval), every trial
               complete (pruning shortens it) + once: load, reference pass (pairs * ref), base lm-eval, chosen test+OOD
  confirmation top_k * methods * seeds * (steps * pairs/step * train + (n_val + train subset + n_test + n_ood) *
               score) + lm-eval on the first confirm.lm_eval_seeds seeds + load

Power (80%, two-sided 5%), projected from the split sizes under stated assumptions (the verdicts print the MDE
from the observed data): DISCORDANT = 0.30 of the pairs ranked differently by the two configurations compared
(the default study's search measured ~30%), and a seed-to-seed SD of SEED_SD = 0.03 in a paired test difference
  val / pruning  paired_mde(n, DISCORDANT) on the val split / on the pairs intermediate evals score
  search         paired_mde(n_test, DISCORDANT): the exploratory one-seed comparison
  confirmation   seed_mde(SEED_SD, seeds, sqrt(DISCORDANT / n_test)): the primary endpoint

Peak GPU memory per GPU in training (eval forwards carry no gradients and stay below it); V, H, L, I = vocab, hidden,
layers, intermediate; kv = n_kv_heads * H / n_heads; S = 2 * batch_size * max_length tokens per micro-batch;
a = 2 bytes per activation (bf16) or 4 (fp32)
  base weights       nf4: (n_params - 2*V*H) * 4.127/8: NF4 4 bits + double-quant constants 0.127 bit/param (8-bit
                     absmax per 64-block + fp32 scale per 256 blocks; QLoRA paper), RMSNorm weights (<0.01%) included;
                     none: n_params * 4 (the harness loads unquantized models in fp32)
  embeddings+head    nf4: 2*V*H * a (embed_tokens and the untied lm_head are not quantized); none: 0 (in base)
  LoRA weights       4 * sum over layers and target modules of r*(in + out): PEFT keeps adapters in fp32
  LoRA gradients     4 bytes per trainable parameter (fp32, like the weights)
  optimizer state    8 bytes per trainable parameter, AdamW 32-bit m and v (the fp32 weights are their own master copy;
                     paged state may be evicted to CPU but lives on the GPU); 2 for *8bit* optimizers, 0 for sgd
  checkpoints        S * H * a * L: one saved hidden state per decoder layer (0 without gradient checkpointing)
  layer working set  S * (c_H*H + 3*kv + c_I*I + n_targets*r) * a + one dequantized weight H*max(H, I)*a (nf4): one
                     layer recomputed for its backward (L of them, every layer kept, without checkpointing).
                     Conservative: c_H = 17: 2 RMSNorms x 3 (fp32 upcast + output), q, rotated q, attention out, o_proj
                     out, 2 residual sums, down_proj out, 4 gradients in flight; +6 with LoRA dropout (copies of the
                     inputs of q, k, v, o, gate, up). 3*kv: k, v, rotated k. c_I = 6: gate, up, silu(gate), product, 2
                     gradients in flight; +1 with dropout (down_proj's input). n_targets*r: each adapter's x @ A
  logits tile        min(S, 4096) * 32768 * a: TRL 1.16's fused LM head (trl/kernels/chunked_logprob.py) projects
                     4096-token x 32768-column tiles and never builds the (S, V) logits
  CUDA overhead      1 GiB: CUDA context (~0.5 GiB on an H100), cuBLAS workspaces, bitsandbytes, fragmentation
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prefstudy.evaluation.power import SEED_SD, paired_mde, seed_mde
from prefstudy.plan_costs import CPU_COST_MODELS, CPU_COSTS, CpuCosts, costs_for
from prefstudy.plan_sizes import REFERENCE_PAIR_TOKENS, PairTokens, pair_tokens, split_sizes
from prefstudy.spec import LmEvalTask, StudySpec, TrainingSpec

GIB = 1024**3
NF4_BITS_PER_PARAM = 4.127  # 4-bit NF4 codes + double-quantized block constants (QLoRA, Dettmers et al. 2023)
LORA_BYTES = 4  # PEFT's autocast_adapter_dtype keeps LoRA A/B (and so their gradients) in fp32
TRL_TOKEN_TILE, TRL_VOCAB_TILE = 4096, 32768  # trl TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE
DISCORDANT = 0.30  # share of pairs two compared configurations rank differently (default study: ~0.3)
EVAL_SPEEDUP = 3.0  # forward-only tokens per second relative to training tokens per second


@dataclass(frozen=True)
class ModelShape:
    n_params: int
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    intermediate_size: int
    vocab_size: int
    name: str = "custom"

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * (self.hidden_size // self.n_heads)

    def module_dims(self, module: str) -> tuple[int, int] | None:
        """(in_features, out_features) of a Llama/Mistral projection, None for a name it does not know."""
        h, kv, i = self.hidden_size, self.kv_dim, self.intermediate_size
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}.get(module)


# Mistral-7B-v0.1 (config.json): 7,241,732,096 parameters, untied embeddings.
MISTRAL_7B = ModelShape(n_params=7_241_732_096, hidden_size=4096, n_layers=32, n_heads=32, n_kv_heads=8,
                        intermediate_size=14336, vocab_size=32000, name="Mistral-7B-v0.1")


def shape_for(name_or_path: str) -> ModelShape | None:
    """The known shape of a model id or path (Mistral-7B and its fine-tunes), None when unknown."""
    return MISTRAL_7B if "mistral-7b" in name_or_path.lower() else None


@dataclass(frozen=True)
class MemoryPart:
    name: str
    n_bytes: int
    how: str


@dataclass(frozen=True)
class MemoryEstimate:
    parts: tuple[MemoryPart, ...]
    trainable_params: int
    skipped_modules: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(part.n_bytes for part in self.parts)

    def part(self, name: str) -> int:
        return next(p.n_bytes for p in self.parts if p.name == name)


def estimate_memory(shape: ModelShape, training: TrainingSpec) -> MemoryEstimate:
    """Peak training memory of one trial on one GPU; the formula and its constants are in the module docstring."""
    h, n_layers, inter, kv = shape.hidden_size, shape.n_layers, shape.intermediate_size, shape.kv_dim
    lora, nf4, embeddings = training.lora, training.quantization == "nf4", 2 * shape.vocab_size * h
    a = 2 if training.precision == "bf16" else 4
    dims = {module: shape.module_dims(module) for module in lora.target_modules}
    skipped = tuple(module for module, d in dims.items() if d is None)
    trainable = sum(n_layers * lora.r * (d[0] + d[1]) for d in dims.values() if d is not None)
    optimizer, gc = training.optimizer.lower(), training.gradient_checkpointing
    opt = 2 if "8bit" in optimizer else 0 if optimizer.startswith("sgd") else 8
    tokens = 2 * training.batch_size * training.max_length
    c_h, c_i = (23, 7) if lora.dropout > 0 else (17, 6)
    per_token = c_h * h + 3 * kv + c_i * inter + (len(dims) - len(skipped)) * lora.r
    layer = tokens * per_token * a + (h * max(h, inter) * a if nf4 else 0)
    parts = (
        MemoryPart("base weights", round((shape.n_params - embeddings) * NF4_BITS_PER_PARAM / 8) if nf4
                   else shape.n_params * 4, f"NF4 + double quant, {NF4_BITS_PER_PARAM} bits/param" if nf4 else "fp32"),
        MemoryPart("embeddings + lm_head", embeddings * a if nf4 else 0,
                   f"2 x vocab x hidden, {a} bytes" if nf4 else "counted in the base weights"),
        MemoryPart("LoRA weights", trainable * LORA_BYTES, f"{trainable:,} params, fp32"),
        MemoryPart("LoRA gradients", trainable * LORA_BYTES, "fp32"),
        MemoryPart("optimizer state", trainable * opt, f"{training.optimizer}: {opt} bytes/param"),
        MemoryPart("activation checkpoints", tokens * h * a * n_layers if gc else 0,
                   f"{tokens} tokens x hidden x {a} bytes x {n_layers} layers" if gc else "no gradient checkpointing"),
        MemoryPart("layer working set", layer if gc else layer * n_layers,
                   f"{'one layer recomputed' if gc else 'every layer kept'}, {per_token:,} values/token"),
        MemoryPart("logits tile", min(tokens, TRL_TOKEN_TILE) * TRL_VOCAB_TILE * a, "TRL fused LM head tile"),
        MemoryPart("CUDA overhead", GIB, "context, workspaces, fragmentation"),
    )
    return MemoryEstimate(parts, trainable, skipped)


@dataclass(frozen=True)
class Plan:
    name: str
    methods: tuple[str, ...]
    trials_per_method: int
    trials_total: int
    splits: dict[str, int | None]
    steps_per_trial: int | None
    pairs_per_step: int
    tokens_per_step: int
    tokens_per_trial: int | None
    eval_points: int | None
    eval_pairs_per_trial: int | None
    eval_tokens_per_trial: int | None
    lm_eval_tasks: tuple[LmEvalTask, ...]
    shape: ModelShape | None
    memory: MemoryEstimate | None
    throughput: float | None
    seconds_per_trial: float | None
    confirm_seeds: int = 0
    val_subset: int = 0  # val pairs scored at the intermediate evals (0: no intermediate eval)
    chosen_pairs: int = 0  # test + OOD pairs scored once per method for its chosen trial (test_scoring: chosen)
    cpu_minutes: tuple[float, float] | None = None  # (search upper bound, confirmation) on the reference CPU
    pair_tokens: PairTokens | None = None  # a sample of the training pairs, tokenized (local files only)


def power_lines(plan: Plan) -> list[str]:
    """The MDEs the split sizes will give (see the module docstring for the assumptions)."""
    sizes = plan.splits
    out = [f"power (80%, two-sided 5%; assuming {DISCORDANT:.0%} discordant pairs"
           + (f", seed SD {SEED_SD}" if plan.confirm_seeds >= 2 else "") + "): smallest detectable difference"]
    val = sizes.get("val")
    if val:
        out.append(f"  between two trials on val ({val} pairs): {paired_mde(val, DISCORDANT):.2f}"
                   + (f"; at the intermediate evals ({plan.val_subset} pairs, what pruning decides on): "
                      f"{paired_mde(plan.val_subset, DISCORDANT):.2f}" if plan.val_subset else ""))
    test = sizes.get("test")
    if not test:
        out.append("  on test: unknown until the data is built (set data.max_heldout)")
        return out
    out.append(f"  search, exploratory (one seed, {test} test pairs): {paired_mde(test, DISCORDANT):.2f}")
    if plan.confirm_seeds >= 2:
        mde = seed_mde(SEED_SD, plan.confirm_seeds, math.sqrt(DISCORDANT / test))
        out.append(f"  primary endpoint (confirmation, {plan.confirm_seeds} seeds x {test} test pairs): {mde:.2f}")
    else:
        out.append("  primary endpoint: needs confirm.seeds (2 or more; 5 for intervals that cover) and confirm.top_k")
    return out


def build_plan(spec: StudySpec, throughput_tokens_per_s: float | None = None,
               model_shape: ModelShape | None = None) -> Plan:
    """The plan of ``spec``; ``model_shape`` None looks the shape up from the model name (``shape_for``)."""
    if throughput_tokens_per_s is not None and not throughput_tokens_per_s > 0:
        raise ValueError(f"throughput must be a positive number of tokens per second, got {throughput_tokens_per_s}")
    t, ev, sizes = spec.training, spec.evaluation, split_sizes(spec)
    pairs_per_step = t.batch_size * t.gradient_accumulation_steps
    tokens_per_step = 2 * t.max_length * pairs_per_step
    steps: int | None = t.max_steps
    if steps is None and sizes["train"] is not None and t.num_epochs is not None:
        steps = max(1, math.ceil(math.ceil(sizes["train"] / pairs_per_step) * t.num_epochs))
    points = eval_pairs = None
    if steps is not None:
        before_last = len(range(ev.eval_steps, steps, ev.eval_steps))  # as train.eval_points, without its last step
        points = before_last + 1
        if None not in sizes.values():
            n = {k: int(value or 0) for k, value in sizes.items()}
            subsets = min(ev.val_subset, n["val"]) + min(ev.train_subset, n["train"])
            eval_pairs = before_last * subsets + n["val"] + min(ev.train_subset, n["train"])
            if ev.test_scoring == "every":
                eval_pairs += n["test"] + n["ood"]
    sampled = pair_tokens(spec)
    per_pair = 2 * t.max_length if sampled is None else sampled.sequences  # the padding bound, or the data's own
    tokens_per_trial = None if steps is None else round(steps * pairs_per_step * per_pair)
    eval_tokens = None if eval_pairs is None else round(eval_pairs * per_pair)
    shape, speed, seconds = model_shape or shape_for(spec.model.name_or_path), throughput_tokens_per_s, None
    if speed and tokens_per_trial is not None and eval_tokens is not None:
        seconds = tokens_per_trial / speed + eval_tokens / (EVAL_SPEEDUP * speed)
    chosen = 0
    if ev.test_scoring == "chosen" and sizes["test"] is not None and sizes["ood"] is not None:
        chosen = int(sizes["test"]) + int(sizes["ood"])
    cpu = None
    if spec.model.name_or_path in CPU_COST_MODELS and steps is not None and eval_pairs is not None:
        cpu = cpu_minutes(spec, steps, eval_pairs, chosen, costs_for(spec))
    return Plan(
        name=spec.name, methods=tuple(spec.methods), trials_per_method=spec.search.n_trials,
        trials_total=spec.search.n_trials * len(spec.methods), splits=sizes,
        steps_per_trial=steps, pairs_per_step=pairs_per_step, tokens_per_step=tokens_per_step,
        tokens_per_trial=tokens_per_trial, eval_points=points, eval_pairs_per_trial=eval_pairs,
        eval_tokens_per_trial=eval_tokens, lm_eval_tasks=ev.lm_eval.tasks, shape=shape,
        memory=None if shape is None else estimate_memory(shape, t),
        throughput=throughput_tokens_per_s, seconds_per_trial=seconds,
        confirm_seeds=len(spec.confirm.seeds) if spec.confirm.top_k else 0,
        val_subset=min(ev.val_subset, int(sizes["val"])) if sizes["val"] and points and points > 1 else 0,
        chosen_pairs=chosen, cpu_minutes=cpu, pair_tokens=sampled,
    )


def cpu_minutes(spec: StudySpec, steps: int, eval_pairs: int, chosen: int,
                costs: CpuCosts = CPU_COSTS) -> tuple[float, float]:
    """(search with every trial complete, confirmation) in minutes on the reference CPU (module docstring)."""
    t, ev, n = spec.training, spec.evaluation, {k: int(v or 0) for k, v in split_sizes(spec).items()}
    methods, docs = len(spec.methods), sum(int(task.limit or 0) for task in ev.lm_eval.tasks)
    train = steps * t.batch_size * t.gradient_accumulation_steps * costs.train_per_pair_step
    per_trial = train + eval_pairs * costs.score_per_pair + docs * costs.lm_eval_per_doc
    once = (costs.load + sum(n.values()) * costs.ref_per_pair + docs * costs.lm_eval_per_doc
            + methods * chosen * costs.score_per_pair)
    search = spec.search.n_trials * methods * per_trial + once
    runs = spec.confirm.top_k * methods * len(spec.confirm.seeds)
    lm_runs = spec.confirm.top_k * methods * min(spec.confirm.lm_eval_seeds, len(spec.confirm.seeds))
    final = n["val"] + min(ev.train_subset, n["train"]) + n["test"] + n["ood"]
    confirm = (runs * (train + final * costs.score_per_pair) + lm_runs * docs * costs.lm_eval_per_doc
               + costs.load) if runs else 0.0
    return search / 60, confirm / 60


def _n(value: int | None, unit: str = "") -> str:
    return "unknown" if value is None else f"{value:,}{unit}"


def _duration(s: float) -> str:
    return f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _limit(task: LmEvalTask) -> str:
    limit = task.limit
    return "all docs" if limit is None else f"{limit:.0%} of the docs" if isinstance(limit, float) else f"{limit} docs"


def format_plan(plan: Plan) -> str:
    """The plan as text, one fact per line."""
    out = [f"plan for '{plan.name}' (upper bounds: pruned trials stop early; real pairs are shorter than max_length)",
           f"trials: {plan.trials_per_method} per method x {len(plan.methods)} methods "
           f"({', '.join(plan.methods)}) = {plan.trials_total}",
           "pairs per split: " + ", ".join(f"{k} {_n(v)}" for k, v in plan.splits.items())
           + ("" if None not in plan.splits.values() else " (set data.max_train / data.max_heldout to know)")]
    out.append(f"training per trial: {_n(plan.steps_per_trial)} optimizer steps x {plan.pairs_per_step} pairs, "
               f"{plan.tokens_per_step:,} tokens/step at most (max_length) -> {_n(plan.tokens_per_trial)} tokens"
               + ("" if plan.pair_tokens is None else " by the data's own lengths"))
    if (k := plan.pair_tokens) is not None:
        out.append(f"tokens per pair ({k.sampled} training pairs tokenized with the model's tokenizer, answers cut at "
                   f"max_length): prompt {k.prompt:.0f}, chosen {k.chosen:.0f}, rejected {k.rejected:.0f}; time "
                   f"scaled by tokens: {k.sequences / REFERENCE_PAIR_TOKENS:.1f}x the default data's pair")
    out.append(f"eval per trial: {_n(plan.eval_points)} eval points (subsets, then all of val at the last step) = "
               f"{_n(plan.eval_pairs_per_trial, ' pairs')}, {_n(plan.eval_tokens_per_trial)} forward tokens"
               + (f"; test + OOD once per method, for its chosen trial: {plan.chosen_pairs:,} pairs"
                  if plan.chosen_pairs else ""))
    limits = [t.limit for t in plan.lm_eval_tasks if isinstance(t.limit, int)]
    total = f" ({sum(limits):,} docs)" if limits and len(limits) == len(plan.lm_eval_tasks) else ""
    tasks = "; ".join(f"{t.name} {t.num_fewshot}-shot, {_limit(t)}, {t.metric}" for t in plan.lm_eval_tasks)
    out.append(f"lm-eval per trial{total}: {tasks or 'none'}")
    out.extend(power_lines(plan))
    if plan.cpu_minutes is not None:
        search, confirm = plan.cpu_minutes
        out.append(f"estimated CPU wall time (reference 2-core CPU, costs in prefstudy.plan.CPU_COSTS; install not "
                   f"included): search <= {search:.0f} min with every trial complete (pruning shortens it)"
                   + (f"; confirmation (--confirm) ~{confirm:.0f} min" if confirm else ""))
    if plan.seconds_per_trial is None:
        out.append("time per trial on other hardware: pass --throughput (training tokens per second, counted as above)")
    else:
        study = _duration(plan.seconds_per_trial * plan.trials_total)
        out.append(f"time per trial at {plan.throughput:,.0f} tokens/s: {_duration(plan.seconds_per_trial)} (eval "
                   f"forwards at {EVAL_SPEEDUP:g}x); study: {study} on one GPU, lm-eval not included")
    if plan.shape is None or (mem := plan.memory) is None:
        out.append("GPU memory: cannot be estimated without a model shape (pass a ModelShape for this model)")
    else:
        out.append(f"GPU memory per GPU ({plan.shape.name}, {mem.trainable_params:,} trainable params): "
                   f"~{mem.total_bytes / GIB:.2f} GiB")
        out.extend(f"  {p.name:<24}{p.n_bytes / GIB:7.2f} GiB  ({p.how})" for p in mem.parts)
        if mem.skipped_modules:
            out.append(f"  not counted (unknown target modules): {', '.join(mem.skipped_modules)}")
    return "\n".join(out)
