"""5. The learning-rate profile (``--stage lr-profile``): how far each method's learning rate can be pushed before
its val accuracy degrades, at the tuned beta and with beta re-tuned; and, from the search, the share of clipped
gradient steps."""

from __future__ import annotations

from typing import Any

from prefstudy.report import data as rd
from prefstudy.report import figures_lr as fl
from prefstudy.report.html import Section, code, figure, missing, name, num, text


def _degradation(got: dict[str, Any]) -> str:
    if got.get("degradation_lr") is None:
        return "not available (a learning rate has no finished run)"
    lr = f"{'>= ' if got['censored'] else ''}{got['degradation_lr']:.2e}"
    ci = (f" [95% {10 ** got['ci_low']:.2e}, {10 ** got['ci_high']:.2e}]" if got.get("ci_low") is not None
          and got.get("ci_high") is not None else "")
    censored = " (censored: no degradation inside the grid)" if got["censored"] else ""
    return lr + ci + censored


def lr_profile(d: rd.ReportData) -> Section:
    delta = d.spec.lr_profile.delta
    s = Section("lr-profile", "5. Learning-rate profile: how far can each method's learning rate go?",
                "A fixed grid of learning rates reaching past the search range on both sides (nox -s study -- --stage "
                "lr-profile), each method at its tuned β (the search's joint choice of β and learning rate) with "
                "several seeds; with lr_profile.retune_points, β re-tuned (two more values, one seed, chosen on val) "
                "at the highest learning rates. The primary (declared 2026-12-06 for the third run): the area "
                "shift, IPO minus DPO, in decades: the area between the profiles over their pooled drop across the "
                "grid (a profile moved d decades right reads d), each at its tuned β, read on the test pairs and the "
                "profile split (val chose β and is never read); diverged runs count as every pair lost. The joint "
                "logistic fit is drawn, not read. Secondary: the alignment shift (the second design's primary: how "
                "far DPO's profile must move right to lie on IPO's); the same with β re-tuned (where candidates "
                "ran); a method's degradation learning rate, "
                f"the largest one whose val accuracy stays within {delta:g} of its val peak, interpolated in log "
                "learning rate (the primary of the 2026-12-02 run). "
                "The primary's interval is crossed over seeds and pairs (seed jackknife, pair and cell bootstraps); "
                "the crossing's is clustered over seeds and pairs (docs/claims.md). Below: per search trial, the "
                "share of "
                "optimizer steps whose gradient norm was clipped.")
    fit = next((e.get("fit") for e in d.claims if e["id"] == "lr_tolerance"), None)
    if fit:
        mids = ", ".join(f"{m.upper()} {v:.2e}" for m, v in fit["midpoint_lr"].items() if v is not None)
        s.verdict.append(text(f"Joint fit to the primary's profiles (drawn, not read): midpoints {mids}; slope "
                              f"{num(fit['slope_per_decade'])} per decade, floor {num(fit['floor'])}"
                              + ("" if fit["identified"] else f"; not identified: {fit['reason']}") + "."))
    entry = next((e for e in d.claims if e["id"] == "lr_tolerance"), None)
    if entry is None:
        s.verdict.append(text("The learning-rate profile has not been run yet: ",
                              code("nox -s study -- --stage lr-profile"), " (after the search)."))
        s.body.append(missing("no lr-profile stage runs in the storage"))
    for method, got in entry.get("design", {}).items() if entry else ():
        for label, key in (("β re-tuned", "retuned"), ("tuned β", "fixed")):
            row = got.get(key)
            if not row:
                continue
            line = f" ({label}): degradation learning rate {_degradation(row)}"
            if row.get("val_peak") is not None:
                line += f"; val peak {num(row['val_peak'])} at {row['peak_lr']:.2e}"
            if row.get("test_at_peak") is not None:
                line += (f"; test {num(row['test_at_peak'])} at the peak, {num(row.get('test_at_degradation'))} at "
                         "the degradation point")
            s.verdict.append(text(name(method), line + "."))
        if got.get("diverged"):
            s.verdict.append(text(name(method), f": {len(got['diverged'])} run(s) diverged (lr, β, seed): "
                                  + "; ".join(f"{lr:.2e}, {b:.3g}, {seed}" for lr, b, seed in got["diverged"]) + "."))
    max_norm = d.spec.training.max_grad_norm
    for m in d.methods:
        clipped = d.of(m, ("COMPLETE", "PRUNED"))
        if "clipped_fraction" in clipped and clipped["clipped_fraction"].notna().any():
            cf = clipped["clipped_fraction"].dropna()
            every = int((cf >= 0.999).sum())
            s.verdict.append(text(
                name(m), f" (search): median share of clipped steps {num(cf.median(), '.2f')}; {every} of {len(cf)} "
                "trials clipped every step" + (f": those ran normalized gradient descent (every gradient rescaled to "
                                               f"norm {max_norm:g})." if every else ".")))
    if d.profile_runs:
        fig = fl.profile(d.profile_runs, delta, fl.intervals_of(entry), (entry or {}).get("fit"))
        s.body.append(figure(fig, "fig-lr-profile"))
        if any(any(v is not None for v in r.lm_eval_mean) for r in d.profile_runs.values()):
            s.body.append(figure(fl.lm_eval(d.profile_runs), "fig-lr-lm-eval"))
    return s
