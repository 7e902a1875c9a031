"""Claim (b)'s candidate estimands compared by a plasmode simulation on a pilot's lr-profile runs (issue #32).

    python -m benchmarks.profile_power [SPEC] [--storage URL] --out FILE.json [--sims 100] [--boot 200]
        [--shifts 0,0.15,0.3,0.45] [--designs SEEDSxPAIRS,...]

The pilot is an lr-profile stage run on seeds and a data seed that no verdict will use. Its tuned-beta runs give,
for every pair it scored (val and test pooled) and every learning rate, the share of seeds that ranked the pair
right: the world's per-pair chances (DPO's profile; IPO's is the same moved by the planted shift). The seed-to-seed
spread beyond what the pairs explain gives the world's seed SD. For each design (seeds x pairs per run, on the
pilot's grid) and planted shift, every candidate is estimated with the stage's clustered interval in every simulated
stage; the table gives coverage at the planted value, detection, and the MDE in decades read off the power curve.
The JSON written holds every number, with the pilot's grid, seeds and timings, so docs/claims.md can cite it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import numpy as np

from benchmarks import study_tool


def seed_sd(wins: np.ndarray) -> float:
    """The logit-scale SD of a run's offset: the variance of per-seed accuracies beyond binomial noise, per learning
    rate, on the logit scale (delta method), median over learning rates. ``wins``: [lrs, seeds, pairs]."""
    acc = np.nanmean(wins, axis=-1)  # [lrs, seeds]
    n = wins.shape[-1]
    out = []
    for row in acc:
        p = float(np.mean(row))
        if not 0.02 < p < 0.98 or len(row) < 2:
            continue
        excess = max(float(np.var(row, ddof=1)) - p * (1 - p) / n, 0.0)
        out.append(math.sqrt(excess) / (p * (1 - p)))
    return float(np.median(out)) if out else 0.0


def candidates(delta: float, retention_from: float) -> dict[str, Any]:
    from prefstudy.evaluation import lr_profile as lp
    from prefstudy.evaluation import profile_shift as ps

    return {
        "crossing (today's, fixed beta)": lambda g: lp.degradation_difference(g, "ipo", "dpo", delta, False),
        "joint logistic shift": lambda g: ps.shift_difference(g, "ipo", "dpo", delta),
        f"retention above 10^{retention_from:.2f}": lambda g: ps.retention_difference(g, "ipo", "dpo",
                                                                                      retention_from),
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_tool.parser("profile_power", __doc__)
    parser.add_argument("--sims", type=int, default=100)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--shifts", default="0,0.15,0.3,0.45")
    parser.add_argument("--designs", default="3x128,3x384,5x384", help="seeds x pairs per run, comma-separated")
    parser.add_argument("--grids", default="all", help="which of the pilot's learning rates a design runs: 'all' or "
                        "indices joined by '+' (e.g. 0+1+4+5, a sparser grid), comma-separated")
    parser.add_argument("--method", default=None, help="the method whose profile is the world's (default: DPO)")
    args = parser.parse_args(argv)

    from prefstudy.evaluation import profile_power as pp
    from prefstudy.report.claims_lr import load_profile

    spec, url, storage = study_tool.open_study(args)
    runs = load_profile(spec, storage)
    base = args.method or next((m for m, r in runs.items() if r.loss_type == "sigmoid"), None)
    if base is None or base not in runs:
        print(f"error: no lr-profile runs of {args.method or 'a DPO method'} in {url}", file=sys.stderr)
        return 2
    r = runs[base]
    parts = [r.values[k][:, 0] for k in ("val", "test") if k in r.values]  # tuned beta: [lrs, seeds, pairs]
    wins = np.concatenate(parts, axis=-1)
    wins = wins[:, :, np.isfinite(wins).all(axis=(0, 1))]
    log_lrs = tuple(float(x) for x in np.log10(r.lrs))
    chances = np.nanmean(wins, axis=1)  # [lrs, pairs]
    sd = seed_sd(wins)
    shifts = [float(s) for s in args.shifts.split(",")]
    designs = [tuple(int(v) for v in d.split("x")) for d in args.designs.split(",")]
    grids = {g: (list(range(len(log_lrs))) if g == "all" else [int(i) for i in g.split("+")])
             for g in args.grids.split(",")}
    table: list[dict[str, Any]] = []
    started = time.perf_counter()
    for grid_name, index in grids.items():
        grid = tuple(log_lrs[i] for i in index)
        retention_from = float(grid[len(grid) // 2])
        cands = candidates(spec.lr_profile.delta, retention_from)
        for seeds, pairs in designs:
            design = f"grid {grid_name} x {seeds} seeds x {pairs} pairs"
            for shift in shifts:
                world = pp.World(grid, chances[index], shift, sd)
                tallies = pp.simulate(world, seeds, pairs, cands, args.sims, args.boot, seed=spec.seed)
                for name, t in tallies.items():
                    table.append({"design": design, "grid": [10 ** x for x in grid], "seeds": seeds, "pairs": pairs,
                                  "runs": 2 * len(grid) * seeds, "shift": shift, "candidate": name,
                                  "truth": t.truth, "coverage": t.coverage, "power": t.power,
                                  "not_identified": t.not_identified, "sims": t.sims,
                                  "median_estimate": float(np.median(t.estimates)) if t.estimates else None})
                    print(f"{design} shift {shift:+.2f} {name}: truth {t.truth:+.3f} coverage {t.coverage:.3f} "
                          f"power {t.power:.2f} not identified {t.not_identified}/{t.sims} "
                          f"({time.perf_counter() - started:.0f} s)", flush=True)
    mde = {}
    for design in dict.fromkeys(row["design"] for row in table):
        for name in dict.fromkeys(row["candidate"] for row in table if row["design"] == design):
            rows = [row for row in table if row["design"] == design and row["candidate"] == name and row["shift"] > 0]
            mde[f"{design}: {name}"] = pp.mde_decades([row["shift"] for row in rows], [row["power"] for row in rows])
    out = {"pilot": {"spec": spec.name, "storage": url, "method": base, "learning_rates": r.lrs,
                     "seeds": list(spec.lr_profile.seeds), "pairs": int(wins.shape[-1]), "seed_sd_logit": sd},
           "sims": args.sims, "boot": args.boot, "table": table, "mde_decades": mde,
           "seconds": time.perf_counter() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    for key, value in mde.items():
        print(f"MDE {key}: {value:.3f} decades" if math.isfinite(value) else f"MDE {key}: not reached")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
