"""The per-step training loss of every search trial (``trainer_log.jsonl``: TRL's log at every optimizer step)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from prefstudy.report.data import ReportData
from prefstudy.report.figures import _rgba, color, label, style


def train_loss(data: ReportData) -> go.Figure:
    """One panel per method, a line per trial; IPO's panel marks its loss floor: 0, reached when the per-token
    margin equals 1/(2β) (TRL's IPO loss is (margin − 1/(2β))²; DPO's -log σ(β·margin) only tends to 0)."""
    steps = data.steps
    fig = make_subplots(rows=1, cols=max(1, len(data.methods)), subplot_titles=[label(m) for m in data.methods],
                        horizontal_spacing=0.08)
    for col, method in enumerate(data.methods, start=1):
        c = color(method, data.methods)
        rows = steps[steps["method"] == method] if not steps.empty and "loss" in steps else steps
        for number, g in (rows.groupby("number", sort=True) if not rows.empty else ()):
            g = g.sort_values("step")
            beta = g["beta"].iloc[0]
            fig.add_trace(go.Scatter(x=g["step"], y=g["loss"], mode="lines", line={"color": _rgba(c, 0.55)},
                                     name=f"{label(method)} trial {number}", legendgroup=method,
                                     hovertext=f"trial {number}, β {beta:.3g}" if beta == beta else None,
                                     showlegend=False), row=1, col=col)
        if data.spec.methods[method].loss_type == "ipo":
            fig.add_hline(y=0.0, line={"dash": "dash", "color": c}, row=1, col=col,
                          annotation_text="IPO's floor: 0 at margin 1/(2β)", annotation_position="top right")
        fig.update_xaxes(title_text="optimizer step", row=1, col=col)
    fig.update_yaxes(title_text="training loss (TRL, per step)", row=1, col=1)
    return style(fig, "Training loss at every optimizer step, one line per search trial", 400)
