"""Seeded generator of short conversational preference pairs with verifiable answers.

Every pair is one user turn plus one short assistant answer. ``chosen`` and
``rejected`` share the same answer template and differ only in the answer value
(or, for ``answer_format``, only in how the same value is written), so that no
surface cue (length, word overlap with the question, a fixed word) separates them:

* ``addition``, ``letter_count``, ``unit_conversion``, ``subtraction`` and ``multiplication`` pairs are
  built so chosen and rejected have equal character length, equal word count and
  equal word overlap with the question (candidates that break this are redrawn).
* ``comparison`` and ``answer_format`` cannot be exactly equal; there the length
  difference is balanced by construction (the pattern cycles within each split), and
  in ``answer_format`` it is one character (a thousands comma).
* No answer's shape gives it away: which of two candidates is the larger number
  (letter counts, wrong conversion factors, carries) alternates with the item index;
  the order of the two numbers in a comparison question alternates too; conversion
  values span several digit counts, so the right answer's number of digits and
  decimals varies; wrong factors keep the right answer's last-digit pattern.
* Instance keys are canonical: ``a + b`` and ``b + a``, or a comparison asked in
  either order, are one instance, so no pair is held out in one order and trained
  on in the other.

Held-out splits are generated first (test, val, ood, then train), each from its own
``random.Random`` stream, so changing ``n_train`` never changes val/test/ood. The
``profile`` split (pairs only the lr-profile stage reads) comes last, so adding it
changes no other split. Instances are disjoint across all splits.
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
OUT_OF_DISTRIBUTION: tuple[str, ...] = ("subtraction", "multiplication")
_SPLITS: tuple[str, ...] = ("train", "val", "test", "ood", "profile")
_GENERATION_ORDER: tuple[str, ...] = ("test", "val", "ood", "train", "profile")
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
# from unit, to unit, true factor, (smaller wrong factor, larger wrong factor), (step, denom, min and max digits):
# value = step * n / denom with n of a digit count drawn uniformly from the range. Wrong factors have the right
# one's parity pattern (weeks: 3 and 9 days, like 7 odd; days: 12 and 36 hours, like 24 even), so the last digit
# tells nothing; time conversions mix in halves and quarters so the decimals vary.
_CONVERSIONS: tuple[tuple[str, str, str, tuple[str, str], tuple[int, int, int, int]], ...] = (
    ("minutes", "hours", "1/60", ("1/100", "1/30"), (15, 1, 1, 3)),
    ("seconds", "minutes", "1/60", ("1/100", "1/30"), (15, 1, 1, 3)),
    ("hours", "minutes", "60", ("30", "100"), (1, 4, 1, 3)),
    ("days", "hours", "24", ("12", "36"), (1, 2, 1, 3)),
    ("weeks", "days", "7", ("3", "9"), (1, 1, 1, 3)),
    ("centimeters", "meters", "1/100", ("1/1000", "1/10"), (1, 1, 2, 5)),
    ("meters", "kilometers", "1/1000", ("1/10000", "1/100"), (10, 1, 2, 4)),
    ("grams", "kilograms", "1/1000", ("1/10000", "1/100"), (10, 1, 2, 4)),
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
    return f"addition:{min(a, b)}+{max(a, b)}", q, f"{a} + {b} = {a + b}.", f"{a} + {b} = {wrong}."


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


def _gen_multiplication(rng: random.Random, k: int) -> _Draw:
    """A 2-3 digit number times a digit 3-9 with a carry; rejected drops a carry (even k) or adds one (odd k)."""
    a, b = _operand(rng), rng.randint(3, 9)
    carries, carry, col, x = [], 0, 0, a
    while x:
        carry = (x % 10 * b + carry) // 10
        if carry:
            carries.append(col)
        x, col = x // 10, col + 1
    if not carries or carries == [col - 1]:  # a carry only out of the top digit changes the answer's length
        return None
    wrong = a * b + (1 if k % 2 else -1) * 10 ** (rng.choice([c for c in carries if c < col - 1]) + 1)
    q = f"What is {a} times {b}?"
    return f"multiplication:{a}*{b}", q, f"{a} times {b} is {a * b}.", f"{a} times {b} is {wrong}."


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
    first, second = (big, small) if (k // 3) % 2 == 0 else (small, big)  # each pattern asked both ways
    q = f"Which is larger, {first} or {second}?"
    return f"comparison:{min(big, small)}|{max(big, small)}", q, f"{big} is larger.", f"{small} is larger."


def _gen_letter_count(rng: random.Random, k: int) -> _Draw:
    """Occurrences of a letter in a word from the built-in list; rejected is off by one.

    The two counts shown are m and m + 1 (m = 0, 1 or 2 in proportions 4 : 5 : 1); the right one is m for even k
    and m + 1 for odd k. So the numbers a pair shows, a 0 included, are the same whichever is right, and the right
    count is the smaller one exactly half the time.
    """
    m = rng.choices((0, 1, 2), weights=(4, 5, 1))[0]
    n, wrong = (m, m + 1) if k % 2 == 0 else (m + 1, m)
    word = rng.choice(_WORDS)
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz" if word.count(c) == n]
    if not letters:
        return None
    letter = rng.choice(letters)
    q = f"How many times does the letter '{letter}' appear in '{word}'?"
    template = "The count of '{}' in '{}' is {}."
    return q, q, template.format(letter, word, n), template.format(letter, word, wrong)


def _gen_unit_conversion(rng: random.Random, k: int) -> _Draw:
    """Unit conversion; rejected uses a plausible wrong factor (e.g. 100 minutes per hour)."""
    src, dst, factor, wrong_factors, (step, denom, low_digits, high_digits) = rng.choice(_CONVERSIONS)
    digits = rng.randint(low_digits, high_digits)
    value = Fraction(step * rng.randint(10 ** (digits - 1), 10 ** digits - 1), denom)
    v, right = _fmt(value), _fmt(value * Fraction(factor))
    wrong = _fmt(value * Fraction(wrong_factors[k % 2]))  # smaller and larger wrong factors alternate
    if v is None or right is None or wrong is None or "1" in (v, right, wrong):
        return None
    q = f"How many {dst} are in {v} {src}?"
    return q, q, f"{v} {src} is {right} {dst}.", f"{v} {src} is {wrong} {dst}."


def _gen_answer_format(rng: random.Random, k: int) -> _Draw:
    """A product or sum of at least 1,000 to write without (even k) or with (odd k) a thousands comma; rejected
    writes it the other way. The two answers differ by one character, longer and shorter equally often."""
    if rng.random() < 0.5:
        op, a, b = "times", rng.randint(12, 99), rng.randint(100, 999)
    else:
        op, a, b = "plus", rng.randint(100, 9999), rng.randint(1000, 9999)
    if rng.random() < 0.5:
        a, b = b, a
    value = a * b if op == "times" else a + b
    if not 1000 <= value <= 99999:
        return None
    plain, grouped = str(value), f"{value:,}"
    key = f"answer_format:{min(a, b)} {op} {max(a, b)}"  # both formats/orders are one instance
    if k % 2 == 0:
        return key, f"What is {a} {op} {b}? Answer in digits with no comma.", plain, grouped
    return key, f"What is {a} {op} {b}? Answer in digits with a thousands comma.", grouped, plain


_GENERATORS: dict[str, Callable[[random.Random, int], _Draw]] = {
    "addition": _gen_addition,
    "comparison": _gen_comparison,
    "letter_count": _gen_letter_count,
    "unit_conversion": _gen_unit_conversion,
    "answer_format": _gen_answer_format,
    "subtraction": _gen_subtraction,
    "multiplication": _gen_multiplication,
}
_EXACTLY_BALANCED = frozenset({"addition", "letter_count", "unit_conversion", "subtraction", "multiplication"})


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


def generate(n_train: int, n_val: int, n_test: int, n_ood: int, seed: int, n_profile: int = 0
             ) -> dict[str, list[Pair]]:
    """Generate preference pairs for all splits.

    Returns ``{"train": [...], "val": [...], "test": [...], "ood": [...], "profile": [...]}``. Families are
    balanced round-robin within each split (``OUT_OF_DISTRIBUTION`` families only in
    ``"ood"``); instances are disjoint across all splits; output is identical for
    identical arguments. Ids look like ``"addition-000017"`` and are unique per call.
    Raises ValueError on negative sizes or when a family's instance pool runs out.
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test, "ood": n_ood, "profile": n_profile}
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
