"""Generation accuracy: the policy's own greedy answer to held-out prompts, checked against the chosen answer.

Ranking metrics ask which of two given answers the policy prefers; this asks what it says. An adapter that ranks
well but answers with empty lines (seen with DPO on the default study's format task) shows here and nowhere else.

Scorers (``evaluation.generation.scorer``):

* ``numeric`` (what ``auto`` picks for the built-in generator's data): the answers of a pair differ in their
  numbers (``68`` against ``78``, ``1,234`` against ``1234``). The *decisive* numbers are those of the chosen answer
  that the rejected one lacks, and the other way round. A generation is correct when the first decisive number it
  contains is one of the chosen answer's: ``"23 + 45 = 68."`` is right for chosen ``23 + 45 = 68.`` against
  rejected ``23 + 45 = 78.``; ``"0.8 is larger than 0.75."`` is right for chosen ``0.8 is larger.``; an empty answer,
  or one with no decisive number, is wrong. A pair whose answers share all their numbers cannot be checked this way
  and is left out (counted in ``unverifiable``).
* a local sequence-classification reward model (a folder): a generation wins when the reward model scores it above
  the rejected answer (ties count half). For data whose answers are not verifiable.
* ``none`` (what ``auto`` picks for data other than the generator's): the metric is not available.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

#: a number as the generator writes them: digits, optional thousands groups, optional decimals
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def numbers(text: str) -> list[str]:
    """The numbers of ``text`` in order, as written (``"1,234"`` stays ``"1,234"``)."""
    return NUMBER.findall(text)


def decisive(chosen: str, rejected: str) -> tuple[set[str], set[str]]:
    """The numbers that tell the answers apart: chosen's that rejected lacks, and rejected's that chosen lacks."""
    c, r = Counter(numbers(chosen)), Counter(numbers(rejected))
    return set((c - r).keys()), set((r - c).keys())


def verifiable(chosen: str, rejected: str) -> bool:
    right, _ = decisive(chosen, rejected)
    return bool(right)


def numeric_correct(generated: str, chosen: str, rejected: str) -> bool:
    """True when the first decisive number in ``generated`` is the chosen answer's (module docstring)."""
    right, wrong = decisive(chosen, rejected)
    for number in numbers(generated):
        if number in right:
            return True
        if number in wrong:
            return False
    return False


@dataclass
class GenerationResult:
    """Per checked prompt: the generated text and 1/0.5/0 correctness; summary numbers over them."""

    texts: list[str]
    correct: np.ndarray
    indices: list[int]  # rows of the split the prompts came from
    unverifiable: int = 0

    def summary(self) -> dict[str, float]:
        n = len(self.correct)
        empty = sum(1 for t in self.texts if not t.strip())
        return {"accuracy": float(self.correct.mean()) if n else float("nan"), "n": float(n),
                "empty_fraction": empty / n if n else float("nan"), "unverifiable": float(self.unverifiable)}


def greedy_answers(model: Any, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Sequence[int]],
                   max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy continuations of already templated prompt ids (left-padded batches), decoded without special tokens.
    The model's train/eval mode is restored afterwards."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            rows = [list(p) for p in prompts[start : start + batch_size]]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):
                ids[i, width - len(row) :] = torch.tensor(row)
                mask[i, width - len(row) :] = 1
            with torch.no_grad():
                generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                           max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                           pad_token_id=pad, use_cache=True, temperature=None, top_p=None,
                                           top_k=None)
            for row in generated[:, width:]:
                out.append(tokenizer.decode(row, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return out


class RewardModelScorer:
    """A local sequence-classification reward model: a generation wins when it outscores the rejected answer."""

    def __init__(self, path: str, device: torch.device | None = None) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path)
        self.model.eval()
        if device is not None:
            self.model.to(device)

    def score(self, prompts: list[str], answers: list[str]) -> np.ndarray:
        import torch

        texts = [f"{p}\n{a}" for p, a in zip(prompts, answers, strict=True)]
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=512)
        batch = {k: v.to(self.model.device) for k, v in batch.items()}
        with torch.no_grad():
            logits = self.model(**batch).logits
        return logits[:, 0].float().cpu().numpy()

    def correct(self, prompts: list[str], generated: list[str], rejected: list[str]) -> np.ndarray:
        g, r = self.score(prompts, generated), self.score(prompts, rejected)
        return np.where(g > r, 1.0, np.where(g == r, 0.5, 0.0))


def generation_accuracy(model: Any, tokenizer: PreTrainedTokenizerBase, dataset: Any, n: int,
                        max_new_tokens: int, batch_size: int, scorer: str | RewardModelScorer) -> GenerationResult:
    """Generate for the first ``n`` rows of a tokenized split (``prompt_ids``, ``chosen_ids``, ``rejected_ids``) and
    score the answers with ``scorer`` ('numeric' or a reward model)."""
    n = min(n, len(dataset))
    columns = dataset.select(range(n)).select_columns(["prompt_ids", "chosen_ids", "rejected_ids"])
    chosen = [tokenizer.decode(ids, skip_special_tokens=True) for ids in columns["chosen_ids"]]
    rejected = [tokenizer.decode(ids, skip_special_tokens=True) for ids in columns["rejected_ids"]]
    rows = list(range(n))
    skipped = 0
    if scorer == "numeric":
        rows = [i for i in rows if verifiable(chosen[i], rejected[i])]
        skipped = n - len(rows)
    prompts = [columns["prompt_ids"][i] for i in rows]
    texts = greedy_answers(model, tokenizer, prompts, max_new_tokens, batch_size) if rows else []
    if scorer == "numeric":
        correct = np.array([float(numeric_correct(t, chosen[i], rejected[i])) for t, i in zip(texts, rows,
                                                                                               strict=True)])
    elif isinstance(scorer, RewardModelScorer):
        prompt_texts = [tokenizer.decode(p, skip_special_tokens=True) for p in prompts]
        correct = scorer.correct(prompt_texts, texts, [rejected[i] for i in rows])
    else:
        raise ValueError(f"unknown generation scorer {scorer!r}")
    return GenerationResult(texts, np.asarray(correct, dtype=float), rows, skipped)


_REWARD_MODELS: dict[str, RewardModelScorer] = {}


def scorer_for(name: str) -> str | RewardModelScorer | None:
    """'numeric', a reward model loaded once per process, or None for 'none' (the metric is not available)."""
    if name == "none":
        return None
    if name == "numeric":
        return name
    if name not in _REWARD_MODELS:
        _REWARD_MODELS[name] = RewardModelScorer(name)
    return _REWARD_MODELS[name]


def generation_metrics(model: Any, tokenizer: PreTrainedTokenizerBase, dataset: Any, n: int, max_new_tokens: int,
                       batch_size: int, scorer_name: str) -> tuple[dict[str, float], GenerationResult] | None:
    """``generation_accuracy`` and ``generation_empty_fraction`` of the first ``n`` prompts (None when the scorer is
    'none' or nothing is verifiable), with the per-prompt result."""
    scorer = scorer_for(scorer_name)
    if scorer is None or n <= 0:
        return None
    result = generation_accuracy(model, tokenizer, dataset, n, max_new_tokens, batch_size, scorer)
    if not len(result.correct):
        return None
    summary = result.summary()
    return {"generation_accuracy": summary["accuracy"], "generation_empty_fraction": summary["empty_fraction"],
            "generation_n": summary["n"]}, result
