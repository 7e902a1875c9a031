"""The study's verdicts as one family: exactly one primary endpoint, every other comparison secondary and
Holm-adjusted. Written to ``reports/<name>/verdicts.json`` next to the report, from the same loaded data.

- **Primary**: the confirmation's paired difference ``A - B`` on test, in the spec's metric (``evaluation.primary``,
  default the first two methods). Tested at 5% on its own: the study is designed around it. Before a
  confirmation has run it is listed as not yet measured (``measured: false``), with the MDE the search's
  comparison projects for it.
- **Secondary**: without a confirmation, the search's paired test difference (exploratory: one seed, chosen on
  val); the paired lm-eval mean difference; each method's chosen trial's test gain over the base model and its
  lm-eval change from the base; the claims' secondary statistics (``report.claims``, kind ``claim``). Their p-values
  are Holm-adjusted together (family-wise 5%), and a secondary verdict decides only when its adjusted p is below 5%.

Each entry: ``name``, ``primary``, ``measured``, ``estimate``, ``ci_low``, ``ci_high`` (95%, unadjusted),
``mde`` (80% power, two-sided 5%), ``p_value``, ``p_adjusted``, ``decided``, ``scope``, and ``kind`` (primary,
exploratory, difference, vs_base) with ``method`` and ``metric`` for a trial against the base model.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefstudy.evaluation.power import from_interval, holm
from prefstudy.report import data as rd
from prefstudy.report.html import three

ALPHA = 0.05


@dataclass
class Verdict:
    name: str
    primary: bool
    measured: bool
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    mde: float | None
    p_value: float | None
    scope: str
    p_adjusted: float | None = None
    decided: bool = False
    kind: str = "difference"  # primary | exploratory | difference (A - B) | vs_base (trial - base) | claim
    method: str | None = None  # vs_base: whose trial
    metric: str | None = None  # vs_base: test (the spec's metric) or lm-eval

    def sentence(self) -> str:
        """'<name> = +0.031 [95% −0.02, +0.08], p 0.41 (Holm 0.82): not decided; cannot detect differences
        below 0.09 (80% power)'."""
        if not self.measured or self.estimate is None:
            mde = (f"; the search projects an MDE of {self.mde:.2f} for it ({self.scope})"
                   if _finite(self.mde) else "")
            return f"{self.name}: not yet measured{mde}"
        p = "" if self.p_value is None else f", p {_p(self.p_value)}"
        if not self.primary and self.p_adjusted is not None:
            p += f" (Holm {_p(self.p_adjusted)})"
        side = "above" if (self.ci_low or 0) > 0 else "below"
        verdict = f"decided: the interval lies {side} 0" if self.decided else "not decided"
        if not self.decided and _finite(self.mde):
            verdict += f"; this design cannot detect differences below {self.mde:.2f} (80% power, two-sided 5%)"
        return (f"{self.name} = {self.estimate:+.3f} [95% {self.ci_low:+.3f}, {self.ci_high:+.3f}]{p}: "
                f"{verdict}")


def _p(value: float) -> str:
    """A p-value as printed: three significant digits, '< 0.001' below that (never a bare 0)."""
    return "< 0.001" if value < 0.001 else f"{value:.3g}"


def confirm_command(spec: Any) -> str:
    """The command that runs the confirmation stage of ``spec``."""
    return "nox -s study -- --confirm" if spec.name == "default" else "nox -s study -- SPEC --confirm"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _from_stored(name: str, row: Any, keys: tuple[str, str, str], scope: str, method: str,
                 metric: str) -> Verdict | None:
    estimate, low, high = three(row, *keys)
    if estimate is None or low is None or high is None:
        return None
    estimate, low, high = float(estimate), float(low), float(high)
    implied = from_interval(estimate, low, high)
    return Verdict(name, False, True, estimate, low, high, implied["mde"], implied["p_value"], scope,
                   kind="vs_base", method=method, metric=metric)


def projected_primary_mde(spec: Any, c: Any) -> tuple[float | None, str]:
    """The primary endpoint's MDE before its confirmation: the search comparison's pair-level SE (read back from its
    interval) with the seed variance of ``confirm.seeds`` added at the planning assumption ``power.SEED_SD``."""
    from prefstudy.evaluation.power import SEED_SD, seed_mde

    seeds = len(spec.confirm.seeds)
    if c is None or not all(_finite(v) for v in c.heldout[1:]):
        return None, "no search comparison yet to project from"
    pair_se = (c.heldout[2] - c.heldout[1]) / 3.92
    if seeds < 2:
        return c.heldout_mde, "confirm.seeds has fewer than 2 seeds: projected without seed variance"
    return seed_mde(SEED_SD, seeds, pair_se), f"{seeds} seeds at an assumed seed SD of {SEED_SD}"


def family(d: rd.ReportData) -> list[Verdict]:
    """Every verdict of the study, the primary first; Holm-adjusted and decided."""
    spec, c = d.spec, d.comparison
    methods = spec.primary_methods()
    out: list[Verdict] = []
    metric = spec.evaluation.metric
    if methods is not None:
        a, b = (m.upper() for m in methods)
        name = f"primary: confirmation {a} − {b}, test {metric}"
        if c is not None and c.source == "confirm":
            out.append(Verdict(name, True, True, *c.heldout, c.heldout_mde, c.heldout_p, c.scope(), kind="primary"))
        else:
            projected, how = projected_primary_mde(spec, c)
            out.append(Verdict(name, True, False, None, None, None, projected, None,
                               f"{how}; no confirmation runs yet: {confirm_command(spec)}", kind="primary"))
            if c is not None:
                out.append(Verdict(f"exploratory: search {a} − {b}, test {metric}", False, True, *c.heldout,
                                   c.heldout_mde, c.heldout_p, c.scope(), kind="exploratory"))
        if c is not None and c.lm_eval is not None:
            out.append(Verdict(f"{c.source} {a} − {b}, lm-eval mean", False, True, *c.lm_eval, c.lm_eval_mde,
                               c.lm_eval_p, c.lm_scope()))
    for m in d.methods:
        row = d.best_row(m)
        if row is None:
            continue
        trial = f"{m.upper()} trial {int(row['number'])}"
        for verdict in (
            _from_stored(f"{trial} − base model, test {metric}", row,
                         ("test_gain_vs_base", "test_gain_ci_low", "test_gain_ci_high"),
                         "the search's best trial (one seed) vs the base model on the same test pairs", m, metric),
            _from_stored(f"{trial} − base model, lm-eval mean", row,
                         ("lm_eval/delta_vs_base", "lm_eval/delta_ci_low", "lm_eval/delta_ci_high"),
                         "the search's best trial (one seed) vs the base model on the same documents", m,
                         "lm-eval"),
        ):
            if verdict is not None:
                out.append(verdict)
    claimed: list[tuple[Verdict, dict[str, Any]]] = []
    for entry in d.claims:  # the claims' secondary statistics join the family (their primary is tested alone)
        for sec in entry.get("secondary", []):
            if sec.get("estimate") is None or sec.get("p_value") is None:
                continue
            claimed.append((Verdict(f"claim {entry['id']}: {sec['name']}", False, True, sec["estimate"],
                                    sec["ci_low"], sec["ci_high"], sec.get("mde"), sec["p_value"],
                                    f"{entry['id']} stage, {sec.get('interval', 'clustered')} over seeds and pairs",
                                    kind="claim"), sec))
    out.extend(v for v, _ in claimed)
    secondary = [v for v in out if not v.primary and v.p_value is not None]
    for v, adjusted in zip(secondary, holm([float(v.p_value) for v in secondary]), strict=True):  # type: ignore[arg-type]
        v.p_adjusted = adjusted
        v.decided = adjusted < ALPHA
    for v, sec in claimed:
        sec["p_adjusted"], sec["decided"] = v.p_adjusted, v.decided
    for v in out:
        if v.primary:
            v.p_adjusted = v.p_value
            v.decided = v.measured and v.p_value is not None and v.p_value < ALPHA
    return out


def write(verdicts: list[Verdict], out_dir: Path) -> Path:
    """``<out_dir>/verdicts.json`` (atomically)."""
    path = out_dir / "verdicts.json"
    tmp = out_dir / f".verdicts.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps([asdict(v) for v in verdicts], indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
