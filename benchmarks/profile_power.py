"""Claim (b)'s candidate estimands compared by a plasmode simulation on a pilot's lr-profile runs (issue #32).

    python -m benchmarks.profile_power [SPEC] [KEY=VALUE ...] [--storage URL] --out FILE.json [--sims 100]
        [--boot 200] [--shifts 0,0.15,0.3,0.45] [--designs SEEDSxPAIRS,...] [--grids all|I+J+...,...]
        [--candidates NAME,...] [--interval crossed|clustered] [--seed-sd SD]

The 2026-12-06 run that chose the primary (docs/claims.md), from the pilot's storage:

    python -m benchmarks.profile_power study/default.yaml "lr_profile.seeds=[101, 102, 103]" runs_dir=PILOT/runs \
        --storage sqlite:///PILOT/runs/default/optuna.db --sims 100 --boot 200 --shifts 0,0.2,0.35,0.5,0.7 \
        --designs 3x384,5x384,6x384 --grids 0+1+4+5 --candidates crossing,alignment,retention \
        --interval clustered --out F.json

(``--interval crossed``, the default since the amendment of the same day, for the primary's interval now.)

The pilot is an lr-profile stage run on seeds and a data seed that no verdict will use. Its tuned-beta runs give,
for every pair it scored (val and test pooled) and every learning rate, the share of seeds that ranked the pair
right: the world's per-pair chances (DPO's profile; IPO's is the same moved by the planted shift). The seed-to-seed
spread beyond what the pairs explain gives the world's seed SD. For each design (seeds x pairs per run, on the
pilot's grid) and planted shift, every candidate is estimated with the stage's interval (``--interval``) in every
simulated stage; the table gives coverage at the planted value, detection, and the MDE in decades read off the power
curve, with each design's runs and CPU minutes (``plan_stages.profile_seconds``), and per candidate the variance model
(``profile_power.fit_variance``) that ``--dry-run`` uses. The JSON written holds every number, with the pilot's grid,
seeds and timings, so docs/claims.md can cite it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import numpy as np

from benchmarks import study_tool
from prefstudy.plan_stages import profile_runs, profile_seconds


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


def power_curve(rows: list[dict[str, Any]], both: bool, least: float = 0.05) -> list[tuple[float, float]]:
    """(effect size, power) of one design's rows, ascending: the effect a stage faced is the planted shift, or in a
    world of both methods' own chances (``both``) the truth, the world's own shift plus the planted one, of either
    sign (power against its size); effects of ``least`` or less (the null) are left out."""
    curve = sorted((abs(row["truth"] if both else row["shift"]), row["power"]) for row in rows)
    return [(effect, power) for effect, power in curve if effect > least]


PRIMARY = "alignment shift (no model)"  # the stage's primary since 2026-12-06 (docs/claims.md)


def candidates(delta: float, retention_from: float) -> dict[str, Any]:
    from prefstudy.evaluation import lr_profile as lp
    from prefstudy.evaluation import profile_shift as ps

    return {
        "crossing (today's, fixed beta)": lambda g: lp.degradation_difference(g, "ipo", "dpo", delta, False),
        PRIMARY: lambda g: ps.alignment_difference(g, "ipo", "dpo"),
        "joint logistic shift": lambda g: ps.shift_difference(g, "ipo", "dpo", delta),
        "area shift": lambda g: ps.area_difference(g, "ipo", "dpo"),
        f"retention above 10^{retention_from:.2f}": lambda g: ps.retention_difference(g, "ipo", "dpo",
                                                                                      retention_from),
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_tool.parser("profile_power", __doc__)
    parser.add_argument("--sims", type=int, default=100)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--shifts", default="0,0.15,0.3,0.45", help="planted shifts, comma-separated (may be "
                        "negative: with --world both the truth is the world's own shift plus the planted one)")
    parser.add_argument("--designs", default="3x128,3x384,5x384", help="seeds x pairs per run, comma-separated")
    parser.add_argument("--grids", default="all", help="which of the pilot's learning rates a design runs: 'all' or "
                        "indices joined by '+' (e.g. 0+1+4+5, a sparser grid), comma-separated")
    parser.add_argument("--candidates", default=None, help="which candidates to simulate: names' starts, comma-"
                        "separated (default: all)")
    parser.add_argument("--method", default=None, help="the method whose profile is the world's (default: DPO)")
    parser.add_argument("--interval", choices=("crossed", "clustered"), default="crossed",
                        help="the interval the stages are read with: crossed (the primary's since the 2026-12-06 "
                        "amendment) or clustered (the design declared before it)")
    parser.add_argument("--splits", default="val,test", help="the pilot's splits whose pairs make the world "
                        "(comma-separated; test alone where val's decline carries the search's winner's curse)")
    parser.add_argument("--world", choices=("one", "both"), default="one", help="one: both methods' chances are "
                        "the base method's (IPO's moved by the planted shift); both: each method's own, so the "
                        "pairs' method-by-learning-rate interaction is real (IPO's own moved by the planted shift)")
    parser.add_argument("--seed-sd", type=float, default=None, help="a run's offset SD, logit scale (default: the "
                        "pilot's, estimated); to check the interval where seeds differ more than the pilot's did")
    args = parser.parse_args(argv)

    from prefstudy.evaluation import profile_power as pp
    from prefstudy.report.claim_b import load_profile

    spec, url, storage = study_tool.open_study(args)
    runs = load_profile(spec, storage)
    base = args.method or next((m for m, r in runs.items() if r.loss_type == "sigmoid"), None)
    if base is None or base not in runs:
        print(f"error: no lr-profile runs of {args.method or 'a DPO method'} in {url}", file=sys.stderr)
        return 2
    r = runs[base]
    splits = [k.strip() for k in args.splits.split(",")]

    def method_wins(runs_of: Any) -> np.ndarray:  # tuned beta: [lrs, seeds, pairs]
        return np.concatenate([runs_of.values[k][:, 0] for k in splits if k in runs_of.values], axis=-1)

    wins = method_wins(r)
    other = next((m for m in runs if m != base), None) if args.world == "both" else None
    if args.world == "both" and other is None:
        print(f"error: --world both needs a second method's lr-profile runs in {url}", file=sys.stderr)
        return 2
    other_wins = method_wins(runs[other]) if other is not None else None
    keep = np.isfinite(wins).all(axis=(0, 1))
    if other_wins is not None:
        keep &= np.isfinite(other_wins).all(axis=(0, 1))
        other_wins = other_wins[:, :, keep]
    wins = wins[:, :, keep]
    log_lrs = tuple(float(x) for x in np.log10(r.lrs))
    chances = np.nanmean(wins, axis=1)  # [lrs, pairs]
    first = np.nanmean(other_wins, axis=1) if other_wins is not None else None
    sd = seed_sd(wins) if args.seed_sd is None else args.seed_sd
    from prefstudy.evaluation import clustered as cl

    interval = getattr(cl, args.interval)
    shifts = [float(s) for s in args.shifts.split(",")]
    designs = [tuple(int(v) for v in d.split("x")) for d in args.designs.split(",")]
    grids = {g: (list(range(len(log_lrs))) if g == "all" else [int(i) for i in g.split("+")])
             for g in args.grids.split(",")}
    table: list[dict[str, Any]] = []
    variance: dict[str, Any] = {}
    started = time.perf_counter()
    for grid_name, index in grids.items():
        grid = tuple(log_lrs[i] for i in index)
        retention_from = float(grid[len(grid) // 2])
        cands = candidates(spec.lr_profile.delta, retention_from)
        if args.candidates:
            wanted = [w.strip() for w in args.candidates.split(",")]
            cands = {k: v for k, v in cands.items() if any(k.startswith(w) for w in wanted)}
        components: dict[str, list[tuple[int, int, float, float]]] = {}
        for seeds, pairs in designs:
            design = f"grid {grid_name} x {seeds} seeds x {pairs} pairs"
            seconds = profile_seconds(spec, len(grid), seeds, pairs)
            for shift in shifts:
                world = pp.World(grid, chances[index], shift, sd,
                                 first=first[index] if first is not None else None)
                tallies = pp.simulate(world, seeds, pairs, cands, args.sims, args.boot, seed=spec.seed,
                                      interval=interval)
                for name, t in tallies.items():
                    table.append({"design": design, "grid": [10 ** x for x in grid], "seeds": seeds, "pairs": pairs,
                                  "runs": profile_runs(spec, len(grid), seeds),
                                  "cpu_minutes": round(seconds / 60, 1) if seconds is not None else None,
                                  "shift": shift, "candidate": name,
                                  "truth": t.truth, "coverage": t.coverage, "power": t.power,
                                  "not_identified": t.not_identified, "sims": t.sims,
                                  "below_0": t.below / t.sims, "above_0": t.above / t.sims,
                                  "median_estimate": float(np.median(t.estimates)) if t.estimates else None,
                                  "sd_estimate": float(np.std(t.estimates, ddof=1)) if len(t.estimates) > 1 else None,
                                  "median_interval_mde": float(np.median(t.mdes)) if t.mdes else None,
                                  "q90_interval_mde": float(np.quantile(t.mdes, 0.9)) if t.mdes else None})
                    if t.estimates:
                        components.setdefault(name, []).append(
                            (seeds, pairs, float(np.mean(t.seed_variances)), float(np.mean(t.pair_variances))))
                    print(f"{design} shift {shift:+.2f} {name}: truth {t.truth:+.3f} coverage {t.coverage:.3f} "
                          f"power {t.power:.2f} not identified {t.not_identified}/{t.sims} "
                          f"({time.perf_counter() - started:.0f} s)", flush=True)
        for name, rows in components.items():
            model = pp.fit_variance(rows)
            variance[f"grid {grid_name}: {name}"] = {
                "grid": [10 ** x for x in grid], "seed": model.seed, "pair": model.pair, "run": model.run,
                "projected_mde": {f"{s}x{n}": model.mde(s, n) for s, n in designs}}
    mde = {}
    for design in dict.fromkeys(row["design"] for row in table):
        for name in dict.fromkeys(row["candidate"] for row in table if row["design"] == design):
            picked = power_curve([row for row in table if row["design"] == design and row["candidate"] == name],
                                 args.world == "both")
            mde[f"{design}: {name}"] = pp.mde_decades([r[0] for r in picked], [r[1] for r in picked])
    mde_model: dict[str, Any] = {}
    for grid_name, index in grids.items():
        for name in dict.fromkeys(row["candidate"] for row in table):
            keys = {(s, n): f"grid {grid_name} x {s} seeds x {n} pairs: {name}" for s, n in designs}
            reached = [(s, n, mde[key]) for (s, n), key in keys.items() if key in mde]
            if any(math.isfinite(r[2]) for r in reached):
                fitted = pp.fit_mde(reached)
                mde_model[f"grid {grid_name}: {name}"] = {
                    "pair": fitted.pair, "run": fitted.run, "from": [list(r) for r in reached if math.isfinite(r[2])],
                    "projected_mde": {f"{s}x{n}": fitted.mde(s, n) for s, n in designs}}
    out = {"pilot": {"spec": spec.name, "storage": url, "method": base, "learning_rates": r.lrs,
                     "seeds": list(spec.lr_profile.seeds), "pairs": int(wins.shape[-1]), "seed_sd_logit": sd,
                     "splits": splits, "world": args.world, "first_method": other},
           "interval": args.interval,
           "sims": args.sims, "boot": args.boot, "table": table, "mde_decades": mde, "variance_model": variance,
           "mde_model": mde_model,
           "seconds": time.perf_counter() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    for key, value in mde.items():
        print(f"MDE {key}: {value:.3f} decades" if math.isfinite(value) else f"MDE {key}: not reached")
    for key, v in variance.items():
        print(f"variance model, {key}: seed {v['seed']:.4g}, pair {v['pair']:.4g}, run {v['run']:.4g}; "
              "projected MDE " + ", ".join(f"{k} {m:.3f}" for k, m in v["projected_mde"].items()))
    for key, v in mde_model.items():
        print(f"MDE model (power curves), {key}: pair {v['pair']:.4g}, run {v['run']:.4g}; projected MDE "
              + ", ".join(f"{k} {m:.3f}" for k, m in v["projected_mde"].items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
