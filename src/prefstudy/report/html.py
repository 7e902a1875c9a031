"""Helpers every section shares: number formatting, the Jinja2 environment and the builders of HTML fragments.

A fragment is a ``markupsafe.Markup``, built by a template macro or by ``Markup(...).format`` from a constant
template, so every plain string passed in is escaped exactly once and Markup never again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup

from prefstudy.core.secrets import redact
from prefstudy.report import figures as fg

#: plain text (escaped by the template) or a fragment (inserted as is)
Text = str | Markup
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"scale": 2}}


@dataclass
class Section:
    """One section of the page: plain-text title and caption, computed verdict lines, then tables and figures."""

    id: str
    title: str
    caption: str
    verdict: list[Text] = field(default_factory=list)
    body: list[Markup] = field(default_factory=list)

    @property
    def nav_title(self) -> str:
        return self.title.split(":")[0]


@dataclass(frozen=True)
class Cell:
    """A table cell; ``sort`` (when not None) becomes ``data-v``, the key the sortable table sorts by."""

    content: Text
    sort: object = None


# --------------------------------------------------------------------------- numbers
def num(value: object, fmt: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    return format(value, fmt)


def interval(v: float | None, lo: float | None, hi: float | None, fmt: str = ".3f") -> str:
    return f"{num(v, fmt)} [{num(lo, fmt)}, {num(hi, fmt)}]" if v is not None and lo is not None else num(v, fmt)


def at(row: pd.Series | None, key: str) -> Any:
    """``row[key]``, None when the row or the value is missing (NaN)."""
    if row is None:
        return None
    value = row.get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def three(row: pd.Series | None, value: str, low: str, high: str) -> tuple[Any, Any, Any]:
    """A value and its interval bounds from ``row`` (each None when missing)."""
    return at(row, value), at(row, low), at(row, high)


def zero_test(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return ""
    return "excludes 0" if lo > 0 or hi < 0 else "contains 0"


# --------------------------------------------------------------------------- templates
def _finalize(value: object) -> object:
    """Every plain string a template prints is redacted before it is escaped."""
    return value if isinstance(value, Markup) or not isinstance(value, str) else redact(value)


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("prefstudy.report", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, finalize=_finalize, trim_blocks=True,
                              lstrip_blocks=True)


def _macro(name: str) -> Callable[..., Markup]:
    macro: Callable[..., Markup] = getattr(environment().get_template("macros.html.j2").module, name)
    return macro


# --------------------------------------------------------------------------- fragments
def text(*parts: Text) -> Markup:
    """The parts joined: plain strings escaped, Markup kept."""
    return Markup("").join(parts)


def name(method: str) -> Markup:
    """A method's name in its colour."""
    return Markup('<b style="color:{}">{}</b>').format(fg.color(method), fg.label(method))


def code(value: str) -> Markup:
    return Markup("<code>{}</code>").format(value)


def link(href: str, label: str) -> Markup:
    return Markup('<a href="{}">{}</a>').format(href, label)


def note(content: Text) -> Markup:
    return Markup('<span class="note">{}</span>').format(content)


def missing(reason: str) -> Markup:
    """The box that says what is not available and why."""
    return Markup(_macro("missing")(reason))


def table(header: Sequence[Text], rows: Sequence[Sequence[Text | Cell]], cls: str = "") -> Markup:
    cells = [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
    return Markup(_macro("table")(list(header), cells, cls))


def sort_cell(content: Text, value: object) -> Cell:
    """A cell sorted by ``value`` (no sort key when it is None or NaN)."""
    missing_value = value is None or (isinstance(value, float) and math.isnan(value))
    return Cell(content, None if missing_value else value)


def grid(items: Sequence[Markup]) -> Markup:
    return Markup(_macro("grid")(list(items)))


def details_pre(summary: str, content: str) -> Markup:
    return Markup(_macro("details_pre")(summary, content))


def details_kv(summary: str, pairs: Sequence[tuple[object, object]]) -> Markup:
    return Markup(_macro("details_kv")(summary, list(pairs)))


def figure(fig: go.Figure, div_id: str) -> Markup:
    """A plotly figure as a div (plotly.js is loaded once by the page). Plotly escapes ``<``, ``>`` and ``/`` in
    the figure's JSON, so its HTML is the one fragment taken as is."""
    html = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_PLOTLY_CONFIG,
                       default_width="100%")
    return Markup(_macro("figure")(Markup(html)))
