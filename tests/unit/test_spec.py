"""Spec validation: every shipped spec loads; bad specs are refused naming the file and the field."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import ROOT

from prefstudy.spec import SpecError, StudySpec, load_spec

SHIPPED = sorted((ROOT / "study").rglob("*.yaml"))


def test_there_are_shipped_specs() -> None:
    names = {p.name for p in SHIPPED}
    assert {"default.yaml", "smoke.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_spec_loads(path: Path) -> None:
    spec = load_spec(path)
    assert isinstance(spec, StudySpec)
    assert spec.methods, path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_knob_in_shipped_specs_is_commented(path: Path) -> None:
    """Every line that sets a value carries a comment, on the line or on the line just above it."""
    lines = path.read_text().splitlines()
    knob = re.compile(r"^\s*[A-Za-z_][\w-]*:\s*[^\s#]")
    for index, line in enumerate(lines):
        if knob.match(line):
            above = lines[index - 1].strip() if index else ""
            assert "#" in line or above.startswith("#"), f"{path.name}:{index + 1} has no comment: {line}"


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _base() -> dict:
    return yaml.safe_load((ROOT / "study" / "smoke.yaml").read_text())


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d.update(colour="red"), "colour", "unknown key"),
        (lambda d: d["training"].update(batchsize=4), "training.batchsize", "unknown key"),
        (lambda d: d["training"].update(max_steps="many"), "training.max_steps", "integer"),
        (lambda d: d["learning_rate"].update(low=1e-3, high=1e-4), "learning_rate", "inverted"),
        (lambda d: d["learning_rate"].update(low=1e-3, high=1e-3), "learning_rate", "inverted"),
        (lambda d: d["methods"]["dpo"]["beta"].update(low=-0.1), "methods.dpo.beta.low", "greater than 0"),
        (lambda d: d["methods"]["dpo"].update(loss_type="dpo"), "methods.dpo.loss_type", "unknown loss_type"),
        (lambda d: d.update(methods={}), "(top level)", "at least one method"),
        (lambda d: d["search"]["sampler"].update(type="bayes"), "search.sampler.type", "tpe"),
        (lambda d: d["data"].update(source="jsonl"), "data", "train"),
        (lambda d: d["search"].update(enqueue={"dpo": [{"beta": 9.0, "learning_rate": 1e-4}]}), "(top level)",
         "outside"),
    ],
)
def test_bad_specs_name_file_and_field(tmp_path: Path, mutate, field: str, words: str) -> None:
    data = _base()
    mutate(data)
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, data))
    message = str(info.value)
    assert str(tmp_path / "spec.yaml") in message
    assert f": {field}:" in message, message
    assert words in message, message


def test_unreadable_and_non_mapping_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


def test_overrides_apply_and_are_validated(tmp_path: Path) -> None:
    path = ROOT / "study" / "smoke.yaml"
    spec = load_spec(path, ["search.n_trials=5", "training.lora.r=2", "name=other"])
    assert (spec.search.n_trials, spec.training.lora.r, spec.name) == (5, 2, "other")
    with pytest.raises(SpecError, match="training.lora.r"):
        load_spec(path, ["training.lora.r=zero"])
    with pytest.raises(SpecError, match="key.path=value"):
        load_spec(path, ["search.n_trials"])


def test_fingerprint_ignores_size_but_not_search_space() -> None:
    path = ROOT / "study" / "smoke.yaml"
    base = load_spec(path).fingerprint()
    assert load_spec(path, ["search.n_trials=9"]).fingerprint() == base
    assert load_spec(path, ["workers.count=3"]).fingerprint() == base
    assert load_spec(path, ["learning_rate.high=2e-3"]).fingerprint() != base
    assert load_spec(path, ["data.seed=1"]).fingerprint() != base
    # a profile split is new data; none at all hashes as before the setting existed, so old studies resume
    assert load_spec(path, ["data.synthetic.n_profile=8"]).fingerprint() != base
    # the smoke spec's fingerprint at b984005, before the setting existed (update it if study/smoke.yaml changes)
    assert load_spec(path, ["data.synthetic.n_profile=0"]).fingerprint() == base == "f82eff5490e67a62"


def test_scoring_precision_defaults_to_training_and_enters_the_fingerprint_only_when_it_differs() -> None:
    """evaluation.precision unset or equal to training.precision: the old fingerprint (studies made before the setting
    resume); bf16 scoring of an fp32 training: another study, since its numbers differ."""
    path = ROOT / "study" / "smoke.yaml"
    base = load_spec(path)
    assert (base.evaluation.precision, base.score_precision()) == (None, "fp32")
    assert load_spec(path, ["evaluation.precision=fp32"]).fingerprint() == base.fingerprint()
    bf16 = load_spec(path, ["evaluation.precision=bf16"])
    assert bf16.score_precision() == "bf16" and bf16.fingerprint() != base.fingerprint()
    assert load_spec(path, ["training.precision=bf16"]).score_precision() == "bf16"
    with pytest.raises(SpecError, match="evaluation.precision"):
        load_spec(path, ["evaluation.precision=fp16"])


def test_test_scoring_chosen_needs_a_saved_adapter_and_leaves_the_fingerprint() -> None:
    path = ROOT / "study" / "smoke.yaml"
    assert load_spec(path).evaluation.test_scoring == "chosen"
    with pytest.raises(SpecError, match="save_adapter to 'best' or 'all'"):
        load_spec(path, ["training.save_adapter=none"])
    every = load_spec(path, ["training.save_adapter=none", "evaluation.test_scoring=every"])
    assert every.evaluation.test_scoring == "every" and every.training.save_adapter == "none"
    assert load_spec(path, ["evaluation.test_scoring=every"]).fingerprint() == load_spec(path).fingerprint()


def test_validation_is_fast_and_loads_no_torch() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); from prefstudy.spec import load_spec; "
        "load_spec('study/default.yaml'); print(time.perf_counter() - t, 'torch' in sys.modules)"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    assert out[1] == "False", "validating a spec must not import torch"
    assert time.perf_counter() - started < 3.0


@pytest.mark.parametrize(("written", "read"), [("on", "on"), ("off", "off"), ("auto", "auto"), ("true", "on"),
                                                ("false", "off"), ("'off'", "off")])
def test_prefix_sharing_reads_yaml_switches_as_written(written: str, read: str) -> None:
    """YAML 1.1 turns a bare on/off into a boolean; the spec takes it as the word that was written."""
    spec = load_spec(ROOT / "study" / "smoke.yaml", [f"training.prefix_sharing={written}"])
    assert spec.training.prefix_sharing == read
    assert spec.fingerprint() != load_spec(ROOT / "study" / "smoke.yaml", [
        "training.prefix_sharing=" + ("off" if read != "off" else "on")]).fingerprint()  # a resume cannot switch it
