"""A study keeps the truncation rule it started with (search.worker.check_truncation): recorded on the first run,
'drop' for a study made before the setting existed, and a resume under the other rule refused only where some pair
is long enough for the rule to change the data."""

from __future__ import annotations

import optuna
import pytest

from prefstudy.evaluation.heldout import Prepared
from prefstudy.search.worker import check_truncation
from prefstudy.spec import SpecError, load_spec


def _study(trials: int = 0) -> optuna.Study:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for _ in range(trials):
        study.add_trial(optuna.trial.create_trial(value=0.5))
    return study


def _prepared(truncated: int = 0, dropped: int = 0) -> Prepared:
    return Prepared({}, {}, "key", {"train": dropped}, truncated={"train": truncated})


def test_a_new_study_records_its_rule() -> None:
    study = _study()
    check_truncation(load_spec("smoke"), _prepared(), {"dpo": study})
    assert study.user_attrs["truncation"] == "keep_start"


def test_a_new_study_with_only_enqueued_settings_is_new() -> None:
    """The search enqueues a known setting before any trial runs: that study is new, whatever its pairs."""
    study = _study()
    study.enqueue_trial({"beta": 0.1, "learning_rate": 5e-4})
    check_truncation(load_spec("smoke"), _prepared(truncated=14), {"dpo": study})
    assert study.user_attrs["truncation"] == "keep_start"


def test_create_studies_records_the_rule_of_a_new_study(tmp_path) -> None:
    from prefstudy.search.storage import create_studies, open_storage

    spec = load_spec("smoke", ["training.truncation=drop"])
    url = f"sqlite:///{tmp_path}/o.db"
    studies = create_studies(spec, open_storage(url, spec))
    assert {s.user_attrs["truncation"] for s in studies.values()} == {"drop"}


def test_an_old_study_with_long_pairs_resumes_only_under_drop() -> None:
    old = _study(trials=2)  # made before the setting: it dropped long pairs
    with pytest.raises(SpecError, match="ran with training.truncation=drop and 3 pair"):
        check_truncation(load_spec("smoke"), _prepared(truncated=3), {"dpo": old})
    check_truncation(load_spec("smoke", ["training.truncation=drop"]), _prepared(dropped=3),
                     {"dpo": old})
    assert old.user_attrs["truncation"] == "drop"


def test_an_old_study_without_long_pairs_resumes_under_either_rule() -> None:
    old = _study(trials=2)
    check_truncation(load_spec("smoke"), _prepared(), {"dpo": old})
    assert old.user_attrs["truncation"] == "keep_start"


def test_the_rule_is_not_part_of_the_spec_fingerprint() -> None:
    spec = load_spec("smoke")
    assert spec.fingerprint() == load_spec("smoke", ["training.truncation=drop"]).fingerprint()
