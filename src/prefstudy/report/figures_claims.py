"""Figures of the claims section, from the drift stage's runs (``report.claim_a_held_out.MethodRuns``): means over
seeds and the stage's fixed val pairs, one line per beta."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from prefstudy.evaluation.drift import ipo_target
from prefstudy.report.figures import color, label, style

SCALES = {"ipo": "Oranges", "sigmoid": "Blues"}


def _shades(runs: Any) -> list[str]:
    n = len(runs.betas)
    return sample_colorscale(SCALES.get(runs.loss_type, "Greens"), [0.45 + 0.5 * i / max(1, n - 1) for i in range(n)])


def _per_step(runs: Any, key: str) -> np.ndarray:
    """[betas, points]: mean over pairs, then over seeds."""
    with np.errstate(all="ignore"):
        return np.nanmean(np.nanmean(runs.values[key], axis=-1), axis=-1)


def per_step(all_runs: dict[str, Any], key: str, title: str, y_title: str, targets: bool = False) -> go.Figure:
    """One panel per method: ``key`` per eval step, a line per beta; with ``targets``, IPO's 1/(2 beta) dashed."""
    methods = [m for m in all_runs if key in all_runs[m].values]
    fig = make_subplots(rows=1, cols=max(1, len(methods)), subplot_titles=[label(m) for m in methods],
                        horizontal_spacing=0.08)
    for col, method in enumerate(methods, start=1):
        runs = all_runs[method]
        level = _per_step(runs, key)
        for i, (beta, shade) in enumerate(zip(runs.betas, _shades(runs), strict=True)):
            fig.add_trace(go.Scatter(x=runs.steps, y=level[i], mode="lines+markers", line={"color": shade},
                                     name=f"{label(method)} β={beta:.3g}", legendgroup=method), row=1, col=col)
            if targets and runs.loss_type == "ipo":
                fig.add_trace(go.Scatter(x=[runs.steps[0], runs.steps[-1]], y=[ipo_target(beta)] * 2, mode="lines",
                                         line={"color": shade, "dash": "dash"}, showlegend=False,
                                         name=f"1/(2β) = {ipo_target(beta):.3g}"), row=1, col=col)
        fig.update_xaxes(title_text="optimizer step", row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    return style(fig, title, 420)


def drift_vs_beta(all_runs: dict[str, Any]) -> go.Figure:
    """Final drift per run (markers) and its seed mean of logs (line) against beta, both axes logarithmic."""
    fig = go.Figure()
    for method, runs in all_runs.items():
        final = runs.values["drift"][:, -1]  # [betas, seeds, pairs]
        with np.errstate(all="ignore"):
            per_run = np.nanmean(final, axis=-1)
            level = np.exp(np.nanmean(np.log(np.where(per_run > 0, per_run, np.nan)), axis=-1))
        for s in range(per_run.shape[1]):
            fig.add_trace(go.Scatter(x=runs.betas, y=per_run[:, s], mode="markers", legendgroup=method,
                                     marker={"color": color(method), "size": 8, "opacity": 0.5}, showlegend=False,
                                     name=f"{label(method)} seed {s + 1}"))
        fig.add_trace(go.Scatter(x=runs.betas, y=level, mode="lines+markers", legendgroup=method,
                                 name=f"{label(method)} (geometric mean over seeds)",
                                 line={"color": color(method), "width": 3}))
    fig.update_xaxes(type="log", title_text="β")
    fig.update_yaxes(type="log", title_text="final drift: KL proxy on val chosen answers (nats/token)")
    return style(fig, "Drift from the reference at the end of the run, against β (log-log)", 420)


def train_margins(train_runs: dict[str, Any]) -> go.Figure:
    """One panel per method: the loss's own margin on the training instances (DPO summed, IPO per token), mean over
    instances and seeds, per eval step; a line per (beta, p), solid at p = 1; each finite closed form dashed."""
    from prefstudy.evaluation.closed_forms import fixed_point

    methods = list(train_runs)
    fig = make_subplots(rows=1, cols=max(1, len(methods)), subplot_titles=[label(m) for m in methods],
                        horizontal_spacing=0.08)
    for col, method in enumerate(methods, start=1):
        runs = train_runs[method]
        betas = sorted({b for b, _ in runs.margins})
        shades = sample_colorscale(SCALES.get(runs.loss_type, "Greens"),
                                   [0.45 + 0.5 * i / max(1, len(betas) - 1) for i in range(len(betas))])
        for (beta, p), margins in sorted(runs.margins.items()):
            shade = shades[betas.index(beta)]
            with np.errstate(all="ignore"):
                level = np.nanmean(margins, axis=(1, 2))
            fig.add_trace(go.Scatter(x=runs.steps, y=level, mode="lines+markers", legendgroup=method,
                                     line={"color": shade, "dash": "solid" if p == 1.0 else "dot"},
                                     name=f"{label(method)} β={beta:.3g} p={p:g}"), row=1, col=col)
            target = fixed_point(runs.loss_type, p, beta)
            if np.isfinite(target):
                fig.add_trace(go.Scatter(x=[runs.steps[0], runs.steps[-1]], y=[target] * 2, mode="lines",
                                         line={"color": shade, "dash": "dash"}, showlegend=False,
                                         name=f"closed form {target:.3g}"), row=1, col=col)
        fig.update_xaxes(title_text="optimizer step", row=1, col=col)
        unit = "per-token margin (nats/token)" if runs.loss_type == "ipo" else "summed margin (nats)"
        fig.update_yaxes(title_text=unit, row=1, col=col)
    return style(fig, "Margins on the training instances per step (dashed: the closed forms logit(p)/β for DPO, "
                      "(2p − 1)/(2β) per token for IPO; none for DPO at p = 1)", 440)
