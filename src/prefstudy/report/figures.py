"""Plotly figures of the report; each takes ``ReportData`` (or a derived table) and returns a ``go.Figure``."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from prefstudy.report.data import ReportData, pareto_front, top_trials

METHOD_COLORS = {"dpo": "#2563eb", "ipo": "#ea580c"}
_FALLBACK = ["#059669", "#7c3aed", "#db2777", "#0891b2", "#ca8a04"]
BASE_COLOR = "#6b7280"
FONT = "Inter, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
ACC = "preference accuracy (fraction of pairs)"


def color(method: str, methods: list[str] | None = None) -> str:
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    index = (methods or []).index(method) if methods and method in methods else abs(hash(method))
    return _FALLBACK[index % len(_FALLBACK)]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def style(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}}, height=height,
        template="plotly_white", font={"family": FONT, "size": 12, "color": "#1f2937"},
        margin={"l": 60, "r": 30, "t": 70, "b": 55}, legend={"orientation": "h", "y": -0.2},
        hoverlabel={"font": {"family": FONT}},
    )
    return fig


def label(method: str) -> str:
    return method.upper()


def headline(data: ReportData) -> go.Figure:
    """Best trial per method: val/test/OOD accuracy with 95% intervals, base model as grey diamonds."""
    fig = go.Figure()
    splits = ["val", "test", "ood"]
    names = {"val": "val (chooses the best)", "test": "test (reported only)", "ood": "OOD (unseen family)"}
    x = [names[s] for s in splits]
    base = [data.base.get(f"{s}/{data.metric}") for s in splits]
    fig.add_trace(go.Scatter(x=x, y=base, mode="markers", name="base model",
                             marker={"symbol": "diamond", "size": 13, "color": BASE_COLOR}))
    for method in data.methods:
        row = data.best_row(method)
        if row is None:
            continue
        y = [row.get(f"{s}/{data.metric}") for s in splits]
        hi = [row.get("val_accuracy_ci_high"), row.get("test_accuracy_ci_high"), None]
        lo = [row.get("val_accuracy_ci_low"), row.get("test_accuracy_ci_low"), None]
        plus = [None if h is None or pd.isna(h) else h - v for h, v in zip(hi, y, strict=True)]
        minus = [None if low is None or pd.isna(low) else v - low for low, v in zip(lo, y, strict=True)]
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="markers", name=f"{label(method)} trial {row['number']}",
            marker={"size": 12, "color": color(method, data.methods)},
            error_y={"type": "data", "array": plus, "arrayminus": minus, "thickness": 1.5, "width": 6},
        ))
    fig.update_layout(scattermode="group", yaxis={"title": ACC, "range": [-0.02, 1.02]})
    return style(fig, "Best trial per method vs the base model (bars: 95% Wilson intervals over the pairs)")


def _scatter_states(fig: go.Figure, rows: pd.DataFrame, col: int, show: bool) -> None:
    symbols = {"PRUNED": ("x", "#9ca3af", "pruned"), "FAIL": ("triangle-down", "#dc2626", "failed")}
    for state, (symbol, fill, name) in symbols.items():
        part = rows[rows["state"] == state].dropna(subset=["beta", "learning_rate"])
        if part.empty:
            continue
        text = [f"trial {n}: {name}" + (f" at step {s:g}" if pd.notna(s) else "")
                for n, s in zip(part["number"], part["last_step"], strict=True)]
        fig.add_trace(go.Scatter(x=part["learning_rate"], y=part["beta"], mode="markers", name=name,
                                 legendgroup=name, showlegend=show, text=text, hoverinfo="text+x+y",
                                 marker={"symbol": symbol, "size": 11, "color": fill,
                                         "line": {"width": 1, "color": fill}}), row=1, col=col)


def landscape(data: ReportData) -> go.Figure:
    methods = [m for m in data.methods if m in data.studies]
    fig = make_subplots(rows=1, cols=len(methods), subplot_titles=[label(m) for m in methods],
                        horizontal_spacing=0.12)
    done = data.trials[data.trials["state"] == "COMPLETE"] if not data.trials.empty else data.trials
    lo, hi = (float(done["value"].min()), float(done["value"].max())) if len(done) else (0.0, 1.0)
    if hi - lo < 1e-9:  # one value: widen so the colour bar stays readable
        lo, hi = lo - 0.05, hi + 0.05
    for col, method in enumerate(methods, start=1):
        rows = data.of(method, ("COMPLETE", "PRUNED", "FAIL"))
        if rows.empty:
            continue
        ok = rows[rows["state"] == "COMPLETE"]
        text = [f"trial {n}<br>val {v:.3f}" for n, v in zip(ok["number"], ok["value"], strict=True)]
        if col == 1:  # legend key only: a legend symbol of a colour-mapped trace logs colour warnings
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="complete (colour = val)",
                                     legendgroup="complete", marker={"size": 12, "color": "#9ca3af"}), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=ok["learning_rate"], y=ok["beta"], mode="markers", name="complete", legendgroup="complete",
            showlegend=False, text=text, hoverinfo="text+x+y",
            marker={"size": 14, "color": ok["value"], "coloraxis": "coloraxis",
                    "line": {"width": 1, "color": color(method, data.methods)}}), row=1, col=col)
        best = data.best_row(method)
        if best is not None:
            fig.add_trace(go.Scatter(x=[best["learning_rate"]], y=[best["beta"]], mode="markers",
                                     name="best (val)", legendgroup="best", showlegend=col == 1,
                                     marker={"symbol": "star-open", "size": 24, "color": "#111827",
                                             "line": {"width": 2}}), row=1, col=col)
        _scatter_states(fig, rows, col, show=col == 1)
        fig.update_xaxes(type="log", title_text="learning rate (log scale)", exponentformat="e", row=1, col=col)
        fig.update_yaxes(type="log", title_text=f"β of {label(method)} (log scale)", row=1, col=col)
    fig.update_layout(coloraxis={"colorscale": "Viridis", "cmin": lo, "cmax": hi,
                                 "colorbar": {"title": {"text": f"val {data.metric}"}}})
    return style(fig, f"(β, learning rate) landscape: colour = final val {data.metric}, one scale for all methods",
                 460)


def peaks(table: pd.DataFrame, methods: list[str]) -> go.Figure:
    fig = go.Figure()
    for i, method in enumerate(methods):
        rows = table[table["method"] == method]
        fig.add_trace(go.Scatter(x=rows["peak_step"], y=rows["drop"], mode="markers", name=label(method),
                                 marker={"size": 12, "color": color(method, methods), "opacity": 0.75,
                                         "symbol": ["circle", "diamond", "square", "cross"][i % 4]},
                                 text=[f"trial {n}: peak {p:.3f}, final {f:.3f}" for n, p, f in
                                       zip(rows["number"], rows["peak"], rows["final"], strict=True)]))
    fig.update_layout(xaxis_title="optimizer step of peak val accuracy",
                      yaxis_title="peak − final val accuracy (other half)")
    return style(fig, "Where val accuracy peaked and how much was lost by the end (complete trials)", 380)


def train_val(data: ReportData) -> go.Figure:
    methods = [m for m in data.methods if m in data.studies]
    fig = make_subplots(rows=1, cols=len(methods), shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=[f"{label(m)}: top 3 trials by val" for m in methods])
    dashes = ["solid", "dot", "dashdot"]
    for col, method in enumerate(methods, start=1):
        for rank, number in enumerate(top_trials(data, method)):
            g = data.curves[(data.curves["method"] == method) & (data.curves["number"] == number)]
            for split, dash_on in (("train", False), ("val", True)):
                key = f"{split}/{data.metric}"
                fixed = f"curve/val/{data.metric}"
                if split == "val" and fixed in g and g[fixed].notna().any():
                    key = fixed  # the same val pairs at every point, the base model at step 0
                if key not in g:
                    continue
                points = g.dropna(subset=[key])
                fig.add_trace(go.Scatter(
                    x=points["step"], y=points[key], mode="lines+markers", name=f"{label(method)} #{number} {split}",
                    line={"color": color(method, data.methods) if dash_on else "#374151", "dash": dashes[rank]},
                    marker={"size": 6}), row=1, col=col)
        fig.update_xaxes(title_text="optimizer step", row=1, col=col)
    fig.update_yaxes(title_text=f"{data.metric} (train grey, val coloured)", row=1, col=1)
    return style(fig, "Train vs val accuracy over training (val: one fixed set of pairs at every step)", 420)


def gap(data: ReportData) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=["against β", "against learning rate"])
    for method in data.methods:
        rows = data.of(method)
        if rows.empty or "generalization_gap" not in rows:
            continue
        for col, x in ((1, "beta"), (2, "learning_rate")):
            fig.add_trace(go.Scatter(x=rows[x], y=rows["generalization_gap"], mode="markers", name=label(method),
                                     legendgroup=method, showlegend=col == 1,
                                     marker={"size": 10, "color": color(method, data.methods)},
                                     text=[f"trial {n}" for n in rows["number"]]), row=1, col=col)
    fig.update_xaxes(type="log", title_text="β (log scale)", row=1, col=1)
    fig.update_xaxes(type="log", title_text="learning rate (log scale)", exponentformat="e", row=1, col=2)
    fig.update_yaxes(title_text="train − val accuracy", row=1, col=1)
    fig.add_hline(y=0, line={"color": "#9ca3af", "width": 1})
    return style(fig, "Generalization gap (train − val accuracy at the final step)", 400)


def dynamics(data: ReportData) -> go.Figure:
    panels = [("val/chosen_log_ratio", "chosen log-ratio r(y_w) (nats)"),
              ("val/margin", "margin r(y_w) − r(y_l) (nats)"), ("val/kl_proxy", "KL proxy (nats², per token)")]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=[t for _, t in panels])
    shown: set[str] = set()
    c = data.curves[data.curves["state"].isin(["COMPLETE", "PRUNED"])] if not data.curves.empty else data.curves
    for (method, number, state), g in (c.groupby(["method", "number", "state"], sort=True) if not c.empty else []):
        key_name = f"{label(method)}" + (" (pruned, dotted)" if state == "PRUNED" else "")
        for col, (key, _) in enumerate(panels, start=1):
            if key not in g:
                continue
            fig.add_trace(go.Scatter(x=g["step"], y=g[key], mode="lines", name=key_name, legendgroup=key_name,
                                     showlegend=key_name not in shown, opacity=0.75, hovertext=f"trial {number}",
                                     line={"color": color(method, data.methods), "width": 1.5,
                                           "dash": "dot" if state == "PRUNED" else "solid"}), row=1, col=col)
            shown.add(key_name)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="optimizer step", row=1, col=col)
    fig.add_hline(y=0, line={"color": "#111827", "width": 1, "dash": "dot"}, row=1, col=1)
    fig.update_yaxes(title_text="nats (val pairs)", row=1, col=1)
    return style(fig, "Log-ratio dynamics on val, every finished trial (negative chosen log-ratio = the preferred "
                      "answer became less likely)", 400)


def lm_eval_bars(table: pd.DataFrame, methods: list[str]) -> go.Figure:
    fig = go.Figure()
    x = [f"{t} ({m})" for t, m in zip(table["task"], table["metric"], strict=True)]
    series = [("base", "base model", BASE_COLOR)] + [(m, f"{label(m)} best", color(m, methods)) for m in methods]
    for key, name, c in series:
        if key not in table:
            continue
        err = table.get(f"{key}_stderr")
        fig.add_trace(go.Bar(x=x, y=table[key], name=name, marker_color=c,
                             error_y={"type": "data", "array": err, "visible": err is not None}))
    fig.update_layout(barmode="group", yaxis_title="task score (bars: ±1 standard error)")
    return style(fig, "lm-evaluation-harness per task: base model vs each method's best trial", 400)


def pareto(data: ReportData) -> go.Figure:
    fig = go.Figure()
    done = data.trials[data.trials["state"] == "COMPLETE"].dropna(subset=["lm_eval/delta_vs_base", "value"])
    points = list(zip(done["lm_eval/delta_vs_base"], done["value"], strict=True))
    front = done.iloc[pareto_front(points)].sort_values("lm_eval/delta_vs_base")
    for method in data.methods:
        rows = done[done["method"] == method]
        lo, hi = rows.get("lm_eval/delta_ci_low"), rows.get("lm_eval/delta_ci_high")
        err = {} if lo is None or hi is None else {
            "error_x": {"type": "data", "array": hi - rows["lm_eval/delta_vs_base"],
                        "arrayminus": rows["lm_eval/delta_vs_base"] - lo, "thickness": 1, "width": 3}}
        fig.add_trace(go.Scatter(x=rows["lm_eval/delta_vs_base"], y=rows["value"], mode="markers",
                                 name=label(method), marker={"size": 11, "color": color(method, data.methods)},
                                 text=[f"trial {n}" for n in rows["number"]], **err))
    fig.add_trace(go.Scatter(x=front["lm_eval/delta_vs_base"], y=front["value"], mode="lines+markers",
                             name="Pareto front", line={"color": "#111827", "dash": "dash", "width": 1.5},
                             marker={"symbol": "circle-open", "size": 18, "color": "#111827"}))
    fig.add_vline(x=0, line={"color": "#9ca3af", "width": 1})
    fig.update_layout(xaxis_title="lm-eval mean − base (bars: 95% paired bootstrap interval)",
                      yaxis_title=f"final val {data.metric}")
    return style(fig, "Preference accuracy vs general capability, every complete trial", 420)


def toy(summary: dict[str, Any]) -> go.Figure:
    """Final mean action probabilities of the IPO paper toy per tau, with IPO's closed-form fixed point."""
    taus = [str(t) for t in summary["settings"]["taus"]]
    fixed = summary["ipo_fixed_point"]
    finals = summary["final_mean_probs"]
    fig = make_subplots(rows=1, cols=len(taus), shared_yaxes=True, subplot_titles=[f"τ = {t}" for t in taus],
                        horizontal_spacing=0.03)
    actions = ["a", "b", "c"]
    fixed_group = "ipo" if "ipo" in finals else None  # the tick sits on IPO's bar
    for col, tau in enumerate(taus, start=1):
        for method, per_tau in finals.items():
            fig.add_trace(go.Bar(x=actions, y=per_tau[tau], name=label(method), legendgroup=method,
                                 offsetgroup=method, showlegend=col == 1, marker_color=color(method)), row=1, col=col)
        fig.add_trace(go.Scatter(x=actions, y=fixed[tau], mode="markers", name="IPO fixed point (closed form)",
                                 legendgroup="fixed", showlegend=col == 1, offsetgroup=fixed_group,
                                 marker={"symbol": "line-ew-open", "size": 28, "color": "#111827",
                                         "line": {"width": 3}}), row=1, col=col)
        fig.update_xaxes(title_text="action", row=1, col=col)
    steps = summary["settings"]["steps"]
    fig.update_yaxes(title_text=f"probability after {steps} steps", range=[0, 1], row=1, col=1)
    fig.update_layout(barmode="group", scattermode="group")
    return style(fig, "IPO paper toy (D1 = {(a,b),(b,c),(a,c)}): final action probabilities, mean over seeds", 400)
