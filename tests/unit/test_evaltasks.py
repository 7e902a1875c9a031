"""The project's own lm-eval tasks: committed files equal a fresh deterministic generation, and they load offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefstudy.evaltasks import TASKS, generate

ROOT = Path(__file__).resolve().parents[2]


def test_committed_tasks_equal_a_fresh_generation(tmp_path: Path) -> None:
    generate(tmp_path)
    for name in TASKS:
        for file in (f"{name}.yaml", "test.jsonl"):
            assert (tmp_path / name / file).read_text() == (ROOT / "evals" / "tasks" / name / file).read_text(), file


def test_documents_are_well_formed_and_answers_correct() -> None:
    for name in TASKS:
        docs = [json.loads(line) for line in (ROOT / "evals" / "tasks" / name / "test.jsonl").read_text().splitlines()]
        assert len(docs) == 120 and len({d["question"] for d in docs}) == 120
        for doc in docs:
            if "choices" in doc:
                assert len(doc["choices"]) == 4 and len(set(doc["choices"])) == 4
                assert 0 <= doc["answer"] < 4
    arith = [json.loads(line) for line in (ROOT / "evals/tasks/prefstudy_arith/test.jsonl").read_text().splitlines()]
    for doc in arith[:30]:
        words = doc["question"].rstrip("?").split()
        a, op, b = int(words[2]), words[3], int(words[4])
        assert int(doc["choices"][doc["answer"]]) == (a * b if op == "times" else a + b)
    fmt = [json.loads(line) for line in (ROOT / "evals/tasks/prefstudy_format/test.jsonl").read_text().splitlines()]
    for doc in fmt[:30]:
        words = doc["question"].split()
        assert int(doc["target"]) == int(words[2]) + int(words[4].rstrip("?"))


@pytest.mark.slow
def test_tasks_load_through_the_task_manager(monkeypatch) -> None:
    from prefstudy.lmeval import LmEvalError, validate_tasks
    from prefstudy.spec import LmEvalTask

    monkeypatch.chdir(ROOT)
    manager = validate_tasks(tuple(LmEvalTask(name=name) for name in TASKS))
    assert set(TASKS) <= set(manager.all_tasks)
    with pytest.raises(LmEvalError, match="unknown"):
        validate_tasks((LmEvalTask(name="prefstudy_no_such_task"),))
