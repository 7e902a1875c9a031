"""The page's HTML: titles and nav are plain text, hostile names are escaped exactly once, nothing escapes by hand."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import Markup
from report_study import LABEL, make_study

from prefstudy.report import build_report
from prefstudy.report import data as rd
from prefstudy.report.build import render
from prefstudy.report.html import name, table, text

SECTION_IDS = ["headline", "claims", "versus", "landscape", "lr-profile", "overfitting", "capability", "diagnostics",
               "theory", "trials"]
#: a study name and a method label the spec would refuse: tags, quotes, an entity and a bare ampersand
HOSTILE_NAME = 'smoke<script>alert("name")</script>&amp;'
HOSTILE_METHOD = "dpo<img src=x onerror=alert(1)>&\"'"


class Page(HTMLParser):
    """What a browser shows: the text outside <script>/<style>, each <h2>, each nav link, and every tag."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.visible: list[str] = []
        self.h2: list[str] = []
        self.nav: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._open: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts.append((dict(attrs), ""))
        if tag in ("script", "style", "h2", "a"):
            self._open.append(tag)
            if tag == "h2":
                self.h2.append("")
            if tag == "a" and "nav" in [t for t, _ in self.tags] and "main" not in [t for t, _ in self.tags]:
                self.nav.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        inside = self._open[-1] if self._open else None
        if inside == "script":
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        elif inside == "style":
            return
        else:
            self.visible.append(data)
            if inside == "h2":
                self.h2[-1] += data
            elif inside == "a" and self.nav and "main" not in [t for t, _ in self.tags]:
                self.nav[-1] += data

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.visible).split())


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Page:
    tmp_path = tmp_path_factory.mktemp("html")
    spec, storage = make_study(tmp_path, heldout=True)
    data = rd.load(spec, LABEL, storage=storage, toy_results=None)
    out = tmp_path / "report"
    out.mkdir()
    return Page(render(data, out))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Page, str]:
    tmp_path = tmp_path_factory.mktemp("hostile")
    spec, storage = make_study(tmp_path, name=HOSTILE_NAME, labels=(HOSTILE_METHOD, "ipo"), heldout=True)
    html = build_report(spec, LABEL, tmp_path / "report", storage=storage, toy_results=None).read_text()
    return Page(html), html


def test_section_titles_and_nav_links_are_plain_text(page: Page) -> None:
    assert [attrs["id"] for tag, attrs in page.tags if tag == "section"] == SECTION_IDS
    assert len(page.h2) == len(SECTION_IDS) and len(page.nav) == len(SECTION_IDS)
    for shown in page.h2 + page.nav:
        for bad in ("<", ">", "&lt;", "&amp;lt;", "&gt;"):
            assert bad not in shown, f"{bad!r} shown in {shown!r}"
    assert page.h2[2] == "3. DPO vs IPO, paired on the same test pairs"
    assert page.nav[2] == "3. DPO vs IPO, paired on the same test pairs"
    assert page.h2[0] == "1. Headline: the primary endpoint, and the best trial per method"
    assert page.nav[0] == "1. Headline"
    assert [a["href"] for tag, a in page.tags if tag == "a"][:len(SECTION_IDS)] == [f"#{i}" for i in SECTION_IDS]


def test_paired_comparison_and_coloured_names_render_as_html(page: Page) -> None:
    assert "Held-out test accuracy (exploratory, secondary): DPO − IPO = +0.250" in page.text  # escaped once
    coloured = [a.get("style") for tag, a in page.tags if tag == "b" and a.get("style")]
    assert 'color:#2563eb' in coloured and 'color:#ea580c' in coloured
    assert "&lt;" not in page.text and "&amp;" not in page.text and "<b" not in page.text


def test_verdicts_json_has_one_primary_not_yet_measured_and_holm_adjusted_secondaries(tmp_path: Path) -> None:
    """Without confirmation runs the primary endpoint is listed as not measured, with the search's MDE; the search's
    paired difference is exploratory; every secondary p is Holm-adjusted; the headline says all of it."""
    from prefstudy.evaluation.power import holm

    spec, storage = make_study(tmp_path, heldout=True)
    index = build_report(spec, LABEL, tmp_path / "report", storage=storage, toy_results=None)
    verdicts = json.loads((index.parent / "verdicts.json").read_text())
    primary = [v for v in verdicts if v["primary"]]
    assert len(primary) == 1 and not primary[0]["measured"] and primary[0]["estimate"] is None
    assert not primary[0]["decided"] and primary[0]["mde"] > 0
    exploratory = next(v for v in verdicts if v["name"].startswith("exploratory"))
    assert exploratory["estimate"] == pytest.approx(0.25) and exploratory["mde"] == pytest.approx(primary[0]["mde"])
    secondary = [v for v in verdicts if not v["primary"]]
    assert [v["p_adjusted"] for v in secondary] == pytest.approx(holm([v["p_value"] for v in secondary]))
    assert all(v["decided"] == (v["p_adjusted"] < 0.05) for v in secondary)
    assert all(v["decided"] or v["mde"] is not None for v in verdicts)
    text = Page(index.read_text()).text
    assert "primary: confirmation DPO − IPO, test accuracy: not yet measured" in text
    assert "nox -s study -- SPEC --confirm" in text or "nox -s study -- --confirm" in text


def test_base_accuracy_per_family_with_wilson_intervals(page: Page) -> None:
    """18 of 20 right: Wilson [0.699, 0.972] excludes chance, so the verdict names that family and no other."""
    assert "0.900 [0.70, 0.97] (n 20)" in page.text and "0.500 [0.30, 0.70] (n 20)" in page.text
    assert "away from chance in letter_count on test (0.90)" in page.text and "addition on test" not in page.text


def test_hostile_study_and_method_names_are_escaped_exactly_once(hostile: tuple[Page, str]) -> None:
    page, _ = hostile
    shown = page.text
    assert HOSTILE_NAME in shown  # <title>, <h1> and the runs path show the raw name
    assert HOSTILE_METHOD.upper() in shown  # verdicts and tables show the raw label (upper-cased as every name)
    assert "&lt;" not in shown and "&amp;amp;" not in shown and "&#34;" not in shown and "&#39;" not in shown
    # no tag, attribute or script came out of the names
    assert not [tag for tag, _ in page.tags if tag == "img"]
    assert not [(tag, key) for tag, attrs in page.tags for key in attrs if key.startswith("on")]
    sources = [attrs.get("src") for attrs, _ in page.scripts if attrs.get("src")]
    assert sources == ["plotly.min.js"]
    assert not [body for _, body in page.scripts if "alert(" in body and "\\u003c" not in body]
    assert not [body for _, body in page.scripts if body.strip().startswith("alert(")]
    # the sort key of the method cell round-trips the raw label
    assert HOSTILE_METHOD in [attrs.get("data-v") for tag, attrs in page.tags if tag == "td"]


def test_fragment_builders_escape_their_arguments_once() -> None:
    assert name("a<b>&c") == Markup('<b style="color:{}">A&lt;B&gt;&amp;C</b>').format(
        re.search(r"color:(#\w+)", name("a<b>&c")).group(1))
    assert text("x < y & ", name("dpo"), " &amp;") == Markup(
        'x &lt; y &amp; <b style="color:#2563eb">DPO</b> &amp;amp;')
    assert text(text("<i>")) == Markup("&lt;i&gt;")  # Markup is never escaped again
    cells = table(["<th>", Markup("<i>ok</i>")], [["<td>", Markup("<b>x</b>")]])
    assert "<th>&lt;th&gt;</th><th><i>ok</i></th>" in cells and "<td>&lt;td&gt;</td><td><b>x</b></td>" in cells


def test_no_module_escapes_by_hand() -> None:
    """Escaping belongs to the templates and to Markup.format; an f-string inside Markup(...) would bypass it."""
    folder = Path(__file__).resolve().parents[3] / "src" / "prefstudy" / "report"
    for path in sorted(folder.glob("*.py")):
        source = path.read_text()
        for pattern in (r"html\.escape", r"\besc\(", r"Markup\(f['\"]", r"Markup\([^)]*\+"):
            assert not re.search(pattern, source), f"{path.name}: {pattern}"
