"""The benchmark's step measurement (``nox -s bench``, and alone ``nox -s bench -- --quick``).

One process, one model load, one reference pass. For each benchmark trial's method and parameters, the SAME
trainer (``training.trainer.build_trainer``), seeds and batches run twice, alternating: with TRL's own forward
(``prefix_sharing`` off) and with the packed prefix-shared one (on). Every whole optimizer step is timed, from
one step's end to the next (collation, forward, backward, clipping, optimizer, logging and callbacks all count);
the first ``WARMUP`` steps of each run are left out, the next ``TIMED`` are timed. Each run then scores the val
and test splits with the trained adapter attached, as a trial's eval steps do. FLOPs: ``benchmarks.flops`` (executed,
padding included); the machine's matmul peak is measured in the same process, with the spec's threads.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_trl import TRIALS
from benchmarks.flops import Shape, matmul_peak, model_shape, score_flops, train_flops

WARMUP = 2  # steps of each run left out of the step statistics (allocator and thread-pool warm-up)
TIMED = 12  # steps timed per run after the warm-up (trials are longer; this keeps the whole bench <= 60 min)


class _Recorder:
    """Wraps the trainer's collator: the executed FLOPs of every batch it hands out, in order."""

    def __init__(self, collator: Any, shape: Shape, checkpointing: bool) -> None:
        self.collator, self.shape, self.checkpointing = collator, shape, checkpointing
        self.flops: list[float] = []

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        self.flops.append(train_flops(self.shape, batch, self.checkpointing))
        return batch


def _timer() -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            self.ends = [time.perf_counter()]

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.ends.append(time.perf_counter())

    return StepTimer()


def _one_run(worker: Any, method: str, params: dict[str, float], seed: int, sharing: bool, shape: Shape,
             n_steps: int, one_pair_per_row: bool = False) -> dict[str, Any]:
    from prefstudy.evaluation.logprobs import sequence_logps
    from prefstudy.training.trainer import attach_adapter, build_trainer, remove_adapter

    spec = worker.spec
    timer = _timer()
    peft_model = attach_adapter(worker.base_model, spec.training, seed)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-steps-") as folder:
            trainer = build_trainer(worker, peft_model, spec.methods[method], params, seed, Path(folder), n_steps,
                                    [timer], prefix_sharing=sharing)
            collator = trainer.data_collator
            if one_pair_per_row:  # the layout not kept: right-padded rows of one pair each
                from prefstudy.training.trl_seams import PackedPreferenceCollator

                collator = PackedPreferenceCollator(worker.tokenizer.pad_token_id, spec.training.max_length,
                                                    row_tokens=0, sliding_window=collator.sliding_window)
            recorder = _Recorder(collator, shape, spec.training.gradient_checkpointing)
            trainer.data_collator = recorder
            trainer.train()
        steps = [b - a for a, b in zip(timer.ends, timer.ends[1:], strict=False)]
        per_step = spec.training.gradient_accumulation_steps
        flops = [sum(recorder.flops[i * per_step:(i + 1) * per_step]) for i in range(len(steps))]
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        scoring: dict[str, Any] = {}
        for split in ("val", "test"):
            dataset = worker.prepared.tokenized[split]
            started = time.perf_counter()
            sequence_logps(peft_model, dataset, worker.tokenizer.pad_token_id, spec.evaluation.batch_size,
                           spec.training.precision, spec.training.max_length)
            seconds = time.perf_counter() - started
            prompts = [list(p) for p in dataset["prompt_ids"]]
            scoring[split] = {"pairs": len(dataset), "seconds": round(seconds, 3), "flops": score_flops(
                shape, prompts, list(dataset["chosen_ids"]), list(dataset["rejected_ids"]),
                spec.evaluation.batch_size, spec.training.max_length)}
    finally:
        remove_adapter(peft_model)
    kept = steps[WARMUP:]
    return {"method": method, "params": params, "seed": seed, "prefix_sharing": sharing,
            "layout": "one pair per row" if one_pair_per_row else "shared rows" if sharing else "TRL",
            "step_s": [round(s, 4) for s in steps], "step_flops": flops,
            "mean_step_s": statistics.fmean(kept), "median_step_s": statistics.median(kept),
            "mean_step_flops": statistics.fmean(flops[WARMUP:]), "losses": losses, "scoring": scoring}


def run_steps(spec: Any, repeats: int = 2) -> dict[str, Any]:
    """The step and scoring measurements for ``spec`` (the benchmark spec), ``repeats`` x (DPO, IPO) x (off, on)."""
    import torch

    from prefstudy.search.worker import load_worker
    from prefstudy.training.trainer import total_steps

    worker = load_worker(spec, "", {}, None, with_lm_eval=False)
    training = spec.training
    shape = model_shape(worker.base_model, training.lora.r, training.lora.target_modules)
    threads = torch.get_num_threads()
    dtype = torch.bfloat16 if training.precision == "bf16" else torch.float32
    intermediate = max(getattr(worker.base_model.config, "intermediate_size", shape.hidden), shape.hidden)
    peaks = matmul_peak(threads, dtype, shapes=((2048, 2048, 2048), (256, shape.hidden, intermediate)))
    n_steps = min(total_steps(training, len(worker.prepared.tokenized["train"])), WARMUP + TIMED)
    runs = []
    for repeat in range(repeats):
        for method in spec.methods:
            params = TRIALS[method][0] if method in TRIALS else {"beta": 0.1, "learning_rate": 5e-4}
            for sharing in ((False, True) if repeat % 2 == 0 else (True, False)):
                worker.log(f"bench steps: {method} {'packed' if sharing else 'TRL forward'} (repeat {repeat + 1})")
                runs.append(_one_run(worker, method, params, 1000 + repeat, sharing, shape, n_steps))
            if repeat == 0:  # the packing layout not kept, measured once per method
                worker.log(f"bench steps: {method} packed, one pair per row")
                runs.append(_one_run(worker, method, params, 1000, True, shape, n_steps, one_pair_per_row=True))
    return {"runs": runs, "matmul_gflops": peaks, "shape": shape.__dict__, "threads": threads,
            "n_steps": n_steps, "warmup_steps_left_out": WARMUP}


def summarize_steps(raw: dict[str, Any]) -> dict[str, Any]:
    """The benchmark keys: step times, the speed-up over TRL's forward, and both phases' share of the peak."""
    peak = max(raw["matmul_gflops"].values())
    runs = raw["runs"]
    trl = [r for r in runs if r["layout"] == "TRL"]
    ours = [r for r in runs if r["layout"] == "shared rows"]
    single = [r for r in runs if r["layout"] == "one pair per row"]
    step_trl = statistics.fmean(r["mean_step_s"] for r in trl)
    step_ours = statistics.fmean(r["mean_step_s"] for r in ours)
    train_gflops = statistics.fmean(r["mean_step_flops"] / r["mean_step_s"] for r in ours) / 1e9
    train_gflops_trl = statistics.fmean(r["mean_step_flops"] / r["mean_step_s"] for r in trl) / 1e9
    score = [s for r in ours for s in r["scoring"].values()]
    score_gflops = sum(s["flops"] for s in score) / sum(s["seconds"] for s in score) / 1e9
    worst = max(abs(a - b) for r_off, r_on in _pairs(trl, ours) for a, b in zip(r_off["losses"], r_on["losses"],
                                                                              strict=True))
    return {
        "matmul_peak_gflops": peak, "matmul_gflops": raw["matmul_gflops"],
        "train_step_s_trl": round(step_trl, 4), "train_step_s": round(step_ours, 4),
        "train_speedup_vs_trl": round(step_trl / step_ours, 3),
        "train_step_s_one_pair_per_row": round(statistics.fmean(r["mean_step_s"] for r in single), 4)
        if single else None,
        "train_gflops": round(train_gflops, 1), "train_gflops_trl": round(train_gflops_trl, 1),
        "train_peak_fraction": round(train_gflops / peak, 3),
        "train_peak_fraction_trl": round(train_gflops_trl / peak, 3),
        "score_gflops": round(score_gflops, 1), "score_peak_fraction": round(score_gflops / peak, 3),
        "train_flops_per_step": round(statistics.fmean(r["mean_step_flops"] for r in ours)),
        "train_flops_per_step_trl": round(statistics.fmean(r["mean_step_flops"] for r in trl)),
        "loss_max_abs_difference_trl_vs_packed": worst,
        "steps_timed_per_run": raw["n_steps"] - raw["warmup_steps_left_out"],
        "runs_per_mode": len(ours),
    }


def _pairs(trl: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Runs of the two modes on the same method and seed."""
    key = {(r["method"], r["seed"]): r for r in ours}
    return [(r, key[(r["method"], r["seed"])]) for r in trl if (r["method"], r["seed"]) in key]
