"""DPO vs IPO, paired: the two methods' chosen configurations scored on the SAME test pairs and lm-eval documents.

With a confirmation stage the configuration of each method is the confirmed one with the best mean val objective
over its seeds; without one, it is the best search trial (one seed). Test is never used to choose.

Held-out test: ``power.paired_difference`` (seeds x pairs crossed random effects, t at Satterthwaite's df: k - 1
dominate when seeds differ; one seed: the per-pair t), its p-value and MDE; coverage checked by simulation.
lm-eval mean: the two-level paired bootstrap (seeds and documents, documents within their task), with the p-value
and MDE its interval implies.
Reads only the Optuna storage and the run directories (``heldout.json``, ``lm_eval.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from prefstudy.evaluation import metrics
from prefstudy.evaluation.lmeval import macro_vector, task_strata
from prefstudy.evaluation.power import difference_mde, from_interval, paired_difference
from prefstudy.search.selection import best_trial
from prefstudy.spec import StudySpec


@dataclass
class MethodRuns:
    """One method's chosen configuration and its runs (one per seed)."""

    method: str
    source: str  # "confirm" | "search"
    trial: int  # the search trial whose configuration was chosen
    params: dict[str, float]
    seeds: list[int]
    val_mean: float
    test_wins: np.ndarray  # [seeds, pairs]
    test_ids: list[str]
    lm_eval: np.ndarray | None  # [seeds, docs], macro-weighted so a row's mean is the lm-eval mean
    lm_docs: list[str] | None


@dataclass
class Comparison:
    a: MethodRuns
    b: MethodRuns
    n_seeds: int
    n_pairs: int
    heldout: tuple[float, float, float]  # mean(a - b), 95% low, high
    lm_eval: tuple[float, float, float] | None
    notes: list[str] = field(default_factory=list)
    heldout_mde: float | None = None  # the smallest difference this design detects (80% power, two-sided 5%)
    lm_eval_mde: float | None = None
    heldout_p: float | None = None  # two-sided p of H0: no difference
    lm_eval_p: float | None = None
    lm_seeds: int = 0  # seeds (runs per method) the lm-eval difference resamples
    lm_docs: int = 0  # lm-eval documents every one of those runs answered

    @property
    def source(self) -> str:
        return "confirm" if self.a.source == self.b.source == "confirm" else "search"

    def scope(self) -> str:
        """What the interval resamples, in words."""
        if self.source == "confirm":
            return f"{self.n_seeds} confirmation seed(s) per method x {self.n_pairs} test pairs"
        return (f"one seed (the search trials) x {self.n_pairs} test pairs; seed variance is not in the interval: "
                "run the confirmation stage (--confirm) for a verdict that covers it")

    def lm_scope(self) -> str:
        """What the lm-eval interval resamples, in words: its runs and documents, not test pairs."""
        runs = (f"{self.lm_seeds} confirmation seed(s) per method" if self.source == "confirm"
                else "one seed (the search trials)")
        return f"{runs} x {self.lm_docs} lm-eval documents"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def wins(record: dict[str, Any], per_token: bool) -> np.ndarray:
    """Per-pair 1 / 0.5 / 0: the policy ranks chosen above / level with / below rejected."""
    chosen, rejected = np.asarray(record["chosen"]), np.asarray(record["rejected"])
    if per_token:
        chosen, rejected = chosen / np.asarray(record["chosen_tokens"]), rejected / np.asarray(
            record["rejected_tokens"])
    return metrics.pairwise_preference(chosen, rejected)


def _runs_of(spec: StudySpec, method: str, trials: list[Any], source: str, trial: int,
             params: dict[str, float]) -> MethodRuns | None:
    per_token = spec.evaluation.metric == "accuracy_per_token"
    rows, lm_rows, seeds, vals = [], [], [], []
    ids: list[str] = []
    docs: list[str] | None = None
    for t in trials:
        run_dir = Path(t.user_attrs.get("run_dir", ""))
        heldout = _read(run_dir / "heldout.json")
        if not heldout or "test" not in heldout:
            continue
        rows.append(wins(heldout["test"], per_token))
        ids = [str(i) for i in heldout["test"].get("ids") or range(len(rows[-1]))]
        seeds.append(int(t.user_attrs.get("confirm_seed", t.user_attrs.get("seed", 0))))
        vals.append(float(t.values[0]))
        lm = _read(run_dir / "lm_eval.json")
        if lm and lm.get("tasks"):
            vector, docs = macro_vector(lm)
            lm_rows.append(vector)
    if not rows:
        return None
    lm_matrix = np.vstack(lm_rows) if lm_rows else None  # confirm.lm_eval_seeds: lm-eval on the first seeds only
    return MethodRuns(method, source, trial, params, seeds, float(np.mean(vals)), np.vstack(rows), ids,
                      lm_matrix, docs if lm_matrix is not None else None)


def method_runs(spec: StudySpec, storage: Any, method: str) -> MethodRuns | None:
    """The confirmed configuration with the best mean val over seeds, else the best search trial."""
    from prefstudy.search.confirm import study_name

    try:
        study = optuna.load_study(study_name=study_name(spec, method), storage=storage)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    except KeyError:
        done = []
    groups: dict[int, list[Any]] = {}
    for t in done:
        groups.setdefault(int(t.user_attrs["source_trial"]), []).append(t)
    candidates = []
    for source, trials in groups.items():
        trials.sort(key=lambda t: t.user_attrs.get("confirm_seed", 0))
        runs = _runs_of(spec, method, trials, "confirm", source, dict(trials[0].params))
        if runs is not None:
            candidates.append(runs)
    if candidates:  # most seeds first (a partly confirmed configuration does not win on luck), then val
        return max(candidates, key=lambda r: (len(r.seeds), r.val_mean, -r.trial))
    try:
        search = optuna.load_study(study_name=spec.study_name(method), storage=storage)
    except KeyError:
        return None
    best = best_trial(search)
    if best is None:
        return None
    return _runs_of(spec, method, [best], "search", best.number, dict(best.params))


def _align(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same number of seed rows on both sides (seed i of one method paired with seed i of the other)."""
    s = min(len(a), len(b))
    return a[:s], b[:s]


def compare(spec: StudySpec, storage: Any, a: str | None = None, b: str | None = None,
            seed: int | None = None) -> Comparison | None:
    """Paired comparison of two methods (default: the primary endpoint's, ``spec.primary_methods()``); None when
    either has no scored run."""
    primary = spec.primary_methods()
    if primary is None and (a is None or b is None):
        return None
    if primary is not None:
        a, b = a or primary[0], b or primary[1]
    assert a is not None and b is not None
    runs_a, runs_b = method_runs(spec, storage, a), method_runs(spec, storage, b)
    if runs_a is None or runs_b is None:
        return None
    notes = []
    if runs_a.test_ids != runs_b.test_ids:
        return None  # not the same test pairs: no paired comparison is possible
    if runs_a.source != runs_b.source:
        notes.append("one method has confirmation runs and the other not: seed variance is only partly covered")
    if len(runs_a.seeds) != len(runs_b.seeds):
        notes.append(f"unequal seed counts ({len(runs_a.seeds)} vs {len(runs_b.seeds)}): the first "
                     f"{min(len(runs_a.seeds), len(runs_b.seeds))} of each are paired")
    boot_seed = spec.seed if seed is None else seed
    wa, wb = _align(runs_a.test_wins, runs_b.test_wins)
    test = paired_difference(wa, wb)
    heldout = (test["estimate"], test["ci_low"], test["ci_high"])
    if len(wa) in (2, 3):
        notes.append(f"{len(wa)} seeds: when seeds really differ the 95% interval can cover as little as 91% "
                     "(simulated at 384 test pairs, seed sd 0.03-0.05); 5 seeds cover 93-97%")
    lm, lm_mde, lm_p, lm_shape = None, None, None, (0, 0)
    if (runs_a.lm_eval is not None and runs_b.lm_eval is not None and runs_a.lm_docs is not None
            and runs_a.lm_docs == runs_b.lm_docs):
        la, lb = _align(runs_a.lm_eval, runs_b.lm_eval)
        if len(la) < len(wa):
            notes.append(f"lm-eval ran on {len(la)} of the {len(wa)} seeds (confirm.lm_eval_seeds): its interval "
                         "resamples documents" + (" and those seeds" if len(la) > 1 else " only"))
        lm = metrics.clustered_paired_bootstrap_diff(la, lb, seed=boot_seed, strata=task_strata(runs_a.lm_docs))
        lm_mde = difference_mde(la, lb)
        lm_p = from_interval(*lm)["p_value"]
        lm_shape = (len(la), int(la.shape[1]))
    return Comparison(runs_a, runs_b, len(wa), wa.shape[1], heldout, lm, notes, test["mde"], lm_mde,
                      test["p_value"], lm_p, *lm_shape)


def sentence(label: str, a: str, b: str, diff: tuple[float, float, float], mde: float | None = None) -> str:
    """'<label>: A − B = +0.031 [−0.02, +0.08]: not distinguishable from zero; this design cannot detect
    differences below 0.19 (80% power)' (or which method is ahead)."""
    mean, low, high = diff
    decided = metrics.excludes_zero(low, high)
    verdict = (f"{a} is better" if low > 0 else f"{b} is better") if decided else "not distinguishable from zero"
    if not decided and mde is not None and np.isfinite(mde):
        verdict += f"; this design cannot detect differences below {mde:.2f} (80% power, two-sided 5%)"
    return f"{label}: {a} − {b} = {mean:+.3f} [95% {low:+.3f}, {high:+.3f}]: {verdict}"
