"""The ``--dry-run`` lines of a fixed-design stage (``--stage drift``, ``--stage lr-profile``): runs, steps, time.

Costs as in ``prefstudy.plan``: on the reference CPU from ``plan.CPU_COSTS`` (embedded model only) plus
GENERATION_PER_PROMPT per generated answer; on a GPU from ``--throughput`` training tokens per second, eval forwards
at ``plan.EVAL_SPEEDUP`` times that, generation not included. The stage's learning rate comes from the search when
``drift.learning_rate`` is unset, so the dry run shows the grid without it; the lr-profile's tuned betas come from
the search too, and its re-tuning runs are counted as two candidates per high learning rate (fewer where the
method's beta range clips them).
"""

from __future__ import annotations

from prefstudy.plan import CPU_COST_MODELS, EVAL_SPEEDUP, costs_for, split_sizes
from prefstudy.search.stages import drift_betas, drift_steps, profile_learning_rates, search_steps
from prefstudy.spec import StudySpec

GENERATION_PER_PROMPT = 0.09  # seconds per greedy answer (batches of 32, <= 24 new tokens), SmolLM2-135M, 2 threads


def stage_lines(spec: StudySpec, stage: str, throughput: float | None) -> tuple[str, ...]:
    """The ``--dry-run`` lines of ``stage`` (module docstring)."""
    sizes = split_sizes(spec)
    if stage == "lr-profile":
        return profile_lines(spec, throughput)
    if stage != "drift":
        return (f"stage '{stage}': unknown",)
    d, t, ev = spec.drift, spec.training, spec.evaluation
    betas = {m: drift_betas(spec, m) for m in spec.methods}
    runs = sum(len(b) for b in betas.values()) * len(d.preference_p) * len(d.seeds)
    steps = drift_steps(spec, sizes.get("train"), d.copies)
    pairs_per_step = t.batch_size * t.gradient_accumulation_steps
    tokens = steps * 2 * t.max_length * pairs_per_step
    val = min(d.val_pairs or ev.val_subset, int(sizes.get("val") or 0) or (d.val_pairs or ev.val_subset))
    n_train = int(sizes.get("train") or ev.train_subset)
    scored = d.eval_points * (val + n_train)  # the fixed val pairs and every training instance at every point
    prompts = (d.eval_points + 1) * min(d.generation_pairs, val if sizes.get("val") else d.generation_pairs)
    lr = f"{d.learning_rate:g}" if d.learning_rate is not None else "from the search (geometric mean of the best)"
    copies = f" x p {list(d.preference_p)} ({d.copies} copies per instance)" if d.copies > 1 or len(
        d.preference_p) > 1 else ""
    out = [f"stage drift: {runs} runs = betas " + "; ".join(f"{m} {list(b)}" for m, b in betas.items())
           + f"{copies} x seeds {list(d.seeds)}, learning_rate {lr}",
           f"  per run: {steps} optimizer steps ({d.steps_factor:g}x a search trial, whole epochs of the copies), "
           f"{tokens:,} training tokens; {d.eval_points} eval points + step 0 on the same {val} val pairs and "
           f"{n_train} training instances ({scored} pairs scored), "
           f"{prompts} greedy answers; no lm-eval",
           f"  stage total: {runs * tokens:,} training tokens, {runs * scored * 2 * t.max_length:,} eval tokens"]
    if spec.model.name_or_path in CPU_COST_MODELS:
        c = costs_for(spec)
        seconds = runs * (steps * pairs_per_step * c.train_per_pair_step + scored * c.score_per_pair
                          + prompts * GENERATION_PER_PROMPT) + c.load
        out.append(f"  estimated CPU wall time (reference 2-core CPU, 1 worker): ~{seconds / 60:.0f} min")
    if throughput:
        gpu = runs * (tokens / throughput + scored * 2 * t.max_length / (EVAL_SPEEDUP * throughput))
        out.append(f"  at {throughput:,.0f} tokens/s: {gpu / 3600:.2f} GPU-hours (generation not included)")
    return tuple(out)


def profile_lines(spec: StudySpec, throughput: float | None) -> tuple[str, ...]:
    """The ``--dry-run`` lines of ``--stage lr-profile``."""
    sizes = split_sizes(spec)
    p, t, ev = spec.lr_profile, spec.training, spec.evaluation
    lrs = profile_learning_rates(spec)
    per_method = len(lrs) * len(p.seeds) + 2 * p.retune_points
    runs, capability = per_method * len(spec.methods), len(lrs) * len(spec.methods)
    steps = search_steps(spec, sizes.get("train"))
    pairs_per_step = t.batch_size * t.gradient_accumulation_steps
    tokens = steps * 2 * t.max_length * pairs_per_step
    n_val = int(sizes.get("val") or ev.val_subset)
    n_test = min(p.test_pairs or int(sizes.get("test") or 0), int(sizes.get("test") or p.test_pairs or 0))
    scored = n_val + n_test + min(ev.train_subset, int(sizes.get("train") or ev.train_subset))
    docs = sum(int(task.limit or 0) for task in ev.lm_eval.tasks)
    betas = "from the search (each method's best trial)" if set(p.betas) < set(spec.methods) else str(dict(p.betas))
    out = [f"stage lr-profile: {runs} runs = {len(spec.methods)} methods x ({len(lrs)} learning rates "
           f"{[f'{v:.3g}' for v in lrs]} x seeds {list(p.seeds)} at the tuned beta ({betas}) + beta / and * "
           f"{p.retune_factor:g} at the {p.retune_points} highest, seed {p.seeds[0]})",
           f"  per run: {steps} optimizer steps (a search trial's), {tokens:,} training tokens; {n_val} val + "
           f"{n_test} test pairs scored at the end; lm-eval ({docs} docs) and {ev.generation.pairs} greedy answers on "
           f"the {capability} tuned-beta first-seed runs",
           f"  stage total: {runs * tokens:,} training tokens, {runs * scored * 2 * t.max_length:,} eval tokens"]
    if spec.model.name_or_path in CPU_COST_MODELS:
        c = costs_for(spec)
        seconds = (runs * (steps * pairs_per_step * c.train_per_pair_step + scored * c.score_per_pair) + c.load
                   + capability * (docs * c.lm_eval_per_doc + ev.generation.pairs * GENERATION_PER_PROMPT))
        out.append(f"  estimated CPU wall time (reference 2-core CPU, 1 worker): ~{seconds / 60:.0f} min")
    if throughput:
        gpu = runs * (tokens / throughput + scored * 2 * t.max_length / (EVAL_SPEEDUP * throughput))
        out.append(f"  at {throughput:,.0f} tokens/s: {gpu / 3600:.2f} GPU-hours (lm-eval and generation not included)")
    return tuple(out)
