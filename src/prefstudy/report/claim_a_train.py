"""Claim (a) on the training preferences: the ``fixed_points`` entry of claims.json, from the drift stage's runs at
every ``drift.preference_p`` (rules in ``evaluation.fixed_points`` and docs/claims.md).

``{"id": "fixed_points", "claim", "statistic", "verdict", "reason"?, "contrasts": [...], "cells": [...],
"p_refuting_holm", "design"}``: one row per DPO growth contrast (per beta) and per (method, beta, p) cell, each with
its estimate, 95% interval, test and the cell's per-instance spread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prefstudy.evaluation import fixed_points as fp
from prefstudy.evaluation.clustered import clustered
from prefstudy.report import stage_runs as sr
from prefstudy.spec import StudySpec

CLAIM = ("On the preferences it is trained on, DPO's margin keeps growing when the preferences are deterministic "
         "(p = 1) and stops where they are not, while IPO's stops at every p (Azar et al. 2023, sections 4-5); "
         "closed forms: DPO logit(p)/beta summed, IPO (2p - 1)/(2 beta) per token")


@dataclass
class TrainRuns:
    """One method's drift runs on the training instances: margins[(beta, p)] is [points, seeds, instances]."""

    method: str
    loss_type: str
    steps: list[int] = field(default_factory=list)
    margins: dict[tuple[float, float], np.ndarray] = field(default_factory=dict)  # the loss's own margin
    summed: dict[tuple[float, float], np.ndarray] = field(default_factory=dict)  # summed margin (DPO's contrast)
    # the secondaries' per-pair values by pairs.jsonl key: val wins, chosen log-ratios on train and val
    other: dict[str, dict[tuple[float, float], np.ndarray]] = field(default_factory=dict)


#: pairs.jsonl keys the secondaries read (val accuracy's fall; likelihood displacement on train and on val)
SECONDARY_KEYS = ("wins", "train/chosen_ratio", "val/chosen_ratio")


def load(spec: StudySpec, storage: Any) -> dict[str, TrainRuns]:
    """Every method's complete drift runs that scored the training instances, aligned on eval steps, seeds
    (``drift.seeds`` order) and instances."""
    seeds = list(spec.drift.seeds)
    out: dict[str, TrainRuns] = {}
    for method, m in spec.methods.items():
        key = "train/margin_per_token" if m.loss_type == "ipo" else "train/margin"
        loaded = []
        for t in sr.stage_trials(spec, storage, method, "drift"):
            rows = sr.read_rows(sr.run_folder(spec, method, "drift", t))
            if rows and key in rows[-1] and int(t.user_attrs["stage_seed"]) in seeds:
                loaded.append((t, rows))
        if not loaded:
            continue
        runs = TrainRuns(method, m.loss_type, sorted({int(r["step"]) for _, rows in loaded for r in rows}))
        for t, rows in loaded:
            cell = (float(t.user_attrs["stage_params"]["beta"]), float(t.user_attrs.get("preference_p", 1.0)))
            s = seeds.index(int(t.user_attrs["stage_seed"]))
            targets = [(runs.margins, key), (runs.summed, "train/margin")]
            targets += [(runs.other.setdefault(k, {}), k) for k in SECONDARY_KEYS if k in rows[-1]]
            for target, name in targets:
                width = len(rows[-1][name])
                array = target.setdefault(cell, np.full((len(runs.steps), len(seeds), width), np.nan))
                for row in rows:
                    if name in row:
                        array[runs.steps.index(int(row["step"])), s, : len(row[name])] = row[name][:width]
        out[method] = runs
    return out


def _row(c: fp.Cell) -> dict[str, Any]:
    stopped = "bounded" if c.bounded else "growing" if c.p_growing < 0.05 else "not converged"
    closed = None if c.level is None else "at" if c.at_closed_form else "not at" if c.bounded else "undecided"
    return {"method": c.method, "loss_type": c.loss_type, "beta": c.beta, "p": c.p, "target": c.target,
            "growth": sr.entry_of("late growth of z (share of the closed form; beta*h at DPO p = 1)", c.growth),
            "stopped": stopped, "p_bounded": sr.finite(c.p_bounded), "p_growing": sr.finite(c.p_growing),
            "ratio": sr.finite(c.ratio) if c.ratio is not None else None,
            "level": sr.entry_of("log mean z at the last point", c.level) if c.level is not None else None,
            "closed_form": closed, "p_closed_form": sr.finite(c.p_closed_form), "spread": sr.finite(c.spread)}


def fixed_points_claim(spec: StudySpec, runs: dict[str, TrainRuns]) -> dict[str, Any]:
    """The entry (module docstring); 'inconclusive' with a reason when the design lacks what the rules read."""
    d = spec.drift
    entry = sr.new_entry("fixed_points", CLAIM,
                         "intersection-union: every DPO growth contrast (late growth of beta*h, p = 1 minus p < 1) "
                         "positive and every IPO and p < 1 cell bounded (TOST of late growth within "
                         f"+-{d.growth_margin:g} of the closed form); training instances, 95% intervals clustered "
                         "over seeds and instances")
    pair = sr.ipo_and_dpo(runs, entry, "drift")
    if pair is None:
        return entry
    ipo, dpo = pair
    ps = sorted({p for r in runs.values() for _, p in r.margins})
    entry["design"] = {m: {"cells": sorted([list(k) for k in r.margins]), "steps": r.steps, "seeds": list(d.seeds)}
                       for m, r in runs.items()}
    if not any(p < 1.0 for p in ps) or 1.0 not in ps:
        entry["reason"] = ("the rules compare p = 1 with p < 1: run the stage with drift.preference_p: [1.0, 0.75] "
                           "and drift.copies: 4")
        return entry
    last = min(d.late_points, min(len(r.steps) for r in runs.values()))
    cells = [fp.cell(m, r.loss_type, beta, p, margins, r.steps, last, d.growth_margin, d.level_margin, d.n_boot,
                     spec.seed) for m, r in ((dpo, runs[dpo]), (ipo, runs[ipo]))
             for (beta, p), margins in sorted(r.margins.items())]
    contrasts, rows = [], []
    dpo_runs = runs[dpo]
    for (beta, p), summed in sorted(dpo_runs.summed.items()):
        if p == 1.0:
            continue
        deterministic = dpo_runs.summed.get((beta, 1.0))
        if deterministic is None:
            continue
        est = clustered(fp.growth_contrast(dpo_runs.steps, last), {"p1": beta * deterministic, "q": beta * summed},
                        n_boot=d.n_boot, seed=spec.seed)
        contrasts.append(est)
        rows.append(sr.entry_of(f"DPO late growth of beta*h, p 1 - p {p:g}, beta {beta:g}", est, beta=beta, p=p))
    result = fp.primary(contrasts, cells)
    entry["secondary"] = secondary(spec, runs, ipo, dpo)
    entry.update({"verdict": result["verdict"], "contrasts": rows, "cells": [_row(c) for c in cells],
                  "p_contrast_positive": result["p_contrast_positive"], "p_refuting_holm": result["p_refuting_holm"],
                  "methods": {"ipo": ipo, "dpo": dpo}})
    return entry


def secondary(spec: StudySpec, runs: dict[str, TrainRuns], ipo: str, dpo: str) -> list[dict[str, Any]]:
    """The secondaries of docs/claims.md (unadjusted here; Holm-adjusted in the study's family): per method and
    p < 1, val accuracy's fall from its peak at p = 1 minus at p (does determinism cause the held-out overfitting?);
    per cell, the chosen answer's final log-ratio on train and on val (below 0: likelihood displacement)."""
    d = spec.drift
    out = sr.Secondaries(d.n_boot, spec.seed)
    for label in (dpo, ipo):
        r = runs[label]
        wins = r.other.get("wins", {})
        for (beta, p), q in sorted(wins.items()):
            deterministic = wins.get((beta, 1.0))
            if p == 1.0 or deterministic is None:
                continue
            out.add(f"{label.upper()} val accuracy's fall from its peak, p 1 - p {p:g}, beta {beta:g}",
                    fp.fall_contrast(), {"p1": deterministic, "q": q}, beta=beta, p=p)
    for label in (dpo, ipo):
        for split in ("train", "val"):
            for (beta, p), values in sorted(runs[label].other.get(f"{split}/chosen_ratio", {}).items()):
                out.add(f"{label.upper()} beta {beta:g} p {p:g}: chosen answer's log-ratio at the end, {split} "
                        "(< 0: likelihood displacement)", fp.last_mean("m"), {"m": values}, beta=beta, p=p)
    return out


def sentence(entry: dict[str, Any]) -> str:
    """One line: the verdict, then each cell's stop and its ratio to the closed form."""
    role = " (primary)" if entry.get("primary") else ""
    head = f"claim (a) on the training preferences{role}: {entry['verdict'].upper()}"
    if entry.get("reason"):
        return head + f" ({entry['reason']})"
    parts = [f"DPO growth p1-p<1 {c['estimate']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}]"
             for c in entry.get("contrasts", []) if c.get("estimate") is not None]
    for c in entry.get("cells", []):
        ratio = f", {c['ratio']:.2f} of target ({c['closed_form']})" if c.get("ratio") is not None else ""
        parts.append(f"{c['method'].upper()} beta {c['beta']:g} p {c['p']:g}: {c['stopped']}{ratio}")
    return head + ": " + "; ".join(parts)
