"""The page: ``build_report(spec, storage_url)`` -> ``reports/<name>/index.html`` (+ one ``plotly.min.js``, and
``verdicts.json``: every comparison, the primary endpoint marked; see report.verdicts).

``render`` fills templates/page.html.j2 with the sections of sections_results, sections_dynamics and sections_meta.
Every section has a title, a caption saying what it shows, a verdict computed from the data, then tables and
figures; a section whose data is missing says so. The page loads no network resource.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from optuna.storages import BaseStorage

from prefstudy.core.secrets import redact
from prefstudy.report import (
    claims,
    data,
    figures,
    sections_claims,
    sections_dynamics,
    sections_lr,
    sections_meta,
    sections_results,
    verdicts,
)
from prefstudy.report.html import Section, environment
from prefstudy.spec import StudySpec

PLOTLY_JS = "plotly.min.js"

#: the page's sections, in order
SECTIONS: tuple[Callable[[data.ReportData, Path], Section], ...] = (
    lambda d, _: sections_results.headline(d), sections_claims.claims,
    lambda d, _: sections_results.versus(d), lambda d, _: sections_results.landscape(d),
    lambda d, _: sections_lr.lr_profile(d), lambda d, _: sections_dynamics.overfitting(d),
    lambda d, _: sections_dynamics.capability(d), lambda d, _: sections_meta.diagnostics(d),
    sections_meta.theory, sections_meta.all_trials)


def render(d: data.ReportData, out_dir: Path) -> str:
    """The whole page as a string (plotly.js is referenced, not inlined), secrets redacted."""
    spec = d.spec
    page = environment().get_template("page.html.j2").render(
        title=f"prefstudy · {spec.name}: " + " vs ".join(figures.label(m) for m in d.methods),
        model=spec.model.name_or_path, metric=d.metric, sampler=spec.search.sampler.type,
        n_trials=spec.search.n_trials, storage=d.storage_label, runs=str(spec.run_root()),
        built=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), notes=d.notes, plotly_js=PLOTLY_JS,
        sections=[build(d, out_dir) for build in SECTIONS])
    return redact(page)


def write_plotly_js(out_dir: Path) -> Path:
    """One shared plotly.min.js next to index.html (the page works offline)."""
    from plotly.offline import get_plotlyjs

    path = out_dir / PLOTLY_JS
    js = get_plotlyjs()
    if not path.is_file() or path.stat().st_size != len(js.encode("utf-8")):
        path.write_text(js, encoding="utf-8")
    return path


def build_report(spec: StudySpec, storage_url: str, out_dir: Path | None = None, *,
                 storage: BaseStorage | str | None = None,
                 toy_results: Path | None = Path("reports/toy/results.json")) -> Path:
    """Build ``<out_dir>/index.html`` (default ``reports/<spec.name>/``) from the storage and the run directories;
    returns the path of index.html. ``storage`` (an opened Optuna storage) overrides ``storage_url`` for reading."""
    out_dir = Path(out_dir) if out_dir is not None else Path("reports") / spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = data.load(spec, storage_url, storage=storage, toy_results=toy_results)
    verdicts.write(verdicts.family(loaded), out_dir)  # fills the claims' Holm-adjusted secondary p-values
    if loaded.claims:
        claims.write(loaded.claims, out_dir)
    write_plotly_js(out_dir)
    index = out_dir / "index.html"
    tmp = out_dir / f".index.html.{os.getpid()}.tmp"
    tmp.write_text(render(loaded, out_dir), encoding="utf-8")
    tmp.replace(index)
    return index
