"""Sections 1-4, the results: the best trial per method, the paired DPO-vs-IPO comparison, the (β, learning rate)
landscape."""

from __future__ import annotations

from markupsafe import Markup

from prefstudy.report import data as rd
from prefstudy.report import figures as fg
from prefstudy.report.html import (
    Section,
    Text,
    at,
    figure,
    interval,
    missing,
    name,
    num,
    table,
    text,
    three,
)


# --------------------------------------------------------------------------- 1. headline
def headline(d: rd.ReportData) -> Section:
    s = Section("headline", "1. Headline: the primary endpoint, and the best trial per method",
                "First the primary endpoint: the confirmation's paired difference on test, in the spec's metric. "
                "Then the complete, feasible trial with the highest final val accuracy of each method (chosen on val "
                "only; test and OOD are reported, never used to choose), next to the base model it started from. "
                "Brackets: 95% Wilson intervals for accuracies, paired t intervals over the test pairs for gains, "
                "the stratified document bootstrap for lm-eval changes.")
    from prefstudy.report.verdicts import confirm_command, family

    verdicts = family(d)
    primary = next((v for v in verdicts if v.primary), None)
    if primary is not None:
        s.verdict.append(primary.sentence() + (f" ({primary.scope})." if primary.measured else "."))
        if not primary.measured:
            s.verdict.append("The primary endpoint is measured by the confirmation stage: "
                             f"{confirm_command(d.spec)}. Until then every comparison below is exploratory.")
        for v in verdicts:
            if v.kind == "exploratory":
                s.verdict.append(v.sentence() + ".")
    s.verdict.append(f"Secondary verdicts ({sum(not v.primary for v in verdicts)} in all, Holm-adjusted together; "
                     "the list is in verdicts.json next to this page) decide only at a Holm-adjusted p below 0.05.")
    rows: list[list[Text]] = []
    tested = {}
    for m in d.methods:
        r = d.best_row(m)
        if r is None:
            rows.append([name(m), d.spec.methods[m].loss_type] + ["–"] * 11)
            s.verdict.append(text(name(m), ": no complete, feasible trial yet."))
            continue
        tested[m] = three(r, f"test/{d.metric}", "test_accuracy_ci_low", "test_accuracy_ci_high")
        gain = three(r, "test_gain_vs_base", "test_gain_ci_low", "test_gain_ci_high")
        lm = three(r, "lm_eval/delta_vs_base", "lm_eval/delta_ci_low", "lm_eval/delta_ci_high")
        rows.append([name(m), d.spec.methods[m].loss_type, str(int(r["number"])), num(r["beta"], ".4g"),
                     num(r["learning_rate"], ".3g"),
                     interval(*three(r, f"val/{d.metric}", "val_accuracy_ci_low", "val_accuracy_ci_high")),
                     interval(*tested[m]), interval(*gain, fmt="+.3f"), num(at(r, f"ood/{d.metric}")),
                     num(at(r, "generalization_gap"), "+.3f"), num(at(r, "lm_eval/mean")),
                     interval(*lm, fmt="+.3f"), num(at(r, "value"))])
        number = int(r["number"])
        gain_verdict = next((v for v in verdicts if v.kind == "vs_base" and v.method == m
                             and v.metric == d.metric), None)
        decided = ("no interval" if gain_verdict is None else
                   f"Holm-adjusted p {gain_verdict.p_adjusted:.3g}: "
                   + ("decided" if gain_verdict.decided else "not decided"))
        s.verdict.append(text(
            name(m), f": trial {number} (β {num(r['beta'], '.3g')}, lr {num(r['learning_rate'], '.2g')}) "
            f"reaches val {num(at(r, f'val/{d.metric}'))}, {_remeasured(d, m, number)}; test "
            f"{interval(*tested[m])}, gain over the base {interval(*gain, fmt='+.3f')} ({decided})."))
    b = d.base
    rows.append([Markup("<i>base model</i>"), "–", "–", "–", "–", num(b.get(f"val/{d.metric}")),
                 num(b.get(f"test/{d.metric}")), "–", num(b.get(f"ood/{d.metric}")), num(_gap(b, d.metric), "+.3f"),
                 num(d.base_lm_eval_mean), "–", "–"])
    if len(tested) >= 2:
        (m1, t1), (m2, t2) = sorted(tested.items(), key=lambda kv: -(kv[1][0] or 0))[:2]
        if None not in (*t1, *t2):
            overlap = t1[1] <= t2[2] and t2[1] <= t1[2]
            s.verdict.append(text(
                "On test, ", name(m1), f" {num(t1[0])} vs ", name(m2), f" {num(t2[0])}: the intervals ",
                *(["overlap, so these pairs do not separate the two best settings."] if overlap else
                  ["do not overlap: ", name(m1), " is better on test."])))
    short = "acc" if d.metric == "accuracy" else "acc/token"
    header = ["method", "loss", "trial", "β", "learning rate", f"val {short} [95%]", f"test {short} [95%]",
              "test gain vs base [95%]", f"OOD {short}", "gap (train−val)", "lm-eval mean", "lm-eval Δ vs base [95%]",
              f"objective (val {d.metric})"]
    keep = len(header) - (d.metric == "accuracy")  # the objective column repeats val acc then
    s.body.append(table(header[:keep], [r[:keep] for r in rows]))
    if any(v is not None for v in d.best.values()):
        s.body.append(figure(fg.headline(d), "fig-headline"))
    else:
        s.body.append(missing("no complete trial in any method yet"))
    return s


def _remeasured(d: rd.ReportData, method: str, number: int) -> str:
    """The winner's curse, said where the searched maximum is shown: the confirmation's re-measured val when the
    confirmation ran this configuration, else a warning that the maximum is optimistic."""
    c = d.comparison
    runs = None if c is None else next((r for r in (c.a, c.b) if r.method == method), None)
    if runs is not None and runs.source == "confirm" and runs.trial == number:
        return f"re-measured over {len(runs.seeds)} fresh seeds by the confirmation: {runs.val_mean:.3f}"
    trials = len(d.of(method))
    return (f"the best of {trials} complete searched trial(s), so biased upward (the confirmation stage "
            "re-measures it with fresh seeds)")


def _gap(base: dict[str, float], metric: str) -> float | None:
    t, v = base.get(f"train/{metric}"), base.get(f"val/{metric}")
    return None if t is None or v is None else t - v


# --------------------------------------------------------------------------- 2. DPO vs IPO, paired
def versus(d: rd.ReportData) -> Section:
    c = d.comparison
    title = "3. " + " vs ".join(fg.label(m) for m in d.methods[:2]) + ", paired on the same test pairs"
    s = Section("versus", title,
                "Each method's configuration is chosen on val only: the confirmed one with the best mean val over its "
                "seeds when the confirmation stage ran (nox -s study -- SPEC --confirm), else the best search trial. "
                "Both are then scored on the SAME test pairs and lm-eval documents. Test: a paired t interval whose "
                "variance counts the pairs and, with confirmation runs, the seeds (seeds x pairs random effects, "
                "Satterthwaite df); lm-eval: the paired bootstrap over documents and seeds. These are secondary "
                "verdicts unless they are the primary endpoint (see the headline).")
    if c is None:
        s.verdict.append("Not available: a paired comparison needs per-pair test scores (heldout.json) of a "
                         "complete trial in both methods, scored on the same test pairs.")
        s.body.append(missing("no paired comparison yet"))
        return s
    from prefstudy.report.compare import sentence

    a, b = fg.label(c.a.method), fg.label(c.b.method)
    role = "primary endpoint" if c.source == "confirm" else "exploratory, secondary"
    s.verdict.append(sentence(f"Held-out test {d.metric} ({role})", a, b, c.heldout, c.heldout_mde)
                     + f" ({c.scope()}).")
    if c.lm_eval is not None:
        s.verdict.append(sentence("lm-eval mean (secondary)", a, b, c.lm_eval, c.lm_eval_mde)
                         + f" ({c.lm_scope()}).")
    else:
        s.verdict.append("lm-eval mean: not compared (a run lacks lm_eval.json or the documents differ).")
    s.verdict += [n + "." for n in c.notes]
    rows: list[list[Text]] = []
    for r in (c.a, c.b):
        per_seed = r.test_wins.mean(axis=1)
        rows.append([name(r.method), r.source, str(r.trial), num(r.params.get("beta"), ".4g"),
                     num(r.params.get("learning_rate"), ".3g"), ", ".join(str(x) for x in r.seeds),
                     num(r.val_mean), ", ".join(f"{v:.3f}" for v in per_seed), num(per_seed.mean()),
                     num(None if r.lm_eval is None else float(r.lm_eval.mean()))])
    s.body.append(table(["method", "runs from", "config of trial", "β", "learning rate", "seeds",
                         f"mean val {d.metric}", f"test {d.metric} per seed", "test mean", "lm-eval mean"], rows))
    return s


# --------------------------------------------------------------------------- 3. landscape
def landscape(d: rd.ReportData) -> Section:
    s = Section("landscape", "4. The (β, learning rate) landscape",
                "Every trial at its β and learning rate, both on log axes, one panel per method. Colour is the final "
                "val accuracy on one scale shared by all panels, so colours compare across methods. Crosses are "
                "pruned trials, red triangles failed ones, the star is the best trial.")
    for m in d.methods:
        if m not in d.studies:
            s.verdict.append(text(name(m), ": no study in the storage yet."))
            continue
        done, pr, fa = (d.of(m, (st,)) for st in ("COMPLETE", "PRUNED", "FAIL"))
        line = f": {len(done)} complete, {len(pr)} pruned, {len(fa)} failed"
        if len(done):
            base_val = d.base.get(f"val/{d.metric}")
            above = "" if base_val is None else (
                f"; {int((done['value'] > base_val).sum())} of {len(done)} beat the base model's val "
                f"{num(base_val)}")
            line += f"; final val from {num(done['value'].min())} to {num(done['value'].max())}{above}"
        s.verdict.append(text(name(m), line + "."))
    if d.trials.empty:
        s.body.append(missing("no trials yet"))
    else:
        s.body.append(figure(fg.landscape(d), "fig-landscape"))
    return s
