"""lm-evaluation-harness on the in-memory model: the base once per study, every trained adapter once per trial.

The trial's peft model is handed to ``HFLM(pretrained=<model object>)`` directly -- no merge, no reload (``peft=`` is
silently ignored when ``pretrained`` is an object, so it is never passed). The project's own tasks ship with the
package (``evaluation/lm_eval_tasks/``, data files named relative to each YAML) and resolve through
``TaskManager(include_path=...)`` over a copy whose data files are absolute paths (:func:`materialize`), so they work
from any folder; built-in tasks (arc_challenge, hellaswag, ...) are checked before the first trial, so an
unreachable dataset fails in seconds, not after training.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import hashlib
import json
import shutil
import tempfile
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from prefstudy.core.paths import TASKS_DIR
from prefstudy.evaluation import metrics
from prefstudy.evaluation.lmeval_seams import model_logits, no_env_probe, resolved_config
from prefstudy.models.merged_adapter import merged_adapter
from prefstudy.spec import LmEvalTask, StudySpec

if TYPE_CHECKING:
    import torch
    from lm_eval.tasks import TaskManager
    from transformers import PreTrainedTokenizerBase


class LmEvalError(ValueError):
    """A task named in the spec is unknown or its dataset cannot be reached."""


@functools.cache
def materialize(tasks_dir: Path = TASKS_DIR) -> Path:
    """A private :func:`export_tasks` copy for this process (removed when it ends)."""
    out = Path(tempfile.mkdtemp(prefix="prefstudy-lm-eval-tasks-"))
    atexit.register(shutil.rmtree, out, True)
    return export_tasks(out, tasks_dir)


def export_tasks(out: Path, tasks_dir: Path = TASKS_DIR) -> Path:
    """Copy the task files under ``tasks_dir`` (each task's YAML, the shared template it includes, the group file) to
    ``out`` with every ``dataset_kwargs.data_files`` made absolute (lm-eval reads relative ones against the current
    folder): ``lm_eval --include_path OUT`` then works anywhere. ``include:`` paths stay relative: the layout is
    kept."""
    for source in sorted([*tasks_dir.glob("*.yaml"), *tasks_dir.glob("*/*.yaml")]):
        target = out / source.relative_to(tasks_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(source.read_text(encoding="utf-8"))
        files = (config.get("dataset_kwargs") or {}).get("data_files") if isinstance(config, dict) else None
        if isinstance(files, dict):
            for split, name in files.items():
                if isinstance(name, str) and not Path(name).is_absolute():
                    files[split] = str((source.parent / name).resolve())
        target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out


def local_tasks(tasks_dir: Path = TASKS_DIR) -> dict[str, Path]:
    """The project's own tasks: name -> its YAML file (one folder per task)."""
    return {path.stem: path for path in sorted(tasks_dir.glob("*/*.yaml"))} if tasks_dir.is_dir() else {}


def task_manager(tasks: tuple[LmEvalTask, ...], tasks_dir: Path = TASKS_DIR) -> TaskManager:
    from lm_eval.tasks import TaskManager

    local = local_tasks(tasks_dir)
    builtin = any(task.name not in local for task in tasks)
    return TaskManager(include_path=str(materialize(tasks_dir)) if local else None, include_defaults=builtin)


def _dataset_of(manager: TaskManager, name: str) -> str:
    """The task's dataset_path, its ``include:`` files followed by lm-eval's loader (for the error message)."""
    path = getattr(manager.task_index.get(name), "yaml_path", None)
    try:
        cfg = resolved_config(path) if path is not None else {}
    except (OSError, ValueError, yaml.YAMLError):
        cfg = {}
    return str(cfg.get("dataset_path") or "its dataset")


def validate_tasks(tasks: tuple[LmEvalTask, ...], tasks_dir: Path = TASKS_DIR) -> TaskManager | None:
    """Resolve every task and load its documents now; raise LmEvalError naming the task and dataset."""
    if not tasks:
        return None
    from lm_eval.tasks import get_task_dict

    manager = task_manager(tasks, tasks_dir)
    for task in tasks:
        if task.name not in manager.all_tasks:
            raise LmEvalError(
                f"lm-eval task '{task.name}' is unknown: not among prefstudy's own tasks "
                f"({', '.join(local_tasks(tasks_dir))}) nor lm-eval's built-in ones"
            )
        try:
            get_task_dict([task.name], manager)
        except Exception as exc:  # noqa: BLE001 - datasets/hub raise many types
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise LmEvalError(
                f"lm-eval task '{task.name}': dataset '{_dataset_of(manager, task.name)}' could not be loaded "
                f"({type(exc).__name__}: {first[:200]}). Offline? Download it into the Hugging Face cache on a "
                f"machine with network, or remove the task from evaluation.lm_eval.tasks"
            ) from None
    return manager


def _metric_key(results: dict[str, Any], metric: str) -> str:
    keys = [k for k in results if k.split(",")[0] == metric and not k.endswith("_stderr")]
    if not keys:
        raise LmEvalError(f"metric '{metric}' not in lm-eval results ({sorted(results)})")
    return sorted(keys)[0]


def evaluate(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, spec: StudySpec, seed: int,
             manager: TaskManager | None) -> dict[str, Any]:
    """Score ``model`` on every task of ``spec.evaluation.lm_eval``; per task: value, stderr, per-doc scores."""
    import torch
    from lm_eval.models.huggingface import HFLM

    lm_spec = spec.evaluation.lm_eval
    device = "cuda" if torch.cuda.is_available() else "cpu"
    was_training = model.training
    model.eval()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=lm_spec.batch_size, device=device)
    adapter = hasattr(model, "disable_adapter")
    if adapter:  # a trial's adapter: lm-eval must score it, not the base model
        check_wrapper_applies_adapter(lm, model, tokenizer)
    out: dict[str, Any] = {"tasks": {}, "raw": {}, "tasks_digest": tasks_digest(lm_spec.tasks)}
    try:
        with no_env_probe(), merged_adapter(model) if adapter else contextlib.nullcontext():
            _evaluate_tasks(lm, lm_spec, manager, seed, out)
    finally:
        del lm
        gc.collect()
        model.train(was_training)
    out["mean"] = float(np.mean([t["value"] for t in out["tasks"].values()])) if out["tasks"] else None
    return out


def _evaluate_tasks(lm: Any, lm_spec: Any, manager: TaskManager | None, seed: int, out: dict[str, Any]) -> None:
    """One ``simple_evaluate`` per task (each its own few-shot count and limit) into ``out``."""
    from lm_eval import simple_evaluate

    for task in lm_spec.tasks:
        result = simple_evaluate(
            model=lm, tasks=[task.name], num_fewshot=task.num_fewshot, limit=task.limit,
            task_manager=manager, log_samples=True, bootstrap_iters=0, random_seed=seed,
            numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
        )
        values = result["results"][task.name]
        key = _metric_key(values, task.metric)
        metric_name, _, filter_name = key.partition(",")
        samples = [s for s in result["samples"][task.name] if s.get("filter", filter_name) == filter_name]
        samples.sort(key=lambda s: s["doc_id"])
        stderr = values.get(f"{metric_name}_stderr,{filter_name}")
        per_doc = np.asarray([float(s[metric_name]) for s in samples])
        if not isinstance(stderr, (int, float)) and len(per_doc) > 1:  # lm-eval skips it with bootstrap_iters=0
            stderr = float(per_doc.std(ddof=1) / np.sqrt(len(per_doc)))
        out["tasks"][task.name] = {
            "metric": metric_name, "filter": filter_name, "value": float(values[key]),
            "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
            "doc_ids": [int(s["doc_id"]) for s in samples],
            "per_doc": per_doc.tolist(),
            "loglikelihoods": [[float(r[0]) for r in s.get("filtered_resps", [])]
                               if task_is_loglikelihood(s) else None for s in samples],
        }
        out["raw"][task.name] = json.loads(json.dumps(
            {k: v for k, v in result.items() if k != "samples"}, default=str))
        if lm_spec.log_samples:
            out.setdefault("samples", {})[task.name] = json.loads(json.dumps(samples, default=str))


def check_wrapper_applies_adapter(lm: Any, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> None:
    """One forward through lm-eval's own model call with the adapter on and off; equal logits mean lm-eval would
    report the base model's scores as the trial's (LmEvalError: 'adapter not applied')."""
    import torch

    ids = torch.tensor([tokenizer("Question: what is 7 times 8?\nAnswer: 56")["input_ids"]], device=lm.device)
    with torch.no_grad():
        on = model_logits(lm, ids).float()
        with model.disable_adapter():
            off = model_logits(lm, ids).float()
    if lm.model is not model or torch.equal(on, off):
        raise LmEvalError("adapter not applied: lm-eval's model gives the base model's logits; its scores would be "
                          "the base model's, not the trial's")


def task_is_loglikelihood(sample: dict[str, Any]) -> bool:
    resps = sample.get("filtered_resps") or []
    return bool(resps) and isinstance(resps[0], (list, tuple)) and len(resps[0]) == 2


def macro_vector(result: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Per-document scores of every task, weighted so that their plain mean is the macro mean over tasks (each doc
    counts 1/(n_tasks * n_docs_of_its_task)); and the '<task>/<doc_id>' key of each entry."""
    tasks = result["tasks"]
    values = [np.asarray(t["per_doc"], dtype=float) / (len(tasks) * len(t["per_doc"])) for t in tasks.values()]
    keys = [f"{name}/{d}" for name, t in tasks.items() for d in t["doc_ids"]]
    flat = np.concatenate(values)
    return flat * len(flat), keys


def task_strata(keys: list[str]) -> list[int]:
    """Documents per task from :func:`macro_vector`'s '<task>/<doc_id>' keys (in order): the strata of every
    lm-eval interval."""
    return [len(list(group)) for _, group in groupby(keys, key=lambda k: k.rsplit("/", 1)[0])]


def compare_to_base(trial: dict[str, Any], base: dict[str, Any], seed: int) -> dict[str, float]:
    """Macro-mean delta to the base, its standard error and paired 95% bootstrap interval over documents.

    The documents of each task are resampled within that task (a stratified bootstrap): the tasks are a fixed
    design and each is a sample of documents. Resampling the pooled documents instead would also count the spread
    BETWEEN the tasks' deltas as noise -- with one task collapsing and three unchanged, that doubles the interval.
    """
    for name, task in trial["tasks"].items():
        if task["doc_ids"] != base["tasks"][name]["doc_ids"]:
            raise LmEvalError(f"task '{name}': the trial and the base were scored on different documents")
    ours, keys = macro_vector(trial)
    theirs, _ = macro_vector({"tasks": {name: base["tasks"][name] for name in trial["tasks"]}})
    strata = task_strata(keys)
    mean, low, high = metrics.bootstrap_mean_ci(ours - theirs, seed=seed, strata=strata)
    return {"delta_vs_base": float(mean), "delta_se": metrics.stratified_se(ours - theirs, strata),
            "delta_ci_low": float(low), "delta_ci_high": float(high)}


def tasks_digest(tasks: tuple[LmEvalTask, ...], tasks_dir: Path = TASKS_DIR) -> str:
    """A hash of the spec's task settings and, for each of the project's own tasks they name, its config as lm-eval
    resolves it (``include:`` files merged) and its documents: a base score is only comparable to trials scored on
    the same documents, prompts and filters. How the files are laid out does not enter it.
    (:func:`prefstudy.evaluation.lm_eval_legacy.legacy_tasks_digest` is the digest studies got before 2026-12-06.)"""
    digest = hashlib.sha256()
    local = local_tasks(tasks_dir)
    for task in tasks:
        digest.update(json.dumps([task.name, task.num_fewshot, task.limit, task.metric]).encode())
        if task.name not in local:
            continue
        config = resolved_config(local[task.name])
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
        for split in sorted(files):
            digest.update(split.encode() + b"\0" + (local[task.name].parent / files[split]).read_bytes())
    return digest.hexdigest()[:16]


def flat_attrs(result: dict[str, Any], prefix: str = "lm_eval") -> dict[str, float]:
    attrs = {}
    for name, task in result["tasks"].items():
        attrs[f"{prefix}/{name}/{task['metric']}"] = task["value"]
        if task["stderr"] is not None:
            attrs[f"{prefix}/{name}/{task['metric']}_stderr"] = task["stderr"]
    if result.get("mean") is not None:
        attrs[f"{prefix}/mean"] = result["mean"]
    return attrs
