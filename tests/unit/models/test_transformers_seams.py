"""The private transformers seam (models/transformers_seams.py) against the pinned transformers: a loaded model's
config names its attention kernel in ``_attn_implementation``, which decides whether packed rows' 4D masks apply."""

from __future__ import annotations

from types import SimpleNamespace

from prefstudy.models.transformers_seams import attention_implementation


def test_a_loaded_models_attention_implementation_is_read_from_its_config(tiny) -> None:
    _tokenizer, model = tiny
    assert attention_implementation(model) == "sdpa"  # the default on CPU for Mistral in the pinned version
    assert attention_implementation(model.config) == "sdpa"


def test_a_model_without_one_gives_none() -> None:
    assert attention_implementation(SimpleNamespace(config=SimpleNamespace())) is None
    assert attention_implementation(SimpleNamespace(_attn_implementation="eager")) == "eager"
