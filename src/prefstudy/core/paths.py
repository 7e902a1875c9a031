"""Where prefstudy's own files are, wherever it runs from: the specs and lm-eval tasks ship inside the package.

Paths in a spec file are resolved against that file's folder, paths given on the command line against the current
folder (``prefstudy.spec.load_spec``); outputs (``runs_dir``, ``reports/``, the model cache) go under the current
folder.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SPECS_DIR = PACKAGE_DIR / "studies"
TASKS_DIR = PACKAGE_DIR / "evaluation" / "lm_eval_tasks"
DEFAULT_SPEC = "study/default.yaml"


def find_spec(name: str | Path) -> Path:
    """An existing file as given; otherwise a spec that ships with prefstudy, named ``default``, ``default.yaml``
    or ``study/default.yaml`` (so the README's paths work from any folder). Unknown names come back unchanged and
    fail to load with a message naming them."""
    path = Path(name)
    if path.exists():
        return path
    if path.parent in (Path("."), Path("study")):
        packaged = SPECS_DIR / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
        if packaged.is_file():
            return packaged
    return path
