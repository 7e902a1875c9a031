"""Tests for prefstudy.data.synthetic: determinism, splits, correctness and absence of surface cues."""

from __future__ import annotations

import random
import re
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from prefstudy.data.synthetic import IN_DISTRIBUTION, OUT_OF_DISTRIBUTION, SYSTEM_PROMPT, Pair, generate

SIZES = {"n_train": 400, "n_val": 200, "n_test": 200, "n_ood": 60}


@pytest.fixture(scope="module")
def data() -> dict[str, list[Pair]]:
    return generate(**SIZES, seed=0)


def _all(data: dict[str, list[Pair]]) -> list[Pair]:
    return [p for split in data.values() for p in split]


def test_api_constants() -> None:
    assert SYSTEM_PROMPT.strip() and len(SYSTEM_PROMPT.split()) <= 20
    assert len(IN_DISTRIBUTION) == 5 and OUT_OF_DISTRIBUTION == ("subtraction", "multiplication")
    assert not set(IN_DISTRIBUTION) & set(OUT_OF_DISTRIBUTION)


def test_determinism() -> None:
    assert generate(25, 10, 10, 5, seed=3) == generate(25, 10, 10, 5, seed=3)
    assert generate(25, 10, 10, 5, seed=3) != generate(25, 10, 10, 5, seed=4)


def test_heldout_splits_do_not_depend_on_n_train() -> None:
    small, big = generate(10, 20, 20, 5, seed=1), generate(300, 20, 20, 5, seed=1)
    for split in ("val", "test", "ood"):
        assert small[split] == big[split]


def test_split_sizes(data: dict[str, list[Pair]]) -> None:
    assert list(data) == ["train", "val", "test", "ood", "profile"]
    assert [len(v) for v in data.values()] == [*SIZES.values(), 0]
    assert all(len(v) == 0 for v in generate(0, 0, 0, 0, seed=0).values())


def test_the_profile_split_comes_last_and_changes_no_other_split() -> None:
    without, with_profile = generate(30, 20, 20, 6, seed=2), generate(30, 20, 20, 6, seed=2, n_profile=25)
    for split in ("train", "val", "test", "ood"):
        assert with_profile[split] == without[split]
    profile = with_profile["profile"]
    assert len(profile) == 25 and {p.family for p in profile} == set(IN_DISTRIBUTION)
    others = {(p.question, p.chosen) for split in ("train", "val", "test", "ood") for p in with_profile[split]}
    assert not others & {(p.question, p.chosen) for p in profile}  # disjoint instances
    ids = [p.id for split in with_profile.values() for p in split]
    assert len(ids) == len(set(ids))


def test_family_balance_round_robin(data: dict[str, list[Pair]]) -> None:
    for split in ("train", "val", "test"):
        fams = [p.family for p in data[split]]
        assert fams[: len(IN_DISTRIBUTION)] == list(IN_DISTRIBUTION)
        counts = Counter(fams)
        assert set(counts) == set(IN_DISTRIBUTION)
        assert max(counts.values()) - min(counts.values()) <= 1
    odd = generate(7, 0, 0, 0, seed=0)["train"]
    assert Counter(p.family for p in odd) == Counter(
        {"addition": 2, "comparison": 2, "letter_count": 1, "unit_conversion": 1, "answer_format": 1}
    )


def test_ood_family_only_in_ood(data: dict[str, list[Pair]]) -> None:
    assert {p.family for p in data["ood"]} == set(OUT_OF_DISTRIBUTION)
    for split in ("train", "val", "test"):
        assert not {p.family for p in data[split]} & set(OUT_OF_DISTRIBUTION)


def test_ids_unique_and_formatted(data: dict[str, list[Pair]]) -> None:
    ids = [p.id for p in _all(data)]
    assert len(ids) == len(set(ids))
    for p in _all(data):
        assert re.fullmatch(rf"{p.family}-\d{{6}}", p.id)


def test_questions_disjoint_across_splits(data: dict[str, list[Pair]]) -> None:
    questions = [p.question for p in _all(data)]
    assert len(questions) == len(set(questions))
    # answer_format: the same operands (either order, either format) must not recur either
    instances = []
    for p in _all(data):
        if p.family == "answer_format":
            a, op, b = re.match(r"What is (\d+) (\w+) (\d+)\?", p.question).groups()
            instances.append((op, *sorted((int(a), int(b)))))
    assert len(instances) == len(set(instances))


def test_chosen_differs_from_rejected_and_is_short(data: dict[str, list[Pair]]) -> None:
    for p in _all(data):
        assert p.chosen != p.rejected and p.chosen and p.rejected
        assert len(p.question.split()) + max(len(p.chosen.split()), len(p.rejected.split())) <= 30


def _arith(p: Pair, op: str) -> None:
    a, b = map(int, re.fullmatch(rf"What is (\d+) {re.escape(op)} (\d+)\?", p.question).groups())
    expected = a + b if op == "+" else a - b
    assert p.chosen == f"{a} {op} {b} = {expected}."
    m = re.fullmatch(rf"{a} {re.escape(op)} {b} = (\d+)\.", p.rejected)
    wrong = int(m.group(1))
    assert wrong != expected and abs(wrong - expected) in (10, 100, 1000)  # a carry/borrow slip


def test_answers_correct(data: dict[str, list[Pair]]) -> None:
    checked: Counter[str] = Counter()
    for p in _all(data):
        if p.family in ("addition", "subtraction"):
            _arith(p, "+" if p.family == "addition" else "-")
        elif p.family == "multiplication":
            a, b = map(int, re.fullmatch(r"What is (\d+) times (\d)\?", p.question).groups())
            assert p.chosen == f"{a} times {b} is {a * b}."
            wrong = int(re.fullmatch(rf"{a} times {b} is (\d+)\.", p.rejected).group(1))
            assert abs(wrong - a * b) in (10, 100, 1000) and wrong % 10 == a * b % 10  # a carry slip
        elif p.family == "comparison":
            x, y = re.fullmatch(r"Which is larger, ([\d.]+) or ([\d.]+)\?", p.question).groups()
            assert p.chosen == f"{max(x, y, key=float)} is larger."
            assert p.rejected == f"{min(x, y, key=float)} is larger."
        elif p.family == "letter_count":
            letter, word = re.fullmatch(
                r"How many times does the letter '(\w)' appear in '(\w+)'\?", p.question
            ).groups()
            assert p.chosen == f"The count of '{letter}' in '{word}' is {word.count(letter)}."
            wrong = int(re.fullmatch(rf"The count of '{letter}' in '{word}' is (\d+)\.", p.rejected).group(1))
            assert abs(wrong - word.count(letter)) == 1
        elif p.family == "unit_conversion":
            dst, v, src = re.fullmatch(r"How many (\w+) are in ([\d.]+) (\w+)\?", p.question).groups()
            factor = {
                ("minutes", "hours"): Fraction(1, 60),
                ("seconds", "minutes"): Fraction(1, 60),
                ("hours", "minutes"): 60,
                ("days", "hours"): 24,
                ("weeks", "days"): 7,
                ("centimeters", "meters"): Fraction(1, 100),
                ("meters", "kilometers"): Fraction(1, 1000),
                ("grams", "kilograms"): Fraction(1, 1000),
            }[(src, dst)]
            got = re.fullmatch(rf"{re.escape(v)} {src} is ([\d.]+) {dst}\.", p.chosen).group(1)
            assert Fraction(got) == Fraction(v) * factor
            bad = re.fullmatch(rf"{re.escape(v)} {src} is ([\d.]+) {dst}\.", p.rejected).group(1)
            assert Fraction(bad) != Fraction(v) * factor
        elif p.family == "answer_format":
            a, op, b, fmt = re.fullmatch(
                r"What is (\d+) (times|plus) (\d+)\? Answer in digits with (no comma|a thousands comma)\.", p.question
            ).groups()
            value = int(a) * int(b) if op == "times" else int(a) + int(b)
            plain, grouped = (p.chosen, p.rejected) if fmt == "no comma" else (p.rejected, p.chosen)
            assert plain == str(value) and grouped == f"{value:,}" and "," in grouped
        checked[p.family] += 1
    assert set(checked) == set(IN_DISTRIBUTION) | set(OUT_OF_DISTRIBUTION)


def test_answer_format_answers_differ_by_one_comma(data: dict[str, list[Pair]]) -> None:
    pairs = [p for p in _all(data) if p.family == "answer_format"]
    assert len(pairs) >= 100
    for p in pairs:
        assert p.chosen.replace(",", "") == p.rejected.replace(",", "") and abs(len(p.chosen) - len(p.rejected)) == 1


def test_answer_format_balanced(data: dict[str, list[Pair]]) -> None:
    fmts = Counter("no comma" in p.question for p in data["train"] if p.family == "answer_format")
    assert abs(fmts[True] - fmts[False]) <= 1


def test_length_balance_per_family(data: dict[str, list[Pair]]) -> None:
    for fam in IN_DISTRIBUTION + OUT_OF_DISTRIBUTION:
        diffs = [len(p.chosen) - len(p.rejected) for p in _all(data) if p.family == fam]
        if fam in ("comparison", "answer_format"):
            signs = Counter(np.sign(diffs))
            assert abs(signs[1] - signs[-1]) <= 0.1 * len(diffs), (fam, signs)
        else:
            assert set(diffs) == {0}, fam


def test_negative_sizes_raise() -> None:
    for i in range(4):
        sizes = [1, 1, 1, 1]
        sizes[i] = -1
        with pytest.raises(ValueError):
            generate(*sizes, seed=0)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _number_cues(answer: str) -> list[float]:
    """The shape of an answer's last number: its last digit, whether it ends in 0, its digit count, its integer
    digits, its decimals, and whether it has a thousands comma."""
    numbers = re.findall(r"\d[\d,]*(?:\.\d+)?", answer)
    if not numbers:
        return [0.0] * 6
    n = numbers[-1]
    whole, _, decimals = n.replace(",", "").partition(".")
    digits = whole + decimals
    return [float(digits[-1]), float(digits[-1] == "0"), float(len(digits)), float(len(whole)), float(len(decimals)),
            float("," in n)]


def _features(pairs: list[Pair], rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Length/overlap features of (A, B) presented in random order; label 1 iff A is chosen."""
    rows, labels = [], []
    for p in pairs:
        flip = rng.random() < 0.5
        a, b = (p.rejected, p.chosen) if flip else (p.chosen, p.rejected)
        q = _words(p.question)
        fa, fb = _number_cues(a), _number_cues(b)
        rows.append(
            [
                len(a) - len(b),
                len(_words(a) & q) - len(_words(b) & q),
                len(a.split()) - len(b.split()),
                len(re.findall(r"\w+", a)) - len(re.findall(r"\w+", b)),
                *(x - y for x, y in zip(fa, fb, strict=True)),
            ]
        )
        labels.append(0.0 if flip else 1.0)
    return np.asarray(rows, dtype=float), np.asarray(labels)


def _logreg_accuracy(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> float:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-9
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    xtr, xte = np.c_[xtr, np.ones(len(xtr))], np.c_[xte, np.ones(len(xte))]
    w = np.zeros(xtr.shape[1])
    for _ in range(400):
        pred = 1 / (1 + np.exp(-xtr @ w))
        w -= 0.5 * xtr.T @ (pred - ytr) / len(ytr)
    return float(((xte @ w > 0) == (yte > 0.5)).mean())


def _stump_accuracy(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> float:
    best = (-1.0, 0, 0.0, 1)
    for j in range(xtr.shape[1]):
        for t in np.unique(xtr[:, j]):
            for s in (1, -1):
                acc = float(((s * (xtr[:, j] - t) > 0) == (ytr > 0.5)).mean())
                best = max(best, (acc, j, t, s))
    _, j, t, s = best
    return float(((s * (xte[:, j] - t) > 0) == (yte > 0.5)).mean())


def test_classifiers_can_detect_a_planted_cue() -> None:
    """Sanity check that the cue test below has teeth: a planted length cue is found."""
    pairs = generate(400, 0, 0, 0, seed=0)["train"]
    leaky = [Pair(p.id, p.family, p.question, p.chosen + " Sure.", p.rejected) for p in pairs]
    xtr, ytr = _features(leaky[:200], random.Random(1))
    xte, yte = _features(leaky[200:], random.Random(2))
    assert _logreg_accuracy(xtr, ytr, xte, yte) > 0.9
    assert _stump_accuracy(xtr, ytr, xte, yte) > 0.9


def test_the_number_cues_have_teeth() -> None:
    """A planted last-digit cue (every chosen answer's number ends in 0) is found by the same classifiers."""
    pairs = [p for p in generate(400, 0, 0, 0, seed=0)["train"] if p.family in ("addition", "unit_conversion")]
    leaky = [Pair(p.id, p.family, p.question, re.sub(r"(\d)(\D*)$", r"0\2", p.chosen), p.rejected) for p in pairs]
    half = len(leaky) // 2
    xtr, ytr = _features(leaky[:half], random.Random(1))
    xte, yte = _features(leaky[half:], random.Random(2))
    assert _stump_accuracy(xtr, ytr, xte, yte) > 0.8


def test_balanced_directions_and_orders(data: dict[str, list[Pair]]) -> None:
    """Which candidate is the larger number, and which number a comparison names first, is balanced per split."""
    for split, pairs in data.items():
        counts = [p for p in pairs if p.family == "letter_count"]
        smaller = sum(int(p.chosen.rsplit(" ", 1)[1][:-1]) < int(p.rejected.rsplit(" ", 1)[1][:-1]) for p in counts)
        assert abs(2 * smaller - len(counts)) <= 1, split
        comparisons = [p for p in pairs if p.family == "comparison"]
        first = sum(p.question.split("larger, ")[1].startswith(p.chosen.split()[0] + " ") for p in comparisons)
        assert abs(2 * first - len(comparisons)) <= 2, (split, first, len(comparisons))


def test_commutative_and_swapped_forms_are_one_instance(data: dict[str, list[Pair]]) -> None:
    """a + b and b + a, or one comparison asked in both orders, never stand in two places."""
    sums = [tuple(sorted(re.findall(r"\d+", p.question))) for p in _all(data) if p.family == "addition"]
    assert len(sums) == len(set(sums))
    compared = [frozenset(re.findall(r"[\d.]+\d", p.question)) for p in _all(data) if p.family == "comparison"]
    assert len(compared) == len(set(compared))


def test_no_surface_cue_separates_chosen_from_rejected(data: dict[str, list[Pair]]) -> None:
    xtr, ytr = _features(data["train"], random.Random(1))
    xte, yte = _features(data["val"] + data["test"], random.Random(2))
    assert len(yte) == 400
    assert _logreg_accuracy(xtr, ytr, xte, yte) <= 0.6
    assert _stump_accuracy(xtr, ytr, xte, yte) <= 0.6
