"""Sections 5 and 6, the training dynamics: overfitting and likelihood displacement from the curves, and the
capability cost measured by lm-evaluation-harness."""

from __future__ import annotations

from markupsafe import Markup

from prefstudy.report import data as rd
from prefstudy.report import figures as fg
from prefstudy.report.figures_steps import train_loss
from prefstudy.report.html import (
    Section,
    Text,
    at,
    figure,
    grid,
    interval,
    link,
    missing,
    name,
    num,
    table,
    text,
    three,
    zero_test,
)


# --------------------------------------------------------------------------- 5. overfitting
def overfitting(d: rd.ReportData) -> Section:
    ev = d.spec.evaluation
    s = Section("overfitting", "6. Overfitting and likelihood displacement",
                f"From each trial's curves.jsonl: where val accuracy peaked and how much was lost by the final step; "
                f"train vs val accuracy for the three best trials of each method; the generalization gap (train − "
                f"val) against β and learning rate; and on val the chosen log-ratio (negative = the preferred answer "
                f"became less likely than under the reference), the margin and the KL proxy over steps; last, TRL's "
                f"training loss at every optimizer step (trainer_log.jsonl). Every eval point, the base model at "
                f"step 0 included, scores the same first {ev.val_subset} val pairs for the curves (the final step "
                f"also scores every split in full).")
    if d.train_runs:  # claim (a)'s drift stage measured where the margins on the training preferences stop
        s.verdict.append(text("Does determinism cause this? The drift stage trains on deterministic and on noisy "
                              "copies of the training preferences and draws their margins against the closed forms: ",
                              link("#fig-claim-train-margin", "section 2, training-instance margins"), "."))
    pk = rd.peaks(d)
    if pk.empty:
        s.verdict.append("No curves of complete trials found in the run directories.")
        s.body.append(missing("no curves.jsonl of a complete trial"))
        return s
    for m in d.methods:
        p, done = pk[pk["method"] == m], d.of(m)
        if p.empty:
            s.verdict.append(text(name(m), ": no complete trial with curves."))
            continue
        halves = bool(p["split"].all())
        # with halves, the peak step is chosen on half a: an earlier step counts even when half b shows no drop
        early = p[p["peak_step"] < p["final_step"]] if halves else p[p["drop"] > 0]
        worst = p.loc[p["drop"].idxmax()]
        line = f": val peaked before the final step in {len(early)} of {len(p)} trials" + (
            f" (median drop among them {num(early['drop'].median(), '+.3f')}, largest {num(worst['drop'], '+.3f')} "
            f"at trial {int(worst['number'])}, peak at step {int(worst['peak_step'])})" if len(early)
            else " (no drop from peak to final)")
        line += ("; the peak step is chosen on one half of the fixed val set and the drop read on the other, so a "
                 "drop near 0 is no drop" if halves else
                 "; these curves predate the fixed curve set: peak and drop come from the same pairs, so the drop "
                 "is biased upward")
        if "generalization_gap" in done and done["generalization_gap"].notna().any():
            line += f"; median gap {num(done['generalization_gap'].median(), '+.3f')}"
            for col, sym in (("beta", "β"), ("learning_rate", "lr")):
                rho = rd.spearman(done[col], done["generalization_gap"])
                if rho is not None:
                    line += f"; Spearman ρ(gap, {sym}) {rho:+.2f}"
        if "val/chosen_log_ratio" in done and done["val/chosen_log_ratio"].notna().any():
            clr = done["val/chosen_log_ratio"].dropna()
            line += (f"; final chosen log-ratio below 0 in {int((clr < 0).sum())} of {len(clr)} trials (lowest "
                     f"{num(clr.min(), '+.3g')} nats)")
        s.verdict.append(text(name(m), line + "."))
    s.body += [figure(fg.peaks(pk, d.methods), "fig-peaks"), figure(fg.train_val(d), "fig-trainval"),
               figure(fg.gap(d), "fig-gap"), figure(fg.dynamics(d), "fig-dynamics")]
    if not d.steps.empty and "loss" in d.steps:
        s.body.append(figure(train_loss(d), "fig-train-loss"))
    else:
        s.body.append(missing("per-step training loss: no trainer_log.jsonl in the run directories (trials that "
                              "ran before it was kept)"))
    return s


# --------------------------------------------------------------------------- 6. capability
def capability(d: rd.ReportData) -> Section:
    tasks = ", ".join(t.name for t in d.spec.evaluation.lm_eval.tasks) or "none"
    s = Section("capability", "7. Capability cost (lm-evaluation-harness)",
                f"General capability measured by lm-evaluation-harness (tasks: {tasks}) on the base model and on "
                f"every finished trial's adapter. Left: per task, the base model against each method's best trial. "
                f"Right: every complete trial's val accuracy against its lm-eval mean change from the base, with "
                f"the Pareto front (no other trial is better on both).")
    lm = rd.lm_eval_table(d)
    has_trials = not d.trials.empty and "lm_eval/delta_vs_base" in d.trials and \
        d.trials["lm_eval/delta_vs_base"].notna().any()
    if lm.empty and not has_trials:
        s.verdict.append("lm-eval did not run for this study (evaluation.lm_eval.tasks is empty, or no trial "
                         "finished its evaluation): the capability cost is not measured.")
        s.body.append(missing("no lm-eval results in the storage or the run directories"))
        return s
    cols = [m for m in d.methods if m in lm]
    rows: list[list[Text]] = [[str(r["task"]), str(r["metric"])] + [
        f"{num(at(r, k))} ± {num(at(r, f'{k}_stderr'))}" for k in ["base", *cols]]
        for _, r in lm.iterrows()]
    s.body.append(table(["task", "metric", "base"] + [text(name(m), " best") for m in cols], rows))
    for m in d.methods:
        r = d.best_row(m)
        delta = three(r, "lm_eval/delta_vs_base", "lm_eval/delta_ci_low", "lm_eval/delta_ci_high")
        if delta[0] is None:
            s.verdict.append(text(name(m), ": best trial has no lm-eval result."))
            continue
        meaning = {"excludes 0": "a measurable change", "contains 0": "no measurable change"}.get(
            zero_test(delta[1], delta[2]), "no interval")
        s.verdict.append(text(name(m), f" best: lm-eval mean {num(at(r, 'lm_eval/mean'))} vs base "
                                       f"{num(d.base_lm_eval_mean)}, Δ {interval(*delta, fmt='+.3f')} ({meaning})."))
    if has_trials:
        done = d.trials[d.trials["state"] == "COMPLETE"].dropna(subset=["lm_eval/delta_vs_base", "value"])
        front = done.iloc[rd.pareto_front(list(zip(done["lm_eval/delta_vs_base"], done["value"], strict=True)))]
        members = [text(name(m), f" #{int(n)}") for m, n in zip(front["method"], front["number"], strict=True)]
        s.verdict.append(text("Pareto front (val accuracy vs lm-eval Δ): ", Markup(", ").join(members), "."))
    figures = [figure(fg.lm_eval_bars(lm, cols), "fig-lmeval")] if not lm.empty else []
    if has_trials:
        figures.append(figure(fg.pareto(d), "fig-pareto"))
    s.body.append(grid(figures))
    return s
