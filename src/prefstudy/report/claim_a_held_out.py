"""Claim (a) on held-out pairs, ``drift`` (``--stage drift``; rules in ``evaluation.drift`` and ``docs/claims.md``):
one entry ``{"id": "drift", "statistic", "estimate", "ci_low", "ci_high", "mde", "p_value", "verdict", "secondary":
[...]}``, the primary of the 2026-12-02 design and a secondary where the drift design has p < 1 arms
(``report.claim_a_train``). Its secondary statistics join the study's verdict family (``report.verdicts``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prefstudy.evaluation import drift as dr
from prefstudy.evaluation.clustered import tost
from prefstudy.report import stage_runs as sr
from prefstudy.spec import StudySpec

CLAIM_A = ("With deterministic preferences DPO keeps drifting from the reference whatever beta is, while IPO "
           "regresses its per-token margin to 1/(2*beta) and stops: IPO's drift falls with beta, DPO's hardly does "
           "(Azar et al. 2023, sections 4-5)")


@dataclass
class MethodRuns:
    """One method's drift runs: values[key] is [betas, points, seeds, pairs] (NaN where a run is missing)."""

    method: str
    loss_type: str
    betas: list[float]
    steps: list[int]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    runs: int = 0
    texts: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (beta index, seed index) -> last answers


def load_drift(spec: StudySpec, storage: Any) -> dict[str, MethodRuns]:
    """Every method's complete drift runs on deterministic preferences (p = 1; runs at ``drift.preference_p`` < 1
    are not read by this statistic), aligned on betas, eval steps, seeds (``drift.seeds`` order) and pairs."""
    seeds = list(spec.drift.seeds)
    out: dict[str, MethodRuns] = {}
    for method, m in spec.methods.items():
        trials = sr.stage_trials(spec, storage, method, "drift")
        loaded = [(t, sr.read_rows(sr.run_folder(spec, method, "drift", t))) for t in trials]
        loaded = [(t, rows) for t, rows in loaded if rows and int(t.user_attrs["stage_seed"]) in seeds
                  and float(t.user_attrs.get("preference_p", 1.0)) == 1.0]  # this statistic: deterministic data
        if not loaded:
            continue
        betas = sorted({float(t.user_attrs["stage_params"]["beta"]) for t, _ in loaded})
        steps = sorted({int(r["step"]) for _, rows in loaded for r in rows})
        runs = MethodRuns(method, m.loss_type, betas, steps)
        for t, rows in loaded:
            b = betas.index(float(t.user_attrs["stage_params"]["beta"]))
            s = seeds.index(int(t.user_attrs["stage_seed"]))
            for row in rows:
                p = steps.index(int(row["step"]))
                for key in (*dr.KEYS, "generated"):
                    if key not in row:
                        continue
                    vec = np.asarray(row[key], dtype=float)
                    if key not in runs.values:
                        runs.values[key] = np.full((len(betas), len(steps), len(seeds), len(vec)), np.nan)
                    width = min(len(vec), runs.values[key].shape[-1])
                    runs.values[key][b, p, s, :width] = vec[:width]
            if rows and "generated_text" in rows[-1]:
                runs.texts[(b, s)] = list(rows[-1]["generated_text"])
            runs.runs += 1
        out[method] = runs
    return out


def drift_claim(spec: StudySpec, runs: dict[str, MethodRuns]) -> dict[str, Any]:
    """The ``drift`` entry of claims.json (module docstring); 'inconclusive' with a reason when data are missing."""
    d = spec.drift
    entry = sr.new_entry("drift", CLAIM_A,
                      "slope(IPO) - slope(DPO) of log(final drift) against log(beta); drift = KL proxy on the val "
                      "chosen answers (0.5 * mean squared per-token log-ratio), mean over pairs, log averaged over "
                      "seeds; 95% t interval clustered over seeds and pairs")
    pair = sr.ipo_and_dpo(runs, entry, "drift")
    if pair is None:
        return entry
    ipo, dpo = pair
    a, b = runs[ipo], runs[dpo]
    entry["design"] = {m: {"betas": r.betas, "steps": r.steps, "runs": r.runs, "seeds": list(d.seeds),
                           "pairs": int(r.values["drift"].shape[-1])} for m, r in ((ipo, a), (dpo, b))}
    if len(a.betas) < 3 or len(b.betas) < 3:
        by_design = any(len(v) < 3 for v in d.betas.values())
        entry["reason"] = ("fewer than 3 betas with finished runs for a method: the held-out slope across beta is not "
                           "read; " + ("drift.betas lists fewer, as a design on the training preferences does"
                                       if by_design else "the stage is incomplete"))
        return entry
    logs = {ipo: np.log(a.betas), dpo: np.log(b.betas)}
    final = {ipo: a.values["drift"][:, -1], dpo: b.values["drift"][:, -1]}  # [betas, seeds, pairs]
    diff = dr.estimate(dr.slope_difference(logs, ipo, dpo), final, d.n_boot, spec.seed)
    slopes = {m: dr.estimate(dr.one_slope(logs[m], m), {m: final[m]}, d.n_boot, spec.seed) for m in (ipo, dpo)}
    verdict = dr.verdict(diff, slopes[ipo].estimate)
    se, df = slopes[dpo].se, slopes[dpo].df
    flat, p_flat = tost(slopes[dpo].estimate, se, df, d.flat_margin)
    entry.update({k: sr.finite(getattr(diff, k)) for k in ("estimate", "ci_low", "ci_high", "mde", "p_value", "df")})
    entry.update({"verdict": verdict,
                  "slopes": {m: sr.entry_of(f"{m} slope of log drift vs log beta", e) for m, e in slopes.items()},
                  "dpo_flat": {"margin": d.flat_margin, "equivalent": bool(flat), "p_tost": sr.finite(p_flat),
                               "rule": f"DPO's slope within +-{d.flat_margin} (TOST, 5%)"},
                  "methods": {"ipo": ipo, "dpo": dpo}})
    entry["secondary"] = secondary(spec, a, b, logs, ipo, dpo)
    return entry


def secondary(spec: StudySpec, a: MethodRuns, b: MethodRuns, logs: dict[str, np.ndarray], ipo: str,
              dpo: str) -> list[dict[str, Any]]:
    """The claim's secondary statistics (unadjusted here; Holm-adjusted in the study's family)."""
    d = spec.drift
    out = sr.Secondaries(d.n_boot, spec.seed)
    add = out.add

    margin = {ipo: a.values["margin_per_token"][:, -1], dpo: b.values["margin_per_token"][:, -1]}
    add("drift, per-token margin variant: slope(IPO) - slope(DPO) of log(final per-token margin) vs log(beta)",
        dr.slope_difference(logs, ipo, dpo), margin)
    for i, beta in enumerate(a.betas):
        target = dr.ipo_target(beta)
        add(f"IPO final per-token margin - 1/(2 beta) at beta {beta:.4g} (target {target:.3g} nats/token)",
            dr.mean_minus("m", target), {"m": a.values["margin_per_token"][i, -1]}, beta=beta, target=target)
    third = max(2, math.ceil(len(b.steps) / 3))
    add(f"DPO per-token margin growth over the last {third} eval points (nats/token per 100 steps)",
        _per_100(dr.step_slope(b.steps, "m", third)), {"m": b.values["margin_per_token"]})
    for label, r in ((ipo, a), (dpo, b)):
        half = [i for i, s in enumerate(r.steps) if s >= r.steps[-1] / 2]
        add(f"{label.upper()} val accuracy slope over the second half (per 100 steps)",
            _per_100(dr.step_slope(r.steps, "m", max(2, len(half)))), {"m": r.values["wins"]})
    if "generated" in a.values and "generated" in b.values:
        gen = {dpo: b.values["generated"][:, -1], ipo: a.values["generated"][:, -1]}
        if gen[dpo].shape[-1] == gen[ipo].shape[-1]:
            add("final generation accuracy DPO - IPO (all betas)", dr.mean_difference(dpo, ipo), gen)
    return out


def _per_100(statistic: Any) -> Any:
    return lambda data: 100.0 * statistic(data)


def sentence(entry: dict[str, Any]) -> str:
    """One line: 'claim (a) drift: supported: slope(IPO) - slope(DPO) = -1.20 [95% -1.9, -0.5], MDE 0.6'."""
    if entry.get("estimate") is None:
        reason = f" ({entry['reason']})" if entry.get("reason") else ""
        return f"claim (a) drift{_role(entry)}: {entry['verdict']}{reason}"
    line = (f"claim (a) drift{_role(entry)}: {entry['verdict'].upper()}: slope(IPO) - slope(DPO) of log drift vs "
            f"log beta = {entry['estimate']:+.2f} [95% {entry['ci_low']:+.2f}, {entry['ci_high']:+.2f}]")
    if entry["verdict"] == "inconclusive" and entry.get("mde") is not None:
        line += f"; cannot detect differences below {entry['mde']:.2f} (80% power)"
    slopes = entry.get("slopes", {})
    if slopes:
        line += "; slopes " + ", ".join(f"{m.upper()} {s['estimate']:+.2f}" for m, s in slopes.items()
                                        if s.get("estimate") is not None)
    flat = entry.get("dpo_flat")
    if flat:
        line += f"; DPO flat within +-{flat['margin']:g}: {'yes' if flat['equivalent'] else 'not shown'} (TOST)"
    return line


def _role(entry: dict[str, Any]) -> str:
    return " (secondary: held-out pairs, one horizon)" if entry.get("primary") is False else ""
