"""``prefstudy export <name>/<method> [--trial N | --best] [--merge]``: a finished trial, carried to the training run
that follows a study.

Writes ``exports/<name>-<method>/``:

* ``adapter/`` -- the trial's LoRA adapter (peft), copied from its run directory;
* ``README.md`` -- a model card: base model, data, parameters, the trial's metrics with their intervals, the study's
  verdict lines (``reports/<name>/verdicts.json`` and ``claims.json`` when the report was built), how to load and
  how to merge;
* ``trl_dpo.yaml`` -- a config for TRL's own ``trl dpo --config trl_dpo.yaml``: the trial's loss type, beta, learning
  rate, schedule, LoRA, quantization and lengths, on the study's full training split (``runs/<name>/data/
  train.jsonl``, the exact pairs the study trained on);
* with ``--merge`` (a non-quantized base only), ``merged/``: the base with the adapter merged in (peft
  ``merge_and_unload``), loadable without peft.

The config carries no secret: the storage URL is not in it, and the model card shows it redacted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from prefstudy.core.secrets import redact
from prefstudy.spec import SpecError, StudySpec
from prefstudy.training.dpo_settings import dpo_settings


def trl_dpo_config(spec: StudySpec, loss_type: str, params: dict[str, float], seed: int, train_file: Path,
                   model_path: str, output_dir: str) -> dict[str, Any]:
    """The ``trl dpo`` config (ScriptArguments, DPOConfig, ModelConfig, DatasetMixtureConfig keys) of one trial."""
    t = spec.training
    config: dict[str, Any] = {
        # ModelConfig
        "model_name_or_path": model_path, "model_revision": spec.model.revision or "main",
        "trust_remote_code": spec.model.trust_remote_code, "dtype": "bfloat16" if t.precision == "bf16" else "float32",
        "use_peft": True, "lora_r": t.lora.r, "lora_alpha": t.lora.alpha, "lora_dropout": t.lora.dropout,
        "lora_target_modules": list(t.lora.target_modules), "lora_task_type": "CAUSAL_LM",
        "load_in_4bit": t.quantization == "nf4",
        # DatasetMixtureConfig: the study's exact train pairs (conversational prompt / chosen / rejected)
        "datasets": [{"path": "json", "data_files": str(train_file), "split": "train",
                      "columns": ["prompt", "chosen", "rejected"]}],
        # DPOConfig: the same mapping the study's trainer used (training.dpo_settings)
        "output_dir": output_dir, **dpo_settings(t, loss_type, params, seed),
        "report_to": "none",
    }
    if t.quantization == "nf4":
        config.update({"bnb_4bit_quant_type": "nf4", "use_bnb_nested_quant": True})
    if t.max_steps is not None:
        config["max_steps"] = t.max_steps
    else:
        config["num_train_epochs"] = t.num_epochs
    return config


def _trial(study_name: str, number: int | None,
           storage_url: str | None) -> tuple[Any, Path, dict[str, Any], dict[str, Any]]:
    """(trial, run directory, config.json, its attributes with the test/OOD numbers scored after the search)."""
    from prefstudy.search.chosen import trial_attrs
    from prefstudy.search.selection import best_trial
    from prefstudy.search.storage import load_named_study

    study = load_named_study(study_name, storage_url)
    if number is None:
        trial = best_trial(study)
        if trial is None:
            raise SpecError(f"study '{study_name}' has no complete, feasible trial yet")
    else:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not found:
            raise SpecError(f"study '{study_name}' has no trial {number}")
        trial = found[0]
    if trial.state.name != "COMPLETE":
        raise SpecError(f"trial {trial.number} of '{study_name}' is {trial.state.name}: only a complete trial has a "
                        "finished adapter")
    run_dir = Path(trial.user_attrs.get("run_dir", ""))
    if not (run_dir / "adapter" / "adapter_config.json").is_file():
        raise SpecError(f"trial {trial.number}'s adapter is not in {run_dir}/adapter (training.save_adapter "
                        "'best' keeps only the best trial's; 'none' keeps none)")
    return trial, run_dir, json.loads((run_dir / "config.json").read_text()), trial_attrs(study.user_attrs, trial)


def _interval(attrs: dict[str, Any], key: str, low: str, high: str) -> str:
    if attrs.get(key) is None:
        return "not measured"
    text = f"{attrs[key]:.3f}"
    if attrs.get(low) is not None and attrs.get(high) is not None:
        text += f" [95% {attrs[low]:.3f}, {attrs[high]:.3f}]"
    return text


def model_card(spec: StudySpec, study_name: str, trial: Any, attrs: dict[str, Any], config: dict[str, Any],
               model_path: str, verdicts: list[str], merged: bool) -> str:
    """README.md of the export (module docstring)."""
    a, method = attrs, config["method"]
    rows = [("val accuracy", _interval(a, "val/accuracy", "val_accuracy_ci_low", "val_accuracy_ci_high")),
            ("test accuracy", _interval(a, "test/accuracy", "test_accuracy_ci_low", "test_accuracy_ci_high")),
            ("test gain over the base", _interval(a, "test_gain_vs_base", "test_gain_ci_low", "test_gain_ci_high")),
            ("lm-eval mean", _interval(a, "lm_eval/mean", "lm_eval/delta_ci_low", "lm_eval/delta_ci_high")
             .replace("[95%", "[delta vs base, 95%")),
            ("OOD accuracy", _interval(a, "ood/accuracy", "", ""))]
    lines = [
        f"# {study_name}, trial {trial.number}", "",
        f"A LoRA adapter trained by prefstudy: {method} (TRL `loss_type` `{config['loss_type']}`) on "
        f"`{spec.model.name_or_path}`.", "",
        "| | |", "| --- | --- |",
        f"| base model | `{spec.model.name_or_path}` (loaded from `{model_path}`) |",
        f"| data | {spec.data.source}: the study's train split, `runs/{spec.name}/data/train.jsonl` |",
        f"| beta | {config['params']['beta']:.6g} |", f"| learning rate | {config['params']['learning_rate']:.6g} |",
        f"| seed | {config['seed']} |", f"| LoRA | r {spec.training.lora.r}, alpha {spec.training.lora.alpha}, "
        f"dropout {spec.training.lora.dropout}, {', '.join(spec.training.lora.target_modules)} |",
        f"| quantization | {spec.training.quantization} |", f"| storage | `{redact(config.get('storage') or '')}` |",
        "", "## Metrics of this trial (val chose it; test is only reported)", "",
        *[f"- {name}: {value}" for name, value in rows], "",
        "## The study's verdicts", "", *([f"- {v}" for v in verdicts] or
                                        ["- no report built yet: `nox -s report` writes reports/<name>/verdicts.json"]),
        "", "## Load", "", "```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM",
        "", f"base = AutoModelForCausalLM.from_pretrained({model_path!r})",
        "model = PeftModel.from_pretrained(base, 'adapter')", "```", "", "## Merge", "",
        "```python", "merged = model.merge_and_unload()  # a non-quantized base only",
        "merged.save_pretrained('merged')",
        "```", "", ("`merged/` holds the merged weights (written by `prefstudy export --merge`)." if merged else
                    "`prefstudy export ... --merge` writes them for you."), "",
        "## Train it again with TRL's own CLI", "", "```bash", "trl dpo --config trl_dpo.yaml", "```", "",
        "`trl_dpo.yaml` reproduces this trial's training settings on the study's full train split.", ""]
    return "\n".join(lines)


def _verdict_lines(spec: StudySpec) -> list[str]:
    from prefstudy.report.claims import sentence
    from prefstudy.report.verdicts import Verdict

    folder = Path("reports") / spec.name
    lines = []
    if (folder / "verdicts.json").is_file():
        lines += [Verdict(**v).sentence() for v in json.loads((folder / "verdicts.json").read_text())]
    if (folder / "claims.json").is_file():
        lines += [sentence(e) for e in json.loads((folder / "claims.json").read_text())]
    return lines


def export(study_name: str, number: int | None, storage_url: str | None, out_root: Path = Path("exports"),
           merge: bool = False) -> Path:
    """Write the export folder of one trial (module docstring); returns it."""
    from prefstudy.models.builtin import resolve_model_path

    trial, run_dir, config, attrs = _trial(study_name, number, storage_url)
    spec = StudySpec.model_validate(config["spec"])
    out = out_root / f"{spec.name}-{config['method']}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(run_dir / "adapter", out / "adapter")
    model_path = resolve_model_path(spec.model.name_or_path)
    train_file = (spec.run_root() / "data" / "train.jsonl").resolve()
    trl = trl_dpo_config(spec, config["loss_type"], config["params"], int(config["seed"]), train_file, model_path,
                         f"{spec.name}-{config['method']}-trl")
    (out / "trl_dpo.yaml").write_text(yaml.safe_dump(trl, sort_keys=False), encoding="utf-8")
    if merge:
        merge_adapter(spec, model_path, out)
    (out / "README.md").write_text(model_card(spec, study_name, trial, attrs, config, model_path,
                                              _verdict_lines(spec), merge), encoding="utf-8")
    return out


def merge_adapter(spec: StudySpec, model_path: str, out: Path) -> None:
    """``out/merged/``: the base with ``out/adapter`` merged in (peft merge_and_unload); refused on a 4-bit base."""
    if spec.training.quantization != "none":
        raise SpecError("--merge needs a non-quantized base (training.quantization none): merging into 4-bit "
                        "weights loses the adapter's precision; merge into the full-precision base yourself")
    from huggingface_hub.utils import disable_progress_bars
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    disable_progress_bars()  # "Writing model shards" bars: the CLI prints its own two lines

    base = AutoModelForCausalLM.from_pretrained(model_path, trust_remote_code=spec.model.trust_remote_code)
    merged = PeftModel.from_pretrained(base, str(out / "adapter")).merge_and_unload()
    merged.save_pretrained(str(out / "merged"))
    AutoTokenizer.from_pretrained(model_path, trust_remote_code=spec.model.trust_remote_code).save_pretrained(
        str(out / "merged"))
