"""The project's own lm-eval tasks: committed files equal a fresh deterministic generation, and they load offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support import ROOT

from prefstudy.evaluation.taskgen import FORMAT_EXAMPLE, N_DOCS, TASKS, UNITS, generate, last_digit_pool


def test_committed_tasks_equal_a_fresh_generation(tmp_path: Path) -> None:
    generate(tmp_path)
    for name in TASKS:
        for file in (f"{name}.yaml", "test.jsonl"):
            assert (tmp_path / name / file).read_text() == (ROOT / "evals" / "tasks" / name / file).read_text(), file
    for file in ("_prefstudy_mc.yaml", "prefstudy.yaml"):  # the shared template and the group
        assert (tmp_path / file).read_text() == (ROOT / "evals" / "tasks" / file).read_text(), file


def test_the_resolved_configs_are_the_files_of_before_2026_12_06() -> None:
    """lm-eval's own loader, following include:, gives each task exactly the config of its old flat file, so base
    scores of studies made before the change stay comparable; the old digest is recognised from the old texts."""
    import yaml

    from prefstudy.evaluation.lm_eval_legacy import legacy_tasks_digest, legacy_yaml
    from prefstudy.evaluation.lmeval import local_tasks, tasks_digest
    from prefstudy.evaluation.lmeval_seams import resolved_config
    from prefstudy.spec import LmEvalTask

    local = local_tasks()
    assert set(local) == set(TASKS)
    for name, path in local.items():
        assert resolved_config(path) == yaml.safe_load(legacy_yaml(name)), name
    assert "include" in path.parent.parent.joinpath("prefstudy_arith", "prefstudy_arith.yaml").read_text()
    tasks = (LmEvalTask(name="prefstudy_arith", limit=8, metric="acc"),
             LmEvalTask(name="prefstudy_format", limit=4, metric="exact_match"))
    # the smoke spec's tasks: this digest is what every base lm_eval.json written before the change carries
    assert legacy_tasks_digest(tasks) == "da63348ba65f0502"
    assert tasks_digest(tasks) != legacy_tasks_digest(tasks)
    other = (LmEvalTask(name="prefstudy_arith", limit=9, metric="acc"), tasks[1])
    assert tasks_digest(other) != tasks_digest(tasks)  # the settings enter it


def test_the_group_runs_the_four_tasks(tmp_path: Path) -> None:
    from lm_eval.tasks import TaskManager

    from prefstudy.evaluation.lmeval import export_tasks

    manager = TaskManager(include_path=str(export_tasks(tmp_path)), include_defaults=False)
    assert "prefstudy" in manager.all_groups and set(TASKS) <= set(manager.all_tasks)
    loaded = manager.load(["prefstudy"])
    assert list(loaded["groups"]) == ["prefstudy"] and set(loaded["tasks"]) == set(TASKS)


def _docs(name: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "evals" / "tasks" / name / "test.jsonl").read_text().splitlines()]


def test_documents_are_well_formed_and_answers_correct() -> None:
    for name in TASKS:
        docs = _docs(name)
        assert len(docs) == N_DOCS and len({d["question"] for d in docs}) == N_DOCS
        for doc in docs:
            if "choices" in doc:
                assert len(doc["choices"]) == 4 and len(set(doc["choices"])) == 4
                assert 0 <= doc["answer"] < 4
    for doc in _docs("prefstudy_arith"):
        words = doc["question"].rstrip("?").split()
        a, b = int(words[2]), int(words[-1])
        assert int(doc["choices"][doc["answer"]]) == (a * b if words[3] == "times" else a // b)
        assert words[3] == "times" or a % b == 0
    factors = {(large, small): factor for large, small, factor in UNITS}
    for doc in _docs("prefstudy_units"):  # "How many hours are 180 minutes?"
        words = doc["question"].rstrip("?").split()
        assert int(doc["choices"][doc["answer"]]) * factors[(words[2], words[5])] == int(words[4])
    for doc in _docs("prefstudy_reading"):
        passage, question = doc["question"].rsplit(". ", 1)
        answer = doc["choices"][doc["answer"]]
        if question.startswith("Who put the "):
            thing = question.split()[3]
            assert f"{answer} put the {thing} in" in passage
        else:  # "What color is Ana's key?"
            owner, thing = question.rstrip("?").split()[-2:]
            article = "an" if answer[0] in "aeiou" else "a"
            assert f"{owner.removesuffix(chr(39) + 's')} has {article} {answer} {thing}" in passage
        named = set(re.findall(r"[A-Za-z]+", passage))
        assert sum(choice in named for choice in doc["choices"]) == 2  # the other one named is a distractor
    for doc in _docs("prefstudy_format"):  # "The room number is 215. What is the room number?"
        assert doc["question"].split(" is ")[1].split(".")[0] == doc["target"]
        assert doc["question"] != FORMAT_EXAMPLE[0]


def test_choices_differ_only_in_their_last_character_or_are_single_words() -> None:
    # Why: lm-eval's HFLM scores choices that agree on all tokens but the last with ONE forward pass; the
    # default study's document counts are only affordable that way. Single words (names, colours) are one token
    # for SmolLM2; numbers share every digit but the last (digits are single tokens).
    for name in TASKS:
        for doc in _docs(name):
            choices = doc.get("choices")
            if choices is None:
                continue
            if all(c.isdigit() for c in choices):
                assert len({c[:-1] for c in choices}) == 1, (name, doc)
            else:
                assert all(c.isalpha() for c in choices), (name, doc)


def test_last_digit_pool() -> None:
    assert last_digit_pool(7) == [str(d) for d in range(1, 10)]
    assert last_digit_pool(56) == [str(d) for d in range(50, 60)]
    assert last_digit_pool(120) == [str(d) for d in range(120, 130)]


def test_default_limits_fit_the_generated_documents() -> None:
    from prefstudy.spec import load_spec

    spec = load_spec(ROOT / "study" / "default.yaml")
    for task in spec.evaluation.lm_eval.tasks:
        assert task.name in TASKS and isinstance(task.limit, int) and 0 < task.limit <= N_DOCS


@pytest.mark.slow
def test_tasks_load_through_the_task_manager(monkeypatch) -> None:
    from prefstudy.evaluation.lmeval import LmEvalError, validate_tasks
    from prefstudy.spec import LmEvalTask

    monkeypatch.chdir(ROOT)
    manager = validate_tasks(tuple(LmEvalTask(name=name) for name in TASKS))
    assert set(TASKS) <= set(manager.all_tasks)
    with pytest.raises(LmEvalError, match="unknown"):
        validate_tasks((LmEvalTask(name="prefstudy_no_such_task"),))
