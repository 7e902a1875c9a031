"""Seeded generator of short conversational preference pairs with verifiable answers.

Every pair is one user turn plus one short assistant answer. ``chosen`` and
``rejected`` share the same answer template and differ only in the answer value
(or, for ``answer_format``, only in how the same value is written), so that no
surface cue (length, word overlap with the question, a fixed word) separates them:

* ``addition``, ``letter_count``, ``unit_conversion`` and ``subtraction`` pairs are
  built so chosen and rejected have equal character length, equal word count and
  equal word overlap with the question (candidates that break this are redrawn).
* ``comparison`` and ``answer_format`` cannot be exactly equal; there the length
  difference is balanced by construction (the pattern cycles within each split).

Held-out splits are generated first (test, val, ood, then train), each from its own
``random.Random`` stream, so changing ``n_train`` never changes val/test/ood.
Instances are disjoint across all splits.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

SYSTEM_PROMPT: str = "You are a careful assistant. Answer briefly."
IN_DISTRIBUTION: tuple[str, ...] = (
    "addition",
    "comparison",
    "letter_count",
    "unit_conversion",
    "answer_format",
)
OUT_OF_DISTRIBUTION: tuple[str, ...] = ("subtraction",)
_SPLITS: tuple[str, ...] = ("train", "val", "test", "ood")
_GENERATION_ORDER: tuple[str, ...] = ("test", "val", "ood", "train")
_MAX_ATTEMPTS = 20_000  # redraws allowed per item before giving up

_WORDS: tuple[str, ...] = tuple(
    """
    strawberry banana mississippi committee bookkeeper balloon coffee address
    assessment possession parallel pepper occurrence necessary accommodate
    embarrass millennium tomorrow cinnamon broccoli raspberry blueberry cherry
    apple pineapple coconut avocado tomato potato carrot lettuce cucumber
    zucchini spaghetti lasagna macaroni pizza muffin pudding cookie chocolate
    butter kettle bottle puzzle giraffe hippopotamus kangaroo elephant gorilla
    alligator rattlesnake caterpillar butterfly grasshopper mosquito penguin
    squirrel rabbit parrot sparrow peacock flamingo dolphin octopus jellyfish
    library calendar umbrella notebook pencil scissors keyboard telephone
    television computer engineer professor teacher musician carpenter barber
    tennessee massachusetts connecticut alabama california colorado minnesota
    banner summer winter autumn season weather thunder lightning hurricane
    tornado volcano mountain valley meadow forest desert island peninsula
    harbor lighthouse bridge tunnel highway railroad airport baggage luggage
    passenger ticket sweater jacket slipper mitten necklace bracelet earring
    mirror window doorbell cabinet cupboard drawer pillow blanket mattress
    hammock lantern candle teapot saucer spoon kitten puppy grammar syllable
    vocabulary dictionary sentence paragraph assignment referee tattoo
    balloonist cappuccino espresso lollipop marshmallow peppermint popcorn
    noodle bubble pebble ripple giggle juggle waffle sizzle dazzle possess
    success access illness goddess occasion irregular terrific
    horrible beginning committed excellent difference pioneer voyage explorer
    """.split()
)
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
# from unit, to unit, true factor, plausible wrong factors, value = step * randint(lo, hi) / denom
_CONVERSIONS: tuple[tuple[str, str, str, tuple[str, ...], tuple[int, int, int, int]], ...] = (
    ("minutes", "hours", "1/60", ("1/100", "1/30"), (5, 60, 15, 1)),
    ("seconds", "minutes", "1/60", ("1/100", "1/30"), (5, 60, 15, 1)),
    ("hours", "minutes", "60", ("100", "30"), (3, 40, 1, 2)),
    ("days", "hours", "24", ("12", "60"), (2, 40, 1, 1)),
    ("weeks", "days", "7", ("5", "10"), (2, 60, 1, 1)),
    ("centimeters", "meters", "1/100", ("1/10", "1/1000"), (101, 999, 1, 1)),
    ("meters", "kilometers", "1/1000", ("1/100", "1/10000"), (1001, 9999, 1, 1)),
    ("grams", "kilograms", "1/1000", ("1/100", "1/10000"), (1001, 9999, 1, 1)),
)

# A generator returns (dedup key, question, chosen, rejected) or None to redraw.
_Draw = tuple[str, str, str, str] | None


@dataclass(frozen=True)
class Pair:
    """One preference pair: a single user turn and two candidate answers."""

    id: str
    family: str
    question: str
    chosen: str
    rejected: str


def _tokens(text: str) -> list[str]:
    """Lower-cased word tokens (``\\w+``), used for the surface-balance checks."""
    return re.findall(r"\w+", text.lower())


def _balanced(question: str, chosen: str, rejected: str) -> bool:
    """True if the answers differ, match in length and token count, and overlap the question equally."""
    if chosen == rejected or len(chosen) != len(rejected):
        return False
    q = set(_tokens(question))
    tc, tr = _tokens(chosen), _tokens(rejected)
    return len(tc) == len(tr) and sum(t in q for t in tc) == sum(t in q for t in tr)


def _num_words(n: int) -> str:
    """English words for 0 <= n <= 999, e.g. 121 -> 'one hundred twenty-one'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else "")
    rest = f" {_num_words(n % 100)}" if n % 100 else ""
    return f"{_ONES[n // 100]} hundred{rest}"


def _fmt(x: Fraction) -> str | None:
    """Plain decimal string for a positive fraction with <= 3 decimals, else None."""
    scaled = x * 1000
    if x <= 0 or scaled.denominator != 1:
        return None
    whole, frac = divmod(scaled.numerator, 1000)
    return f"{whole}.{frac:03d}".rstrip("0") if frac else str(whole)


def _operand(rng: random.Random) -> int:
    """A random 2- or 3-digit number."""
    return rng.randint(10, 99) if rng.random() < 0.5 else rng.randint(100, 999)


def _gen_addition(rng: random.Random, k: int) -> _Draw:
    """Sum of two 2-3 digit numbers; rejected drops a carry (even k) or counts it twice (odd k)."""
    a, b = _operand(rng), _operand(rng)
    carries, carry, col = [], 0, 0
    x, y = a, b
    while x or y:
        carry = 1 if x % 10 + y % 10 + carry >= 10 else 0
        if carry:
            carries.append(col)
        x, y, col = x // 10, y // 10, col + 1
    if not carries:
        return None
    wrong = a + b + (1 if k % 2 else -1) * 10 ** (rng.choice(carries) + 1)
    q = f"What is {a} + {b}?"
    return q, q, f"{a} + {b} = {a + b}.", f"{a} + {b} = {wrong}."


def _gen_subtraction(rng: random.Random, k: int) -> _Draw:
    """Difference with a borrow; rejected forgets to reduce the next digit (even k) or reduces it twice."""
    a, b = sorted((_operand(rng), _operand(rng)), reverse=True)
    borrows, borrow, col = [], 0, 0
    x, y = a, b
    while x:
        borrow = 1 if x % 10 - borrow < y % 10 else 0
        if borrow:
            borrows.append(col)
        x, y, col = x // 10, y // 10, col + 1
    if a == b or not borrows:
        return None
    wrong = a - b + (-1 if k % 2 else 1) * 10 ** (rng.choice(borrows) + 1)
    if wrong <= 0:
        return None
    q = f"What is {a} - {b}?"
    return q, q, f"{a} - {b} = {a - b}.", f"{a} - {b} = {wrong}."


def _gen_comparison(rng: random.Random, k: int) -> _Draw:
    """Two close decimals; the larger has equal (k%3==0), fewer (1) or more (2) decimal digits."""
    whole, pattern = rng.randint(0, 9), k % 3
    if pattern == 0:
        lo = rng.randint(11, 97)
        hi = min(lo + rng.randint(1, 15), 99)
        if lo % 10 == 0 or hi % 10 == 0 or lo == hi:
            return None
        big, small = f"{whole}.{hi}", f"{whole}.{lo:02d}"
    elif pattern == 1:  # 0.8 vs 0.75: more digits but smaller
        d = rng.randint(1, 9)
        big, small = f"{whole}.{d}", f"{whole}.{rng.randint(0, d - 1)}{rng.randint(1, 9)}"
    else:  # 0.8 vs 0.83: more digits and larger
        d = rng.randint(1, 9)
        big, small = f"{whole}.{d}{rng.randint(1, 9)}", f"{whole}.{d}"
    first, second = (big, small) if rng.random() < 0.5 else (small, big)
    q = f"Which is larger, {first} or {second}?"
    return q, q, f"{big} is larger.", f"{small} is larger."


def _gen_letter_count(rng: random.Random, k: int) -> _Draw:
    """Occurrences of a letter in a word from the built-in list; rejected is off by one.

    The letter is repeated in the word half the time, is any present letter 7/20 of the time and
    absent 3/20 of the time, so no single count (e.g. 1) is a reliable prior.
    """
    word = rng.choice(_WORDS)
    present = sorted(set(word))
    repeated = [c for c in present if word.count(c) > 1]
    u = rng.random()
    if u < 0.5 and repeated:
        letter = rng.choice(repeated)
    elif u < 0.85:
        letter = rng.choice(present)
    else:
        letter = rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c not in present])
    n = word.count(letter)
    wrong = n + 1 if n == 0 else n + rng.choice((-1, 1))
    q = f"How many times does the letter '{letter}' appear in '{word}'?"
    template = "The count of '{}' in '{}' is {}."
    return q, q, template.format(letter, word, n), template.format(letter, word, wrong)


def _gen_unit_conversion(rng: random.Random, k: int) -> _Draw:
    """Unit conversion; rejected uses a plausible wrong factor (e.g. 100 minutes per hour)."""
    src, dst, factor, wrong_factors, (lo, hi, step, denom) = rng.choice(_CONVERSIONS)
    value = Fraction(step * rng.randint(lo, hi), denom)
    v, right = _fmt(value), _fmt(value * Fraction(factor))
    wrong = _fmt(value * Fraction(rng.choice(wrong_factors)))
    if v is None or right is None or wrong is None or "1" in (v, right, wrong):
        return None
    q = f"How many {dst} are in {v} {src}?"
    return q, q, f"{v} {src} is {right} {dst}.", f"{v} {src} is {wrong} {dst}."


def _gen_answer_format(rng: random.Random, k: int) -> _Draw:
    """A product or sum to give in digits (even k) or in words (odd k); rejected uses the other format."""
    if rng.random() < 0.5:
        op, a, b = "times", rng.randint(3, 16), rng.randint(13, 60)
    else:
        op, a, b = "plus", rng.randint(11, 99), rng.randint(11, 99)
    if rng.random() < 0.5:
        a, b = b, a
    value = a * b if op == "times" else a + b
    digits, words = str(value), _num_words(value)
    key = f"answer_format:{min(a, b)} {op} {max(a, b)}"  # both formats/orders are one instance
    if k % 2 == 0:
        return key, f"What is {a} {op} {b}? Answer with digits only.", digits, words
    return key, f"What is {a} {op} {b}? Answer in words.", words, digits


_GENERATORS: dict[str, Callable[[random.Random, int], _Draw]] = {
    "addition": _gen_addition,
    "comparison": _gen_comparison,
    "letter_count": _gen_letter_count,
    "unit_conversion": _gen_unit_conversion,
    "answer_format": _gen_answer_format,
    "subtraction": _gen_subtraction,
}
_EXACTLY_BALANCED = frozenset({"addition", "letter_count", "unit_conversion", "subtraction"})


def _draw(family: str, rng: random.Random, k: int, seen: set[str]) -> tuple[str, str, str]:
    """Draw one unseen, valid instance of ``family``; raise ValueError if the pool seems exhausted."""
    for _ in range(_MAX_ATTEMPTS):
        out = _GENERATORS[family](rng, k)
        if out is None:
            continue
        key, question, chosen, rejected = out
        if key in seen or chosen == rejected:
            continue
        if family in _EXACTLY_BALANCED and not _balanced(question, chosen, rejected):
            continue
        seen.add(key)
        return question, chosen, rejected
    raise ValueError(f"could not draw enough distinct {family!r} instances; request fewer pairs")


def generate(n_train: int, n_val: int, n_test: int, n_ood: int, seed: int) -> dict[str, list[Pair]]:
    """Generate preference pairs for all splits.

    Returns ``{"train": [...], "val": [...], "test": [...], "ood": [...]}``. Families are
    balanced round-robin within each split (``OUT_OF_DISTRIBUTION`` families only in
    ``"ood"``); instances are disjoint across all splits; output is identical for
    identical arguments. Ids look like ``"addition-000017"`` and are unique per call.
    Raises ValueError on negative sizes or when a family's instance pool runs out.
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test, "ood": n_ood}
    for name, size in sizes.items():
        if size < 0:
            raise ValueError(f"n_{name} must be >= 0, got {size}")
    seen: set[str] = set()
    counters: dict[str, int] = {}
    out: dict[str, list[Pair]] = {}
    for split in _GENERATION_ORDER:
        rng = random.Random(f"prefstudy-synthetic:{seed}:{split}")
        families = OUT_OF_DISTRIBUTION if split == "ood" else IN_DISTRIBUTION
        pairs: list[Pair] = []
        for i in range(sizes[split]):
            family = families[i % len(families)]
            question, chosen, rejected = _draw(family, rng, i // len(families), seen)
            idx = counters.get(family, 0)
            counters[family] = idx + 1
            pairs.append(Pair(f"{family}-{idx:06d}", family, question, chosen, rejected))
        out[split] = pairs
    return {split: out[split] for split in _SPLITS}
