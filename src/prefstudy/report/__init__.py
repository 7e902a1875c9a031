"""Comparative HTML report of a study: ``build_report(spec, storage_url)`` -> ``reports/<name>/index.html``."""

from prefstudy.report.build import build_report

__all__ = ["build_report"]
