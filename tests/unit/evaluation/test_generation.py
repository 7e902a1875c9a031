"""Generation accuracy's numeric check, worked by hand on the generator's answer shapes, and the reward-model
scorer on a tiny random classifier."""

from __future__ import annotations

import numpy as np
import pytest

from prefstudy.evaluation.generation import decisive, numbers, numeric_correct, verifiable
from prefstudy.spec import GenerationSpec


@pytest.mark.parametrize(("generated", "chosen", "rejected", "right"), [
    ("23 + 45 = 68.", "23 + 45 = 68.", "23 + 45 = 78.", True),          # the operands are in both: 68 decides
    ("23 + 45 = 78.", "23 + 45 = 68.", "23 + 45 = 78.", False),
    ("68", "23 + 45 = 68.", "23 + 45 = 78.", True),                     # the number alone
    ("0.8 is larger than 0.75.", "0.8 is larger.", "0.75 is larger.", True),  # the first decisive number counts
    ("0.75 is smaller than 0.8.", "0.8 is larger.", "0.75 is larger.", False),
    ("1,234", "1,234", "1234", True),                                   # the format is the answer
    ("1234", "1,234", "1234", False),
    ("", "23 + 45 = 68.", "23 + 45 = 78.", False),                      # an empty line is wrong
    ("\n\n", "23 + 45 = 68.", "23 + 45 = 78.", False),
    ("I am not sure.", "23 + 45 = 68.", "23 + 45 = 78.", False),        # no decisive number
    ("90 minutes is 1.5 hours.", "90 minutes is 1.5 hours.", "90 minutes is 0.9 hours.", True),
])
def test_numeric_check(generated: str, chosen: str, rejected: str, right: bool) -> None:
    assert numeric_correct(generated, chosen, rejected) is right


def test_numbers_and_decisive_by_hand() -> None:
    assert numbers("12 times 3 is 36, not 1,036.5") == ["12", "3", "36", "1,036.5"]
    assert decisive("12 times 3 is 36.", "12 times 3 is 46.") == ({"36"}, {"46"})
    assert verifiable("The count of 'a' in 'banana' is 3.", "The count of 'a' in 'banana' is 2.")
    assert not verifiable("Paris is lovely.", "Paris is big.")  # no numbers apart: left out, not scored


def test_auto_scorer_follows_the_data() -> None:
    gen = GenerationSpec()
    assert gen.resolved_scorer("synthetic") == "numeric"
    assert gen.resolved_scorer("jsonl") == "none"
    with pytest.raises(ValueError, match="reward model"):
        GenerationSpec(scorer="/no/such/reward-model")


def test_reward_model_scorer_compares_the_answer_with_the_rejected_one(tmp_path) -> None:
    """A tiny random sequence classifier saved locally: a generation identical to the rejected answer ties (0.5);
    otherwise the verdict is the sign of the two scores, whatever they are."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import MistralConfig, MistralForSequenceClassification, PreTrainedTokenizerFast

    from prefstudy.evaluation.generation import RewardModelScorer

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "a", "b", "c", "d", "e", "the", "is", "\n"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    config = MistralConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, num_labels=1, pad_token_id=0)
    model = MistralForSequenceClassification(config)
    model.save_pretrained(tmp_path)
    fast.save_pretrained(tmp_path)
    scorer = RewardModelScorer(str(tmp_path))
    prompts, generated, rejected = ["a b", "a b", "c"], ["the a", "d e", "is"], ["the a", "e d", "c c"]
    scores_g, scores_r = scorer.score(prompts, generated), scorer.score(prompts, rejected)
    expected = np.where(scores_g > scores_r, 1.0, np.where(scores_g == scores_r, 0.5, 0.0))
    got = scorer.correct(prompts, generated, rejected)
    assert got[0] == 0.5 and np.array_equal(got, expected)
