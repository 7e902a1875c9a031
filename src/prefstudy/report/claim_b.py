"""Claim (b), ``lr_tolerance`` (``--stage lr-profile``; rules in ``evaluation.lr_profile`` and ``docs/claims.md``):
the runs read back from the stage's studies and run directories, and the claims.json entry built from them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prefstudy.evaluation import drift as dr
from prefstudy.evaluation import lr_profile as lp
from prefstudy.evaluation import profile_shift as ps
from prefstudy.evaluation.clustered import clustered, crossed
from prefstudy.report import stage_runs as sr
from prefstudy.spec import StudySpec

CLAIM_B = ("IPO tolerates higher learning rates than DPO if beta is tuned with it: its accuracy declines at a "
           "higher learning rate (practitioners aligning Mistral 7B; the Zephyr recipe had to fix DPO at a very low "
           "learning rate)")


@dataclass
class ProfileRuns:
    """One method's lr-profile runs: values[key] is [lrs, slots, seeds, pairs] (NaN where a run is missing);
    capability[key] is [lrs, 1, items] from the tuned beta's first-seed runs (lm-eval documents, generations)."""

    method: str
    loss_type: str
    lrs: list[float]
    betas: list[float | None]  # per slot
    values: dict[str, np.ndarray] = field(default_factory=dict)
    capability: dict[str, np.ndarray] = field(default_factory=dict)
    lm_eval_mean: list[float | None] = field(default_factory=list)
    diverged: list[tuple[float, float, int]] = field(default_factory=list)  # (lr, beta, seed)
    runs: int = 0


def _lm_eval_vector(folder: Path | None) -> np.ndarray | None:
    from prefstudy.evaluation.lmeval import macro_vector

    if folder is None or not (folder / "lm_eval.json").is_file():
        return None
    return macro_vector(json.loads((folder / "lm_eval.json").read_text()))[0]


def _put(store: dict[str, np.ndarray], key: str, shape: tuple[int, ...], index: tuple[int, ...],
         vec: np.ndarray) -> None:
    if key not in store:
        store[key] = np.full((*shape, len(vec)), np.nan)
    width = min(len(vec), store[key].shape[-1])
    store[key][index][..., :width] = vec[:width]


def load_profile(spec: StudySpec, storage: Any) -> dict[str, ProfileRuns]:
    """Every method's finished lr-profile runs, aligned on learning rates, slots, seeds and pairs."""
    seeds = list(spec.lr_profile.seeds)
    out: dict[str, ProfileRuns] = {}
    for method, m in spec.methods.items():
        trials = [t for t in sr.stage_trials(spec, storage, method, "lr-profile")
                  if int(t.user_attrs["stage_seed"]) in seeds]
        if not trials:
            continue
        lrs = sorted({float(t.user_attrs["stage_params"]["learning_rate"]) for t in trials})
        n_slots = 1 + max(int(t.user_attrs.get("stage_slot", 0)) for t in trials)
        runs = ProfileRuns(method, m.loss_type, lrs, [None] * n_slots)
        runs.lm_eval_mean = [None] * len(lrs)
        shape = (len(lrs), n_slots, len(seeds))
        pending: list[tuple[int, int, int]] = []
        for t in trials:
            i = lrs.index(float(t.user_attrs["stage_params"]["learning_rate"]))
            k, s = int(t.user_attrs.get("stage_slot", 0)), seeds.index(int(t.user_attrs["stage_seed"]))
            runs.betas[k] = float(t.user_attrs["stage_params"]["beta"])
            runs.runs += 1
            if "diverged" in t.user_attrs:
                runs.diverged.append((lrs[i], runs.betas[k] or 0.0, seeds[s]))
                pending.append((i, k, s))
                continue
            folder = sr.run_folder(spec, method, "lr-profile", t)
            rows = sr.read_rows(folder)
            if not rows:
                continue
            for key in (*lp.KEYS, "profile"):
                if key in rows[-1]:
                    _put(runs.values, key, shape, (i, k, s), np.asarray(rows[-1][key], dtype=float))
            if t.user_attrs.get("stage_capability"):
                if "generated" in rows[-1]:
                    _put(runs.capability, "generated", (len(lrs), 1), (i, 0), np.asarray(rows[-1]["generated"]))
                vec = _lm_eval_vector(folder)
                if vec is not None:
                    _put(runs.capability, "lm_eval", (len(lrs), 1), (i, 0), vec)
                    runs.lm_eval_mean[i] = t.user_attrs.get("lm_eval/mean")
        for key in runs.values:  # divergence: every pair lost (degraded, never dropped)
            for i, k, s in pending:
                runs.values[key][i, k, s] = 0.0
            for k in range(1, n_slots):  # a re-tuning candidate's one seed stands for the others (module docs)
                first = runs.values[key][:, k, :1]
                runs.values[key][:, k] = np.where(np.isnan(runs.values[key][:, k]), first, runs.values[key][:, k])
        for i, k, s in pending:  # a diverged capability run: every generation wrong too
            if k == 0 and s == 0 and "generated" in runs.capability:
                runs.capability["generated"][i, 0] = 0.0
        out[method] = runs
    return out


def read_pairs(runs: ProfileRuns) -> np.ndarray:
    """[lrs, slots, seeds, pairs]: the pairs a profile is read on, never the ones that choose (val): all of test,
    then the profile split where the data have one (``data.synthetic.n_profile``)."""
    return np.concatenate([runs.values[k] for k in ("test", "profile") if k in runs.values], axis=-1)


def method_summary(spec: StudySpec, runs: ProfileRuns) -> dict[str, Any]:
    """Peak and degradation per method, re-tuned and at fixed beta, with test accuracy at them."""
    p, x = spec.lr_profile, np.log10(runs.lrs)
    out: dict[str, Any] = {"learning_rates": runs.lrs, "betas": runs.betas, "runs": runs.runs,
                           "diverged": [list(d) for d in runs.diverged], "lm_eval_mean": runs.lm_eval_mean}
    val, test = runs.values.get("val"), runs.values.get("test")
    if val is None:
        return out
    for label, retune in (("retuned", True), ("fixed", False)):
        v = lp.profile(val, retune)
        slots = lp.chosen_slots(lp.accuracy(val), retune)
        deg, censored = lp.degradation_log_lr(x, v, p.delta)
        peak = int(np.argmax(v)) if np.isfinite(v).all() else None
        est = clustered(lp.one_degradation(list(x), "v", p.delta, retune), {"v": val}, n_boot=p.n_boot, seed=spec.seed)
        entry: dict[str, Any] = {
            "val": [sr.finite(a) for a in v], "beta_read": [runs.betas[int(k)] for k in slots],
            "degradation_lr": sr.finite(10 ** deg) if math.isfinite(deg) else None, "censored": censored,
            "log10_degradation_lr": sr.finite(deg), "ci_low": sr.finite(est.ci_low), "ci_high": sr.finite(est.ci_high),
            "peak_lr": runs.lrs[peak] if peak is not None else None,
            "val_peak": sr.finite(v[peak]) if peak is not None else None}
        if test is not None:
            t = lp.profile(test, retune, choose_on=val)
            entry["test"] = [sr.finite(a) for a in t]
            entry["read"] = [sr.finite(a) for a in lp.profile(read_pairs(runs), retune, choose_on=val)]
            if peak is not None and math.isfinite(deg):
                entry["test_at_peak"] = sr.finite(t[peak])
                entry["test_at_degradation"] = sr.finite(lp.interpolate(x, t, deg))
        out[label] = entry
    return out


def lr_claim(spec: StudySpec, runs: dict[str, ProfileRuns]) -> dict[str, Any]:
    """The ``lr_tolerance`` entry of claims.json; 'inconclusive' with a reason when data are missing or fewer than
    3 seeds (rules: ``evaluation.profile_shift``, docs/claims.md)."""
    p = spec.lr_profile
    entry = sr.new_entry("lr_tolerance", CLAIM_B, STATISTIC)
    pair = sr.ipo_and_dpo(runs, entry, "lr-profile")
    if pair is None:
        return entry
    ipo, dpo = pair
    a, b = runs[ipo], runs[dpo]
    entry["design"] = {m: method_summary(spec, r) for m, r in ((ipo, a), (dpo, b))}
    entry["methods"] = {"ipo": ipo, "dpo": dpo}
    if a.lrs != b.lrs or any(k not in r.values for k in lp.KEYS for r in (a, b)):
        entry["reason"] = "the methods' learning-rate grids differ or a method has no scored run yet (val and test)"
        return entry
    x = list(np.log10(a.lrs))
    if not all(np.isfinite(lp.accuracy(r.values[k])[:, 0]).all() for k in lp.KEYS for r in (a, b)):
        entry["reason"] = "the stage is incomplete: a learning rate has no finished tuned-beta run"
        return entry
    read = {ipo: read_pairs(a)[:, :1], dpo: read_pairs(b)[:, :1]}  # the tuned beta (slot 0) at every point
    curves = {m: ps.curve(read[m]) for m in (ipo, dpo)}
    entry["profiles"] = {m: [sr.finite(v) for v in c] for m, c in curves.items()}
    entry["read_pairs"] = int(read[ipo].shape[-1])
    fit = ps.fit_joint(x, curves[ipo], curves[dpo], p.delta)
    entry["fit"] = fit_summary(fit, ipo, dpo)  # a candidate that lost (docs/claims.md): shown, not read
    entry["secondary"] = secondary(spec, a, b, x, ipo, dpo, read)
    primary = ps.area_difference(x, ipo, dpo, MIN_DROP)
    diff = crossed(primary, read, n_boot=p.n_boot, seed=spec.seed)
    entry.update({k: sr.finite(getattr(diff, k)) for k in ("estimate", "ci_low", "ci_high", "mde", "p_value", "df")})
    low, high = ps.alignable(x)
    entry["alignable"] = [low, high]  # the alignment secondary's range (the area shift has none)
    entry["censored"] = False  # the area shift reads on past the grid's ends (docs/claims.md)
    entry["verdict"] = lp.verdict(diff)
    if not np.isfinite(diff.estimate):
        entry["verdict"] = "inconclusive"
        entry["reason"] = (f"no decline to measure by: the pooled profile drops less than {MIN_DROP:g} from the grid's "
                           f"first learning rate to its last (extend the grid upwards)")
        return entry
    if diff.seeds < MIN_SEEDS:
        entry["verdict"] = "inconclusive"
        entry["reason"] = (f"{diff.seeds} seed(s): the seed part of the interval rests on fewer than "
                           f"{MIN_SEEDS - 1} degrees of freedom, so no verdict is read (set lr_profile.seeds to "
                           f">= {MIN_SEEDS})")
    return entry


MIN_DROP = 0.02  # the area shift's denominator: a pooled drop below it is no decline (docs/claims.md)
STATISTIC = ("area shift of the decline, IPO - DPO, in decades of learning rate: the area between IPO's and DPO's "
             "profiles (trapezoids in log10 learning rate over the grid) over the pooled profile's drop from the "
             "grid's first point to its last (a profile moved d decades right reads d; not identified below a drop "
             f"of {MIN_DROP:g}); profiles = each method's seed-mean accuracy per learning rate at its TUNED "
             "beta (the search's joint choice of beta and learning rate, on val), read on the TEST pairs and the "
             "profile split (never on VAL, which chose); diverged runs count as every pair lost; 95% t interval "
             "crossed over seeds and read pairs (seed jackknife + pair bootstrap - cell bootstrap)")


MIN_SEEDS = 3  # a verdict needs the seed variance estimated from >= 3 values


def fit_summary(fit: ps.JointFit, ipo: str, dpo: str) -> dict[str, Any]:
    return {"slope_per_decade": sr.finite(fit.slope), "floor": sr.finite(fit.floor), "identified": fit.identified,
            "reason": fit.reason,
            "plateau": {ipo: sr.finite(fit.plateaus[0]), dpo: sr.finite(fit.plateaus[1])},
            "midpoint_lr": {ipo: sr.finite(10 ** fit.mids[0]), dpo: sr.finite(10 ** fit.mids[1])}}


def secondary(spec: StudySpec, a: ProfileRuns, b: ProfileRuns, x: list[float], ipo: str,
              dpo: str, read: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The claim's secondary statistics, in their declared order (unadjusted here; Holm-adjusted in the study's
    family); ``read``: each method's tuned-beta runs on the read pairs, as the primary has them."""
    p = spec.lr_profile
    out = sr.Secondaries(p.n_boot, spec.seed)
    add = out.add

    add("alignment shift at the tuned beta (the primary until the third run; near 0 it errs more often than 5% "
        "where the profiles are not parallel): IPO - DPO (decades, on the read pairs)",
        ps.alignment_difference(x, ipo, dpo), read, interval=crossed)
    if len(a.betas) > 1 or len(b.betas) > 1:  # re-tuning candidates were run (lr_profile.retune_points > 0)
        add("alignment shift with beta re-tuned per learning rate on val (candidates: one seed each): IPO - DPO "
            "(decades, on the read pairs)", ps.alignment_difference(x, ipo, dpo),
            {ipo: ps.read_chosen(read_pairs(a), a.values["val"]), dpo: ps.read_chosen(read_pairs(b), b.values["val"])},
            interval=crossed)
    add(f"threshold crossing (the primary until 2026-12-06): log10 deg lr(IPO) - log10 deg lr(DPO), beta re-tuned, "
        f"on val, delta {p.delta:g} (decades)",
        lp.degradation_difference(x, ipo, dpo, p.delta, True), {ipo: a.values["val"], dpo: b.values["val"]})
    for key, name in (("lm_eval", "lm-eval macro mean, IPO - DPO, averaged over the learning-rate grid (1 seed; "
                                  "documents resampled)"),
                      ("generated", "generation accuracy, IPO - DPO, averaged over the learning-rate grid (1 seed)")):
        if key in a.capability and key in b.capability and \
                a.capability[key].shape[-1] == b.capability[key].shape[-1]:
            add(name, dr.mean_difference(ipo, dpo), {ipo: a.capability[key], dpo: b.capability[key]})
    return out


def sentence(entry: dict[str, Any]) -> str:
    """One line: 'claim (b) lr_tolerance: INCONCLUSIVE: area shift of the decline, IPO - DPO, ... = +0.20 ...'."""
    if entry.get("estimate") is None:
        return f"claim (b) lr_tolerance: {entry['verdict']}" + (f" ({entry['reason']})" if entry.get("reason") else "")
    interval = (f"[95% {entry['ci_low']:+.2f}, {entry['ci_high']:+.2f}]" if entry.get("ci_low") is not None
                and entry.get("ci_high") is not None else "(no interval: every resample and seed gave the same value)")
    line = (f"claim (b) lr_tolerance: {entry['verdict'].upper()}: area shift of the decline, IPO - DPO, tuned "
            f"beta = {entry['estimate']:+.2f} decades {interval}")
    if entry["verdict"] == "inconclusive" and entry.get("mde") is not None:
        line += f"; cannot detect shifts below {entry['mde']:.2f} decades (80% power)"
    if entry.get("reason"):
        line += f" ({entry['reason']})"
    return line
