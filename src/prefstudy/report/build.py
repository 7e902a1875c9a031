"""HTML assembly: ``build_report(spec, storage_url)`` -> ``reports/<name>/index.html`` (+ one ``plotly.min.js``).

Every section = title, a caption saying what it shows, a verdict computed from the data, then tables/figures.
A section whose data is missing says so. The page loads no network resource.
"""

from __future__ import annotations

import html
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from prefstudy.core.secrets import redact
from prefstudy.report import data as rd
from prefstudy.report import figures as fg
from prefstudy.spec import StudySpec

PLOTLY_JS = "plotly.min.js"
_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"scale": 2}}
NOT_AVAILABLE = "not available"


@dataclass
class Section:
    id: str
    title: str
    caption: str
    verdict: list[str] = field(default_factory=list)  # HTML fragments (values already escaped)
    body: list[str] = field(default_factory=list)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, fmt: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    return format(value, fmt)


def interval(v: Any, lo: Any, hi: Any, fmt: str = ".3f") -> str:
    return f"{num(v, fmt)} [{num(lo, fmt)}, {num(hi, fmt)}]" if v is not None and lo is not None else num(v, fmt)


def name(method: str) -> str:
    return f'<b style="color:{fg.color(method)}">{esc(method.upper())}</b>'


def missing(text: str) -> str:
    return f'<div class="missing">{esc(NOT_AVAILABLE)}: {esc(text)}</div>'


def figure(fig: Any, div_id: str) -> str:
    return '<div class="figure">' + fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                                config=_CONFIG, default_width="100%") + "</div>"


def table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r) + "</tr>"
                   for r in rows)
    return (f'<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def at(row: pd.Series | None, key: str) -> Any:
    if row is None:
        return None
    value = row.get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def zero_test(lo: Any, hi: Any) -> str:
    if lo is None or hi is None:
        return ""
    return "excludes 0" if lo > 0 or hi < 0 else "contains 0"


# --------------------------------------------------------------------------- page
_CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--dpo:#2563eb;--ipo:#ea580c}
*{box-sizing:border-box}body{margin:0;font:15px/1.55 Inter,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,
sans-serif;color:var(--ink);background:var(--bg)}header{background:#0f172a;color:#f8fafc;padding:28px 40px}
header h1{margin:0 0 6px;font-size:26px;font-weight:650}header p{margin:2px 0;color:#cbd5e1;font-size:14px}
header code{background:#1e293b;color:#e2e8f0}
nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:8px 40px;
font-size:13.5px}nav a{color:#334155;margin-right:16px;text-decoration:none}nav a:hover{color:var(--dpo)}
main{max-width:1500px;margin:0 auto;padding:8px 40px 60px}section{background:#fff;border:1px solid var(--line);
border-radius:10px;padding:22px 26px;margin:22px 0;box-shadow:0 1px 2px rgba(0,0,0,.04)}
h2{margin:0 0 8px;font-size:20px}.caption{color:var(--muted);margin:0 0 12px;max-width:1100px}
.verdict{border-left:4px solid #0f172a;background:#f1f5f9;padding:10px 14px;margin:10px 0 16px;
border-radius:0 6px 6px 0}
.verdict p{margin:3px 0}.verdict .tag{font-size:11px;letter-spacing:.08em;text-transform:uppercase;color:var(--muted)}
.missing{border:1px dashed #cbd5e1;color:#475569;padding:14px;border-radius:6px;margin:10px 0;background:#fafafa}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}.figure{min-width:0}
.table-wrap{overflow-x:auto;margin:10px 0}table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:6px 9px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{background:#f8fafc;font-weight:600;position:sticky;top:0}tbody tr:hover{background:#f8fafc}
table.sortable th{cursor:pointer;user-select:none}table.sortable th[data-dir=asc]::after{content:" ▲"}
table.sortable th[data-dir=desc]::after{content:" ▼"}
.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:2px 18px;font-size:13px;margin:8px 0}
.kv div{border-bottom:1px solid var(--line);padding:4px 2px}.kv b{font-weight:600;margin-right:8px}
pre{background:#0f172a;color:#e2e8f0;padding:14px;border-radius:6px;overflow:auto;font-size:12.5px}
details{margin:12px 0}summary{cursor:pointer;font-weight:600}code{background:#f1f5f9;padding:1px 4px;border-radius:3px}
td .note{display:inline-block;white-space:normal;min-width:260px;max-width:460px}
footer{color:var(--muted);font-size:12.5px;text-align:center;padding:20px}
"""
_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th,i){th.addEventListener('click',function(){
var body=th.closest('table').tBodies[0],asc=th.dataset.dir!=='asc';
th.parentNode.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});th.dataset.dir=asc?'asc':'desc';
function key(r){var c=r.cells[i];if(c.dataset.v===undefined)return null;var n=Number(c.dataset.v);
return isNaN(n)?c.dataset.v:n}
Array.from(body.rows).sort(function(a,b){var x=key(a),y=key(b);if(x===null)return y===null?0:1;if(y===null)return -1;
var r=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));return asc?r:-r})
.forEach(function(r){body.appendChild(r)})})});
"""


def render(d: rd.ReportData, out_dir: Path) -> str:
    """The whole page as a string (plotly.js is referenced, not inlined)."""
    from prefstudy.report import sections as sx  # sections import the helpers above

    builders: list[Callable[[], Section]] = [
        lambda: sx.headline(d), lambda: sx.versus(d), lambda: sx.landscape(d), lambda: sx.forgiving(d),
        lambda: sx.overfitting(d),
        lambda: sx.capability(d), lambda: sx.diagnostics(d), lambda: sx.theory(d, out_dir),
        lambda: sx.all_trials(d, out_dir)]
    sections = [b() for b in builders]
    nav = "".join(f'<a href="#{x.id}">{esc(x.title.split(":")[0])}</a>' for x in sections)
    body = "".join(
        f'<section id="{x.id}"><h2>{esc(x.title)}</h2><p class="caption">{esc(x.caption)}</p>'
        f'<div class="verdict"><div class="tag">verdict (computed)</div>'
        + "".join(f"<p>{v}</p>" for v in x.verdict) + "</div>" + "".join(x.body) + "</section>" for x in sections)
    spec = d.spec
    notes = "".join(f"<p>note: {esc(n)}</p>" for n in d.notes)
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    title = f"prefstudy · {spec.name}: " + " vs ".join(m.upper() for m in d.methods)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{esc(title)}</title><style>{_CSS}</style><script src="{PLOTLY_JS}"></script></head><body>
<header><h1>{esc(title)}</h1>
<p>model {esc(spec.model.name_or_path)} · objective: final val {esc(d.metric)} · sampler {esc(spec.search.sampler.type)}
 · {spec.search.n_trials} finished trials wanted per method</p>
<p>storage {esc(d.storage_label)} · runs {esc(spec.run_root())} · built {built}
 from the storage and run directories only (rebuild: <code>python -m prefstudy report</code>)</p>{notes}</header>
<nav>{nav}</nav><main>{body}</main>
<footer>prefstudy report · every number above is computed from the Optuna storage and the run directories</footer>
<script>{_SORT_JS}</script></body></html>
"""
    return redact(page)


def write_plotly_js(out_dir: Path) -> Path:
    """One shared plotly.min.js next to index.html (the page works offline)."""
    from plotly.offline import get_plotlyjs

    path = out_dir / PLOTLY_JS
    js = get_plotlyjs()
    if not path.is_file() or path.stat().st_size != len(js.encode("utf-8")):
        path.write_text(js, encoding="utf-8")
    return path


def build_report(spec: StudySpec, storage_url: str, out_dir: Path | None = None, *, storage: Any = None,
                 toy_results: Path | None = Path("reports/toy/results.json")) -> Path:
    """Build ``<out_dir>/index.html`` (default ``reports/<spec.name>/``) from the storage and the run directories;
    returns the path of index.html. ``storage`` (an opened Optuna storage) overrides ``storage_url`` for reading."""
    out_dir = Path(out_dir) if out_dir is not None else Path("reports") / spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    data = rd.load(spec, storage_url, storage=storage, toy_results=toy_results)
    write_plotly_js(out_dir)
    index = out_dir / "index.html"
    tmp = out_dir / f".index.html.{os.getpid()}.tmp"
    tmp.write_text(render(data, out_dir), encoding="utf-8")
    tmp.replace(index)
    return index
