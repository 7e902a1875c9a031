"""Toy bandit from the IPO paper (Azar et al. 2023, arXiv 2310.12036, Figure 1).

Setting: three actions ``a, b, c``; the policy is ``softmax(theta)`` over three logits,
starting at the uniform reference ``pi_ref`` (``theta = 0``). The preference data set is
``D1 = {(a, b), (b, c), (a, c)}`` (first element preferred). Each run trains with Adam
(lr 0.01) on mini-batches of 9 pairs drawn with replacement from D1 for 18,000 steps.
``tau`` is the paper's regularisation parameter (TRL's ``beta``).

Losses, with ``h = log(pi(y_w)/pi_ref(y_w)) - log(pi(y_l)/pi_ref(y_l))``:

* DPO (TRL ``loss_type="sigmoid"``): ``-log sigmoid(tau * h)``
* sampled IPO (TRL ``loss_type="ipo"``, paper Eq. 17): ``(h - 1/(2 tau))^2``

IPO fixed point for D1, derived by hand
---------------------------------------
1. For softmax logits the log-partition and the constant ``log pi_ref = -log 3`` cancel in
   ``h``, so ``h(y, y') = theta_y - theta_y'``. Write ``u = theta_a - theta_b`` and
   ``v = theta_b - theta_c``; then ``h_ab = u``, ``h_bc = v``, ``h_ac = u + v``.
2. Pairs are drawn uniformly from D1 and the empirical preference of each observed pair is 1
   for its first element. The mean over a mini-batch drawn with replacement is an unbiased
   estimate of the population objective (``c = 1/(2 tau)``)::

       L(u, v) = 1/3 * [(u - c)^2 + (v - c)^2 + (u + v - c)^2].

   (Symmetrising, i.e. adding ``(y_l, y_w)`` with target ``-c``, gives the same terms because
   ``h`` is antisymmetric.)
3. The three targets ``h = c`` cannot all hold: ``h_ac = h_ab + h_bc`` would need ``c = 2c``.
   So IPO solves the least-squares problem. Setting the gradient to zero::

       dL/du = 2/3 * [(u - c) + (u + v - c)] = 0   =>  2u +  v = 2c
       dL/dv = 2/3 * [(v - c) + (u + v - c)] = 0   =>   u + 2v = 2c

   Subtracting gives ``u = v``; then ``3u = 2c``, so ``u = v = 2c/3 = 1/(3 tau)``.
   The Hessian ``2/3 * [[2, 1], [1, 2]]`` is positive definite, so this is the unique
   minimiser (``theta`` is fixed up to an additive constant, which softmax ignores).
   Residuals: ``h_ab - c = h_bc - c = -1/(6 tau)`` and ``h_ac - c = +1/(6 tau)``.
4. With ``d = 1/(3 tau)``, ``theta* = (2d, d, 0) + const``, hence::

       pi*(a) = e^{2d}/Z,  pi*(b) = e^{d}/Z,  pi*(c) = 1/Z,  Z = 1 + e^{d} + e^{2d},

   i.e. ``pi*(a)/pi*(b) = pi*(b)/pi*(c) = exp(1/(3 tau))``: the ranking is kept, every
   action keeps mass, and ``pi* -> uniform`` as ``tau -> inf``.

DPO has no finite minimiser on D1: every term decreases in ``u`` and ``u + v``, so the logit
gaps grow without bound and ``pi(a) -> 1`` for every ``tau`` (Adam's normalisation keeps the
steps at roughly ``lr`` even as the gradients vanish).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ACTIONS: tuple[str, ...] = ("a", "b", "c")
#: D1 as (winner, loser) action indices: (a, b), (b, c), (a, c).
D1: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (0, 2))
METHODS: tuple[str, ...] = ("dpo", "ipo")
#: tau = 0.1 would put the IPO fixed point's p(c) at 0.0012; this grid spans sharp to near-uniform.
DEFAULT_TAUS: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
COLORS: dict[str, str] = {"a": "#1f77b4", "b": "#ff7f0e", "c": "#2ca02c"}


def dpo_loss(h: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """Per-pair DPO loss ``-log sigmoid(tau * h)`` (TRL ``loss_type="sigmoid"``)."""
    return -F.logsigmoid(tau * h)


def ipo_loss(h: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """Per-pair sampled IPO loss ``(h - 1/(2 tau))^2`` (TRL ``loss_type="ipo"``, paper Eq. 17)."""
    return (h - 1.0 / (2.0 * tau)) ** 2


LOSSES: dict[str, Callable[[torch.Tensor, Any], torch.Tensor]] = {"dpo": dpo_loss, "ipo": ipo_loss}


def ipo_fixed_point(tau: float) -> np.ndarray:
    """Closed-form IPO stationary distribution on D1 (see the module docstring).

    Returns ``[pi(a), pi(b), pi(c)]`` proportional to ``(e^{2d}, e^{d}, 1)`` with ``d = 1/(3 tau)``.
    """
    d = 1.0 / (3.0 * tau)
    w = np.exp(np.array([2.0 * d, d, 0.0]) - 2.0 * d)  # shifted for numerical stability
    return w / w.sum()


@dataclass
class ToyResults:
    """Trajectories of the toy experiment.

    ``probs[method]`` has shape ``[n_records, n_tau, n_seeds, 3]`` and holds the action
    probabilities at ``record_steps``.
    """

    taus: list[float]
    seeds: int
    steps: int
    lr: float
    batch: int
    record_steps: np.ndarray
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    runtime_s: float = 0.0

    def final_mean(self, method: str) -> np.ndarray:
        """Mean over seeds of the final probabilities, shape ``[n_tau, 3]``."""
        return self.probs[method][-1].mean(axis=1)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: settings, final means, fixed points and deviations."""
        fixed = {str(t): ipo_fixed_point(t).tolist() for t in self.taus}
        out: dict[str, Any] = {
            "settings": {
                "taus": self.taus, "seeds": self.seeds, "steps": self.steps, "lr": self.lr,
                "batch": self.batch, "optimizer": "Adam(betas=(0.9, 0.999), eps=1e-8)",
                "dataset": "D1 = {(a,b), (b,c), (a,c)}", "record_every": int(self.record_steps[1]),
            },
            "ipo_fixed_point": fixed,
            "final_mean_probs": {},
            "max_abs_dev_from_ipo_fixed_point": {},
            "runtime_s": round(self.runtime_s, 2),
        }
        for m in self.probs:
            fm = self.final_mean(m)
            out["final_mean_probs"][m] = {str(t): fm[i].tolist() for i, t in enumerate(self.taus)}
            out["max_abs_dev_from_ipo_fixed_point"][m] = {
                str(t): float(np.abs(fm[i] - ipo_fixed_point(t)).max()) for i, t in enumerate(self.taus)
            }
        return out


def sample_pair_indices(seeds: int, steps: int, batch: int) -> torch.Tensor:
    """Indices into D1, shape ``[steps, seeds, batch]``; seed ``s`` uses ``torch.Generator`` seed ``s``.

    Each seed's stream is independent of how many seeds run, and shared by all taus and methods.
    """
    idx = [torch.randint(0, len(D1), (steps, batch), generator=torch.Generator().manual_seed(s))
           for s in range(seeds)]
    return torch.stack(idx, dim=1)


def simulate(methods: Sequence[str], taus: Sequence[float], pair_idx: torch.Tensor, lr: float = 0.01,
             record_every: int = 100) -> np.ndarray:
    """Train all (method, tau, seed) runs at once; returns probs ``[n_records, n_method, n_tau, n_seeds, 3]``.

    The logits are one tensor ``[n_method, n_tau, n_seeds, 3]`` (``[n_tau, n_seeds, 3]`` per
    method); the loss is the sum over runs of each run's mini-batch mean, so every run's
    gradient is its own. Adam acts element-wise, so the batched update is exactly that of
    independent runs (batching the methods too halves the per-step Python overhead).
    """
    steps, n_seeds, batch = pair_idx.shape
    n_m, n_tau = len(methods), len(taus)
    dt = torch.float64
    tau = torch.tensor(taus, dtype=dt).view(n_tau, 1, 1)
    logits = torch.zeros(n_m, n_tau, n_seeds, 3, dtype=dt, requires_grad=True)
    ref_logp = torch.log_softmax(torch.zeros(3, dtype=dt), -1)  # uniform reference
    pairs = torch.tensor(D1)
    shape = (n_m, n_tau, steps, n_seeds, batch)
    win = pairs[:, 0][pair_idx].expand(shape).movedim(2, 0)  # [steps, method, tau, seed, batch]
    lose = pairs[:, 1][pair_idx].expand(shape).movedim(2, 0)
    loss_fns = [LOSSES[m] for m in methods]
    opt = torch.optim.Adam([logits], lr=lr)
    records = [torch.softmax(logits.detach(), -1).clone()]
    for step in range(steps):
        logp = torch.log_softmax(logits, -1)
        w, l_ = win[step], lose[step]
        h = (logp.gather(-1, w) - ref_logp[w]) - (logp.gather(-1, l_) - ref_logp[l_])
        loss = sum(fn(h[i], tau).mean(-1).sum() for i, fn in enumerate(loss_fns))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % record_every == 0:
            records.append(torch.softmax(logits.detach(), -1).clone())
    return torch.stack(records).numpy()


def run_toy(taus: Sequence[float] = DEFAULT_TAUS, seeds: int = 10, steps: int = 18000, lr: float = 0.01,
            batch: int = 9, methods: Sequence[str] = METHODS, record_every: int = 100) -> ToyResults:
    """Run the toy experiment for every method, tau and seed (``steps`` divisible by ``record_every``)."""
    if steps % record_every:
        raise ValueError("steps must be a multiple of record_every")
    t0 = time.perf_counter()
    pair_idx = sample_pair_indices(seeds, steps, batch)
    res = ToyResults(taus=[float(t) for t in taus], seeds=seeds, steps=steps, lr=lr, batch=batch,
                     record_steps=np.arange(0, steps + 1, record_every))
    probs = simulate(methods, taus, pair_idx, lr=lr, record_every=record_every)
    res.probs = {m: probs[:, i] for i, m in enumerate(methods)}
    res.runtime_s = time.perf_counter() - t0
    return res


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def make_figure(results: ToyResults) -> Any:
    """Plotly figure: rows = method, columns = tau; mean action probabilities over steps,
    a shaded band between the 2.5th and 97.5th percentiles over seeds, and the IPO fixed
    point as dashed lines."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    methods = list(results.probs)
    fig = make_subplots(rows=len(methods), cols=len(results.taus), shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=[f"{m.upper()}, τ = {t:g}" for m in methods for t in results.taus],
                        horizontal_spacing=0.03, vertical_spacing=0.1)
    x = results.record_steps.tolist()
    for r, m in enumerate(methods, start=1):
        for c, t in enumerate(results.taus, start=1):
            p = results.probs[m][:, c - 1]  # [n_records, n_seeds, 3]
            mean, lo, hi = p.mean(1), np.percentile(p, 2.5, axis=1), np.percentile(p, 97.5, axis=1)
            fp = ipo_fixed_point(t)
            for k, a in enumerate(ACTIONS):
                col, first = COLORS[a], (r == 1 and c == 1)
                fig.add_trace(go.Scatter(x=x + x[::-1], y=hi[:, k].tolist() + lo[::-1, k].tolist(),
                                         fill="toself", fillcolor=_rgba(col, 0.2), line={"width": 0},
                                         hoverinfo="skip", legendgroup=a, showlegend=False), row=r, col=c)
                fig.add_trace(go.Scatter(x=x, y=mean[:, k].tolist(), mode="lines", line={"color": col},
                                         name=f"p({a}) mean over {results.seeds} seeds", legendgroup=a,
                                         showlegend=first), row=r, col=c)
                fig.add_trace(go.Scatter(x=[x[0], x[-1]], y=[fp[k], fp[k]], mode="lines",
                                         line={"color": col, "dash": "dash", "width": 1},
                                         name=f"IPO fixed point p({a})", legendgroup=a, showlegend=first),
                              row=r, col=c)
    fig.update_yaxes(range=[0, 1])
    fig.update_xaxes(title_text="step", row=len(methods))
    fig.update_yaxes(title_text="action probability", col=1)
    title = "IPO paper toy (Fig. 1): D1 = {(a,b),(b,c),(a,c)}; bands: 2.5–97.5 pct over seeds"
    fig.update_layout(title=title,
                      height=350 * len(methods), width=max(900, 300 * len(results.taus)),
                      template="plotly_white")
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI: run the experiment, write ``results.json`` and ``index.html`` under ``--out``."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.toy", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports/toy"))
    ap.add_argument("--taus", type=float, nargs="+", default=list(DEFAULT_TAUS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=18000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    res = run_toy(args.taus, seeds=args.seeds, steps=args.steps)
    summary = res.summary()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    make_figure(res).write_html(args.out / "index.html", include_plotlyjs=True, full_html=True)
    for m, per_tau in summary["final_mean_probs"].items():
        for t, p in per_tau.items():
            dev = summary["max_abs_dev_from_ipo_fixed_point"][m][t]
            fixed = np.round(summary["ipo_fixed_point"][t], 4).tolist()
            print(f"{m} tau={t}: p={np.round(p, 4).tolist()} fixed={fixed} max|dev|={dev:.4f}")
    print(f"runtime {res.runtime_s:.1f}s -> {args.out}")
    return summary


if __name__ == "__main__":
    main()
