"""``nox -s bench``: training steps against TRL's own forward, and the same trials timed three ways, in one run.

- **steps** (``benchmarks.bench_steps``): whole optimizer steps of the same trainer, seeds and batches with TRL's own
  forward and with the packed prefix-shared one, scoring passes, executed FLOPs and the machine's matmul peak;

- **prefstudy**: ``pipeline.run`` as users run it (one model load, one reference pass for the whole study, tokenized
  once, base lm-eval once, every trial's adapter put on and taken off the shared base model);
- **strong**: what a careful TRL user writes: per trial, load the converted model folder, ``DPOTrainer`` with
  ``precompute_ref_log_probs=True`` (a reference pass per trial over train and held-out pairs), held-out scoring with
  ``trainer.evaluate`` at the same steps on the same pairs, lm-eval with ``HFLM(pretrained=<folder>, peft=<adapter>)``;
- **naive**: the obvious loop: per trial, load the model from the embedded package (GGUF, dequantized every time),
  ``DPOTrainer`` computing the reference on the fly at every step and evaluation, lm-eval loading the model by path.

Every variant runs in its own process, one after the other (nothing else may run meanwhile), with the spec's torch
threads, the same trials (parameters, seeds, data, steps, eval points, lm-eval documents) and the same phases timed:
load, tokenize (+ reference), train, evaluate, lm-eval. The spec is the benchmark's own (``study/bench.yaml``), so
changes to the default study's sizes change nothing here. Results: ``reports/bench/results.json`` and
``results.md``; ``--quick`` runs the steps variant alone (one repeat) into ``reports/bench/quick.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_steps import run_steps, summarize_steps
from benchmarks.bench_trl import TRIALS, run_trl

VARIANTS = ("steps", "prefstudy", "strong", "naive")
BENCH_SPEC = "study/bench.yaml"


def bench_spec(spec_path: str, runs_dir: str, overrides: list[str]) -> Any:
    """The spec with the benchmark's fixed trials: no pruning, 2 enqueued trials per method, fresh runs dir."""
    from prefstudy.spec import load_spec

    enqueue = json.dumps({m: points for m, points in TRIALS.items()})
    return load_spec(spec_path, [
        "name=bench", f"runs_dir={runs_dir}", "search.n_trials=2", "search.pruner={type: none}",
        "search.sampler={type: random, seed: 0}", f"search.enqueue={enqueue}", "training.save_adapter=none",
        "evaluation.test_scoring=every", *overrides,
    ])


# --------------------------------------------------------------------------- prefstudy
def run_prefstudy(spec: Any) -> dict[str, Any]:
    import optuna

    from prefstudy import pipeline
    from prefstudy.search import worker
    from prefstudy.training import refcache

    passes = {"computed": 0}
    phases: dict[str, float] = {}
    real_prepare, real_load = refcache.prepare, worker.load_worker

    def counted_prepare(*args: Any, **kwargs: Any) -> Any:
        prepared = real_prepare(*args, **kwargs)
        passes["computed"] += prepared.computed
        phases["tokenize+reference"] = prepared.seconds
        return prepared

    def timed_load(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        loaded = real_load(*args, **kwargs)
        phases["load+tokenize+reference+base_lm_eval"] = time.perf_counter() - started
        return loaded

    refcache.prepare, worker.load_worker = counted_prepare, timed_load
    storage = f"sqlite:///{spec.run_root()}/optuna.db"
    started = time.perf_counter()
    try:
        code = pipeline.run(spec, storage)
    finally:
        refcache.prepare, worker.load_worker = real_prepare, real_load
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"prefstudy run failed with exit code {code}")
    trials = []
    for method in spec.methods:
        study = optuna.load_study(study_name=spec.study_name(method), storage=storage)
        for t in study.get_trials(deepcopy=False):
            a = t.user_attrs
            trials.append({
                "method": method, "number": t.number, "params": t.params, "seed": a["seed"],
                "wall": (t.datetime_complete - t.datetime_start).total_seconds(),
                "train": a["seconds/train"], "evaluate": a["seconds/evaluate"],
                "lm_eval": a.get("seconds/lm_eval", 0.0),
                "rss_mb": a["rss_mb"], "complete_time": t.datetime_complete.timestamp(),
                "val_accuracy": a.get("val/accuracy"),
            })
    trials.sort(key=lambda t: t["complete_time"])
    once = phases.get("load+tokenize+reference+base_lm_eval", 0.0)
    return {"wall_s": wall, "trials": trials, "ref_logprob_passes": passes["computed"],
            "phases": {"once: load+tokenize+reference+base lm-eval": once,
                       "once: tokenize+reference": phases.get("tokenize+reference", 0.0)}}


# --------------------------------------------------------------------------- one variant per process
def run_variant(variant: str, spec_path: str, overrides: list[str], out: Path, repeats: int = 2) -> None:
    import torch

    from prefstudy.search.worker import offline_if_local, quiet_libraries

    with tempfile.TemporaryDirectory(prefix="bench-runs-") as runs:
        spec = bench_spec(spec_path, runs, overrides)
        offline_if_local(spec)
        quiet_libraries()
        torch.set_num_threads(spec.training.threads or os.cpu_count() or 1)
        if variant == "steps":
            result = run_steps(spec, repeats)
        elif variant == "prefstudy":
            result = run_prefstudy(spec)
        else:
            result = run_trl(spec, variant)
    result.update(variant=variant, torch_threads=torch.get_num_threads())
    out.write_text(json.dumps(result, indent=2, default=str))


def _phase_sums(trials: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("load", "tokenize", "tokenize+reference", "train", "evaluate", "lm_eval", "save_adapter", "wall")
    return {k: round(sum(t.get(k, 0.0) for t in trials), 2) for k in keys if any(k in t for t in trials)}


def pruning_savings(spec_path: str) -> dict[str, Any] | None:
    """What pruning saved in an existing study of this spec (its storage must exist): optimizer steps not run."""
    import optuna
    from optuna.trial import TrialState

    from prefstudy.spec import load_spec
    from prefstudy.training.trainer import total_steps

    spec = load_spec(spec_path)
    db = spec.run_root() / "optuna.db"
    if spec.storage is None and not db.is_file():
        return None
    storage = spec.storage or f"sqlite:///{db}"
    out: dict[str, Any] = {"study": spec.name, "per_method": {}}
    n_steps = total_steps(spec.training, spec.data.synthetic.n_train if spec.data.source == "synthetic" else 0)
    run, full = 0, 0
    for method in spec.methods:
        try:
            study = optuna.load_study(study_name=spec.study_name(method), storage=storage)
        except KeyError:
            continue
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        steps = [int(t.user_attrs.get("steps", n_steps)) for t in trials]
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        out["per_method"][method] = {"trials": len(trials), "pruned": pruned, "steps_run": sum(steps),
                                     "steps_without_pruning": n_steps * len(trials)}
        run += sum(steps)
        full += n_steps * len(trials)
    if not full:
        return None
    out.update(steps_run=run, steps_without_pruning=full, training_compute_saved_fraction=round(1 - run / full, 4),
               note="pruned trials also skip their final full held-out scoring and lm-eval, so wall time saved is "
                    "larger than the step fraction")
    return out


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def gpu_note() -> dict[str, Any]:
    path = Path("reports/bench/gpu.json")
    if path.is_file():
        return {"status": "measured", "file": str(path), **json.loads(path.read_text())}
    return {"status": "not run: no CUDA GPU has run `python -m benchmarks.gpubench --shape mistral-7b` yet, so "
                      "there are no tokens/s or peak GPU memory numbers for the 4-bit Mistral-7B shape"}


def summarize(results: dict[str, dict[str, Any]], spec_path: str, overrides: list[str]) -> dict[str, Any]:
    from prefstudy.core.rundir import versions

    head: dict[str, Any] = {"spec": spec_path, "overrides": overrides}
    if "steps" in results:
        head.update(summarize_steps(results["steps"]))
    if "prefstudy" not in results:  # --quick: the step measurement alone
        return {**head, "machine": {**machine(), "torch_threads": results["steps"]["threads"]},
                "versions": versions(), "raw": results}
    ours = results["prefstudy"]
    trials = ours["trials"]
    inside = sum(t["train"] + t["evaluate"] + t["lm_eval"] for t in trials)
    wall = sum(t["wall"] for t in trials)
    rss = [t["rss_mb"] for t in trials]
    summary: dict[str, Any] = {
        **head, "trials": {m: p for m, p in TRIALS.items()},
        "wall_s_prefstudy": round(ours["wall_s"], 2),
        "wall_s_naive": round(results["naive"]["wall_s"], 2) if "naive" in results else None,
        "wall_s_strong": round(results["strong"]["wall_s"], 2) if "strong" in results else None,
        "overhead_fraction": round((wall - inside) / wall, 4),
        "ref_logprob_passes": ours["ref_logprob_passes"],
        "rss_growth_fraction": round((rss[-1] - rss[0]) / rss[0], 4) if len(rss) > 1 else None,
        "rss_mb_after_each_trial": [round(r, 1) for r in rss],
        "phases": {name: {"once": r.get("phases", {}), "sum_over_trials": _phase_sums(r["trials"])}
                   for name, r in results.items() if name != "steps"},
        "ref_logprob_passes_per_variant": {
            name: r["ref_logprob_passes"] if r["ref_logprob_passes"] is not None else "on the fly (every step)"
            for name, r in results.items() if name != "steps"},
        "machine": {**machine(), "torch_threads": ours.get("torch_threads")},
        "versions": versions(),
        "gpu": gpu_note(),
        "raw": results,
    }
    for other in ("naive", "strong"):
        if summary[f"wall_s_{other}"]:
            summary[f"wall_ratio_vs_{other}"] = round(ours["wall_s"] / results[other]["wall_s"], 4)
    return summary


TARGETS = {"train_speedup_vs_trl": (">=", 1.8), "train_peak_fraction": (">=", 0.40),
           "score_peak_fraction": (">=", 0.50), "wall_ratio_vs_naive": ("<=", 0.35),
           "wall_ratio_vs_strong": ("<=", 0.5), "overhead_fraction": ("<=", 0.05), "ref_logprob_passes": ("==", 1),
           "rss_growth_fraction": ("<=", 0.10)}


def met(value: Any, op: str, bound: float) -> bool | None:
    if value is None:
        return None
    return bool(value <= bound if op == "<=" else value >= bound if op == ">=" else value == bound)


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# prefstudy benchmark", "",
             f"Machine: {summary['machine']['cpu']}, {summary['machine']['cores']} cores, torch threads "
             f"{summary['machine']['torch_threads']}; matmul peak {summary.get('matmul_peak_gflops')} GFLOP/s "
             f"measured in the same run. Spec `{summary['spec']}` {' '.join(summary['overrides'])}; "
             "4 trials (2 DPO, 2 IPO), identical in every variant.", "",
             "| metric | value | target | met |", "| --- | --- | --- | --- |"]
    for key, (op, bound) in TARGETS.items():
        value = summary.get(key)
        ok = met(value, op, bound)
        lines.append(f"| `{key}` | {value} | {op} {bound} | {'yes' if ok else 'no' if ok is False else '–'} |")
    if "train_step_s" in summary:
        lines += ["", f"Whole optimizer steps (mean over {summary['runs_per_mode']} runs x "
                  f"{summary['steps_timed_per_run']} steps): TRL's own forward {summary['train_step_s_trl']} s, "
                  f"packed prefix-shared {summary['train_step_s']} s; executed GFLOP/s "
                  f"{summary['train_gflops_trl']} -> {summary['train_gflops']} (training), "
                  f"{summary['score_gflops']} (scoring). FLOPs: executed, padding included (benchmarks.flops)."]
    if "phases" not in summary:
        return "\n".join(lines + [""])
    lines += ["", "Seconds, summed over the 4 trials; 'once' is what prefstudy pays once per study (model load, "
              "tokenization + the one reference pass, base-model lm-eval) instead of per trial.", "",
              "| variant | wall s | once | load | tokenize (+ reference) | train | evaluate | lm-eval |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, phases in summary["phases"].items():
        s = phases["sum_over_trials"]
        once = phases["once"].get("once: load+tokenize+reference+base lm-eval")
        tok = s.get("tokenize+reference", s.get("tokenize", 0.0))
        wall = summary.get(f"wall_s_{name}")
        lines.append(f"| {name} | {wall} | {'–' if once is None else f'{once:.1f}'} | {s.get('load', 0.0):.1f} | "
                     f"{tok:.1f} | {s.get('train', 0.0):.1f} | {s.get('evaluate', 0.0):.1f} | "
                     f"{s.get('lm_eval', 0.0):.1f} |")
    pruning = summary.get("pruning")
    lines += ["", "Pruning: " + (
        f"in study '{pruning['study']}', {pruning['steps_run']} of {pruning['steps_without_pruning']} optimizer steps "
        f"ran: {pruning['training_compute_saved_fraction']:.0%} of the training compute saved ({pruning['note']})."
        if pruning else "no study of the spec to measure it from yet (run `nox -s study` first)."),
        "", f"GPU: {summary['gpu'].get('status')}.", ""]
    return "\n".join(lines)


def spec_and_overrides(spec: str, overrides: list[str]) -> tuple[str, list[str]]:
    """``--quick training.precision=bf16``: a first positional with ``=`` is an override of the bench spec, as in
    ``prefstudy study``, not a spec path."""
    return (BENCH_SPEC, [spec, *overrides]) if "=" in spec else (spec, overrides)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=BENCH_SPEC)
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides of the spec")
    parser.add_argument("--out", default="reports/bench")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rewrite", action="store_true", help="rebuild results.{json,md} from the raw-*.json files")
    parser.add_argument("--quick", action="store_true",
                        help="the training speed-up alone (steps variant, one repeat) -> quick.json (<= 10 min)")
    parser.add_argument("--repeats", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.spec, args.overrides = spec_and_overrides(args.spec, args.overrides)
    if args.variant:
        run_variant(args.variant, args.spec, args.overrides, Path(args.result), args.repeats)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = ["steps"] if args.quick else args.variants.split(",")
    repeats = 1 if args.quick else args.repeats
    results = {}
    started_all = time.perf_counter()
    for variant in variants:
        result = out / f"raw-{variant}{'-quick' if args.quick else ''}.json"
        if args.rewrite:
            results[variant] = json.loads(result.read_text())
            continue
        print(f"== {variant}", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchmarks.bench", args.spec, *args.overrides, "--variant", variant,
                        "--result", str(result), "--repeats", str(repeats)], check=True)
        results[variant] = json.loads(result.read_text())
        print(f"== {variant}: {time.perf_counter() - started:.1f}s", flush=True)
    summary = summarize(results, args.spec, args.overrides)
    if not args.rewrite:
        summary["bench_wall_s"] = round(time.perf_counter() - started_all, 1)
    if not args.quick:
        summary["pruning"] = pruning_savings("study/default.yaml")  # what pruning saved in the study users run
    name = "quick" if args.quick else "results"
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / f"{name}.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
