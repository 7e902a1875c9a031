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
# One final eval of a few hundred pairs costs less per pair than a search trial's several small eval points: an
# lr-profile run's 208 pairs took 20.9 s (0.100 s a pair) over the 26 plain runs of the 2026-12-06 pilot, 1 worker
FINAL_EVAL_SHARE = 0.100 / 0.155  # of plan_costs.CpuCosts.score_per_pair


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


def profile_runs(spec: StudySpec, n_lrs: int, n_seeds: int) -> int:
    """The lr-profile stage's runs: every learning rate x seed at the tuned beta, and two re-tuning candidates (one
    seed) at each of the ``retune_points`` highest learning rates, per method."""
    return (n_lrs * n_seeds + 2 * spec.lr_profile.retune_points) * len(spec.methods)


def profile_run_size(spec: StudySpec, test_pairs: int) -> tuple[int, int, int]:
    """(optimizer steps, training tokens, pairs scored) of one lr-profile run: a search trial's steps, all of val,
    ``test_pairs`` test pairs and the training subset scored once at the end."""
    sizes = split_sizes(spec)
    t, ev = spec.training, spec.evaluation
    steps = search_steps(spec, sizes.get("train"))
    tokens = steps * 2 * t.max_length * t.batch_size * t.gradient_accumulation_steps
    scored = (int(sizes.get("val") or ev.val_subset) + test_pairs
              + min(ev.train_subset, int(sizes.get("train") or ev.train_subset)))
    return steps, tokens, scored


def profile_seconds(spec: StudySpec, n_lrs: int, n_seeds: int, test_pairs: int) -> float | None:
    """The lr-profile stage's wall time on the reference CPU (1 worker), or None off the embedded model."""
    if spec.model.name_or_path not in CPU_COST_MODELS:
        return None
    t, ev = spec.training, spec.evaluation
    c = costs_for(spec)
    steps, _, scored = profile_run_size(spec, test_pairs)
    docs = sum(int(task.limit or 0) for task in ev.lm_eval.tasks)
    capability = n_lrs * len(spec.methods)
    per_run = (steps * t.batch_size * t.gradient_accumulation_steps * c.train_per_pair_step
               + scored * c.score_per_pair * FINAL_EVAL_SHARE)
    return (profile_runs(spec, n_lrs, n_seeds) * per_run + c.load
            + capability * (docs * c.lm_eval_per_doc + ev.generation.pairs * GENERATION_PER_PROMPT))


def profile_gpu_seconds(spec: StudySpec, n_lrs: int, n_seeds: int, test_pairs: int, throughput: float) -> float:
    """The lr-profile stage's GPU time at ``throughput`` training tokens per second (lm-eval, generation left out)."""
    _, tokens, scored = profile_run_size(spec, test_pairs)
    per_run = tokens / throughput + scored * 2 * spec.training.max_length / (EVAL_SPEEDUP * throughput)
    return profile_runs(spec, n_lrs, n_seeds) * per_run


def profile_test_pairs(spec: StudySpec) -> int:
    """Test pairs each lr-profile run scores: ``lr_profile.test_pairs`` (None: all of test), at most the split."""
    n_test = split_sizes(spec).get("test")
    wanted = spec.lr_profile.test_pairs
    if n_test is None:
        return int(wanted or 0)
    return min(wanted or int(n_test), int(n_test))


def profile_lines(spec: StudySpec, throughput: float | None) -> tuple[str, ...]:
    """The ``--dry-run`` lines of ``--stage lr-profile``, with the primary's projected MDE."""
    p, t, ev = spec.lr_profile, spec.training, spec.evaluation
    lrs = profile_learning_rates(spec)
    runs, capability = profile_runs(spec, len(lrs), len(p.seeds)), len(lrs) * len(spec.methods)
    n_val = int(split_sizes(spec).get("val") or ev.val_subset)
    n_test = profile_test_pairs(spec)
    steps, tokens, scored = profile_run_size(spec, n_test)
    docs = sum(int(task.limit or 0) for task in ev.lm_eval.tasks)
    betas = "from the search (each method's best trial)" if set(p.betas) < set(spec.methods) else str(dict(p.betas))
    out = [f"stage lr-profile: {runs} runs = {len(spec.methods)} methods x ({len(lrs)} learning rates "
           f"{[f'{v:.3g}' for v in lrs]} x seeds {list(p.seeds)} at the tuned beta ({betas}) + beta / and * "
           f"{p.retune_factor:g} at the {p.retune_points} highest, seed {p.seeds[0]})",
           f"  per run: {steps} optimizer steps (a search trial's), {tokens:,} training tokens; {n_val} val pairs "
           f"(choose the re-tuned beta) + {n_test} test pairs (the profile read) scored at the end; lm-eval ({docs} "
           f"docs) and {ev.generation.pairs} greedy answers on the {capability} tuned-beta first-seed runs",
           f"  stage total: {runs * tokens:,} training tokens, {runs * scored * 2 * t.max_length:,} eval tokens"]
    seconds = profile_seconds(spec, len(lrs), len(p.seeds), n_test)
    if seconds is not None:
        out.append(f"  estimated CPU wall time (reference 2-core CPU, 1 worker): ~{seconds / 60:.0f} min")
    if throughput:
        gpu = profile_gpu_seconds(spec, len(lrs), len(p.seeds), n_test, throughput)
        out.append(f"  at {throughput:,.0f} tokens/s: {gpu / 3600:.2f} GPU-hours (lm-eval and generation not included)")
    out.extend(profile_power_lines(spec, len(lrs), n_test, throughput))
    return tuple(out)


def profile_power_lines(spec: StudySpec, n_lrs: int, n_test: int, throughput: float | None) -> list[str]:
    """The primary's projected MDE at the spec's size and the sizes that reach the declared targets, from the
    variance model of the default study's pilot (``evaluation.profile_design.PILOT``)."""
    from prefstudy.evaluation.profile_design import PILOT, TARGETS, matches_pilot_grid

    seeds = len(spec.lr_profile.seeds)
    if n_test < 2:
        return ["  primary's MDE: unknown (the number of test pairs read per run is unknown)"]
    model = PILOT.model
    caveat = "" if matches_pilot_grid(profile_learning_rates(spec)) and spec.model.name_or_path in CPU_COST_MODELS \
        else "; ANOTHER grid or model: a rough guide only, run a pilot and benchmarks/profile_power.py for yours"
    out = [f"  primary (alignment shift, IPO - DPO): projected MDE {model.mde(seeds, n_test):.2f} decades at "
           f"{seeds} seeds x {n_test} test pairs (80% power, 5% two-sided; {PILOT.source}{caveat}); it assumes "
           "the pilot's decline and the tuned beta read at every point: the 2026-12-06 verdict run, shallower and "
           "reading one-seed re-tuning candidates, reached 0.49 (docs/results/claims.md)"]
    for target in TARGETS:
        size = model.size_for(target, seeds, n_test)
        parts = []
        for key, unit in (("seeds_at_these_pairs", "seeds"), ("pairs_at_these_seeds", "test pairs")):
            value = size[key]
            if value is None:
                parts.append(f"more than the search limit of {unit}")
                continue
            s_, n_ = (value, n_test) if unit == "seeds" else (seeds, value)
            cost = profile_seconds(spec, n_lrs, s_, n_)
            when = [f"{profile_runs(spec, n_lrs, s_)} runs"] + ([f"~{cost / 60:.0f} min here"] if cost is not None
                                                                else [])
            if throughput:
                when.append(f"{profile_gpu_seconds(spec, n_lrs, s_, n_, throughput) / 3600:.2f} GPU-hours")
            parts.append(f"{value} {unit} ({', '.join(when)})")
        out.append(f"  MDE {target:g} decades needs: " + " or ".join(parts))
    return out
