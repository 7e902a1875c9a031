"""The DPOConfig a trial trains with, from the spec's training section and the trial's parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from trl import DPOConfig

from prefstudy.spec import MethodSpec, TrainingSpec

# Paged optimizers page their state to CPU memory under GPU pressure; on the CPU their plain twins do the same update.
UNPAGED = {"paged_adamw_32bit": "adamw_torch", "paged_adamw": "adamw_torch", "paged_adamw_8bit": "adamw_bnb_8bit",
           "paged_lion_32bit": "lion_32bit", "paged_lion_8bit": "lion_8bit"}


def decay_schedule(n_steps: int, decay_steps: int) -> dict[str, Any]:
    """DPOConfig settings for a learning rate held constant, then falling linearly to 0 over the last
    ``decay_steps`` of ``n_steps`` (transformers' warmup-stable-decay schedule; the spec's warmup still applies).
    A fixed-design stage uses it so that its last eval points read where the optimiser settles, not its noise."""
    if not 0 < decay_steps <= n_steps:
        raise ValueError(f"decay over {decay_steps} of {n_steps} steps: need 0 < decay steps <= steps")
    return {"lr_scheduler_type": "warmup_stable_decay",
            "lr_scheduler_kwargs": {"num_decay_steps": decay_steps, "decay_type": "linear"}}


def dpo_config(training: TrainingSpec, method: MethodSpec, params: dict[str, float], out_dir: Path, n_steps: int,
               seed: int, **extra: Any) -> DPOConfig:
    cuda = torch.cuda.is_available()
    optimizer = training.optimizer
    if not cuda and optimizer.startswith("paged_"):
        optimizer = UNPAGED.get(optimizer, "adamw_torch")  # paged optimizers need CUDA; same update rule unpaged
    settings: dict[str, Any] = {"lr_scheduler_type": training.lr_scheduler, **extra}
    return DPOConfig(
        output_dir=str(out_dir),
        beta=params["beta"],
        learning_rate=params["learning_rate"],
        loss_type=[method.loss_type],
        per_device_train_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        max_steps=n_steps,
        max_length=training.max_length,
        warmup_steps=training.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the steps
        max_grad_norm=training.max_grad_norm,
        optim=optimizer,
        gradient_checkpointing=training.gradient_checkpointing,
        bf16=training.precision == "bf16",
        use_cpu=not cuda,
        precompute_ref_log_probs=False,
        logging_steps=1,
        logging_nan_inf_filter=False,  # log a NaN/inf loss as it is (the default hides it): the trial stops on it
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        **{"report_to": [], **settings},  # report_to: TRL's own integrations (tracking.trial); a stage's schedule
    )
