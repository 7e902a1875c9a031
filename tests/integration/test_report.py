"""The comparative report of a real smoke study, rendered by headless Chromium with no network."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from support import ROOT, run_python

from prefstudy.report import build_report
from prefstudy.spec import load_spec

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow

#: figures every section must draw on the smoke study (importances need trials that differ, smoke's may not)
FIGURES = ("fig-headline", "fig-landscape", "fig-peaks", "fig-trainval", "fig-gap", "fig-dynamics", "fig-train-loss",
           "fig-lmeval", "fig-pareto", "fig-history-dpo", "fig-history-ipo", "fig-parallel-dpo", "fig-parallel-ipo",
           "fig-toy")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    runs = tmp_path_factory.mktemp("runs")
    storage = f"sqlite:///{runs}/optuna.db"
    study = run_python("-m", "prefstudy", "study", "study/smoke.yaml", f"runs_dir={runs}", "--storage", storage)
    assert study.returncode == 0, study.stderr[-3000:]
    toy = run_python("-m", "benchmarks.toy", "--out", str(runs / "toy"), "--steps", "300", "--seeds", "2")
    assert toy.returncode == 0, toy.stderr[-2000:]
    spec = load_spec(ROOT / "study" / "smoke.yaml", [f"runs_dir={runs}"])
    started = time.perf_counter()
    index = build_report(spec, storage, runs / "report", toy_results=runs / "toy" / "results.json")
    return index, time.perf_counter() - started


def test_report_builds_fast_offline_and_links_run_dirs(report) -> None:
    index, seconds = report
    assert seconds < 30, f"building the report took {seconds:.1f}s"
    page = index.read_text()
    assert (index.parent / "plotly.min.js").stat().st_size > 1_000_000
    assert re.findall(r'<script src="([^"]+)"', page) == ["plotly.min.js"]  # no CDN, nothing remote
    assert "cdn.plot.ly" not in page and "https://cdn" not in page
    links = re.findall(r'href="([^"#]+trial-\d{4}/)"', page)
    assert len(links) == 4 and all((index.parent / link).is_dir() for link in links)
    for section in ("headline", "landscape", "lr-profile", "overfitting", "capability", "diagnostics", "theory",
                    "trials"):
        assert f'<section id="{section}">' in page


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)")
def test_every_figure_renders_in_headless_chromium_without_console_errors(report, tmp_path: Path) -> None:
    index, _ = report
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", "--dump-dom", index.as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, "browser console:\n" + "\n".join(console[:20])
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div id="(fig-[\w-]+)" class="plotly-graph-div', dom)]
    ids = [fig for _, fig in starts]
    assert set(FIGURES) <= set(ids), f"missing figures: {set(FIGURES) - set(ids)}"
    for (start, fig), (end, _) in zip(starts, [*starts[1:], (len(dom), "")], strict=True):
        chunk = dom[start:end]
        assert "main-svg" in chunk, f"{fig} was not rendered"
        assert re.search(r'class="(point|js-line|trace bars|parcoords[\w-]*)', chunk), f"{fig} shows no data"
