"""What a worker process loads once and every trial shares: tokenizer, base model, reference cache, base scores."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from prefstudy.core.console import log
from prefstudy.data.sources import PreferenceSplits
from prefstudy.evaluation.heldout import Prepared
from prefstudy.spec import StudySpec, TrainingSpec

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class Inputs:
    """What preflight validated and loaded (``preflight.check_inputs``), handed to the worker of the same process so
    nothing is loaded twice: the data splits, and the tokenizer where preflight could read it from files without
    building or downloading a model (None: the worker loads it beside the model)."""

    splits: PreferenceSplits
    tokenizer: PreTrainedTokenizerBase | None = None

    def fingerprint(self) -> str:
        return self.splits.fingerprint()


@dataclass
class Worker:
    """Everything a worker process loads once and every trial shares (``training.trainer.TrialContext``)."""

    spec: StudySpec
    tokenizer: PreTrainedTokenizerBase
    base_model: PreTrainedModel
    prepared: Prepared
    storage_url: str
    log: Callable[[str], None] = log
    trial_label: str = ""
    lm_eval_manager: TaskManager | None = None  # resolved once
    lm_eval_base: dict[str, Any] | None = None  # the base model's lm-eval result (per-doc scores included)
    prefix_sharing: bool = False  # training.prefix_sharing resolved for this model (models.packed_forward)


def quiet_libraries() -> None:
    """Progress bars off where a library allows it; Optuna's and the experimental-API chatter off. Warnings and log
    records of the other libraries still reach the log file (or the terminal with --verbose)."""
    import datasets
    import optuna
    import transformers

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat, retry callback


def offline_if_local(spec: StudySpec, log: Callable[[str], None] | None = None) -> None:
    """Nothing to download (the embedded/tiny/local models, local data, prefstudy's own lm-eval tasks), or the hub
    unreachable: offline mode, so a missing file fails in seconds instead of after the hub client's retries (~40 s).
    Cached models and datasets still load. A variable the user set is left as it is."""
    from prefstudy.models.loading import hub_reachable, is_local_model

    needs_hub = (not is_local_model(spec.model.name_or_path) or spec.data.source == "hf"
                 or any(not t.name.startswith("prefstudy_") for t in spec.evaluation.lm_eval.tasks))
    if "HF_HUB_OFFLINE" not in os.environ and (not needs_hub or not hub_reachable()):
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        if needs_hub and log is not None:
            log("the Hugging Face hub is not reachable: offline mode, only cached models, datasets and tasks load")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _record_base(spec: StudySpec, prepared: Prepared, studies: dict[str, optuna.Study],
                 dropped: dict[str, int], splits_leakage: dict[str, int],
                 prompt_overlap: dict[str, int] | None = None) -> None:
    """The base model's preference accuracy per split and per data family, stored once per study."""
    from prefstudy.evaluation.heldout import base_metrics, family_accuracy, family_counts, metric_line

    base = base_metrics(prepared)
    for study in studies.values():
        if "base/val/accuracy" not in study.user_attrs:
            for split, values in base.items():
                for key, value in values.items():
                    study.set_user_attr(f"base/{split}/{key}", value)
            study.set_user_attr("data_fingerprint", prepared.fingerprint)
            study.set_user_attr("dropped", dropped)
            if splits_leakage:
                study.set_user_attr("data_leakage", splits_leakage)
            if prompt_overlap:
                study.set_user_attr("data_prompt_overlap", prompt_overlap)
    log("base model: " + metric_line(base, spec.evaluation.metric, list(base)))
    for split in prepared.ref:
        per_family = family_accuracy(prepared, split, None, spec.evaluation.metric)
        log(f"  {split} per family: " + ", ".join(f"{f} {a:.2f}" for f, a in per_family.items()))
        for study in studies.values():
            if f"base/{split}/family" not in study.user_attrs:
                study.set_user_attr(f"base/{split}/family", per_family)
                study.set_user_attr(f"base/{split}/family_n", family_counts(prepared, split))


def load_worker(spec: StudySpec, storage_url: str, studies: dict[str, optuna.Study],
                lm_eval_manager: TaskManager | None = None, with_lm_eval: bool = True,
                inputs: Inputs | None = None) -> Worker:
    """Load the tokenizer, the base model (once) and the reference cache; record the base metrics once. ``inputs``:
    what preflight already loaded in this process (the splits, the tokenizer), used as they are."""
    import torch

    from prefstudy.data.sources import load_splits
    from prefstudy.models.loading import load_base_model, load_tokenizer, resolve_model_path
    from prefstudy.models.packed_forward import resolve_prefix_sharing
    from prefstudy.training.refcache import model_identity, prepare

    torch.set_num_threads(spec.training.threads or max(1, os.cpu_count() or 1))
    splits = inputs.splits if inputs is not None else load_splits(spec.data)
    started = time.perf_counter()
    tokenizer = inputs.tokenizer if inputs is not None and inputs.tokenizer is not None else load_tokenizer(spec.model)
    model = load_base_model(spec.model, spec.training)
    sharing = resolve_prefix_sharing(spec.training.prefix_sharing, model)
    log(f"model {spec.model.name_or_path} loaded in {time.perf_counter() - started:.1f}s "
        f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {torch.get_num_threads()} threads, "
        f"prefix sharing {'on' if sharing else 'off'})")
    identity = model_identity(resolve_model_path(spec.model.name_or_path), spec.model.revision)
    prepared = prepare(
        spec.run_root() / "cache", model, tokenizer, splits.splits, spec.training, identity,
        spec.evaluation.batch_size, log=log, score_precision=spec.score_precision(),
    )
    dropped = {**splits.dropped, **{f"over_length/{k}": v for k, v in prepared.over_length.items() if v}}
    cut = {k: v for k, v in prepared.truncated.items() if v}
    log(_data_line(spec, splits, prepared, dropped, cut))
    check_truncation(spec, prepared, studies)
    data_dir = spec.run_root() / "data"
    if not (data_dir / "train.jsonl").exists():
        used_pairs(splits, tokenizer, spec.training, prepared.over_length, dropped).save(data_dir)
        if cut:
            from prefstudy.core.rundir import write_json

            write_json(data_dir / "truncated.json", {"truncation": spec.training.truncation,
                                                     "max_length": spec.training.max_length, "truncated": cut,
                                                     "identical_once_cut": prepared.identical})
    if not (data_dir / "lengths.json").exists():  # also for a study made before the diagnostics
        write_lengths(data_dir / "lengths.json", prepared)
    if splits.leakage:
        log(f"WARNING data.leakage=warn: training pairs also in held-out splits: {splits.leakage}")
    if splits.prompt_overlap:
        log(f"note: held-out pairs whose prompt is also a training prompt (other answers): {splits.prompt_overlap}; "
            "their accuracy may flatter generalization")
    _record_base(spec, prepared, studies, dropped, splits.leakage, splits.prompt_overlap)
    worker = Worker(spec=spec, tokenizer=tokenizer, base_model=model, prepared=prepared,
                    storage_url=storage_url, log=log, lm_eval_manager=lm_eval_manager, prefix_sharing=sharing)
    if spec.evaluation.lm_eval.tasks and with_lm_eval:
        worker.lm_eval_base = base_lm_eval(worker, studies)
    return worker


def _data_line(spec: StudySpec, splits: PreferenceSplits, prepared: Prepared, dropped: dict[str, int],
               cut: dict[str, int]) -> str:
    """The console's data line: pairs per split, what was dropped or cut for length, the reference pass."""
    line = f"data: {splits.sizes()} pairs" + (f", dropped {dropped}" if dropped else "")
    if cut:
        line += f", answers cut at training.max_length={spec.training.max_length} (keep_start, as TRL) in {cut}"
        identical = sum(prepared.identical.values())
        line += f", {identical} of them identical once cut" if identical else ""
    return line + (f"; reference pass {prepared.seconds:.1f}s" if prepared.computed
                   else "; reference log-probs from cache")


def used_pairs(splits: PreferenceSplits, tokenizer: PreTrainedTokenizerBase, training: TrainingSpec,
               over_length: dict[str, int], dropped: dict[str, int]) -> PreferenceSplits:
    """The pairs a study really uses: without those the reference pass dropped for length (found again by TRL's
    length rule, ``training.trl_seams.pair_length``, only where some were dropped), with every drop counted. Pairs
    cut under ``keep_start`` stay whole here: TRL cuts them the same way from the same ``max_length``."""
    kept = dict(splits.splits)
    if any(over_length.values()):
        from prefstudy.training.trl_seams import pair_length

        for name, count in over_length.items():
            if count:
                kept[name] = [r for r in splits.splits[name]
                              if pair_length(r, tokenizer, training.max_length, training.truncation) is None]
    return PreferenceSplits(kept, dict(dropped), dict(splits.leakage), dict(splits.prompt_overlap))


def write_lengths(path: Path, prepared: Prepared) -> None:
    """Per split, the answers' token counts as trained and the base model's summed log-probs of each pair: what the
    report's length diagnostics read (evaluation.lengths), with the pairs cut or dropped for length."""
    from prefstudy.core.rundir import write_json

    out: dict[str, Any] = {}
    for split, ref in prepared.ref.items():
        out[split] = {"chosen_tokens": [int(v) for v in ref["chosen_tokens"]],
                      "rejected_tokens": [int(v) for v in ref["rejected_tokens"]],
                      "base_chosen": [round(float(v), 5) for v in ref["chosen"]],
                      "base_rejected": [round(float(v), 5) for v in ref["rejected"]],
                      "truncated": int(prepared.truncated.get(split, 0)),
                      "dropped_for_length": int(prepared.over_length.get(split, 0))}
    write_json(path, out)


def check_truncation(spec: StudySpec, prepared: Prepared, studies: dict[str, optuna.Study]) -> None:
    """A study keeps the truncation rule it started with: recorded on its first run; a study made before the
    setting existed dropped long pairs. Resuming under the other rule is refused only where it changes the data
    (some pair is longer than max_length); otherwise the record is brought up to date."""
    from prefstudy.spec import SpecError

    mode = spec.training.truncation
    long_pairs = sum(prepared.over_length.values()) + sum(prepared.truncated.values())
    for study in studies.values():
        stored = study.user_attrs.get("truncation")  # set when the study is created (search.storage)
        if stored is None and all(t.state == optuna.trial.TrialState.WAITING for t in study.trials):
            study.set_user_attr("truncation", mode)  # nothing has run yet (enqueued settings only)
            continue
        stored = stored or "drop"
        if stored != mode and long_pairs:
            raise SpecError(f"study '{study.study_name}' ran with training.truncation={stored} and {long_pairs} "
                            f"pair(s) are longer than training.max_length={spec.training.max_length}: resume it "
                            f"with training.truncation={stored}, or give the study a new `name`")
        if study.user_attrs.get("truncation") != mode:
            study.set_user_attr("truncation", mode)


def base_lm_eval(worker: Worker, studies: dict[str, optuna.Study]) -> dict[str, Any]:
    """The base model's lm-eval result: computed once per study, then read from runs/<name>/base/lm_eval.json."""
    from prefstudy.core.rundir import write_json
    from prefstudy.evaluation.lm_eval_legacy import legacy_tasks_digest
    from prefstudy.evaluation.lmeval import LmEvalError, evaluate, flat_attrs, tasks_digest

    spec = worker.spec
    path = spec.run_root() / "base" / "lm_eval.json"
    if path.exists():
        stored: dict[str, Any] = json.loads(path.read_text())
        now = tasks_digest(spec.evaluation.lm_eval.tasks)
        if stored.get("tasks_digest") == legacy_tasks_digest(spec.evaluation.lm_eval.tasks):
            # scored before 2026-12-06's task layout (include: + group): the same documents and resolved configs
            # (evaluation.lm_eval_legacy), so the stored score stays; its file keeps its old digest
            log(f"lm-eval of the base model: reused {path} (tasks digest of the files before 2026-12-06)")
            return stored
        if stored.get("tasks_digest") != now:
            raise LmEvalError(
                f"{path} was scored on other lm-eval task files or settings (digest "
                f"{stored.get('tasks_digest', 'none')}, now {now}): this study's trials are not comparable with "
                "new scores. Give the study a new `name` (or delete its run directory and storage to start over)"
            )
        log(f"lm-eval of the base model: reused {path}")
        return stored
    started = time.perf_counter()
    result = evaluate(worker.base_model, worker.tokenizer, spec, spec.seed, worker.lm_eval_manager)
    write_json(path, result)
    for study in studies.values():
        for key, value in flat_attrs(result, prefix="lm_eval_base").items():
            study.set_user_attr(key, value)
    log(f"lm-eval of the base model in {time.perf_counter() - started:.1f}s: "
        + ", ".join(f"{name} {task['value']:.3f}" for name, task in result["tasks"].items()))
    return result


def keep_best_adapter(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
    """save_adapter: best -- delete the adapters of every trial but the method's current best."""
    from prefstudy.search.selection import best_trial

    best = best_trial(study)
    for trial in study.get_trials(deepcopy=False):
        folder = Path(trial.user_attrs.get("run_dir", "")) / "adapter"
        if trial.user_attrs.get("run_dir") and (best is None or trial.number != best.number) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
