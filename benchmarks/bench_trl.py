"""The benchmark's TRL baselines (``nox -s bench``): the 'strong' and 'naive' loops a TRL user would write, timed
on the same trials as prefstudy (see benchmarks.bench). They import TRL directly: that is what they measure."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

#: the default spec's 4 benchmark trials: 2 per method, the enqueued published point and a second, hotter one
TRIALS = {"dpo": [{"beta": 0.1, "learning_rate": 5.0e-4}, {"beta": 0.3, "learning_rate": 1.0e-3}],
          "ipo": [{"beta": 0.5, "learning_rate": 5.0e-4}, {"beta": 1.0, "learning_rate": 1.0e-3}]}


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

    from prefstudy.training.trainer import eval_points, total_steps
    from prefstudy.training.trl_seams import DPOConfig, DPOTrainer  # TRL itself, through its one seam

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
    from prefstudy.search.stage_search import trial_seed

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


