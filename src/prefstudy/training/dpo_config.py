"""The DPOConfig a trial trains with, from the spec's training section and the trial's parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from trl import DPOConfig

from prefstudy.spec import MethodSpec, TrainingSpec
from prefstudy.training.dpo_settings import dpo_settings

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
    """The trial's ``DPOConfig``: the spec's mapping (``training.dpo_settings``), run for ``n_steps`` on this machine
    (a paged optimizer unpaged without CUDA), logging every step, never saving or evaluating inside TRL; ``extra``
    overrides (a stage's learning-rate schedule, TRL's own tracking integrations)."""
    cuda = torch.cuda.is_available()
    settings = dpo_settings(training, method.loss_type, params, seed)
    if not cuda and settings["optim"].startswith("paged_"):
        settings["optim"] = UNPAGED.get(settings["optim"], "adamw_torch")  # paged needs CUDA; same update unpaged
    settings.update({"report_to": [], **extra})
    return DPOConfig(
        output_dir=str(out_dir),
        max_steps=n_steps,
        use_cpu=not cuda,
        precompute_ref_log_probs=False,
        logging_nan_inf_filter=False,  # log a NaN/inf loss as it is (the default hides it): the trial stops on it
        eval_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **settings,
    )
