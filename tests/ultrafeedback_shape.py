"""Rows shaped like ``HuggingFaceH4/ultrafeedback_binarized`` (``train_prefs`` / ``test_prefs``), made here: a
string ``prompt`` column beside ``chosen`` and ``rejected`` given as whole conversations (the user turns included,
some with earlier turns), answers from one sentence to 120, the chosen one usually longer, and the
extra columns (``prompt_id``, ``messages``, ``score_chosen``, ``score_rejected``). For the end-to-end test of
real-shaped data (issue #34); deterministic for a seed."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

TOPICS = ("tides", "bread", "volcanoes", "prime numbers", "bicycles", "tea", "glaciers", "owls", "chess", "rainbows",
          "copper", "honeybees", "lighthouses", "maple trees", "comets", "salt", "violins", "deserts", "kites", "moss")


def _answer(rng: random.Random, topic: str, sentences: int, good: bool) -> str:
    lines = []
    for i in range(sentences):
        if good:
            lines.append(f"Point {i + 1} about {topic}: it is worth knowing how {topic} change over time.")
        else:
            lines.append(f"Something about {topic} {rng.randint(1, 99)}.")
    return " ".join(lines)


def row(rng: random.Random, index: int, long_chosen: bool = True) -> dict[str, Any]:
    topic = TOPICS[index % len(TOPICS)]
    question = f"Tell me about {topic} (question {index})."
    turns: list[dict[str, str]] = []
    if index % 3 == 0:  # multi-turn: an earlier exchange the answers share
        turns = [{"role": "user", "content": f"Hi, I have questions about {topic}."},
                 {"role": "assistant", "content": "Sure, ask away."}]
    turns.append({"role": "user", "content": question})
    chosen_n = rng.randint(8, 40) if long_chosen else rng.randint(1, 3)
    if long_chosen and index % 8 == 1:  # a few answers far longer than a 1024-token max_length
        chosen_n = rng.randint(80, 120)
    rejected_n = rng.randint(1, 4) if long_chosen else rng.randint(6, 20)
    chosen = turns + [{"role": "assistant", "content": _answer(rng, topic, chosen_n, True)}]
    rejected = turns + [{"role": "assistant", "content": _answer(rng, topic, rejected_n, False)}]
    return {"prompt": question, "prompt_id": f"uf-{index:05d}", "chosen": chosen, "rejected": rejected,
            "messages": chosen, "score_chosen": float(rng.randint(7, 10)), "score_rejected": float(rng.randint(1, 6))}


def write(folder: Path, n_train: int = 24, n_heldout: int = 32, seed: int = 0) -> tuple[Path, Path]:
    """``uf_train.jsonl`` and ``uf_heldout.jsonl`` in ``folder``: chosen longer in 3 of 4 pairs."""
    rng = random.Random(seed)
    train = [row(rng, i, long_chosen=i % 4 != 3) for i in range(n_train)]
    heldout = [row(rng, 1000 + i, long_chosen=i % 4 != 3) for i in range(n_heldout)]
    paths = folder / "uf_train.jsonl", folder / "uf_heldout.jsonl"
    for path, rows in zip(paths, (train, heldout), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths
