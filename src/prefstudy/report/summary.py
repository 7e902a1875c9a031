"""The end-of-run table: best trial per method (chosen on val), its test/OOD numbers, and trial counts."""

from __future__ import annotations

from typing import Any, TextIO

import optuna

from prefstudy.core.secrets import redact
from prefstudy.search.chosen import trial_attrs
from prefstudy.search.selection import best_trial
from prefstudy.spec import METRIC_LABELS, StudySpec


def summary_rows(spec: StudySpec, studies: dict[str, optuna.Study]) -> list[dict[str, Any]]:
    from prefstudy.search.storage import counts

    rows = []
    for method, study in studies.items():
        best = best_trial(study)
        attrs = trial_attrs(study.user_attrs, best) if best else {}
        rows.append({
            "method": method, "loss_type": spec.methods[method].loss_type, **counts(study),
            "best_trial": best.number if best else None,
            "beta": best.params.get("beta") if best else None,
            "learning_rate": best.params.get("learning_rate") if best else None,
            "val": attrs.get(f"val/{spec.evaluation.metric}"),
            "test": attrs.get(f"test/{spec.evaluation.metric}"),
            "test_ci": (attrs.get("test_accuracy_ci_low"), attrs.get("test_accuracy_ci_high")),
            "gain": attrs.get("test_gain_vs_base"),
            "gain_ci": (attrs.get("test_gain_ci_low"), attrs.get("test_gain_ci_high")),
            "ood": attrs.get(f"ood/{spec.evaluation.metric}"),
            "gap": attrs.get("generalization_gap"),
            "lm_eval": attrs.get("lm_eval/mean"),
            "lm_delta_se": attrs.get("lm_eval/delta_se"),
            "lm_delta": (attrs.get("lm_eval/delta_vs_base"), attrs.get("lm_eval/delta_ci_low"),
                         attrs.get("lm_eval/delta_ci_high")),
            "base_test": study.user_attrs.get(f"base/test/{spec.evaluation.metric}"),
            "base_ood": study.user_attrs.get(f"base/ood/{spec.evaluation.metric}"),
        })
    return rows


def _f(value: Any, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def print_summary(spec: StudySpec, studies: dict[str, optuna.Study], storage_url: str, out: TextIO) -> None:
    rows = summary_rows(spec, studies)
    header = (f"{'method':<8} {'loss':<8} {'done':>4} {'prun':>4} {'fail':>4}  {'beta':>8} {'lr':>9}  "
              f"{'val':>5} {'test [95% CI]':>20} {'gain vs base [95% CI]':>24} {'ood':>5} {'gap':>6}")
    print("\n" + header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        test = f"{_f(r['test'])} [{_f(r['test_ci'][0])},{_f(r['test_ci'][1])}]"
        gain = f"{_f(r['gain'], '+.3f')} [{_f(r['gain_ci'][0], '+.3f')},{_f(r['gain_ci'][1], '+.3f')}]"
        print(f"{r['method']:<8} {r['loss_type']:<8} {r['complete']:>4} {r['pruned']:>4} {r['failed']:>4}  "
              f"{_f(r['beta'], '.4g'):>8} {_f(r['learning_rate'], '.3g'):>9}  {_f(r['val']):>5} {test:>20} "
              f"{gain:>24} {_f(r['ood']):>5} {_f(r['gap'], '+.3f'):>6}", file=out)
    for r in rows:
        if r["lm_eval"] is not None:
            d = r["lm_delta"]
            print(f"{r['method']:<8} lm-eval mean {_f(r['lm_eval'])}, delta vs base {_f(d[0], '+.3f')} "
                  f"[{_f(d[1], '+.3f')},{_f(d[2], '+.3f')}] (SE {_f(r['lm_delta_se'], '.3f')})", file=out)
    if rows:
        label = METRIC_LABELS.get(spec.evaluation.metric, spec.evaluation.metric)
        print(f"base model: test {label} {_f(rows[0]['base_test'])}, ood {label} {_f(rows[0]['base_ood'])} "
              f"(best trial per method chosen on val; test and ood are only reported)", file=out)
    print(f"\nstorage: {redact(storage_url)}\nruns:    {spec.run_root()}/<method>/trial-NNNN/", file=out)
    print(f"watch:   nox -s dashboard -- {redact(storage_url)}", file=out, flush=True)
