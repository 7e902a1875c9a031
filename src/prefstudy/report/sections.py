"""The report's sections: each returns a ``Section`` with a caption, a verdict computed from the data, and its
tables and figures; a section whose data is missing says so instead of failing."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from prefstudy.report import data as rd
from prefstudy.report import figures as fg
from prefstudy.report.build import Section, at, esc, figure, interval, missing, name, num, table, zero_test


# --------------------------------------------------------------------------- 1. headline
def headline(d: rd.ReportData) -> Section:
    s = Section("headline", "1. Headline: best trial per method",
                "The complete, feasible trial with the highest final val accuracy of each method (chosen on val "
                "only; test and OOD are reported, never used to choose), next to the base model it started from. "
                "Brackets are 95% bootstrap intervals over the held-out pairs.")
    rows, tested = [], {}
    for m in d.methods:
        r = d.best_row(m)
        if r is None:
            rows.append([name(m), d.spec.methods[m].loss_type] + ["–"] * 11)
            s.verdict.append(f"{name(m)}: no complete, feasible trial yet.")
            continue
        tested[m] = _three(r, "test/accuracy", "test_accuracy_ci_low", "test_accuracy_ci_high")
        gain = _three(r, "test_gain_vs_base", "test_gain_ci_low", "test_gain_ci_high")
        lm = _three(r, "lm_eval/delta_vs_base", "lm_eval/delta_ci_low", "lm_eval/delta_ci_high")
        rows.append([name(m), esc(d.spec.methods[m].loss_type), str(int(r["number"])), num(r["beta"], ".4g"),
                     num(r["learning_rate"], ".3g"),
                     interval(*_three(r, "val/accuracy", "val_accuracy_ci_low", "val_accuracy_ci_high")),
                     interval(*tested[m]), interval(*gain, fmt="+.3f"), num(at(r, "ood/accuracy")),
                     num(at(r, "generalization_gap"), "+.3f"), num(at(r, "lm_eval/mean")),
                     interval(*lm, fmt="+.3f"), num(at(r, "value"))])
        s.verdict.append(
            f"{name(m)}: trial {int(r['number'])} (β {num(r['beta'], '.3g')}, lr {num(r['learning_rate'], '.2g')}) "
            f"reaches val {num(at(r, 'val/accuracy'))}; test {interval(*tested[m])}, gain over the base "
            f"{interval(*gain, fmt='+.3f')} ({zero_test(gain[1], gain[2]) or 'no interval'}).")
    b = d.base
    rows.append(["<i>base model</i>", "–", "–", "–", "–", num(b.get("val/accuracy")), num(b.get("test/accuracy")),
                 "–", num(b.get("ood/accuracy")), num(_gap(b), "+.3f"), num(d.base_lm_eval_mean), "–", "–"])
    if len(tested) >= 2:
        (m1, t1), (m2, t2) = sorted(tested.items(), key=lambda kv: -(kv[1][0] or 0))[:2]
        if None not in (*t1, *t2):
            overlap = t1[1] <= t2[2] and t2[1] <= t1[2]
            s.verdict.append(
                f"On test, {name(m1)} {num(t1[0])} vs {name(m2)} {num(t2[0])}: the intervals "
                + ("overlap, so these pairs do not separate the two best settings." if overlap else
                   f"do not overlap: {name(m1)} is better on test."))
    header = ["method", "loss", "trial", "β", "learning rate", "val acc [95%]", "test acc [95%]",
              "test gain vs base [95%]", "OOD acc", "gap (train−val)", "lm-eval mean", "lm-eval Δ vs base [95%]",
              f"objective (val {esc(d.metric)})"]
    keep = len(header) - (d.metric == "accuracy")  # the objective column repeats val acc then
    s.body.append(table(header[:keep], [r[:keep] for r in rows]))
    if any(v is not None for v in d.best.values()):
        s.body.append(figure(fg.headline(d), "fig-headline"))
    else:
        s.body.append(missing("no complete trial in any method yet"))
    return s


def _three(row: pd.Series | None, *keys: str) -> tuple[Any, ...]:
    return tuple(at(row, k) for k in keys)


def _gap(base: dict[str, float]) -> float | None:
    t, v = base.get("train/accuracy"), base.get("val/accuracy")
    return None if t is None or v is None else t - v


# --------------------------------------------------------------------------- 2. DPO vs IPO, paired
def versus(d: rd.ReportData) -> Section:
    c = d.comparison
    title = ("2. " + " vs ".join(name(m) for m in d.methods[:2]) + ", paired on the same test pairs")
    s = Section("versus", title,
                "Each method's configuration is chosen on val only: the confirmed one with the best mean val over its "
                "seeds when the confirmation stage ran (nox -s study -- SPEC --confirm), else the best search trial. "
                "Both are then scored on the SAME test pairs and lm-eval documents, and the difference is "
                "bootstrapped paired: over pairs and, with confirmation runs, over seeds too (95% percentile "
                "intervals).")
    if c is None:
        s.verdict.append("Not available: a paired comparison needs per-pair test scores (heldout.json) of a "
                         "complete trial in both methods, scored on the same test pairs.")
        s.body.append(missing("no paired comparison yet"))
        return s
    from prefstudy.report.compare import sentence

    a, b = c.a.method.upper(), c.b.method.upper()
    s.verdict.append(esc(sentence(f"Held-out test {d.metric}", a, b, c.heldout)) + f" ({esc(c.scope())}).")
    if c.lm_eval is not None:
        s.verdict.append(esc(sentence("lm-eval mean", a, b, c.lm_eval)) + ".")
    else:
        s.verdict.append("lm-eval mean: not compared (a run lacks lm_eval.json or the documents differ).")
    s.verdict += [esc(n) + "." for n in c.notes]
    rows = []
    for r in (c.a, c.b):
        per_seed = r.test_wins.mean(axis=1)
        rows.append([name(r.method), esc(r.source), str(r.trial), num(r.params.get("beta"), ".4g"),
                     num(r.params.get("learning_rate"), ".3g"), esc(", ".join(str(x) for x in r.seeds)),
                     num(r.val_mean), esc(", ".join(f"{v:.3f}" for v in per_seed)), num(per_seed.mean()),
                     num(None if r.lm_eval is None else float(r.lm_eval.mean()))])
    s.body.append(table(["method", "runs from", "config of trial", "β", "learning rate", "seeds",
                         f"mean val {esc(d.metric)}", f"test {esc(d.metric)} per seed", "test mean",
                         "lm-eval mean"], rows))
    return s


# --------------------------------------------------------------------------- 3. landscape
def landscape(d: rd.ReportData) -> Section:
    s = Section("landscape", "3. The (β, learning rate) landscape",
                "Every trial at its β and learning rate, both on log axes, one panel per method. Colour is the final "
                "val accuracy on one scale shared by all panels, so colours compare across methods. Crosses are "
                "pruned trials, red triangles failed ones, the star is the best trial.")
    for m in d.methods:
        if m not in d.studies:
            s.verdict.append(f"{name(m)}: no study in the storage yet.")
            continue
        done, pr, fa = (d.of(m, (st,)) for st in ("COMPLETE", "PRUNED", "FAIL"))
        text = f"{name(m)}: {len(done)} complete, {len(pr)} pruned, {len(fa)} failed"
        if len(done):
            base_val = d.base.get(f"val/{d.metric}")
            above = "" if base_val is None else (
                f"; {int((done['value'] > base_val).sum())} of {len(done)} beat the base model's val "
                f"{num(base_val)}")
            text += f"; final val from {num(done['value'].min())} to {num(done['value'].max())}{above}"
        s.verdict.append(text + ".")
    if d.trials.empty:
        s.body.append(missing("no trials yet"))
    else:
        s.body.append(figure(fg.landscape(d), "fig-landscape"))
    return s


# --------------------------------------------------------------------------- 4. forgiveness
def forgiving(d: rd.ReportData) -> Section:
    s = Section("forgiveness", "4. How forgiving each method is",
                "Only randomly sampled trials (sampling = random: neither the enqueued defaults nor TPE's adaptive "
                "picks) estimate how much of the searched space lands within noise of the method's best: the share "
                "whose final val accuracy lies inside the best trial's 95% val bootstrap interval (pruned and failed "
                "random trials count as outside), and the highest learning rate still inside. Right: per trial, the "
                "share of optimizer steps whose gradient norm exceeded max_grad_norm and was clipped.")
    bands = {}
    max_norm = d.spec.training.max_grad_norm
    for m in d.methods:
        f = rd.forgiveness(d, m)
        bands[m] = f.interval
        if f.share is None:
            s.verdict.append(f"{name(m)}: estimate not possible: {esc(f.reason)}.")
        else:
            lr = (f"the highest learning rate inside is {num(f.max_lr_within, '.2e')} (highest tried "
                  f"{num(f.max_lr_tried, '.2e')})" if f.max_lr_within is not None else "none is inside")
            s.verdict.append(
                f"{name(m)}: {f.n_within} of {f.n_random} random trials ({f.share:.0%}) land inside the best "
                f"trial's val interval [{num(f.interval[0])}, {num(f.interval[1])}] (trial {f.best_number}); {lr}.")
        clipped = d.of(m, ("COMPLETE", "PRUNED"))
        if "clipped_fraction" in clipped and clipped["clipped_fraction"].notna().any():
            cf = clipped["clipped_fraction"].dropna()
            every = int((cf >= 0.999).sum())
            s.verdict.append(
                f"{name(m)}: median share of clipped steps {num(cf.median(), '.2f')}; {every} of {len(cf)} trials "
                f"clipped every step" + (f": those ran normalized gradient descent (every gradient rescaled to norm "
                                         f"{max_norm:g}, so its size told the optimizer nothing)." if every else "."))
    if d.trials.empty:
        s.body.append(missing("no trials yet"))
    else:
        s.body.append(figure(fg.forgiveness(d, bands), "fig-forgiveness"))
    return s


# --------------------------------------------------------------------------- 5. overfitting
def overfitting(d: rd.ReportData) -> Section:
    ev = d.spec.evaluation
    s = Section("overfitting", "5. Overfitting and likelihood displacement",
                f"From each trial's curves.jsonl: where val accuracy peaked and how much was lost by the final step; "
                f"train vs val accuracy for the three best trials of each method; the generalization gap (train − "
                f"val) against β and learning rate; and on val the chosen log-ratio (negative = the preferred answer "
                f"became less likely than under the reference), the margin and the KL proxy over steps. Intermediate "
                f"steps score the first {ev.val_subset} val and {ev.train_subset} train pairs; the final step all val "
                f"pairs.")
    pk = rd.peaks(d)
    if pk.empty:
        s.verdict.append("No curves of complete trials found in the run directories.")
        s.body.append(missing("no curves.jsonl of a complete trial"))
        return s
    for m in d.methods:
        p, done = pk[pk["method"] == m], d.of(m)
        if p.empty:
            s.verdict.append(f"{name(m)}: no complete trial with curves.")
            continue
        early = p[p["drop"] > 0]
        worst = p.loc[p["drop"].idxmax()]
        text = f"{name(m)}: val peaked before the final step in {len(early)} of {len(p)} trials" + (
            f" (median drop among them {num(early['drop'].median())}, largest {num(worst['drop'])} at trial "
            f"{int(worst['number'])}, peak at step {int(worst['peak_step'])})" if len(early)
            else " (no drop from peak to final)")
        if "generalization_gap" in done and done["generalization_gap"].notna().any():
            text += f"; median gap {num(done['generalization_gap'].median(), '+.3f')}"
            for col, sym in (("beta", "β"), ("learning_rate", "lr")):
                rho = rd.spearman(done[col], done["generalization_gap"])
                if rho is not None:
                    text += f"; Spearman ρ(gap, {sym}) {rho:+.2f}"
        if "val/chosen_log_ratio" in done and done["val/chosen_log_ratio"].notna().any():
            clr = done["val/chosen_log_ratio"].dropna()
            text += (f"; final chosen log-ratio below 0 in {int((clr < 0).sum())} of {len(clr)} trials (lowest "
                     f"{num(clr.min(), '+.3g')} nats)")
        s.verdict.append(text + ".")
    s.body += [figure(fg.peaks(pk, d.methods), "fig-peaks"), figure(fg.train_val(d), "fig-trainval"),
               figure(fg.gap(d), "fig-gap"), figure(fg.dynamics(d), "fig-dynamics")]
    return s


# --------------------------------------------------------------------------- 6. capability
def capability(d: rd.ReportData) -> Section:
    tasks = ", ".join(t.name for t in d.spec.evaluation.lm_eval.tasks) or "none"
    s = Section("capability", "6. Capability cost (lm-evaluation-harness)",
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
    rows = [[esc(r["task"]), esc(r["metric"])] + [
        f"{num(at(r, k))} ± {num(at(r, f'{k}_stderr'))}" for k in ["base", *cols]]
        for _, r in lm.iterrows()]
    s.body.append(table(["task", "metric", "base"] + [f"{name(m)} best" for m in cols], rows))
    for m in d.methods:
        r = d.best_row(m)
        delta = _three(r, "lm_eval/delta_vs_base", "lm_eval/delta_ci_low", "lm_eval/delta_ci_high")
        if delta[0] is None:
            s.verdict.append(f"{name(m)}: best trial has no lm-eval result.")
            continue
        meaning = {"excludes 0": "a measurable change", "contains 0": "no measurable change"}.get(
            zero_test(delta[1], delta[2]), "no interval")
        s.verdict.append(f"{name(m)} best: lm-eval mean {num(at(r, 'lm_eval/mean'))} vs base "
                         f"{num(d.base_lm_eval_mean)}, Δ {interval(*delta, fmt='+.3f')} ({meaning}).")
    if has_trials:
        done = d.trials[d.trials["state"] == "COMPLETE"].dropna(subset=["lm_eval/delta_vs_base", "value"])
        front = done.iloc[rd.pareto_front(list(zip(done["lm_eval/delta_vs_base"], done["value"], strict=True)))]
        s.verdict.append("Pareto front (val accuracy vs lm-eval Δ): " + ", ".join(
            f"{name(m)} #{int(n)}" for m, n in zip(front["method"], front["number"], strict=True)) + ".")
    grid = [figure(fg.lm_eval_bars(lm, cols), "fig-lmeval")] if not lm.empty else []
    if has_trials:
        grid.append(figure(fg.pareto(d), "fig-pareto"))
    s.body.append('<div class="grid2">' + "".join(grid) + "</div>")
    return s


# --------------------------------------------------------------------------- 7. search diagnostics
def diagnostics(d: rd.ReportData) -> Section:
    import optuna.visualization as vis
    from optuna.importance import get_param_importances

    s = Section("diagnostics", "7. Search diagnostics (Optuna)",
                "Per method, Optuna's own views of the search: the objective of every trial in order with the best so "
                "far, the importance of β and learning rate for the val objective (seeded fANOVA), and parallel "
                "coordinates of the parameters against the objective.")
    target = (lambda t: t.values[0]) if d.pareto else None
    target_name = f"val {d.metric}"
    for m in d.methods:
        study, done = d.studies.get(m), d.of(m)
        if study is None or done.empty:
            s.verdict.append(f"{name(m)}: no complete trial, nothing to diagnose.")
            s.body.append(missing(f"{m}: no complete trial"))
            continue
        first_best = done.loc[done["value"] == done["value"].max(), "number"].min()
        text = (f"{name(m)}: best val {num(done['value'].max())} first reached at trial {int(first_best)} "
                f"(of {len(d.of(m, ('COMPLETE', 'PRUNED', 'FAIL', 'RUNNING')))} trials)")
        history = vis.plot_optimization_history(study, target=target, target_name=target_name)
        history.update_xaxes(title_text="trial number")
        grid = [figure(fg.style(history, f"{m.upper()}: optimization history", 380), f"fig-history-{m}")]
        varied = len(done) >= 2 and done["value"].nunique() > 1 and all(
            done[p].nunique() > 1 for p in ("beta", "learning_rate"))
        if not varied:
            text += ("; parameter importances need >= 2 complete trials that differ in value and in both "
                     f"parameters ({len(done)} complete, {done['value'].nunique()} distinct values)")
            grid.append(missing(f"{m}: parameter importances need >= 2 complete trials with variation"))
        else:
            kind, make = _importance_evaluator()
            imp = get_param_importances(study, evaluator=make(), target=target)
            text += f"; {kind} importance " + ", ".join(f"{esc(k)} {v:.2f}" for k, v in imp.items())
            fig = vis.plot_param_importances(study, evaluator=make(), target=target,
                                             target_name=target_name)
            grid.append(figure(fg.style(fig, f"{m.upper()}: parameter importances ({kind})", 380),
                               f"fig-importance-{m}"))
        s.verdict.append(text + ".")
        s.body.append('<div class="grid2">' + "".join(grid) + "</div>")
        fig = vis.plot_parallel_coordinate(study, params=["beta", "learning_rate"], target=target,
                                           target_name=target_name)
        s.body.append(figure(fg.style(fig, f"{m.upper()}: parallel coordinates", 360), f"fig-parallel-{m}"))
    return s


def _importance_evaluator() -> tuple[str, Any]:
    """Seeded fANOVA (needs scikit-learn, which lm-eval brings), else Optuna's default PED-ANOVA."""
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "PED-ANOVA", PedAnovaImportanceEvaluator
    return "fANOVA", lambda: FanovaImportanceEvaluator(seed=0)


# --------------------------------------------------------------------------- 8. theory check (IPO toy)
def theory(d: rd.ReportData, out_dir: Path) -> Section:
    s = Section("theory", "8. Theory check: the IPO paper's toy bandit",
                "The IPO paper's Figure 1 experiment (three actions, preferences a > b > c, Adam): DPO should drive "
                "p(a) towards 1 whatever τ (β), IPO should settle on its closed-form fixed point, which keeps every "
                "action's mass and flattens as τ grows. Bars: final mean probabilities; black ticks: IPO's fixed "
                "point.")
    if not d.toy:
        s.verdict.append("The toy experiment has not been run: <code>nox -s toy</code> writes "
                         "reports/toy/results.json; build this report again afterwards.")
        s.body.append(missing("reports/toy/results.json not found (run `nox -s toy`)"))
        return s
    dev, finals = d.toy.get("max_abs_dev_from_ipo_fixed_point", {}), d.toy.get("final_mean_probs", {})
    if "ipo" in dev:
        worst = max(dev["ipo"].items(), key=lambda kv: kv[1])
        s.verdict.append(f"{name('ipo')} ends within {worst[1]:.3f} of its closed-form fixed point at every τ "
                         f"(largest deviation at τ = {esc(worst[0])}).")
    if "dpo" in finals:
        pa = {t: p[0] for t, p in finals["dpo"].items()}
        s.verdict.append(f"{name('dpo')} puts p(a) between {min(pa.values()):.3f} and {max(pa.values()):.3f} "
                         f"across τ = {esc(', '.join(pa))}: " + ("τ barely restrains it, as the paper argues."
                                                                  if min(pa.values()) > 0.9 else
                                                                  "not yet saturated at this step count."))
    s.body.append(figure(fg.toy(d.toy), "fig-toy"))
    page = d.toy_path.parent / "index.html" if d.toy_path else None
    if page and page.is_file():
        s.body.append(f'<p class="note">Trajectories over steps: <a href="{esc(_rel(page, out_dir))}">toy '
                      f"report</a>.</p>")
    return s


# --------------------------------------------------------------------------- 9. all trials
def _rel(path: str | Path, out_dir: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), out_dir.resolve())).as_posix()


def _td(text: str, value: Any = None) -> str:
    sort = "" if value is None or (isinstance(value, float) and math.isnan(value)) else f' data-v="{esc(value)}"'
    return f"<td{sort}>{text}</td>"


def all_trials(d: rd.ReportData, out_dir: Path) -> Section:
    s = Section("trials", "9. All trials",
                "Every trial of every method; click a column header to sort. The run directory link holds the "
                "trial's config.json, env.json, curves.jsonl, metrics.json and adapter.")
    if d.trials.empty:
        s.verdict.append("No trials in the storage yet.")
        s.body.append(missing("no trials"))
    else:
        t = d.trials
        states = t["state"].value_counts().to_dict()
        s.verdict.append(f"{len(t)} trials: " + ", ".join(f"{v} {k.lower()}" for k, v in sorted(states.items())))
        if "fail_reason" in t and t["fail_reason"].notna().any():
            reasons = t["fail_reason"].dropna().str.split(":").str[0].value_counts()
            s.verdict.append("failure reasons: " + ", ".join(f"{esc(k)} ×{v}" for k, v in reasons.items()))
        rows = []
        for _, r in t.iterrows():
            note = r.get("fail_reason") if isinstance(r.get("fail_reason"), str) else (
                f"pruned at step {int(r['last_step'])}" if r["state"] == "PRUNED" and pd.notna(r["last_step"]) else "")
            link = (f'<a href="{esc(_rel(r["run_path"], out_dir))}/">{esc(Path(r["run_path"]).name)}</a>'
                    if isinstance(r.get("run_path"), str) else "–")
            cells = [(name(r["method"]), r["method"]), (str(int(r["number"])), int(r["number"])),
                     (esc(r["state"].lower()), r["state"]), (esc(at(r, "sampling") or "–"), at(r, "sampling")),
                     (num(at(r, "beta"), ".4g"), at(r, "beta")),
                     (num(at(r, "learning_rate"), ".3g"), at(r, "learning_rate"))]
            for key, fmt in (("value", ".3f"), ("test/accuracy", ".3f"), ("ood/accuracy", ".3f"),
                             ("generalization_gap", "+.3f"), ("lm_eval/delta_vs_base", "+.3f"),
                             ("clipped_fraction", ".2f"), ("steps", "d"), ("seconds/train", ".1f")):
                v = at(r, key)
                cells.append((num(int(v) if fmt == "d" and v is not None else v, fmt), v))
            cells += [(link, None), (f'<span class="note">{esc(str(note)[:300])}</span>', None)]
            rows.append([_td(text, value) for text, value in cells])
        s.body.append(table(["method", "trial", "state", "sampling", "β", "learning rate", f"val {esc(d.metric)}",
                             "test acc", "OOD acc", "gap", "lm-eval Δ", "clipped", "steps", "train s", "run dir",
                             "note"], rows, "sortable"))
    s.body.append(f"<details><summary>Spec (resolved YAML, as stored with the study)</summary><pre>"
                  f"{esc(d.spec_yaml)}</pre></details>")
    if d.env:
        info = [(k, d.env.get(k, "–")) for k in ("device", "python", "platform", "torch_threads")]
        info += sorted((d.env.get("packages") or {}).items())
        s.body.append("<details open><summary>Environment and package versions (env.json of a best trial)</summary>"
                      '<div class="kv">' + "".join(f"<div><b>{esc(k)}</b>{esc(v)}</div>" for k, v in info)
                      + "</div></details>")
    else:
        s.body.append(missing("no env.json in any run directory"))
    return s


