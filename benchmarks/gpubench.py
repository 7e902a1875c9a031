"""QLoRA throughput and memory through prefstudy's own trial code, on a randomly initialised model.

On a CUDA machine: ``python -m benchmarks.gpubench`` builds a Mistral-7B-shaped model with random weights (nothing
to download), loads it in 4-bit NF4 through ``model.load_base_model`` exactly as a study does, and runs a few DPO
and IPO steps through ``training.trainer.train_trial`` at the recipe's batch size and max_length
(study/mistral7b_qlora.yaml), with prefix sharing off (TRL's own forward) and on (the packed forward, sdpa with a
4D mask). It writes tokens/s, step time and peak GPU memory per setting, with the card's name, to
``reports/bench/gpu.json``. Tokens are counted the way TRL runs a pair (prompt twice + both answers) in both
settings, so the tokens/s ratio is the speed-up.

On the CPU, ``--shape tiny`` runs the same code path on a tiny model (a check that the command works, not a
measurement); the output then says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

SHAPES: dict[str, dict[str, int]] = {
    "mistral-7b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, vocab_size=32000),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=32000),
}
FILLER = "The report lists each measured value beside the setting that produced it. "


def build_random_model(shape: str, folder: Path, device: str) -> None:
    """Save a seeded random MistralForCausalLM of ``shape`` (bf16 on CUDA) with the tiny test tokenizer."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from prefstudy.models.builtin import TINY, resolve_model_path

    tokenizer_dir = Path(resolve_model_path(TINY))
    config = MistralConfig(**SHAPES[shape], max_position_embeddings=4096, tie_word_embeddings=False)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = MistralForCausalLM(config).to(dtype)
    model.save_pretrained(folder)
    del model
    for item in tokenizer_dir.iterdir():
        if "token" in item.name or item.name.endswith(".jinja"):
            shutil.copy(item, folder / item.name)


def long_pairs(tokenizer: Any, n: int, max_length: int) -> list[dict[str, Any]]:
    """Pairs whose prompt fills the recipe's max_length (minus the answers), so steps run at full length."""
    from prefstudy.data import synthetic

    pairs = synthetic.generate(n, 0, 0, 0, seed=0)["train"]
    filler_tokens = len(tokenizer(FILLER)["input_ids"])
    repeats = max(1, (max_length - 64) // filler_tokens)
    return [
        {
            "id": p.id, "family": p.family,
            "prompt": [{"role": "user", "content": FILLER * repeats + p.question}],
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]


def run(shape: str, spec_path: str, steps: int, out: Path, batch_size: int | None, max_length: int | None,
        sharing: tuple[bool, ...] = (False, True)) -> dict:
    import torch

    from prefstudy.models.loading import load_base_model, load_tokenizer
    from prefstudy.search.worker import Worker
    from prefstudy.spec import load_spec
    from prefstudy.training.refcache import model_identity, prepare
    from prefstudy.training.trainer import train_trial

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    work = Path(tempfile.mkdtemp(prefix="prefstudy-gpubench-"))
    overrides = [f"training.max_steps={steps}", "training.num_epochs=null", f"evaluation.eval_steps={steps}",
                 "evaluation.val_subset=2", "evaluation.train_subset=2", "evaluation.batch_size=2",
                 "training.save_adapter=none", "evaluation.test_scoring=every", f"runs_dir={work / 'runs'}"]
    if batch_size:
        overrides.append(f"training.batch_size={batch_size}")
    if max_length:
        overrides.append(f"training.max_length={max_length}")
    if not cuda:
        overrides += ["training.precision=fp32", "training.gradient_checkpointing=false"]
    spec = load_spec(spec_path, overrides)
    training = spec.training
    try:
        build_random_model(shape, work / "model", device)
        model_spec = spec.model.model_copy(update={"name_or_path": str(work / "model"), "chat_template": None})
        tokenizer = load_tokenizer(model_spec)
        started = time.perf_counter()
        base = load_base_model(model_spec, training)
        load_seconds = time.perf_counter() - started
        n_pairs = training.batch_size * training.gradient_accumulation_steps * steps
        records = long_pairs(tokenizer, n_pairs + 4, training.max_length)
        splits = {"train": records[:n_pairs], "val": records[n_pairs : n_pairs + 2],
                  "test": records[n_pairs + 2 :]}
        prepared = prepare(work / "cache", base, tokenizer, splits, training,
                           model_identity(str(work / "model"), None), 2, log=lambda _: None)
        train_rows = prepared.tokenized["train"]
        pair_tokens = [2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in train_rows]
        pairs_per_step = training.batch_size * training.gradient_accumulation_steps
        tokens_per_step = sum(pair_tokens) / len(pair_tokens) * pairs_per_step
        worker = Worker(spec=spec, tokenizer=tokenizer, base_model=base, prepared=prepared, storage_url="none",
                        log=lambda _: None)
        results: dict[str, dict[str, Any]] = {}
        for on in sharing:
            worker.prefix_sharing = on
            mode = "on" if on else "off"
            results[mode] = {}
            for label, method in spec.methods.items():
                params = {"beta": method.beta.low, "learning_rate": spec.learning_rate.low}
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                outcome = train_trial(worker, method, params, 0, work / mode / label, lambda step, value: False)
                step_seconds = outcome.seconds["train"] / max(1, outcome.steps_done)
                results[mode][label] = {
                    "loss_type": method.loss_type, "steps": outcome.steps_done, "step_seconds": step_seconds,
                    "tokens_per_step": tokens_per_step, "tokens_per_s": tokens_per_step / step_seconds,
                    "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                }
        speedup = {label: results["off"][label]["step_seconds"] / results["on"][label]["step_seconds"]
                   for label in spec.methods} if {"off", "on"} <= set(results) else {}
        report = {
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "measurement": "real" if cuda and shape == "mistral-7b" else "code-path check only (not a measurement)",
            "shape": shape, "spec": spec_path, "batch_size": training.batch_size,
            "gradient_accumulation_steps": training.gradient_accumulation_steps,
            "max_length": training.max_length, "quantization": training.quantization,
            "precision": training.precision, "gradient_checkpointing": training.gradient_checkpointing,
            "lora_r": training.lora.r, "load_seconds": load_seconds, "prefix_sharing": results,
            "speedup_vs_trl": speedup,
            "torch": torch.__version__, "cuda": torch.version.cuda,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="mistral-7b")
    parser.add_argument("--spec", default="study/mistral7b_qlora.yaml")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None, help="override the spec's per-step batch")
    parser.add_argument("--max-length", type=int, default=None, help="override the spec's max_length")
    parser.add_argument("--prefix-sharing", choices=("both", "on", "off"), default="both",
                        help="time TRL's own forward (off), the packed one (on) or both (default)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/gpu.json"))
    args = parser.parse_args(argv)
    sharing = {"both": (False, True), "on": (True,), "off": (False,)}[args.prefix_sharing]
    report = run(args.shape, args.spec, args.steps, args.out, args.batch_size, args.max_length, sharing)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
