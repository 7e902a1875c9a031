"""Offline lm-evaluation-harness tasks the project generates itself: ``python -m prefstudy.evaluation.taskgen``.

Four capabilities preference tuning can damage, each a folder under ``prefstudy/evaluation/lm_eval_tasks/``
(``evals/tasks/`` in the repository) with a YAML task and a ``test.jsonl`` written deterministically from a seed
(our own questions, not copied text):

- ``prefstudy_arith``   multiple choice: multiplication-table and division facts (2..12);
- ``prefstudy_units``   multiple choice: unit conversions with a whole answer (180 minutes -> 3 hours);
- ``prefstudy_reading`` multiple choice: who did what, or which colour, in a two-sentence passage;
- ``prefstudy_format``  generate_until: one worked example shows the answer format (the number alone, in digits);
  a strict regex filter scores it, so an answer in a sentence, or no answer, counts as wrong. Answers have at most
  three digits (4 tokens with the leading space); ``max_gen_toks: 5`` leaves one token to show whether the model
  stops there or goes on with words.

Cost is the design constraint: every trial is scored, so each document must be cheap. In the multiple-choice tasks
the choices of a document differ only in their last token (single words; numbers that share all digits but the
last), and lm-eval's HFLM then scores all four choices with ONE forward pass (it groups requests whose context plus
continuation-minus-last-token agree). That is ~4x the documents per second of free-text choices, which is what lets
the default study afford enough documents for a paired standard error under 0.02. The distractors follow from that:
a wrong last digit (a slip in the units column), the other colour or person named in the passage.

tests/unit/test_evaltasks.py checks the committed files equal a fresh generation, the answers are right, and the
choices share everything but their last character or are single words.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from prefstudy.core.paths import TASKS_DIR

N_DOCS = 200
SEED = 20231012
# Every name, colour and object is one token for SmolLM2's tokenizer (checked when the tasks were designed).
NAMES = ["Ana", "Ben", "Dev", "Tom", "Sam", "Max", "Anna", "Hugo", "Omar", "Maya", "Leo", "Eva", "Jack", "Kate",
         "Mark", "Paul", "Lucy", "Emma", "Noah", "Mia", "Adam", "Rosa", "Carl", "Ivan", "Nina", "Sara"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "brown", "pink", "orange", "purple"]
OBJECTS = ["key", "coin", "ball", "cup", "book", "hat", "pen", "ring", "bag", "shoe"]
# (larger unit, smaller unit, how many smaller units make one larger)
UNITS = [("hours", "minutes", 60), ("minutes", "seconds", 60), ("kilograms", "grams", 1000),
         ("meters", "centimeters", 100), ("kilometers", "meters", 1000), ("weeks", "days", 7),
         ("days", "hours", 24), ("liters", "milliliters", 1000), ("years", "months", 12),
         ("feet", "inches", 12), ("centuries", "years", 100), ("dozens", "eggs", 12)]
CARRIERS = ["code", "room number", "ticket number", "page number", "bus number"]
FORMAT_EXAMPLE = ("The code is 52. What is the code?", "52")  # the worked example in the format task's prompt


def _pick(rng: random.Random, correct: str, pool: list[str]) -> tuple[list[str], int]:
    """Four shuffled choices: ``correct`` and three others from ``pool``; returns (choices, index of correct)."""
    wrong = [p for p in dict.fromkeys(pool) if p != correct]
    rng.shuffle(wrong)
    choices = [correct] + wrong[:3]
    rng.shuffle(choices)
    return choices, choices.index(correct)


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def last_digit_pool(value: int) -> list[str]:
    """Numbers with every digit of ``value`` but the last (1..9 for one-digit values): slips in the units column."""
    if value < 10:
        return [str(d) for d in range(1, 10)]
    tens = value - value % 10
    return [str(tens + d) for d in range(10)]


def arith_doc(rng: random.Random) -> dict:
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    if rng.random() < 0.5:
        value, question = a * b, f"What is {a} times {b}?"
    else:
        value, question = a, f"What is {a * b} divided by {b}?"
    choices, answer = _pick(rng, str(value), last_digit_pool(value))
    return {"question": question, "choices": choices, "answer": answer}


def units_doc(rng: random.Random) -> dict:
    large, small, factor = rng.choice(UNITS)
    value = rng.randint(2, 19)
    choices, answer = _pick(rng, str(value), last_digit_pool(value))
    return {"question": f"How many {large} are {value * factor} {small}?", "choices": choices, "answer": answer}


def reading_doc(rng: random.Random) -> dict:
    first, second = rng.sample(NAMES, 2)
    thing_a, thing_b = rng.sample(OBJECTS, 2)
    color_a, color_b = rng.sample(COLORS, 2)
    asked = rng.randrange(2)
    if rng.random() < 0.5:
        passage = f"{first} has {_a(color_a)} {thing_a}. {second} has {_a(color_b)} {thing_b}."
        owner, thing = (first, thing_a) if asked == 0 else (second, thing_b)
        correct, other = (color_a, color_b) if asked == 0 else (color_b, color_a)
        question, pool = f"{passage} What color is {owner}'s {thing}?", COLORS
    else:
        passage = f"{first} put the {thing_a} in the {color_a} box. {second} put the {thing_b} in the {color_b} box."
        thing = thing_a if asked == 0 else thing_b
        correct, other = (first, second) if asked == 0 else (second, first)
        question, pool = f"{passage} Who put the {thing} in a box?", NAMES
    rest = [p for p in pool if p not in (correct, other)]
    rng.shuffle(rest)
    choices, answer = _pick(rng, correct, [other] + rest[:2])
    return {"question": question, "choices": choices, "answer": answer}


def format_doc(rng: random.Random) -> dict:
    carrier, value = rng.choice(CARRIERS), rng.randint(10, 999)
    return {"question": f"The {carrier} is {value}. What is the {carrier}?", "target": str(value)}


MC_TEMPLATE_FILE = "_prefstudy_mc.yaml"
GROUP = "prefstudy"

# Literal files (no str.format: the Jinja braces stay as lm-eval reads them). The multiple-choice tasks share one
# template through lm-eval's `include:`; each names only its task and data file.
MC_TEMPLATE = r"""
# The multiple-choice tasks' shared settings: every prefstudy_<x>/prefstudy_<x>.yaml includes this file and names
# its task and data file. Written by `python -m prefstudy.evaluation.taskgen`. Not a task itself (no `task:`).
dataset_path: json
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{question}}\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: answer
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
"""

MC_TASK = r"""
# {summary}
# Written by `python -m prefstudy.evaluation.taskgen`; the shared settings are in ../_prefstudy_mc.yaml.
# data_files are relative to this folder: prefstudy hands lm-eval a copy with absolute paths (lmeval.materialize).
include: ../_prefstudy_mc.yaml
task: {name}
dataset_kwargs:
  data_files:
    test: test.jsonl
"""

FORMAT_TASK = r"""
# One worked example, then: answer with the number alone; a strict regex scores it.
# Written by `python -m prefstudy.evaluation.taskgen`. data_files are relative to this folder: prefstudy hands
# lm-eval a copy with absolute paths (lmeval.materialize). The worked example is taskgen.FORMAT_EXAMPLE.
task: prefstudy_format
dataset_path: json
dataset_kwargs:
  data_files:
    test: test.jsonl
test_split: test
output_type: generate_until
doc_to_text: "Question: The code is 52. What is the code?\nAnswer: 52\nQuestion: {{question}}\nAnswer:"
doc_to_target: target
generation_kwargs:
  until: ["\n", "<|im_end|>", "Question:"]
  max_gen_toks: 5
  do_sample: false
filter_list:
  - name: strict
    filter:
      - function: regex
        regex_pattern: "^\\s*(\\d+)\\s*$"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
"""

GROUP_FILE = r"""
# The project's four offline tasks as one lm-eval group: `lm_eval --include_path DIR --tasks prefstudy`.
# Written by `python -m prefstudy.evaluation.taskgen`. prefstudy itself scores each task on its own (the spec's
# evaluation.lm_eval.tasks), with its own limit and metric.
group: prefstudy
task:
  - prefstudy_arith
  - prefstudy_units
  - prefstudy_reading
  - prefstudy_format
metadata:
  version: 1.0
"""

TASKS = {
    "prefstudy_arith": (arith_doc, "Multiple choice: times-table and division facts; distractors slip the last digit."),
    "prefstudy_units": (units_doc, "Multiple choice: unit conversions with a whole answer."),
    "prefstudy_reading": (reading_doc, "Multiple choice: who did what, or which colour, in a two-sentence passage."),
    "prefstudy_format": (format_doc, "One worked example, then: answer with the number alone; a strict regex scores "
                         "it."),
}


def task_yaml(name: str) -> str:
    """The YAML file of one task: the multiple-choice ones include the shared template, the format task is whole."""
    text = FORMAT_TASK if name == "prefstudy_format" else MC_TASK.format(name=name, summary=TASKS[name][1])
    return text.lstrip("\n")


def generate(root: Path = TASKS_DIR, n_docs: int = N_DOCS, seed: int = SEED) -> dict[str, Path]:
    """Write every task folder under ``root`` (documents and task file), the shared template and the group file;
    returns task name -> folder."""
    written = {}
    root.mkdir(parents=True, exist_ok=True)
    (root / MC_TEMPLATE_FILE).write_text(MC_TEMPLATE.lstrip("\n"))
    (root / f"{GROUP}.yaml").write_text(GROUP_FILE.lstrip("\n"))
    for offset, (name, (make, _)) in enumerate(TASKS.items()):
        rng = random.Random(seed + offset)
        docs: list[dict[str, object]] = []
        seen = {FORMAT_EXAMPLE[0]}
        for _ in range(100 * n_docs):
            if len(docs) == n_docs:
                break
            doc = make(rng)
            if doc["question"] not in seen:
                seen.add(doc["question"])
                docs.append(doc)
        if len(docs) < n_docs:
            raise RuntimeError(f"{name}: only {len(docs)} distinct documents; widen its generator")
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "test.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        (folder / f"{name}.yaml").write_text(task_yaml(name))
        written[name] = folder
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the project's offline lm-eval tasks.")
    parser.add_argument("--out", type=Path, default=TASKS_DIR)
    args = parser.parse_args(argv)
    for name, folder in generate(args.out).items():
        print(f"{name}: {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
