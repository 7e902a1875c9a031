"""The package's shape, checked: dependencies point down the layers, no import circle, TRL and bitsandbytes each
behind one seam, every foreign private API in its library's seam file, nothing imported from tests/, no benchmark
or soak inside the installed package, modules small. Static (ast, text), so it sees imports inside functions too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from support import SRC

PACKAGE = SRC / "prefstudy"
#: lower numbers are lower layers; a module may import its own layer or below, never above
LAYERS = {
    "core": 0, "spec": 0,
    "data": 1, "models": 1,
    "evaluation": 2,
    "training": 3, "tracking": 3,
    "search": 4,
    "report": 5,
    "preflight": 6, "plan": 6, "plan_sizes": 6, "plan_costs": 6, "plan_stages": 6, "export": 6, "pipeline": 6, "cli": 6,
    "__main__": 6, "__init__": 6,
}
MAX_LINES = 350


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """Every prefstudy module ``name`` imports (at any depth of the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("prefstudy")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("prefstudy"):
                submodules = {f"{base}.{alias.name}" for alias in node.names} & set(_modules())
                found |= submodules
                if len(submodules) < len(node.names):  # names defined in the module (or package) itself
                    found.add(base)
    modules = _modules()
    return {m for m in found if m in modules and m != name}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return LAYERS[top]


def _third_party(path: Path) -> set[str]:
    tops = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            tops.add(node.module.split(".")[0])
    return tops


GRAPH = {name: _imports(path, name) for name, path in _modules().items()}


def test_every_module_has_a_layer() -> None:
    unknown = sorted(m for m in GRAPH if m != "prefstudy" and m.split(".")[1] not in LAYERS)
    assert not unknown, f"modules outside the layer map: {unknown}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m != "prefstudy"))
def test_dependencies_point_down(module: str) -> None:
    upward = sorted(dep for dep in GRAPH[module] if dep != "prefstudy" and _layer(dep) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports upwards: {upward}"


def test_no_import_circle() -> None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                circle = trail[trail.index(dep):] + [dep] if dep in trail else [node, dep]
                raise AssertionError(f"import circle: {' -> '.join(circle)}")
            if dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_trl_is_imported_only_under_training() -> None:
    users = sorted(name for name, path in _modules().items() if "trl" in _third_party(path))
    assert users and all(name.startswith("prefstudy.training.") for name in users), users


#: private names of TRL, lm-eval, transformers and Optuna that only their seam files may touch
PRIVATE = re.compile(r"_model_call|__dict__\.pop\(|_attn_implementation|UnboundLocalError|\._compute_loss|"
                     r"\._prepare_dataset|add_env_info")
SEAMS = {"training/trl_seams.py", "evaluation/lmeval_seams.py", "models/transformers_seams.py",
         "search/optuna_seams.py"}


def test_foreign_private_api_lives_in_one_seam_file_per_library() -> None:
    outside = sorted(f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py")
                     for n, line in enumerate(path.read_text().splitlines(), 1)
                     if PRIVATE.search(line.split("#")[0]) and str(path.relative_to(PACKAGE)) not in SEAMS)
    assert not outside, f"foreign private API outside the seam files {sorted(SEAMS)}: {outside}"
    assert all((PACKAGE / seam).is_file() for seam in SEAMS)


def test_no_package_code_imports_from_tests() -> None:
    test_modules = {"tests", "support", "conftest"} | {p.stem for p in (SRC.parent / "tests").rglob("*.py")}
    for path in [*PACKAGE.rglob("*.py"), *(SRC.parent / "benchmarks").rglob("*.py")]:
        text = path.read_text()
        assert "tests" not in "".join(re.findall(r"sys\.path\.\w+\(([^)]*)\)", text)), path
        imported = _third_party(path)
        assert not imported & test_modules, f"{path} imports test code: {sorted(imported & test_modules)}"


def test_the_installed_package_holds_no_benchmark_soak_or_toy() -> None:
    names = {path.stem for path in PACKAGE.rglob("*.py")} | {path.name for path in PACKAGE.rglob("*") if path.is_dir()}
    assert not names & {"tools", "bench", "bench_steps", "bench_trl", "chaos", "gpubench", "toy", "flops"}, names


def test_bitsandbytes_and_optuna_stay_in_their_places() -> None:
    modules = _modules()
    bnb = sorted(name for name, path in modules.items() if "bitsandbytes" in _third_party(path))
    assert bnb == ["prefstudy.models.quantization"], bnb
    lower = ("core", "data", "models", "evaluation", "training")
    below_search = [name for name, path in modules.items()
                    if name.split(".")[1:2] and name.split(".")[1] in lower
                    and {"optuna", "optuna_dashboard", "sqlalchemy"} & _third_party(path)]
    assert not below_search, f"storage/Optuna code below search/: {below_search}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines (> {MAX_LINES}): split it by job"
