"""Figures of the learning-rate profile (``--stage lr-profile``; ``report.claim_b.ProfileRuns``): accuracy against
learning rate per method, with 95% bands, the degradation points with their intervals, and lm-eval's mean."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from prefstudy.evaluation import lr_profile as lp
from prefstudy.evaluation.profile_shift import logistic4
from prefstudy.report.claim_b import read_pairs
from prefstudy.report.figures import _rgba, color, label, style


def band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) per learning rate of slot 0 ([lrs, slots, seeds, pairs]): 95% normal band whose variance
    is the pair part (per-pair SD over sqrt(pairs), seeds averaged) plus the seed part (seed means' variance / S)."""
    slot = values[:, 0]  # [lrs, seeds, pairs]
    with np.errstate(all="ignore"):
        seed_means = np.nanmean(slot, axis=-1)
        mean = np.nanmean(seed_means, axis=-1)
        n_seeds = np.isfinite(seed_means).sum(-1)
        pair_var = np.nanvar(np.nanmean(slot, axis=-2), axis=-1, ddof=1) / slot.shape[-1]
        seed_var = np.where(n_seeds > 1, np.nanvar(seed_means, axis=-1, ddof=1) / np.maximum(n_seeds, 1), 0.0)
    half = 1.96 * np.sqrt(pair_var + seed_var)
    return mean, mean - half, mean + half


def intervals_of(entry: dict[str, Any] | None) -> dict[str, tuple[float | None, float | None]]:
    """Method -> the log10 interval of its re-tuned degradation learning rate, from claims.json's lr_tolerance."""
    design = (entry or {}).get("design", {})
    return {m: (d.get("retuned", {}).get("ci_low"), d.get("retuned", {}).get("ci_high")) for m, d in design.items()}


def profile(all_runs: dict[str, Any], delta: float,
            intervals: dict[str, tuple[float | None, float | None]] | None = None,
            fit: dict[str, Any] | None = None) -> go.Figure:
    """One panel per method: val at the tuned beta (band), val with beta re-tuned, the primary's profile (the tuned
    beta on test and the profile split), the degradation learning rate (diamond on the peak - delta line, with its
    clustered interval from ``intervals``: :func:`intervals_of` the claims.json entry, computed once there), and the
    joint logistic fit to the primary's profiles (``fit``: the entry's ``fit``; drawn, not read) with its
    midpoint."""
    methods = [m for m in all_runs if "val" in all_runs[m].values]
    fig = make_subplots(rows=1, cols=max(1, len(methods)), subplot_titles=[label(m) for m in methods],
                        horizontal_spacing=0.08)
    for col, method in enumerate(methods, start=1):
        runs, c = all_runs[method], color(method)
        val, x = runs.values["val"], np.log10(runs.lrs)
        mean, low, high = band(val)
        fig.add_trace(go.Scatter(x=runs.lrs + runs.lrs[::-1], y=list(high) + list(low[::-1]), fill="toself",
                                 mode="lines",
                                 fillcolor=_rgba(c, 0.15), line={"width": 0}, hoverinfo="skip", showlegend=False),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=runs.lrs, y=mean, mode="lines+markers", line={"color": c},
                                 name=f"{label(method)} val, tuned β (95% band)"), row=1, col=col)
        retuned = lp.profile(val, True)
        fig.add_trace(go.Scatter(x=runs.lrs, y=retuned, mode="lines+markers", line={"color": c, "dash": "dash"},
                                 name=f"{label(method)} val, β re-tuned"), row=1, col=col)
        if "test" in runs.values:  # the primary's profile: the tuned beta on test and the profile split
            fig.add_trace(go.Scatter(x=runs.lrs, y=lp.profile(read_pairs(runs), False),
                                     mode="lines+markers", line={"color": c, "dash": "dot"},
                                     name=f"{label(method)} test + profile pairs, tuned β (the primary's)"),
                          row=1, col=col)
        if fit and fit.get("identified") and fit["midpoint_lr"].get(method) is not None:
            dense = np.linspace(x.min(), x.max(), 80)
            mid = math.log10(fit["midpoint_lr"][method])
            curve = logistic4(dense, fit["slope_per_decade"], fit["floor"], fit["plateau"][method], mid)
            fig.add_trace(go.Scatter(x=10 ** dense, y=curve, mode="lines", line={"color": c, "width": 1},
                                     name=f"{label(method)} joint logistic fit (drawn, not read)"), row=1, col=col)
            fig.add_trace(go.Scatter(x=[10 ** mid], y=[(fit["floor"] + fit["plateau"][method]) / 2],  # halfway
                                     mode="markers", marker={"symbol": "x", "size": 11, "color": c},
                                     name=f"{label(method)} fitted midpoint"), row=1, col=col)
        deg, censored = lp.degradation_log_lr(x, retuned, delta)
        if math.isfinite(deg):
            ci_low, ci_high = (intervals or {}).get(method, (None, None))
            y = float(np.nanmax(retuned)) - delta
            err = {"type": "data", "symmetric": False, "array": [10 ** ci_high - 10 ** deg],
                   "arrayminus": [10 ** deg - 10 ** ci_low]} if ci_low is not None and ci_high is not None else None
            fig.add_trace(go.Scatter(x=[10 ** deg], y=[y], mode="markers", error_x=err,
                                     marker={"symbol": "diamond", "size": 12, "color": c},
                                     name=f"{label(method)} degradation lr{' (censored: >=)' if censored else ''}"),
                          row=1, col=col)
        fig.update_xaxes(type="log", title_text="learning rate", row=1, col=col)
    fig.update_yaxes(title_text="preference accuracy", row=1, col=1)
    return style(fig, f"Learning-rate profile: accuracy against learning rate (degraded: more than {delta:g} "
                      "below the val peak)", 440)


def lm_eval(all_runs: dict[str, Any]) -> go.Figure:
    """lm-eval's macro mean against learning rate per method (the tuned beta's first-seed runs)."""
    fig = go.Figure()
    for method, runs in all_runs.items():
        fig.add_trace(go.Scatter(x=runs.lrs, y=[np.nan if v is None else v for v in runs.lm_eval_mean],
                                 mode="lines+markers", name=label(method), line={"color": color(method)}))
    fig.update_xaxes(type="log", title_text="learning rate")
    fig.update_yaxes(title_text="lm-eval macro mean (tuned β, first seed)")
    return style(fig, "Capability cost per learning rate: lm-eval mean", 400)
