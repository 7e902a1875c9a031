"""``nox -s bench``: the same trials timed three ways, in one run, on one machine.

- **prefstudy**: ``runner.run`` as users run it (one model load, one reference pass for the whole study, tokenized
  once, base lm-eval once, every trial's adapter put on and taken off the shared base model);
- **strong**: what a careful TRL user writes: per trial, load the converted model folder, ``DPOTrainer`` with
  ``precompute_ref_log_probs=True`` (a reference pass per trial over train and held-out pairs), held-out scoring with
  ``trainer.evaluate`` at the same steps on the same pairs, lm-eval with ``HFLM(pretrained=<folder>, peft=<adapter>)``;
- **naive**: the obvious loop: per trial, load the model from the embedded package (GGUF, dequantized every time),
  ``DPOTrainer`` computing the reference on the fly at every step and evaluation, lm-eval loading the model by path.

Every variant runs in its own process, one after the other (nothing else may run meanwhile), with the spec's torch
threads, the same trials (parameters, seeds, data, steps, eval points, lm-eval documents) and the same phases timed:
load, tokenize (+ reference), train, evaluate, lm-eval. Results: ``reports/bench/results.json`` and ``results.md``.
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

VARIANTS = ("prefstudy", "strong", "naive")
#: the default spec's 4 benchmark trials: 2 per method, the enqueued published point and a second, hotter one
TRIALS = {"dpo": [{"beta": 0.1, "learning_rate": 5.0e-4}, {"beta": 0.3, "learning_rate": 1.0e-3}],
          "ipo": [{"beta": 0.5, "learning_rate": 5.0e-4}, {"beta": 1.0, "learning_rate": 1.0e-3}]}


def bench_spec(spec_path: str, runs_dir: str, overrides: list[str]) -> Any:
    """The spec with the benchmark's fixed trials: no pruning, 2 enqueued trials per method, fresh runs dir."""
    from prefstudy.spec import load_spec

    enqueue = json.dumps({m: points for m, points in TRIALS.items()})
    return load_spec(spec_path, [
        "name=bench", f"runs_dir={runs_dir}", "search.n_trials=2", "search.pruner={type: none}",
        "search.sampler={type: random, seed: 0}", f"search.enqueue={enqueue}", "training.save_adapter=none",
        *overrides,
    ])


# --------------------------------------------------------------------------- prefstudy
def run_prefstudy(spec: Any) -> dict[str, Any]:
    import optuna

    from prefstudy import pipeline as runner
    from prefstudy.training import refcache

    passes = {"computed": 0}
    phases: dict[str, float] = {}
    real_prepare, real_load = refcache.prepare, runner.load_worker

    def counted_prepare(*args: Any, **kwargs: Any) -> Any:
        prepared = real_prepare(*args, **kwargs)
        passes["computed"] += prepared.computed
        phases["tokenize+reference"] = prepared.seconds
        return prepared

    def timed_load(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        worker = real_load(*args, **kwargs)
        phases["load+tokenize+reference+base_lm_eval"] = time.perf_counter() - started
        return worker

    refcache.prepare, runner.load_worker = counted_prepare, timed_load
    storage = f"sqlite:///{spec.run_root()}/optuna.db"
    started = time.perf_counter()
    try:
        code = runner.run(spec, storage)
    finally:
        refcache.prepare, runner.load_worker = real_prepare, real_load
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


# --------------------------------------------------------------------------- TRL baselines
def _model_source(spec: Any, variant: str) -> tuple[str, dict[str, Any]]:
    """(path, from_pretrained kwargs): naive reads the embedded GGUF every time, strong the converted folder."""
    from prefstudy.models.builtin import EMBEDDED, GGUF_FILE, embedded_gguf, resolve_model_path

    if variant == "naive" and spec.model.name_or_path == EMBEDDED:
        return str(embedded_gguf().parent), {"gguf_file": GGUF_FILE}
    return resolve_model_path(spec.model.name_or_path), {}


def _records(spec: Any) -> dict[str, Any]:
    from datasets import Dataset

    from prefstudy.data.sources import load_splits

    splits = load_splits(spec.data).splits
    ev = spec.evaluation

    def ds(rows: list[dict[str, Any]]) -> Any:
        return Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])

    out = {"train": ds(splits["train"]), "val_subset": ds(splits["val"][: ev.val_subset]),
           "train_subset": ds(splits["train"][: ev.train_subset]), "val": ds(splits["val"]), "test": ds(splits["test"])}
    if splits.get("ood"):
        out["ood"] = ds(splits["ood"])
    return out


def run_trl_trial(spec: Any, variant: str, method: str, params: dict[str, float], seed: int, out: Path) -> dict:
    """One trial the TRL-only way; returns its phase timings."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from prefstudy.training.trainer import eval_points, total_steps

    times: dict[str, float] = {}
    started = time.perf_counter()
    path, kwargs = _model_source(spec, variant)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    if getattr(model, "hf_quantizer", None) is not None:  # GGUF: dequantized weights, drop the marker
        model.hf_quantizer.remove_quantization_config(model)
    times["load"] = time.perf_counter() - started
    data = _records(spec)
    training, ev = spec.training, spec.evaluation
    n_steps = total_steps(training, len(data["train"]))
    points = eval_points(n_steps, ev.eval_steps)
    lora = training.lora
    config = DPOConfig(
        output_dir=str(out / "trainer"), beta=params["beta"], learning_rate=params["learning_rate"],
        loss_type=[spec.methods[method].loss_type], per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=ev.batch_size, gradient_accumulation_steps=training.gradient_accumulation_steps,
        max_steps=n_steps, max_length=training.max_length, lr_scheduler_type=training.lr_scheduler,
        max_grad_norm=training.max_grad_norm, optim="adamw_torch", bf16=False, use_cpu=True,
        precompute_ref_log_probs=variant == "strong", precompute_ref_batch_size=ev.batch_size,
        logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[], disable_tqdm=True, seed=seed,
        data_seed=seed, dataloader_num_workers=0, gradient_checkpointing=False,
    )
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    evals = {k: v for k, v in data.items() if k != "train"}
    evaluated = {"seconds": 0.0}

    built: dict[str, Any] = {}

    class Evaluate(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            if state.global_step not in points:
                return
            t0 = time.perf_counter()
            final = state.global_step == n_steps
            names = ["val", "train_subset", "test", "ood"] if final else ["val_subset", "train_subset"]
            for name in names:
                if name in evals:
                    built["trainer"].evaluate(eval_dataset=name, metric_key_prefix=name)
            evaluated["seconds"] += time.perf_counter() - t0

    started = time.perf_counter()
    torch.manual_seed(seed)
    trainer = DPOTrainer(model=model, args=config, train_dataset=data["train"], eval_dataset=evals,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[Evaluate()])
    built["trainer"] = trainer
    times["tokenize+reference" if variant == "strong" else "tokenize"] = time.perf_counter() - started
    started = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - started
    times["evaluate"] = evaluated["seconds"]
    times["train"] = total - evaluated["seconds"]
    started = time.perf_counter()
    adapter = out / "adapter"
    trainer.model.save_pretrained(str(adapter))
    times["save_adapter"] = time.perf_counter() - started
    del trainer, model, built["trainer"]
    import gc

    gc.collect()
    if spec.evaluation.lm_eval.tasks:
        started = time.perf_counter()
        lm_eval_by_path(spec, path, kwargs, adapter, seed)
        times["lm_eval"] = time.perf_counter() - started
    return times


def lm_eval_by_path(spec: Any, path: str, kwargs: dict[str, Any], adapter: Path, seed: int) -> None:
    """lm-eval loading the base model by path with the adapter (what its CLI does), same tasks and limits."""
    import gc

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from prefstudy.evaluation.lmeval import task_manager

    lm_spec = spec.evaluation.lm_eval
    lm = HFLM(pretrained=path, peft=str(adapter), dtype="float32", batch_size=lm_spec.batch_size, device="cpu",
              **kwargs)
    manager = task_manager(lm_spec.tasks)
    for task in lm_spec.tasks:
        simple_evaluate(model=lm, tasks=[task.name], num_fewshot=task.num_fewshot, limit=task.limit,
                        task_manager=manager, bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed,
                        torch_random_seed=seed, fewshot_random_seed=seed)
    del lm
    gc.collect()


def run_trl(spec: Any, variant: str) -> dict[str, Any]:
    from prefstudy.core.rundir import rss_mb
    from prefstudy.search.objective import trial_seed

    trials = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench-{variant}-") as tmp:
        for index in range(2):
            for method in spec.methods:  # the same round-robin order as prefstudy's loop
                params = TRIALS[method][index]
                seed = trial_seed(spec, index)  # prefstudy numbers trials per method: 0, 1
                t0 = time.perf_counter()
                times = run_trl_trial(spec, variant, method, params, seed, Path(tmp) / f"{method}-{index}")
                trials.append({"method": method, "number": index, "params": params, "seed": seed,
                               "wall": time.perf_counter() - t0, **times, "rss_mb": rss_mb()})
                print(f"[{variant}] {method} trial {index}: {trials[-1]['wall']:.1f}s "
                      + ", ".join(f"{k} {v:.1f}s" for k, v in times.items()), flush=True)
    passes = len(trials) if variant == "strong" else None
    return {"wall_s": time.perf_counter() - started, "trials": trials, "ref_logprob_passes": passes}


# --------------------------------------------------------------------------- one variant per process
def run_variant(variant: str, spec_path: str, overrides: list[str], out: Path) -> None:
    import torch

    from prefstudy.pipeline import _quiet_libraries, offline_if_local

    with tempfile.TemporaryDirectory(prefix="bench-runs-") as runs:
        spec = bench_spec(spec_path, runs, overrides)
        offline_if_local(spec)
        _quiet_libraries()
        torch.set_num_threads(spec.training.threads or os.cpu_count() or 1)
        result = run_prefstudy(spec) if variant == "prefstudy" else run_trl(spec, variant)
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
    return {"status": "not run: no CUDA GPU has run `python -m prefstudy.tools.gpubench --shape mistral-7b` yet, so "
                      "there are no tokens/s or peak GPU memory numbers for the 4-bit Mistral-7B shape"}


def summarize(results: dict[str, dict[str, Any]], spec_path: str, overrides: list[str]) -> dict[str, Any]:
    from prefstudy.core.rundir import versions

    ours = results["prefstudy"]
    trials = ours["trials"]
    inside = sum(t["train"] + t["evaluate"] + t["lm_eval"] for t in trials)
    wall = sum(t["wall"] for t in trials)
    rss = [t["rss_mb"] for t in trials]
    summary: dict[str, Any] = {
        "spec": spec_path, "overrides": overrides, "trials": {m: p for m, p in TRIALS.items()},
        "wall_s_prefstudy": round(ours["wall_s"], 2),
        "wall_s_naive": round(results["naive"]["wall_s"], 2) if "naive" in results else None,
        "wall_s_strong": round(results["strong"]["wall_s"], 2) if "strong" in results else None,
        "overhead_fraction": round((wall - inside) / wall, 4),
        "ref_logprob_passes": ours["ref_logprob_passes"],
        "rss_growth_fraction": round((rss[-1] - rss[0]) / rss[0], 4) if len(rss) > 1 else None,
        "rss_mb_after_each_trial": [round(r, 1) for r in rss],
        "phases": {name: {"once": r.get("phases", {}), "sum_over_trials": _phase_sums(r["trials"])}
                   for name, r in results.items()},
        "ref_logprob_passes_per_variant": {
            name: r["ref_logprob_passes"] if r["ref_logprob_passes"] is not None else "on the fly (every step)"
            for name, r in results.items()},
        "machine": {**machine(), "torch_threads": ours.get("torch_threads")},
        "versions": versions(),
        "gpu": gpu_note(),
        "raw": results,
    }
    for other in ("naive", "strong"):
        if summary[f"wall_s_{other}"]:
            summary[f"wall_ratio_vs_{other}"] = round(ours["wall_s"] / results[other]["wall_s"], 4)
    return summary


TARGETS = {"wall_ratio_vs_naive": ("<=", 0.6), "wall_ratio_vs_strong": ("<=", 0.85), "overhead_fraction": ("<=", 0.05),
           "ref_logprob_passes": ("==", 1), "rss_growth_fraction": ("<=", 0.10)}


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# prefstudy benchmark", "",
             f"Machine: {summary['machine']['cpu']}, {summary['machine']['cores']} cores, torch threads "
             f"{summary['machine']['torch_threads']}. Spec `{summary['spec']}` {' '.join(summary['overrides'])}; "
             "4 trials (2 DPO, 2 IPO), identical in every variant.", "",
             "| metric | value | target | met |", "| --- | --- | --- | --- |"]
    for key, (op, bound) in TARGETS.items():
        value = summary.get(key)
        met = None if value is None else (value <= bound if op == "<=" else value == bound)
        lines.append(f"| `{key}` | {value} | {op} {bound} | {'yes' if met else 'no' if met is False else '–'} |")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefstudy.tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="study/default.yaml")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides of the spec")
    parser.add_argument("--out", default="reports/bench")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rewrite", action="store_true", help="rebuild results.{json,md} from the raw-*.json files")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        run_variant(args.variant, args.spec, args.overrides, Path(args.result))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for variant in args.variants.split(","):
        if args.rewrite:
            results[variant] = json.loads((out / f"raw-{variant}.json").read_text())
            continue
        result = out / f"raw-{variant}.json"
        print(f"== {variant}", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "prefstudy.tools.bench", args.spec, *args.overrides, "--variant", variant,
                        "--result", str(result)], check=True)
        results[variant] = json.loads(result.read_text())
        print(f"== {variant}: {time.perf_counter() - started:.1f}s", flush=True)
    summary = summarize(results, args.spec, args.overrides)
    summary["pruning"] = pruning_savings(args.spec)
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "results.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
