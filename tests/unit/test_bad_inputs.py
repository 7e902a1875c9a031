"""Catalogue of bad inputs: each is refused with ONE line naming the file, field or URL and the fix, and nothing
is written (no SQLite file, nothing under runs_dir, no other file in the test's folder).

Spec cases go through load_spec, model/data/storage cases through preflight.check_inputs (what pipeline.run calls
before it opens the storage), all in-process; a few go through the CLI in a subprocess to prove exit code 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support import ROOT, free_port

from prefstudy.data.sources import DataError
from prefstudy.models.loading import ModelError
from prefstudy.preflight import check_inputs
from prefstudy.search.storage import StorageError
from prefstudy.spec import SpecError, load_spec

SECRET = "s3cretpw"


def _pairs(n: int, offset: int = 0) -> list[dict]:
    return [{"prompt": f"What is {i} + 1?", "chosen": f"{i + 1}.", "rejected": f"{i + 2}."}
            for i in range(offset, offset + n)]


def _jsonl(path: Path, rows: list, lines: tuple[str, ...] = ()) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "".join(line + "\n" for line in lines))
    return str(path)


def _base(tmp: Path) -> dict:
    """The smoke spec on small local jsonl data, without lm-eval, writing under tmp/runs: a valid spec."""
    data = yaml.safe_load((ROOT / "study" / "smoke.yaml").read_text())
    data["evaluation"]["lm_eval"]["tasks"] = []
    data["runs_dir"] = str(tmp / "runs")
    data["data"] = {"source": "jsonl", "train": _jsonl(tmp / "train.jsonl", _pairs(8)),
                    "heldout": _jsonl(tmp / "heldout.jsonl", _pairs(8, 100))}
    return data


def _files(tmp: Path) -> dict[str, int]:
    return {str(p.relative_to(tmp)): p.stat().st_size for p in tmp.rglob("*") if p.is_file()}


@dataclass(frozen=True)
class Case:
    """``setup`` edits the spec mapping (and may write files under tmp); it returns extras: ``storage`` (a URL
    instead of the default sqlite:///tmp/store/x.db), ``text`` (raw spec text) or ``no_spec`` (no spec file)."""

    id: str
    setup: Callable[[Path, dict], dict]
    error: type[Exception]
    names: str  # the file, field or URL the line must name; {tmp} is the test's folder
    fix: str  # a word of the fix the line must give


def _set(path: str, value: object) -> Callable[[Path, dict], dict]:
    def setup(_tmp: Path, data: dict) -> dict:
        node = data
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
        return {}

    return setup


def _data(**files: list | tuple) -> Callable[[Path, dict], dict]:
    """Replace data files: key train/heldout/ood -> rows (list) or raw lines (tuple)."""

    def setup(tmp: Path, data: dict) -> dict:
        for key, content in files.items():
            rows, lines = (content, ()) if isinstance(content, list) else ([], content)
            data["data"][key] = _jsonl(tmp / f"{key}-bad.jsonl", rows, lines)
        return {}

    return setup


def _storage(url: str) -> Callable[[Path, dict], dict]:
    def setup(tmp: Path, _data: dict) -> dict:
        (tmp / "blocker").write_text("a file where a folder should be\n")
        (tmp / "notdb.db").write_text("not an SQLite database\n")
        return {"storage": url.format(tmp=tmp, port=free_port())}

    return setup


def _over_length(_tmp: Path, data: dict) -> dict:
    data["training"]["max_length"] = 16  # the chat template alone is longer
    return {}


def _folder_without_config(tmp: Path, data: dict) -> dict:
    (tmp / "model-without-config").mkdir()
    data["model"]["name_or_path"] = str(tmp / "model-without-config")
    return {}


def _spec(id: str, setup: Callable[[Path, dict], dict], field: str, fix: str) -> Case:
    return Case(id, setup, SpecError, f"{{tmp}}/spec.yaml: {field}:", fix)


SPEC_CASES = [
    _spec("spec-unknown-key", _set("colour", "red"), "colour", "check the spelling"),
    _spec("spec-unknown-nested-key", _set("training.batchsize", 4), "training.batchsize", "did you mean 'batch_size'"),
    _spec("spec-wrong-type", _set("training.max_steps", "many"), "training.max_steps", "should be a valid integer"),
    _spec("spec-inverted-range", _set("learning_rate", {"low": 1e-3, "high": 1e-4}), "learning_rate", "swap them"),
    _spec("spec-empty-range", _set("methods.ipo.beta", {"low": 0.5, "high": 0.5}), "methods.ipo.beta", "widen"),
    _spec("spec-negative-beta", _set("methods.dpo.beta.low", -0.1), "methods.dpo.beta.low", "greater than 0"),
    _spec("spec-negative-seed", _set("seed", -1), "seed", "greater than or equal to 0"),
    _spec("spec-seed-past-numpy", _set("data.seed", 2**32), "data.seed", "less than or equal to 4294967295"),
    _spec("spec-unknown-loss-type", _set("methods.dpo.loss_type", "dpo"), "methods.dpo.loss_type",
          "use 'sigmoid' for DPO"),
    _spec("spec-unknown-truncation", _set("training.truncation", "keep_end"), "training.truncation",
          "'keep_start' or 'drop'"),
    _spec("spec-missing-key", lambda _t, d: d.pop("learning_rate") and {}, "learning_rate", "add it"),
    _spec("spec-jsonl-without-files", _set("data", {"source": "jsonl"}), "data", "needs both 'train' and 'heldout'"),
    Case("spec-unreadable-yaml", lambda _t, _d: {"text": "name: [unclosed\nmethods: {}\n"}, SpecError,
         "{tmp}/spec.yaml:2:8: not valid YAML", "fix the syntax"),
    Case("spec-file-missing", lambda _t, _d: {"no_spec": "1"}, SpecError, "{tmp}/spec.yaml: cannot read",
         "check the path"),
    Case("spec-duplicate-key", lambda _t, _d: {"text": "name: a\nseed: 0\nlearning_rate: {low: 1.0e-4, high: 1.0e-3}\n"
                                                      "seed: 5\n"}, SpecError,
         "{tmp}/spec.yaml:4:1: duplicate key 'seed' (first on line 2)", "keep one of them"),
    Case("spec-duplicate-section", lambda _t, _d: {"text": "name: a\ntraining:\n  max_steps: 4\n  lora: {r: 4}\n"
                                                          "training:\n  batch_size: 2\n"}, SpecError,
         "{tmp}/spec.yaml:5:1: duplicate key 'training' (first on line 2)", "keep one of them"),
    Case("spec-duplicate-nested-key", lambda _t, _d: {"text": "name: a\ntraining: {lora: {r: 4, r: 8}}\n"},
         SpecError, "{tmp}/spec.yaml:2:25: duplicate key 'r'", "keep one of them"),
]

MODEL_CASES = [
    # a relative folder in a spec file is read from the spec file's folder, and named resolved
    Case("model-unknown-folder", _set("model.name_or_path", "./no/such/model"), ModelError,
         "model.name_or_path: model folder '{tmp}/no/such/model'", "fix the path"),
    Case("model-unknown-builtin", _set("model.name_or_path", "tiny-random-mistrall"), ModelError,
         "tiny-random-mistrall", "use embedded:smollm2-135m-instruct or tiny-random-mistral"),
    Case("model-folder-without-config", _folder_without_config, ModelError, "{tmp}/model-without-config",
         "save_pretrained"),
    Case("model-hub-id-offline", _set("model.name_or_path", "nobody-prefstudy/no-such-model"), ModelError,
         "nobody-prefstudy/no-such-model", "download it first"),
]

DATA_CASES = [
    Case("data-missing-file", _set("data.train", "{tmp}/nope.jsonl"), DataError, "data.train", "fix the path"),
    Case("data-missing-columns", _data(train=[{"question": "q", "good": "a", "bad": "b"}] * 3), DataError,
         "{tmp}/train-bad.jsonl (data.train)", "data.columns"),
    Case("data-empty-split", _data(train=[]), DataError, "{tmp}/train-bad.jsonl (data.train)",
         "add preference pairs"),
    Case("data-chosen-equals-rejected", _data(heldout=[{"prompt": "p", "chosen": "x", "rejected": "x"}] * 4),
         DataError, "{tmp}/heldout-bad.jsonl (data.heldout)", "differs from its rejected"),
    Case("data-undecodable-lines", _data(train=("{not json", "\x00\x01 binary", "[1, 2]")), DataError,
         "{tmp}/train-bad.jsonl (data.train)", "one JSON object per line"),
    Case("data-malformed-rows", _data(train=[{"prompt": "p", "chosen": 3, "rejected": None}] * 2), DataError,
         "{tmp}/train-bad.jsonl (data.train)", "non-empty text"),
    Case("data-heldout-one-pair", _data(heldout=_pairs(1)), DataError, "{tmp}/heldout-bad.jsonl (data.heldout)",
         "more pairs"),
    Case("data-missing-ood-file", _set("data.ood", "{tmp}/ood.jsonl"), DataError, "data.ood", "fix the path"),
    Case("data-not-a-file", _set("data.heldout", "{tmp}"), DataError, "data.heldout", "point data.heldout at"),
    Case("data-train-heldout-overlap", _data(heldout=_pairs(4) + _pairs(4, 100)), DataError,
         "training pairs also stand in the held-out data", "data.leakage=warn"),
    Case("data-one-file-twice", _set("data.heldout", "{tmp}/train.jsonl"), DataError,
         "training pairs also stand in the held-out data", "data.leakage=warn"),
    Case("data-over-length", _over_length, DataError, "{tmp}/train.jsonl (data.train)",
         "raise training.max_length"),
    Case("data-answer-from-the-user", _data(train=[{"chosen": [{"role": "user", "content": f"q{i}"},
                                                               {"role": "user", "content": "a"}],
                                                    "rejected": [{"role": "user", "content": f"q{i}"},
                                                                 {"role": "user", "content": "b"}],
                                                    "prompt": ""} for i in range(4)]),
         DataError, "{tmp}/train-bad.jsonl (data.train): row 0", "role 'assistant'"),
]

STORAGE_CASES = [
    Case("storage-malformed-url", _storage("not a url"), StorageError, "'not a url'", "sqlite:///"),
    Case("storage-malformed-port", _storage(f"postgresql+psycopg2://u:{SECRET}@localhost:port/db"), StorageError,
         "postgresql+psycopg2://u:***@localhost:port/db", "fix --storage"),
    Case("storage-unknown-database", _storage("nosuchdb://h/db"), StorageError, "nosuchdb", "postgresql+psycopg2"),
    Case("storage-sqlite-folder-not-creatable", _storage("sqlite:///{tmp}/blocker/sub/x.db"), StorageError,
         "{tmp}/blocker/sub/x.db", "writable folder"),
    Case("storage-sqlite-not-a-database", _storage("sqlite:///{tmp}/notdb.db"), StorageError, "{tmp}/notdb.db",
         "another file"),
    Case("storage-postgres-unreachable", _storage(f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:{{port}}/db"),
         StorageError, "postgresql+psycopg2://u:***@127.0.0.1:", "server runs"),
]

CASES = SPEC_CASES + MODEL_CASES + DATA_CASES + STORAGE_CASES


def _spec_file(tmp: Path, case: Case) -> tuple[Path, str]:
    data = _base(tmp)
    extras = case.setup(tmp, data)
    data = json.loads(json.dumps(data).replace("{tmp}", str(tmp)))
    path = tmp / "spec.yaml"
    if "text" in extras:
        path.write_text(extras["text"])
    elif "no_spec" not in extras:
        path.write_text(yaml.safe_dump(data))
    return path, extras.get("storage", f"sqlite:///{tmp}/store/x.db")


def _assert_one_clear_line(message: str, case: Case, tmp: Path) -> None:
    assert message.strip(), case.id
    assert "\n" not in message and "\r" not in message, f"{case.id}: more than one line: {message!r}"
    assert case.names.format(tmp=tmp) in message, f"{case.id}: does not name {case.names!r}: {message}"
    assert case.fix in message, f"{case.id}: no fix ({case.fix!r}): {message}"
    assert SECRET not in message, f"{case.id}: shows the password: {message}"
    assert len(message) < 600, f"{case.id}: too long to read: {message}"


def _assert_nothing_written(tmp: Path, before: dict[str, int], storage_url: str) -> None:
    assert _files(tmp) == before, "files were written or changed"
    runs = tmp / "runs"
    assert not runs.exists() or not any(runs.iterdir()), f"runs_dir is not empty: {list(runs.rglob('*'))}"
    database = Path(storage_url.removeprefix("sqlite:///"))
    if storage_url.startswith("sqlite:///") and not (database.is_relative_to(tmp) and
                                                     str(database.relative_to(tmp)) in before):
        assert not database.exists(), "the SQLite storage was created"
    assert not (tmp / "store").exists()


def test_the_catalogue_covers_every_category() -> None:
    assert len(CASES) >= 22
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.id.split("-")[0] for case in CASES} == {"spec", "model", "data", "storage"}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path: Path, case: Case,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec_path, storage_url = _spec_file(tmp_path, case)
    before = _files(tmp_path)
    with pytest.raises(case.error) as caught:
        spec = load_spec(spec_path)
        check_inputs(spec, storage_url)
    _assert_one_clear_line(str(caught.value), case, tmp_path)
    _assert_nothing_written(tmp_path, before, storage_url)


def test_good_inputs_pass_and_write_nothing(tmp_path: Path) -> None:
    """The base every case breaks is valid: each case fails for its own reason."""
    spec_path, storage_url = _spec_file(tmp_path, Case("good", lambda _t, _d: {}, Exception, "", ""))
    before = _files(tmp_path)
    inputs = check_inputs(load_spec(spec_path), storage_url)
    assert inputs.splits.sizes() == {"train": 8, "val": 4, "test": 4, "ood": 0, "profile": 0}
    _assert_nothing_written(tmp_path, before, storage_url)


CLI_CASES = [
    pytest.param("methods.dpo.beta.low=-0.1", None, "methods.dpo.beta.low", id="cli-negative-beta"),
    pytest.param("data.train={tmp}/nope.jsonl", None, "{tmp}/nope.jsonl", id="cli-missing-data-file"),
    pytest.param("model.name_or_path={tmp}/no-model", None, "{tmp}/no-model", id="cli-unknown-model-folder"),
    pytest.param(None, f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:{{port}}/db", "u:***@127.0.0.1",
                 id="cli-postgres-unreachable"),
    pytest.param("tracking.mlflow=http://127.0.0.1:{port}", None, "no MLflow server answers at http://127.0.0.1:",
                 id="cli-mlflow-server-unreachable"),
    pytest.param("--workers 0", None, "--workers 0: must be at least 1", id="cli-workers-zero"),
    pytest.param("seed=-1", None, "seed", id="cli-negative-seed"),
    pytest.param("--workers -3", None, "--workers -3: must be at least 1", id="cli-workers-negative"),
]


@pytest.mark.parametrize(("override", "storage", "names"), CLI_CASES)
def test_cli_exits_2_with_one_line(tmp_path: Path, override: str | None, storage: str | None, names: str) -> None:
    spec_path, storage_url = _spec_file(tmp_path, Case("cli", lambda _t, _d: {}, Exception, "", ""))
    port = free_port()
    storage_url = storage.format(port=port) if storage else storage_url
    argv = [sys.executable, "-m", "prefstudy", "study", str(spec_path), "--storage", storage_url]
    if override:
        argv += override.format(tmp=tmp_path, port=port).split(" ")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1",
           "PREFSTUDY_CACHE": str(tmp_path / "model-cache")}
    before = _files(tmp_path)
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert names.format(tmp=tmp_path) in lines[0] and SECRET not in done.stderr + done.stdout, lines[0]
    _assert_nothing_written(tmp_path, before, storage_url)
