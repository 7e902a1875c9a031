"""One trial's training: a fresh, seeded LoRA adapter on the shared base model, trained with TRL's DPOTrainer reading
the cached reference log-probs, scored on our own held-out metrics at each eval step, and removed again in
``finally`` so a failed trial leaves no LoRA layers behind."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from transformers import PrinterCallback, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prefstudy.core.rundir import append_jsonl
from prefstudy.evaluation.heldout import Arrays, Prepared, curve_metrics, metric_line, score_splits
from prefstudy.models.merged_adapter import merged_adapter
from prefstudy.models.packed_forward import sliding_window_of
from prefstudy.spec import MethodSpec, StudySpec, TrainingSpec
from prefstudy.tracking.trial import report_to
from prefstudy.training.adapter_check import check_adapter_applied
from prefstudy.training.dpo_config import decay_schedule, dpo_config
from prefstudy.training.faults import NonFiniteLoss
from prefstudy.training.preference_copies import Copies, expand
from prefstudy.training.trl_seams import CachedRefDPOTrainer, PackedPreferenceCollator, remove_fused_head_patch

# Called with (step, val objective value) -> True when the trial should stop (pruned).
Reporter = Callable[[int, float], bool]
# Called at every eval point (step 0 too, with arrays None: the base model) with (model, step, the scored splits'
# per-pair arrays); what it returns joins that point's curves.jsonl row. A fixed-design stage's extra measurements.
Probe = Callable[[Any, int, "dict[str, Arrays] | None"], dict[str, Any]]


@dataclass(frozen=True)
class Schedule:
    """A run's length and eval points when they are not the search's (a fixed-design stage): every point scores the
    same first ``val_pairs`` val pairs; train pairs (``evaluation.train_subset``), the first ``test_pairs`` test
    pairs and the first ``profile_pairs`` of the profile split only at the last. ``train_every_point``: every
    training instance at every point instead. ``copies``: the
    run trains on copies of its instances, some flipped (training.preference_copies), not on the split as it is.
    ``decay_steps``: the learning rate falls linearly to 0 over the run's last ``decay_steps`` (0: the spec's
    scheduler)."""

    n_steps: int
    points: tuple[int, ...]
    val_pairs: int
    test_pairs: int = 0
    train_every_point: bool = False
    copies: Copies | None = None
    decay_steps: int = 0
    profile_pairs: int = 0

    @classmethod
    def even(cls, n_steps: int, n_points: int, val_pairs: int, train_every_point: bool = False,
             copies: Copies | None = None, decay_steps: int = 0) -> Schedule:
        """At least ``n_points`` eval points evenly spaced up to ``n_steps`` (the last at ``n_steps``)."""
        every = max(1, n_steps // n_points)
        return cls(n_steps, tuple(eval_points(n_steps, every)), val_pairs, 0, train_every_point, copies, decay_steps)


class TrialContext(Protocol):
    """What a trial needs from its worker process: loaded once, shared by every trial (search.worker.Worker)."""

    @property
    def spec(self) -> StudySpec: ...
    @property
    def tokenizer(self) -> PreTrainedTokenizerBase: ...
    @property
    def base_model(self) -> PreTrainedModel: ...
    @property
    def prepared(self) -> Prepared: ...
    @property
    def trial_label(self) -> str: ...
    @property
    def log(self) -> Callable[[str], None]: ...
    @property
    def prefix_sharing(self) -> bool: ...


@dataclass
class TrialOutcome:
    final: dict[str, dict[str, float]] = field(default_factory=dict)
    arrays: dict[str, Arrays] = field(default_factory=dict)
    pruned_at: int | None = None
    steps_done: int = 0
    clipped_fraction: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    extra: Any = None


def total_steps(training: TrainingSpec, n_train: int) -> int:
    if training.max_steps is not None or training.num_epochs is None:  # the spec sets exactly one of the two
        return int(training.max_steps or 1)
    per_epoch = math.ceil(n_train / (training.batch_size * training.gradient_accumulation_steps))
    return max(1, math.ceil(per_epoch * training.num_epochs))


def eval_points(n_steps: int, eval_steps: int) -> list[int]:
    points = list(range(eval_steps, n_steps, eval_steps))
    return points + [n_steps]


class _Evaluator:
    """TrainerCallback body: our metrics at each eval step, curves.jsonl, report/prune, timings."""

    def __init__(self, ctx: TrialContext, prepared: Prepared, run_dir: Path, reporter: Reporter, n_steps: int,
                 final_only: bool = False, schedule: Schedule | None = None, probe: Probe | None = None) -> None:
        self.ctx, self.prepared, self.run_dir, self.reporter = ctx, prepared, run_dir, reporter
        self.schedule, self.probe = schedule, probe
        if schedule is not None:
            self.points = set(schedule.points)
        else:
            self.points = {n_steps} if final_only else set(eval_points(n_steps, ctx.spec.evaluation.eval_steps))
        self.final_only = final_only
        self.n_steps = n_steps
        self.outcome = TrialOutcome()
        self.eval_seconds = 0.0
        self.step_started = time.perf_counter()
        self.train_seconds = 0.0
        self.adapter_checked = False

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                      model: torch.nn.Module | None = None, **_: Any) -> None:
        if state.global_step == 0 and "val" in self.prepared.ref and not (self.run_dir / "curves.jsonl").exists():
            # step 0 is the base model (the adapter starts at zero): its curve values come free from the cache
            evaluation = self.ctx.spec.evaluation
            n = self.schedule.val_pairs if self.schedule is not None else evaluation.val_subset
            extra = self.probe(model, 0, None) if self.probe is not None else {}
            append_jsonl(self.run_dir / "curves.jsonl", {
                "step": 0, "final": False, "base": True,
                **curve_metrics(self.prepared.ref["val"], evaluation.metric, n), **extra})
        self.step_started = time.perf_counter()

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **_: Any) -> None:
        """TRL's per-step log (loss, grad norm, rewards/*, logps/*) to trainer_log.jsonl; stop at the first
        NaN/infinite training loss instead of training on garbage until the next eval."""
        loss = (logs or {}).get("loss")
        if logs and loss is not None:
            append_jsonl(self.run_dir / "trainer_log.jsonl", {"step": state.global_step, **logs})
        if isinstance(loss, (int, float)) and not math.isfinite(loss):
            raise NonFiniteLoss(f"training loss is {loss} at step {state.global_step}")

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    model: torch.nn.Module | None = None, **_: Any) -> None:
        self.train_seconds += time.perf_counter() - self.step_started
        step = state.global_step
        self.outcome.steps_done = step
        if step not in self.points:
            return
        started = time.perf_counter()
        final = step == self.n_steps
        evaluation = self.ctx.spec.evaluation
        if self.schedule is not None:  # a fixed design: the same val pairs at every point, train at the last
            every = self.schedule.train_every_point  # or every training instance at every point
            subsets = {"val": self.schedule.val_pairs, "train": None if every else evaluation.train_subset,
                       "test": self.schedule.test_pairs, "profile": self.schedule.profile_pairs}
            names = (["val", "train"] + (["test"] if self.schedule.test_pairs else [])
                     + (["profile"] if self.schedule.profile_pairs else [])) if final else (
                ["val", "train"] if every else ["val"])
        else:
            subsets = {"train": evaluation.train_subset} if final else {
                "val": evaluation.val_subset, "train": evaluation.train_subset}
            held_out = final and (self.final_only or evaluation.test_scoring == "every")  # else: chosen trial only
            names = ["val", "train"] + (["test", "ood"] if held_out else [])
        logs = [entry for entry in state.log_history if "loss" in entry]
        loss = logs[-1]["loss"] if logs else float("nan")
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"training loss is {loss} at step {step}")
        if not self.adapter_checked:  # before the first scoring: the numbers must be the adapter's
            check_adapter_applied(model, self.ctx.spec, self.ctx.tokenizer.pad_token_id, self.prepared)
            self.adapter_checked = True
        try:
            with merged_adapter(model):  # one matmul per layer instead of three (the weights come back as they were)
                metrics, arrays = score_splits(model, self.ctx.spec, self.ctx.tokenizer.pad_token_id, self.prepared,
                                               names, subsets)
        except ValueError as exc:  # NaN log-probs: the weights diverged in this very step
            if "NaN" not in str(exc):
                raise
            raise NonFiniteLoss(f"held-out log-probs are NaN at step {step}: the weights diverged") from None
        if final and self.schedule is None:
            generated = self._generation(model)
            if generated:
                metrics["val"].update(generated)
        extra = self.probe(model, step, arrays) if self.probe is not None else {}
        norms = [entry["grad_norm"] for entry in logs if "grad_norm" in entry]
        clipped = sum(1 for n in norms if n > self.ctx.spec.training.max_grad_norm) / max(1, len(norms))
        self.eval_seconds += time.perf_counter() - started
        objective = metrics["val"][evaluation.metric]
        row = {
            "step": step, "epoch": state.epoch, "loss": loss, "grad_norm": norms[-1] if norms else None,
            "clipped_fraction": clipped, "final": final, "objective": objective,
            "train_seconds": round(self.train_seconds, 3), "eval_seconds": round(self.eval_seconds, 3),
            **{f"{split}/{key}": value for split, values in metrics.items() for key, value in values.items()},
            **curve_metrics(arrays["val"], evaluation.metric,
                            self.schedule.val_pairs if self.schedule is not None else evaluation.val_subset),
            **extra,
        }
        append_jsonl(self.run_dir / "curves.jsonl", row)
        self.ctx.log(
            f"  trial {self.ctx.trial_label} step {step:>3}/{self.n_steps} loss {loss:8.4f} "
            + metric_line(metrics, evaluation.metric, ("val", "train", "test"))
            + (f" generation acc {row['val/generation_accuracy']:.3f}" if "val/generation_accuracy" in row else "")
        )
        self.outcome.clipped_fraction = clipped
        if final:
            self.outcome.final, self.outcome.arrays = metrics, arrays
        elif self.reporter(step, objective):
            self.outcome.pruned_at = step
            control.should_training_stop = True


    def _generation(self, model: Any) -> dict[str, float] | None:
        """Generation accuracy on the first evaluation.generation.pairs val prompts (search trials' last point)."""
        from prefstudy.evaluation.generation import generation_metrics

        spec = self.ctx.spec
        gen = spec.evaluation.generation
        if gen.pairs <= 0 or "val" not in self.prepared.tokenized:
            return None
        started = time.perf_counter()
        out = generation_metrics(model, self.ctx.tokenizer, self.prepared.tokenized["val"], gen.pairs,
                                 gen.max_new_tokens, gen.batch_size, gen.resolved_scorer(spec.data.source))
        self.eval_seconds += time.perf_counter() - started
        return out[0] if out else None


class EvalCallback(TrainerCallback):
    """The trainer's hooks, handed to the trial's evaluator (step begin and end, TRL's log dicts)."""

    def __init__(self, evaluator: _Evaluator) -> None:
        self.evaluator = evaluator

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return self.evaluator.on_step_begin(args, state, control, **kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return self.evaluator.on_step_end(args, state, control, **kwargs)

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return self.evaluator.on_log(args, state, control, **kwargs)


def packed_collator(ctx: TrialContext) -> PackedPreferenceCollator:
    """The prefix-shared batches (models.packed_forward): rows of up to twice ``max_length`` tokens keep attention's
    share of the work near TRL's own while a default batch of short pairs fits one row."""
    max_length = ctx.spec.training.max_length
    return PackedPreferenceCollator(ctx.tokenizer.pad_token_id, max_length, row_tokens=2 * max_length,
                                    sliding_window=sliding_window_of(ctx.base_model))


def attach_adapter(base_model: Any, training: TrainingSpec, seed: int) -> Any:
    """A fresh LoRA adapter on the shared base model, its init seeded by the trial's seed."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=training.lora.r, lora_alpha=training.lora.alpha, lora_dropout=training.lora.dropout,
        target_modules=list(training.lora.target_modules), task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)  # the LoRA init
    return get_peft_model(base_model, lora)


def build_trainer(ctx: TrialContext, peft_model: Any, method: MethodSpec, params: dict[str, float], seed: int,
                  run_dir: Path, n_steps: int, callbacks: list[TrainerCallback],
                  prefix_sharing: bool | None = None, copies: Copies | None = None,
                  **config_extra: Any) -> CachedRefDPOTrainer:
    """The trial's trainer on ``peft_model``: TRL's DPOTrainer reading the cached reference, with the packed
    prefix-shared forward when ``prefix_sharing`` (default: the worker's resolved setting), on ``copies`` of the
    training instances when given (training.preference_copies)."""
    sharing = ctx.prefix_sharing if prefix_sharing is None else prefix_sharing
    config = dpo_config(ctx.spec.training, method, params, run_dir / "trainer", n_steps, seed, **config_extra)
    train, group = ctx.prepared.tokenized["train"], None
    if copies is not None and (copies.copies > 1 or copies.p < 1):
        train = expand(train, copies.p, copies.copies)
        group = copies.copies if copies.together and copies.copies > 1 else None
    trainer = CachedRefDPOTrainer(
        model=peft_model, args=config, train_dataset=train, processing_class=ctx.tokenizer, callbacks=callbacks,
        data_collator=packed_collator(ctx) if sharing else None, group_size=group,
    )
    trainer.remove_callback(PrinterCallback)  # our own line per eval step replaces its raw log dicts
    return trainer


def train_trial(
    ctx: TrialContext, method: MethodSpec, params: dict[str, float], seed: int, run_dir: Path, reporter: Reporter,
    after_training: Callable[[Any], Any] | None = None, final_only: bool = False,
    schedule: Schedule | None = None, probe: Probe | None = None, trackers: Any = None,
) -> TrialOutcome:
    """Train one adapter on ``ctx.base_model``; the base model is left exactly as it was.

    ``after_training(peft_model)`` runs on the trained, still-attached adapter of a trial that was not pruned
    (lm-eval); its result lands in ``outcome.extra``. ``final_only`` scores the held-out splits at the last step
    only (confirmation runs: nothing to prune, the search already recorded the dynamics). ``schedule`` replaces the
    spec's length and eval points (a fixed-design stage); ``probe`` adds measurements at every eval point.
    ``trackers`` (tracking.trial.TrialTracker) mirrors the per-step log and the eval points while it trains.
    """
    prepared: Prepared = ctx.prepared
    training = ctx.spec.training
    n_steps = schedule.n_steps if schedule is not None else total_steps(training, len(prepared.tokenized["train"]))
    evaluator = _Evaluator(ctx, prepared, run_dir, reporter, n_steps, final_only, schedule, probe)
    peft_model = attach_adapter(ctx.base_model, training, seed)
    trainer = None
    try:
        callbacks = [EvalCallback(evaluator)] + ([trackers.callback()] if trackers is not None else [])
        extra = report_to(ctx.spec, run_dir, f"{ctx.spec.name}/{ctx.trial_label}")  # TRL's own integrations
        if schedule is not None and schedule.decay_steps:
            extra.update(decay_schedule(n_steps, schedule.decay_steps))
        trainer = build_trainer(ctx, peft_model, method, params, seed, run_dir, n_steps, callbacks,
                                copies=schedule.copies if schedule is not None else None, **extra)
        started = time.perf_counter()
        trainer.train()
        evaluator.outcome.seconds = {
            "train": evaluator.train_seconds, "evaluate": evaluator.eval_seconds,
            "total": time.perf_counter() - started,
        }
        if evaluator.outcome.pruned_at is None:
            if training.save_adapter in ("all", "best"):  # "best" adapters are pruned away by the study later
                peft_model.save_pretrained(str(run_dir / "adapter"))
            if after_training is not None:
                started = time.perf_counter()
                evaluator.outcome.extra = after_training(peft_model)
                evaluator.outcome.seconds["lm_eval"] = time.perf_counter() - started
        return evaluator.outcome
    finally:
        del trainer
        remove_adapter(peft_model)


def remove_adapter(peft_model: Any) -> None:
    """Take the LoRA layers and TRL's fused-head patch off the shared base model, frozen again."""
    base = peft_model.unload()
    remove_fused_head_patch(base)
    for param in base.parameters():
        param.requires_grad_(False)
