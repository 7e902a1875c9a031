"""Sections 7-9, about the study itself: Optuna's search diagnostics, the IPO paper's toy bandit as a theory check,
and every trial with the spec and the environment."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from markupsafe import Markup

from prefstudy.report import data as rd
from prefstudy.report import figures as fg
from prefstudy.report.html import (
    Cell,
    Section,
    Text,
    at,
    code,
    details_kv,
    details_pre,
    figure,
    grid,
    link,
    missing,
    name,
    note,
    num,
    sort_cell,
    table,
    text,
)


# --------------------------------------------------------------------------- 7. search diagnostics
def diagnostics(d: rd.ReportData) -> Section:
    import optuna.visualization as vis
    from optuna.importance import get_param_importances

    s = Section("diagnostics", "8. Search diagnostics (Optuna)",
                "Per method, Optuna's own views of the search: the objective of every trial in order with the best so "
                "far, the importance of β and learning rate for the val objective (seeded fANOVA), and parallel "
                "coordinates of the parameters against the objective.")
    target: Callable[[optuna.trial.FrozenTrial], float] | None = (lambda t: t.values[0]) if d.pareto else None
    target_name = f"val {d.metric}"
    for m in d.methods:
        study, done = d.studies.get(m), d.of(m)
        if study is None or done.empty:
            s.verdict.append(text(name(m), ": no complete trial, nothing to diagnose."))
            s.body.append(missing(f"{m}: no complete trial"))
            continue
        first_best = done.loc[done["value"] == done["value"].max(), "number"].min()
        line = (f": best val {num(done['value'].max())} first reached at trial {int(first_best)} "
                f"(of {len(d.of(m, ('COMPLETE', 'PRUNED', 'FAIL', 'RUNNING')))} trials)")
        history = vis.plot_optimization_history(study, target=target, target_name=target_name)
        history.update_xaxes(title_text="trial number")
        panels = [figure(fg.style(history, f"{fg.label(m)}: optimization history", 380), f"fig-history-{m}")]
        varied = len(done) >= MIN_IMPORTANCE_TRIALS and done["value"].nunique() > 1 and all(
            done[p].nunique() > 1 for p in ("beta", "learning_rate"))
        if not varied:
            line += (f"; parameter importances are not drawn: they need >= {MIN_IMPORTANCE_TRIALS} complete trials "
                     f"that differ in value and in both parameters ({len(done)} complete, "
                     f"{done['value'].nunique()} distinct values): a forest fitted to fewer points ranks noise")
            panels.append(missing(f"{m}: parameter importances need >= {MIN_IMPORTANCE_TRIALS} complete trials"))
        else:
            kind, make = _importance_evaluator()
            imp = get_param_importances(study, evaluator=make(), target=target)
            line += f"; {kind} importance " + ", ".join(f"{k} {v:.2f}" for k, v in imp.items())
            fig = vis.plot_param_importances(study, evaluator=make(), target=target, target_name=target_name)
            panels.append(figure(fg.style(fig, f"{fg.label(m)}: parameter importances ({kind})", 380),
                                 f"fig-importance-{m}"))
        s.verdict.append(text(name(m), line + "."))
        s.body.append(grid(panels))
        fig = vis.plot_parallel_coordinate(study, params=["beta", "learning_rate"], target=target,
                                           target_name=target_name)
        s.body.append(figure(fg.style(fig, f"{fg.label(m)}: parallel coordinates", 360), f"fig-parallel-{m}"))
    _families(d, s)
    _lengths(d, s)
    return s


def _lengths(d: rd.ReportData, s: Section) -> None:
    """Answer lengths and how much of each accuracy they explain (evaluation.lengths): per split the share of pairs
    whose chosen answer is longer and the length quantiles; the base model's and each method's chosen trial's
    accuracy by length ratio, summed vs per-token, side by side (``runs/<name>/data/lengths.json``, heldout.json)."""
    import json

    from prefstudy.evaluation import lengths

    path = d.spec.run_root() / "data" / "lengths.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    rows: list[list[Text]] = []
    spread = False
    for split, v in stored.items():
        if not v.get("chosen_tokens"):
            continue
        sm = lengths.summary(v["chosen_tokens"], v["rejected_tokens"])
        q = "/".join(f"{x:.0f}" for x in sm["chosen_tokens"]) + " vs " + "/".join(
            f"{x:.0f}" for x in sm["rejected_tokens"])
        cut = v.get("truncated", 0) + v.get("dropped_for_length", 0)
        rows.append([split, str(sm["pairs"]), f"{sm['chosen_longer']:.2f}", q,
                     f"{v.get('truncated', 0)} cut, {v.get('dropped_for_length', 0)} dropped"])
        strata = lengths.strata(v["base_chosen"], v["base_rejected"], v["chosen_tokens"], v["rejected_tokens"])
        spread = spread or cut > 0 or any(r["stratum"] != "all" and not r["stratum"].startswith("similar")
                                          for r in strata)
    if not rows:
        return
    s.body.append(table(["split", "pairs", "share with the chosen answer longer",
                         "answer tokens 10/50/90% (chosen vs rejected)", "long pairs"], rows))
    if not spread:
        s.verdict.append("Answer lengths: every pair's answers are of similar length (0.67-1.5x) and none was cut, "
                         "so length cannot explain the accuracies.")
        return
    acc_rows: list[list[Text]] = []
    for split in ("val", "test"):
        v = stored.get(split)
        if not v:
            continue
        for r in lengths.strata(v["base_chosen"], v["base_rejected"], v["chosen_tokens"], v["rejected_tokens"]):
            acc_rows.append([split, "base model", r["stratum"], str(r["pairs"]), num(r["summed"]),
                             num(r["per_token"])])
        for m in d.methods:
            row = d.best_row(m)
            heldout = _read_heldout(row)
            part = heldout.get(split) if heldout else None
            if not part or len(part.get("chosen", [])) != len(v["chosen_tokens"]):
                continue
            for r in lengths.strata(part["chosen"], part["rejected"], part["chosen_tokens"], part["rejected_tokens"]):
                acc_rows.append([split, f"{fg.label(m)} (trial {int(row['number'])})", r["stratum"],  # type: ignore[index]
                                 str(r["pairs"]), num(r["summed"]), num(r["per_token"])])
    s.verdict.append("Answer lengths differ between chosen and rejected: the table below ranks each pair by summed "
                     "and by per-token log-probability within groups of length ratio. A summed accuracy that "
                     "follows the length ratio (low where the chosen answer is longer) is answer length, not "
                     "preference.")
    s.body.append(table(["split", "model", "chosen / rejected tokens", "pairs", "accuracy, summed",
                         "accuracy, per token"], acc_rows))


def _read_heldout(row: Any) -> dict[str, Any] | None:
    import json

    if row is None or not row.get("run_path"):
        return None
    try:
        data = json.loads((Path(row["run_path"]) / "heldout.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _families(d: rd.ReportData, s: Section) -> None:
    """The base model's accuracy per data family and split, with Wilson intervals: a family the base model already
    solves (or fails) far from chance carries a prior or a surface cue, and its pairs say less about training."""
    from prefstudy.evaluation.power import wilson_interval

    base: dict[str, Any] = dict(d.base)  # per-family entries are dicts (family -> value), not floats
    splits = [sp for sp in ("val", "test", "ood") if isinstance(base.get(f"{sp}/family"), dict)]
    if not splits:
        return
    families = sorted({f for sp in splits for f in base[f"{sp}/family"]})
    rows: list[list[Text]] = []
    off_chance = []
    for fam in families:
        row: list[Text] = [fam]
        for sp in splits:
            acc = base[f"{sp}/family"].get(fam)
            n = (base.get(f"{sp}/family_n") or {}).get(fam)
            if acc is None:
                row.append("–")
            elif n:
                low, high = wilson_interval(acc * n, int(n))
                row.append(f"{acc:.3f} [{low:.2f}, {high:.2f}] (n {n})")
                if low > 0.5 or high < 0.5:
                    off_chance.append(f"{fam} on {sp} ({acc:.2f})")
            else:
                row.append(f"{acc:.3f}")
        rows.append(row)
    s.verdict.append("Base model per data family: " + (
        "every 95% interval contains 0.5 (chance), so no family is solved before training." if not off_chance else
        "away from chance in " + ", ".join(off_chance) + ": those pairs carry a prior or a cue the base model "
        "already uses."))
    s.body.append(table(["data family"] + [f"base model {sp} accuracy [95% Wilson]" for sp in splits], rows))


MIN_IMPORTANCE_TRIALS = 8  # complete trials per method before fANOVA importances are drawn


def _importance_evaluator() -> tuple[str, Callable[[], optuna.importance.BaseImportanceEvaluator]]:
    """Seeded fANOVA (needs scikit-learn, which lm-eval brings), else Optuna's default PED-ANOVA."""
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "PED-ANOVA", PedAnovaImportanceEvaluator
    return "fANOVA", lambda: FanovaImportanceEvaluator(seed=0)


# --------------------------------------------------------------------------- 8. theory check (IPO toy)
def theory(d: rd.ReportData, out_dir: Path) -> Section:
    s = Section("theory", "9. Theory check: the IPO paper's toy bandit",
                "The IPO paper's Figure 1 experiment (three actions, preferences a > b > c, Adam): DPO should drive "
                "p(a) towards 1 whatever τ (β), IPO should settle on its closed-form fixed point, which keeps every "
                "action's mass and flattens as τ grows. Bars: final mean probabilities; black ticks: IPO's fixed "
                "point.")
    if not d.toy:
        s.verdict.append(text("The toy experiment has not been run: ", code("nox -s toy"),
                              " writes reports/toy/results.json; build this report again afterwards."))
        s.body.append(missing("reports/toy/results.json not found (run `nox -s toy`)"))
        return s
    dev, finals = d.toy.get("max_abs_dev_from_ipo_fixed_point", {}), d.toy.get("final_mean_probs", {})
    if "ipo" in dev:
        worst = max(dev["ipo"].items(), key=lambda kv: kv[1])
        s.verdict.append(text(name("ipo"), f" ends within {worst[1]:.3f} of its closed-form fixed point at every τ "
                                           f"(largest deviation at τ = {worst[0]})."))
    if "dpo" in finals:
        pa = {t: p[0] for t, p in finals["dpo"].items()}
        s.verdict.append(text(name("dpo"), f" puts p(a) between {min(pa.values()):.3f} and {max(pa.values()):.3f} "
                                           f"across τ = {', '.join(pa)}: " + (
                                               "τ barely restrains it, as the paper argues."
                                               if min(pa.values()) > 0.9 else "not yet saturated at this step count.")))
    s.body.append(figure(fg.toy(d.toy), "fig-toy"))
    page = d.toy_path.parent / "index.html" if d.toy_path else None
    if page and page.is_file():
        s.body.append(Markup('<p class="note">Trajectories over steps: {}.</p>').format(
            link(_rel(page, out_dir), "toy report")))
    return s


# --------------------------------------------------------------------------- 9. all trials
def _rel(path: str | Path, out_dir: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), out_dir.resolve())).as_posix()


def all_trials(d: rd.ReportData, out_dir: Path) -> Section:
    s = Section("trials", "10. All trials",
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
            s.verdict.append("failure reasons: " + ", ".join(f"{k} ×{v}" for k, v in reasons.items()))
        if d.spec.evaluation.test_scoring == "chosen":
            s.verdict.append("test and OOD are scored for each method's chosen trial only (choose on val, report on "
                             "test: evaluation.test_scoring 'chosen'); the other trials show –")
        rows = [_trial_cells(r, out_dir, d.metric) for _, r in t.iterrows()]
        s.body.append(table(["method", "trial", "state", "sampling", "β", "learning rate", f"val {d.metric}",
                             f"test {d.metric}", f"OOD {d.metric}", "gap", "lm-eval Δ", "clipped", "steps",
                             "train s", "run dir", "note"], rows, "sortable"))
    s.body.append(details_pre("Spec (resolved YAML, as stored with the study)", d.spec_yaml))
    if d.env:
        info: list[tuple[object, object]] = [(k, d.env.get(k, "–")) for k in
                                             ("device", "python", "platform", "torch_threads")]
        info += sorted((d.env.get("packages") or {}).items())
        s.body.append(details_kv("Environment and package versions (env.json of a best trial)", info))
    else:
        s.body.append(missing("no env.json in any run directory"))
    return s


def _trial_cells(r: pd.Series, out_dir: Path, metric: str) -> list[Cell]:
    """One row of the all-trials table, each cell with its sort key."""
    reason = r.get("fail_reason")
    pruned = r["state"] == "PRUNED" and pd.notna(r["last_step"])
    remark = reason if isinstance(reason, str) else (f"pruned at step {int(r['last_step'])}" if pruned else "")
    run_path = r.get("run_path")
    run_link: Text = (link(_rel(run_path, out_dir) + "/", Path(run_path).name) if isinstance(run_path, str)
                      else "–")
    cells = [sort_cell(name(r["method"]), r["method"]), sort_cell(str(int(r["number"])), int(r["number"])),
             sort_cell(r["state"].lower(), r["state"]), sort_cell(at(r, "sampling") or "–", at(r, "sampling")),
             sort_cell(num(at(r, "beta"), ".4g"), at(r, "beta")),
             sort_cell(num(at(r, "learning_rate"), ".3g"), at(r, "learning_rate"))]
    for key, fmt in (("value", ".3f"), (f"test/{metric}", ".3f"), (f"ood/{metric}", ".3f"),
                     ("generalization_gap", "+.3f"), ("lm_eval/delta_vs_base", "+.3f"),
                     ("clipped_fraction", ".2f"), ("steps", "d"), ("seconds/train", ".1f")):
        v = at(r, key)
        cells.append(sort_cell(num(int(v) if fmt == "d" and v is not None else v, fmt), v))
    return [*cells, Cell(run_link), Cell(note(str(remark)[:300]))]
