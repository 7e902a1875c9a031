"""2. Claims: the verdicts of the stages built to test the IPO paper's claims (``claims.json``), with figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup

from prefstudy.report import data as rd
from prefstudy.report import figures_claims as fc
from prefstudy.report.claims import sentence
from prefstudy.report.html import Section, code, figure, interval, missing, num, table, text


def claims(d: rd.ReportData, _: Path) -> Section:
    s = Section("claims", "2. Claims: (a) does DPO drift whatever β is, while IPO stops at 1/(2β)? (b) does IPO "
                "tolerate higher learning rates if β is tuned with it?",
                "Claim (a) tested head on by its own stage (nox -s study -- --stage drift): long runs at one learning "
                "rate on the training preferences as they are (p = 1) and on copies with a share 1 − p flipped, every "
                "training instance scored at every eval point. Primary, declared before the data (docs/claims.md): "
                "DPO's margin keeps growing at p = 1 more than at p < 1, while every IPO cell and every p < 1 cell "
                "stops (late growth within a margin of its closed form, TOST), intervals clustered over seeds and "
                "instances; a cell that has not stopped is 'not converged', never support. Where the design has no "
                "p < 1 arm, the 2026-12-02 primary is read instead: slope(IPO) − slope(DPO) of log(final drift) "
                "against log(β) on held-out pairs. Claim (b) by its own stage (--stage lr-profile): "
                "the area shift of the decline, IPO minus DPO, in decades of learning rate (each method at its "
                "tuned β, read on the test pairs and the profile split), supported when its interval lies above 0 "
                "(section 5 draws the profiles). Secondary statistics are Holm-adjusted "
                "with the study's other secondary verdicts.")
    lr_entry = next((e for e in d.claims if e["id"] == "lr_tolerance"), None)
    entry = next((e for e in d.claims if e["id"] == "drift"), None)
    if entry is None:
        s.verdict.append(text("Claim (a) has not been tested yet: ", code("nox -s study -- --stage drift"),
                              " (after the search; it runs the search first if needed)."))
        s.body.append(missing("no drift stage runs in the storage"))
    else:
        train_first = next((e for e in d.claims if e["id"] == "fixed_points" and e.get("primary")), None)
        if train_first is not None:  # the primary (docs/claims.md) before the held-out secondary
            s.verdict.append(sentence(train_first) + ".")
        s.verdict.append(sentence(entry) + ".")
        if entry.get("estimate") is not None and entry["verdict"] == "inconclusive":
            s.verdict.append("Inconclusive: on this model and data the stage cannot tell the methods' slopes "
                             "apart; more seeds narrow the interval most (the seed component dominates with 2 seeds).")
    train_entry = next((e for e in d.claims if e["id"] == "fixed_points"), None)
    if train_entry is not None and not train_entry.get("primary"):
        s.verdict.append(sentence(train_entry) + ".")
    if lr_entry is None:
        s.verdict.append(text("Claim (b) has not been tested yet: ", code("nox -s study -- --stage lr-profile"), "."))
    else:
        s.verdict.append(sentence(lr_entry) + ".")
    for e in (train_entry, entry, lr_entry):
        if e is not None and _secondary_rows(e):
            s.body.append(table([f"claim {e['id']}: secondary statistic", "estimate [95%]", "p", "p (Holm)", "MDE",
                                 ""], _secondary_rows(e)))
    if entry is None:
        return s
    if train_entry is not None and train_entry.get("cells"):
        s.body.append(table(["cell (training instances)", "closed form", "late growth [95%]", "stopped",
                             "share of closed form", "at it", "spread over instances"],
                            [[f"{c['method'].upper()} β {c['beta']:g} p {c['p']:g}", num(c.get("target"), ".3g"),
                              interval(c["growth"]["estimate"], c["growth"]["ci_low"], c["growth"]["ci_high"]),
                              c["stopped"], num(c.get("ratio"), ".2f"), c.get("closed_form") or "–",
                              num(c.get("spread"), ".2f")] for c in train_entry["cells"]]))
    if d.train_runs:
        s.body.append(figure(fc.train_margins(d.train_runs), "fig-claim-train-margin"))
    runs = d.claim_runs
    if runs:
        s.body.append(figure(fc.per_step(runs, "margin_per_token", "Per-token margin per step (dashed: IPO's target "
                                         "1/(2β))", "r(y_w)/|y_w| − r(y_l)/|y_l| (nats/token)", targets=True),
                             "fig-claim-margin"))
        s.body.append(figure(fc.drift_vs_beta(runs), "fig-claim-drift"))
        s.body.append(figure(fc.per_step(runs, "wins", "Val preference accuracy per step",
                                         "preference accuracy (fraction of pairs)"), "fig-claim-val"))
        if any("generated" in r.values for r in runs.values()):
            s.body.append(figure(fc.per_step(runs, "generated", "Generation accuracy per step (greedy answers to "
                                             "val prompts, checked against the chosen answer)",
                                             "generation accuracy"), "fig-claim-generation"))
        else:
            s.body.append(missing("generation accuracy: not available for this data (no scorer)"))
    design = entry.get("design", {})
    if design:
        s.body.append(Markup('<p class="note">{}</p>').format(
            "Design: " + "; ".join(f"{m.upper()}: β {r['betas']}, {r['runs']} runs, steps {r['steps'][-1]}, "
                                   f"{r['pairs']} val pairs" for m, r in design.items())
            + ". Numbers: claims.json next to this page."))
    return s


def _secondary_rows(entry: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for sec in entry.get("secondary", []):
        if sec.get("estimate") is None:
            rows.append([sec["name"], "–", "–", "–", "–", sec.get("reason", "")])
            continue
        decided = "decided" if sec.get("decided") else "not decided"
        rows.append([sec["name"], interval(sec["estimate"], sec["ci_low"], sec["ci_high"]),
                     num(sec.get("p_value"), ".3g"), num(sec.get("p_adjusted"), ".3g"), num(sec.get("mde"), ".3f"),
                     decided])
    return rows
