"""Reading a spec file: YAML (duplicate-free), ``key.path=value`` overrides, anchored input paths, validation,
and errors that name the file and the field."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from prefstudy.core.paths import find_spec
from prefstudy.spec.schema import SpecError, StudySpec


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where ``loc`` points (for "did you mean" on an unknown key)."""
    node: Any = StudySpec
    for part in loc[:-1]:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            node = field.annotation if field is not None else None
        elif get_origin(node) in (dict, tuple):
            node = get_args(node)[-1 if get_origin(node) is dict else 0]
        else:
            return []
        if get_origin(node) in (UnionType, Union):
            node = next((arg for arg in get_args(node) if arg is not type(None)), None)
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _format_error(path: str, error: ValidationError) -> str:
    """One line: every problem as ``field: message (got value)``, each with what to do where it is not obvious."""
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(item["loc"][-1]), _known_keys(item["loc"]), n=1)
            hint = f"did you mean '{close[0]}'? " if close else "check the spelling; "
            message = f"unknown key ({hint}see study/default.yaml for every knob)"
        elif item["type"] == "missing":
            message = "required key is missing; add it (see study/default.yaml)"
        elif item["type"] != "value_error" and isinstance(item.get("input"), str | int | float | bool):
            message = f"{message} (got {item['input']!r})"
        parts.append(f"{path}: {field}: {' '.join(message.split())}")
    return "; ".join(parts)


#: spec fields that name input files or folders: relative values are anchored (see :func:`load_spec`)
INPUT_PATHS = (("data", "train"), ("data", "heldout"), ("data", "ood"), ("model", "name_or_path"))


def _anchor(raw: dict[str, Any], base: Path, only: set[tuple[str, str]] | None = None) -> None:
    """Make the relative input paths of a raw spec absolute, against ``base``. A model name is a path only when it
    starts with '.' or names an existing folder there (otherwise it is a built-in name or a hub id)."""
    for section, key in INPUT_PATHS:
        node = raw.get(section)
        value = node.get(key) if isinstance(node, dict) else None
        if (only is not None and (section, key) not in only) or not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if path.is_absolute() or (key == "name_or_path" and not (value.startswith(".") or (base / path).is_dir())):
            continue
        node[key] = os.path.normpath(Path.cwd() / base / path)  # type: ignore[index]


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides (values parsed as YAML) to a raw spec mapping."""
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"override '{item}': expected key.path=value")
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SpecError(f"override '{item}': '{part}' is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(text)
    return raw


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps the last silently)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first on line {seen[key] + 1}): keep one of them",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_spec(path: str | Path, overrides: list[str] | None = None) -> StudySpec:
    """Read, override and validate a spec file. Raises SpecError naming the file and the field.

    Input paths written in the file (data files, a local model folder) are read relative to the file's folder;
    those given as ``key=value`` overrides relative to the current folder. Outputs (``runs_dir``, a SQLite
    ``storage``) stay relative to the current folder. ``path`` may name a packaged spec (core.paths.find_spec)."""
    path = find_spec(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror or exc}); check the path "
                        "(e.g. study/default.yaml)") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if problem.startswith("duplicate key"):
            raise SpecError(f"{where}: {problem} (a repeated key would silently replace the first)") from None
        raise SpecError(f"{where}: not valid YAML ({problem}); fix the syntax at that line "
                        "(brackets, quotes, indentation)") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a YAML mapping of sections (name:, methods:, ...); "
                        "see study/default.yaml")
    _anchor(raw, path.parent)
    raw = apply_overrides(raw, overrides or [])
    overridden = {tuple(item.partition("=")[0].strip().split(".")) for item in overrides or []}
    _anchor(raw, Path("."), {key for key in INPUT_PATHS if key in overridden})
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_error(str(path), exc)) from None


def spec_text(spec: StudySpec) -> str:
    """The resolved spec as YAML (stored with the study so it can be re-run exactly)."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
