"""The DPOConfig a trial trains with: a fixed-design stage's learning rate held, then falling linearly to 0."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import get_scheduler

from prefstudy.spec import load_spec
from prefstudy.training.dpo_config import decay_schedule, dpo_config


def _lrs(settings: dict, n_steps: int, warmup: int = 0) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler(settings["lr_scheduler_type"], opt, num_warmup_steps=warmup, num_training_steps=n_steps,
                          scheduler_specific_kwargs=settings["lr_scheduler_kwargs"])
    out = []
    for _ in range(n_steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_the_rate_is_held_then_falls_linearly_to_zero_over_the_last_steps() -> None:
    # 12 steps, the last 4 decaying: steps 0..7 at 1; then 1, 3/4, 1/2, 1/4 (the rate used at each step)
    assert _lrs(decay_schedule(12, 4), 12) == pytest.approx([1.0] * 8 + [1.0, 0.75, 0.5, 0.25])


def test_a_warmup_comes_before_the_held_part() -> None:
    # 2 warmup steps (0, 1/2), 6 held, 2 decaying (1, 1/2)
    assert _lrs(decay_schedule(10, 2), 10, warmup=2) == pytest.approx([0.0, 0.5] + [1.0] * 6 + [1.0, 0.5])


@pytest.mark.parametrize("steps, decay", [(10, 0), (10, 11), (0, 0)])
def test_a_decay_outside_the_run_is_refused(steps: int, decay: int) -> None:
    with pytest.raises(ValueError, match="decay over"):
        decay_schedule(steps, decay)


def test_the_config_takes_the_schedule_instead_of_the_specs(tmp_path: Path) -> None:
    spec = load_spec("smoke")
    method = spec.methods["ipo"]
    plain = dpo_config(spec.training, method, {"beta": 0.5, "learning_rate": 1e-3}, tmp_path, 12, 0)
    assert plain.lr_scheduler_type.value == spec.training.lr_scheduler
    decayed = dpo_config(spec.training, method, {"beta": 0.5, "learning_rate": 1e-3}, tmp_path, 12, 0,
                         **decay_schedule(12, 6))
    assert decayed.lr_scheduler_type.value == "warmup_stable_decay"
    assert decayed.lr_scheduler_kwargs == {"num_decay_steps": 6, "decay_type": "linear"}


@pytest.mark.parametrize("name", ["smoke", "mistral7b_qlora"])
def test_the_export_writes_what_it_wrote_before_the_mapping_was_shared(name: str) -> None:
    """trl_dpo.yaml, byte for byte, as export wrote it before training and export shared training.dpo_settings."""
    import yaml

    from prefstudy.export import trl_dpo_config

    config = trl_dpo_config(load_spec(name), "ipo", {"beta": 0.25, "learning_rate": 3e-4}, 7,
                            Path("runs/x/data/train.jsonl"), "/models/base", "out/x")
    expected = (Path(__file__).parents[2] / "fixtures" / f"trl_dpo_{name}.yaml").read_text()
    assert yaml.safe_dump(config, sort_keys=False) == expected


def test_the_trainer_and_the_export_read_one_mapping(tmp_path: Path) -> None:
    from prefstudy.training.dpo_settings import dpo_settings

    spec = load_spec("mistral7b_qlora")
    settings = dpo_settings(spec.training, "ipo", {"beta": 0.25, "learning_rate": 3e-4}, 7)
    config = dpo_config(spec.training, spec.methods["ipo"], {"beta": 0.25, "learning_rate": 3e-4}, tmp_path, 10, 7)
    for key, value in settings.items():
        got = getattr(config, key)
        got = getattr(got, "value", got)  # enums (scheduler, optimizer, save strategy) compare by value
        if key == "optim":  # no CUDA here: the paged optimizer runs as its plain twin
            assert (value, got) == ("paged_adamw_32bit", "adamw_torch")
        else:
            assert got == value, key
