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
# An lr-profile run, measured (1 worker, 2 threads): one final eval costs a fixed part plus less per pair than a
# search trial's small eval points: 20.9 s for 208 pairs (the 26 plain runs of the 2026-12-06 pilot) and 45.3 s for
# 528 (the 38 plain runs of the verdict run that day), so 5.0 s + 0.0763 s a pair; its 24 steps of 4 pairs took 26.1 s
FINAL_EVAL_SHARE = 0.0763 / 0.155  # of plan_costs.CpuCosts.score_per_pair
FINAL_EVAL_FIXED = 5.0  # seconds per run
PROFILE_TRAIN_SHARE = 26.1 / (24 * 4) / 0.37  # of plan_costs.CpuCosts.train_per_pair_step
# Two workers of one thread each on the 2 cores (--workers 2 training.threads=1) against one worker of two, measured
# in the second design's verdict stage (2026-12-06, 32 plain runs): 41.6 s of training a run per worker against 26.1 s
# alone (1.25x the throughput), 160.8 s to score 1184 pairs against 95.3 s alone by the costs above (1.19x). (A probe
# of either phase alone had promised 1.6x and 1.15x: in a stage the two workers' phases overlap.)
TWO_WORKERS_SPEEDUP = {"train": 2 * 26.1 / 41.6, "score": 2 * (5.0 + 1184 * 0.0763) / 160.8}


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


def profile_run_size(spec: StudySpec, read_pairs: int) -> tuple[int, int, int]:
    """(optimizer steps, training tokens, pairs scored) of one lr-profile run: a search trial's steps, all of val,
    ``read_pairs`` (test and profile-split pairs) and the training subset scored once at the end."""
    sizes = split_sizes(spec)
    t, ev = spec.training, spec.evaluation
    steps = search_steps(spec, sizes.get("train"))
    tokens = steps * 2 * t.max_length * t.batch_size * t.gradient_accumulation_steps
    scored = (int(sizes.get("val") or ev.val_subset) + read_pairs
              + min(ev.train_subset, int(sizes.get("train") or ev.train_subset)))
    return steps, tokens, scored


def profile_seconds(spec: StudySpec, n_lrs: int, n_seeds: int, read_pairs: int, workers: int = 1) -> float | None:
    """The lr-profile stage's wall time on the reference CPU (1 worker of 2 threads, or ``workers=2`` of one thread
    each: ``TWO_WORKERS_SPEEDUP``), or None off the embedded model."""
    if spec.model.name_or_path not in CPU_COST_MODELS:
        return None
    t, ev = spec.training, spec.evaluation
    c = costs_for(spec)
    steps, _, scored = profile_run_size(spec, read_pairs)
    docs = sum(int(task.limit or 0) for task in ev.lm_eval.tasks)
    capability = n_lrs * len(spec.methods)
    train, score = (TWO_WORKERS_SPEEDUP["train"], TWO_WORKERS_SPEEDUP["score"]) if workers == 2 else (1.0, 1.0)
    per_run = (steps * t.batch_size * t.gradient_accumulation_steps * c.train_per_pair_step * PROFILE_TRAIN_SHARE
               / train + (FINAL_EVAL_FIXED + scored * c.score_per_pair * FINAL_EVAL_SHARE) / score)
    return (profile_runs(spec, n_lrs, n_seeds) * per_run + c.load
            + capability * (docs * c.lm_eval_per_doc + ev.generation.pairs * GENERATION_PER_PROMPT) / score)


def profile_gpu_seconds(spec: StudySpec, n_lrs: int, n_seeds: int, read_pairs: int, throughput: float) -> float:
    """The lr-profile stage's GPU time at ``throughput`` training tokens per second (lm-eval, generation left out)."""
    _, tokens, scored = profile_run_size(spec, read_pairs)
    per_run = tokens / throughput + scored * 2 * spec.training.max_length / (EVAL_SPEEDUP * throughput)
    return profile_runs(spec, n_lrs, n_seeds) * per_run


def profile_test_pairs(spec: StudySpec) -> int:
    """Test pairs each lr-profile run scores: ``lr_profile.test_pairs`` (None: all of test), at most the split."""
    n_test = split_sizes(spec).get("test")
    wanted = spec.lr_profile.test_pairs
    if n_test is None:
        return int(wanted or 0)
    return min(wanted or int(n_test), int(n_test))


def profile_read_pairs(spec: StudySpec) -> tuple[int, int]:
    """(test pairs, profile-split pairs) each lr-profile run scores: the pairs its profile is read on (of the
    profile split, the first ``lr_profile.profile_pairs``; None: all)."""
    return profile_test_pairs(spec), spec.lr_profile.profile_pairs_of(int(split_sizes(spec).get("profile") or 0))


def profile_lines(spec: StudySpec, throughput: float | None) -> tuple[str, ...]:
    """The ``--dry-run`` lines of ``--stage lr-profile``, with the primary's projected MDE."""
    p, t, ev = spec.lr_profile, spec.training, spec.evaluation
    lrs = profile_learning_rates(spec)
    runs, capability = profile_runs(spec, len(lrs), len(p.seeds)), len(lrs) * len(spec.methods)
    n_val = int(split_sizes(spec).get("val") or ev.val_subset)
    n_test, n_profile = profile_read_pairs(spec)
    n_read = n_test + n_profile
    steps, tokens, scored = profile_run_size(spec, n_read)
    docs = sum(int(task.limit or 0) for task in ev.lm_eval.tasks)
    betas = "from the search (each method's best trial)" if set(p.betas) < set(spec.methods) else str(dict(p.betas))
    retune = (f" + beta / and * {p.retune_factor:g} at the {p.retune_points} highest, seed {p.seeds[0]}"
              if p.retune_points else "")
    out = [f"stage lr-profile: {runs} runs = {len(spec.methods)} methods x ({len(lrs)} learning rates "
           f"{[f'{v:.3g}' for v in lrs]} x seeds {list(p.seeds)} at the tuned beta ({betas}){retune})",
           f"  per run: {steps} optimizer steps (a search trial's), {tokens:,} training tokens; {n_val} val pairs "
           f"(chose the tuned beta; choose a re-tuned one) + {n_test} test + {n_profile} profile-split pairs (the "
           f"profile read) scored at the end; lm-eval ({docs} docs) and {ev.generation.pairs} greedy answers on the "
           f"{capability} tuned-beta first-seed runs",
           f"  stage total: {runs * tokens:,} training tokens, {runs * scored * 2 * t.max_length:,} eval tokens"]
    seconds = profile_seconds(spec, len(lrs), len(p.seeds), n_read)
    if seconds is not None:
        two = profile_seconds(spec, len(lrs), len(p.seeds), n_read, workers=2) or seconds
        out.append(f"  estimated CPU wall time (reference 2-core CPU): ~{seconds / 60:.0f} min with 1 worker of 2 "
                   f"threads, ~{two / 60:.0f} min with --workers 2 training.threads=1")
    if throughput:
        gpu = profile_gpu_seconds(spec, len(lrs), len(p.seeds), n_read, throughput)
        out.append(f"  at {throughput:,.0f} tokens/s: {gpu / 3600:.2f} GPU-hours (lm-eval and generation not included)")
    out.extend(profile_power_lines(spec, len(lrs), n_read, throughput))
    return tuple(out)


def profile_power_lines(spec: StudySpec, n_lrs: int, n_read: int, throughput: float | None) -> list[str]:
    """The primary's projected MDE at the spec's size and the sizes that reach the declared targets, from the
    stages simulated on the second design's verdict run (``evaluation.profile_design.PILOT``)."""
    from prefstudy.evaluation.profile_design import PILOT, TARGETS, matches_pilot_grid

    seeds = len(spec.lr_profile.seeds)
    if n_read < 2:
        return ["  primary's MDE: unknown (the number of pairs read per run is unknown)"]
    model = PILOT.model
    caveat = "" if matches_pilot_grid(profile_learning_rates(spec)) and spec.model.name_or_path in CPU_COST_MODELS \
        else "; ANOTHER grid or model: a rough guide only, run a pilot and benchmarks/profile_power.py for yours"
    out = [f"  primary (area shift at the tuned beta, IPO - DPO): projected MDE {model.mde(seeds, n_read):.2f} "
           f"decades at {seeds} seeds x {n_read} read pairs (test + profile split; 80% power, 5% two-sided; "
           f"{PILOT.source}{caveat}); it assumes that run's {PILOT.caveat}"]
    for target in TARGETS:
        size = model.size_for(target, seeds, n_read)
        parts = []
        for key, unit in (("seeds_at_these_pairs", "seeds"), ("pairs_at_these_seeds", "read pairs")):
            value = size[key]
            if value is None:
                parts.append(f"more than the search limit of {unit}")
                continue
            s_, n_ = (value, n_read) if unit == "seeds" else (seeds, value)
            cost, two = profile_seconds(spec, n_lrs, s_, n_), profile_seconds(spec, n_lrs, s_, n_, workers=2)
            when = [f"{profile_runs(spec, n_lrs, s_)} runs"] + (
                [f"~{cost / 60:.0f} / ~{two / 60:.0f} min here with 1 / 2 workers"] if cost and two else [])
            if throughput:
                when.append(f"{profile_gpu_seconds(spec, n_lrs, s_, n_, throughput) / 3600:.2f} GPU-hours")
            parts.append(f"{value} {unit} ({', '.join(when)})")
        out.append(f"  MDE {target:g} decades needs: " + " or ".join(parts))
    return out
