"""What the tools that read a finished study share: the command line (a spec, ``--storage``, ``--out``) and opening
the spec's storage the way ``prefstudy report`` does."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefstudy.core.paths import DEFAULT_SPEC, find_spec


def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """``python -m benchmarks.<module> [SPEC] [KEY=VALUE ...] [--storage URL] --out PATH``; the caller adds its own
    options. ``KEY=VALUE`` overrides the spec as on the ``prefstudy`` command line (e.g. a pilot's
    ``lr_profile.seeds``)."""
    out = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=doc,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("spec", nargs="?", default=DEFAULT_SPEC)
    out.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE")
    out.add_argument("--storage", default=None)
    out.add_argument("--out", type=Path, required=True)
    return out


def open_study(args: argparse.Namespace) -> tuple[Any, str, Any]:
    """(spec, storage URL, opened storage) of the parsed arguments: ``--storage``, else the spec's own."""
    from prefstudy.search.storage import open_storage
    from prefstudy.spec import load_spec

    spec = load_spec(find_spec(args.spec), list(getattr(args, "overrides", [])))
    url = args.storage or spec.storage or spec.default_storage()
    return spec, url, open_storage(url, spec)
