"""Every private lm-evaluation-harness seam, in one file (lm-eval is pinned in the lock;
tests/unit/evaluation/test_lmeval_seams.py checks each one against the installed version).

- :func:`model_logits`: ``HFLM._model_call``, the one forward lm-eval scores with, called on a probe input to check
  that lm-eval's model really carries the trial's adapter (``lmeval.check_wrapper_applies_adapter``).
- :func:`resolved_config`: lm-eval's own YAML loader (``lm_eval.tasks._yaml_loader.load_yaml``), which follows
  ``include:`` files the way the TaskManager does, so prefstudy reads a task's config as lm-eval will run it.
- :func:`no_env_probe`: ``simple_evaluate`` ends with the module-global ``add_env_info`` (torch's ``collect_env``:
  pip, conda and nvidia-smi in subprocesses, 3-12 s on this CPU, on every call); it is replaced for the length of
  the block by one that records lm-eval's version only (every run directory's env.json has the versions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def model_logits(lm: Any, ids: Any) -> Any:
    """The logits lm-eval's HFLM computes for the token ids ``ids`` [batch, length] (its private ``_model_call``)."""
    return lm._model_call(ids)


@contextlib.contextmanager
def no_env_probe() -> Iterator[None]:
    """Within the block, ``simple_evaluate`` records lm-eval's version instead of probing the environment."""
    from lm_eval import evaluator

    original = evaluator.add_env_info

    def versions_only(storage: dict[str, Any]) -> None:
        from importlib.metadata import version

        storage.update({"pretty_env_info": "not collected (prefstudy: see the run directory's env.json)",
                        "lm_eval_version": version("lm_eval")})

    evaluator.add_env_info = versions_only
    try:
        yield
    finally:
        evaluator.add_env_info = original


def resolved_config(path: Any) -> dict[str, Any]:
    """A task YAML's config with its ``include:`` files merged in (local keys win), ``!function`` tags left as
    they are: lm-eval's own loader."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return dict(load_yaml(path, resolve_func=False, recursive=True))
