"""Which trials count as the best: the one rule that confirmation, comparisons, adapters and reports all use.

Complete, feasible trials only (the lm-eval constraint, when set, is met), ranked by the val objective (the first
objective under pareto), ties to the earlier trial. Test never ranks anything.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState


def ranked_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Complete, feasible trials, highest val objective first (the first objective under pareto; ties: earlier)."""
    complete = [
        t for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE and t.values and all(c <= 0 for c in t.user_attrs.get("constraint", [0]))
    ]
    return sorted(complete, key=lambda t: (-t.values[0], t.number))


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The complete, feasible trial with the highest val objective."""
    ranked = ranked_trials(study)
    return ranked[0] if ranked else None
