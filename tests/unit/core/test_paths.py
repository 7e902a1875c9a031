"""core.paths: packaged specs are found by name from any folder; an existing file always wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefstudy.core.paths import SPECS_DIR, TASKS_DIR, find_spec


def test_the_package_ships_its_specs_and_tasks() -> None:
    assert sorted(path.stem for path in SPECS_DIR.glob("*.yaml")) == ["bench", "default", "mistral7b_qlora", "smoke"]
    assert sorted(p.name for p in TASKS_DIR.iterdir() if p.is_dir()) == [
        "prefstudy_arith", "prefstudy_format", "prefstudy_reading", "prefstudy_units"]


@pytest.mark.parametrize("name", ["default", "default.yaml", "study/default.yaml"])
def test_packaged_names_resolve_from_any_folder(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_spec(name) == SPECS_DIR / "default.yaml"


def test_an_existing_file_wins_and_unknown_names_come_back_unchanged(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "default.yaml").write_text("name: mine\n")
    assert find_spec("study/default.yaml") == Path("study/default.yaml")
    assert find_spec("nope") == Path("nope") and find_spec("elsewhere/default.yaml") == Path("elsewhere/default.yaml")
