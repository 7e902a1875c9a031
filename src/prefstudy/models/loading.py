"""Base models and tokenizers: loading once per worker, and cheap checks that a model can be had.

Model ids: the built-in ones (``prefstudy.models.builtin``), a local folder, or a hub id (needs network; offline
runs fail fast with a clear message).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefstudy.models.builtin import (
    BUILT_FOLDERS,
    EMBEDDED,
    TINY,
    ModelError,
    cache_dir,
    embedded_gguf,
    missing_folder,
    resolve_model_path,
    tiny_tokenizer,
)
from prefstudy.spec import ModelSpec, TrainingSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["ModelError", "cached_tokenizer", "check_model", "load_base_model", "load_tokenizer",
           "load_tokenizer_offline", "resolve_model_path"]


def load_tokenizer(spec_model: ModelSpec) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    path = resolve_model_path(spec_model.name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=spec_model.trust_remote_code, revision=spec_model.revision
        )
    except OSError as exc:
        raise ModelError(_fetch_hint(spec_model.name_or_path, exc)) from None
    return _finish_tokenizer(tokenizer, spec_model)


def _finish_tokenizer(tokenizer: PreTrainedTokenizerBase, spec_model: ModelSpec) -> PreTrainedTokenizerBase:
    if spec_model.chat_template:
        tokenizer.chat_template = spec_model.chat_template
    if tokenizer.chat_template is None:
        raise ModelError(f"model '{spec_model.name_or_path}' has no chat template; set model.chat_template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def is_local_model(name: str) -> bool:
    """A built-in model (built or converted here) or a local folder: nothing to download."""
    return name in BUILT_FOLDERS or name.startswith(("embedded:", "tiny-")) or Path(name).expanduser().is_dir()


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``) accepts a TCP connection within ``timeout`` seconds, name
    lookup included (in a thread: a lookup with no network can hang longer than any socket timeout)."""
    import socket
    import threading
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(answer and answer[0])


def check_model(spec_model: ModelSpec) -> None:
    """Refuse a model that cannot be had, cheaply: builds, converts and downloads nothing, imports no torch.

    Built-in names must be known (and the embedded one's package installed unless already converted), local
    folders must hold a config.json, hub ids must be valid ids and, with HF_HUB_OFFLINE set, already cached.
    """
    name = spec_model.name_or_path
    if name in BUILT_FOLDERS:
        if name == EMBEDDED and not (cache_dir() / "models" / BUILT_FOLDERS[name] / "config.json").exists():
            embedded_gguf()
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
        raise ModelError(missing_folder(name))
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


def load_tokenizer_offline(spec_model: ModelSpec) -> PreTrainedTokenizerBase | None:
    """The spec's tokenizer without building, converting or downloading anything; None when that is impossible
    (a hub model not in the local cache, or the embedded model before its one-time conversion). The tiny model's,
    before it is built, is trained in memory (:func:`cached_tokenizer` gives only tokenizers read from files)."""
    tokenizer = cached_tokenizer(spec_model)
    if tokenizer is None and spec_model.name_or_path == TINY:
        return _finish_tokenizer(tiny_tokenizer(), spec_model)
    return tokenizer


def cached_tokenizer(spec_model: ModelSpec) -> PreTrainedTokenizerBase | None:
    """The tokenizer :func:`load_tokenizer` would load, read from the files it would read, when they exist already
    (a built model's folder, a local folder, the hub cache); None otherwise."""
    from transformers import AutoTokenizer

    name = spec_model.name_or_path
    kwargs = {"trust_remote_code": spec_model.trust_remote_code, "revision": spec_model.revision}
    if name in BUILT_FOLDERS:
        folder = cache_dir() / "models" / BUILT_FOLDERS[name]
        if not (folder / "config.json").exists():
            return None
        tokenizer = AutoTokenizer.from_pretrained(folder)
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



def load_base_model(spec_model: ModelSpec, training: TrainingSpec) -> PreTrainedModel:
    """Load the base model once per worker (4-bit NF4 when the spec says so)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(spec_model.name_or_path)
    kwargs: dict[str, Any] = {"trust_remote_code": spec_model.trust_remote_code, "revision": spec_model.revision}
    compute_dtype = torch.bfloat16 if training.precision == "bf16" else torch.float32
    if training.quantization == "nf4":
        from prefstudy.models.quantization import nf4_config

        kwargs["quantization_config"] = nf4_config(compute_dtype)
        kwargs["dtype"] = compute_dtype
    else:
        kwargs["dtype"] = torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelError(_fetch_hint(spec_model.name_or_path, exc)) from None
    if training.quantization == "nf4" and not torch.cuda.is_available():
        from prefstudy.models.quantization import disable_cpu_4bit_repack

        disable_cpu_4bit_repack(model)
    if torch.cuda.is_available() and training.quantization == "none":
        model.to("cuda")  # 4-bit models are placed on the GPU by bitsandbytes when loaded
    model.config.use_cache = False
    for param in model.parameters():
        param.requires_grad_(False)
    return model

