"""The one mapping from a spec's training section and a trial's parameters to TRL's ``DPOConfig`` keys.

The trainer builds its ``DPOConfig`` from it (``training.dpo_config``, which adds what only a run on this machine
decides: the device, logging, the output folder) and ``prefstudy export`` writes it into ``trl_dpo.yaml`` for TRL's
own ``trl dpo``, so a study's trial and its export cannot drift apart. No torch or TRL import: export stays light.
"""

from __future__ import annotations

from typing import Any

from prefstudy.spec import TrainingSpec


def dpo_settings(training: TrainingSpec, loss_type: str, params: dict[str, float], seed: int) -> dict[str, Any]:
    """``DPOConfig`` keyword arguments, in TRL's names, for one trial (the spec's optimizer as written: the trainer
    swaps a paged one for its plain twin on a machine without CUDA)."""
    t = training
    return {
        "loss_type": [loss_type], "beta": float(params["beta"]), "learning_rate": float(params["learning_rate"]),
        "per_device_train_batch_size": t.batch_size, "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "max_length": t.max_length, "lr_scheduler_type": t.lr_scheduler,
        "warmup_steps": t.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the steps
        "max_grad_norm": t.max_grad_norm, "optim": t.optimizer, "gradient_checkpointing": t.gradient_checkpointing,
        "bf16": t.precision == "bf16", "seed": seed, "data_seed": seed, "logging_steps": 1, "save_strategy": "no",
    }
