"""The tracking section and the trial tracker: validation, the fingerprint, flattening, failure isolation, TRL's
report_to pass-through, and the MLflow parent run read back with MLflow's own client (a SQLite store in tmp)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import ROOT

from prefstudy.spec import SpecError, StudySpec, load_spec
from prefstudy.tracking.trial import TrialTracker, missing_modules, numeric, report_to, trial_params

SMOKE = ROOT / "study" / "smoke.yaml"


def _spec(*overrides: str) -> StudySpec:
    return load_spec(SMOKE, list(overrides))


@pytest.mark.parametrize(("override", "words"), [
    ("tracking.mlflow=http://alice:hunter2@mlflow.example:5000", "must not carry credentials"),
    ("tracking.mlflow=https://mlflow.example/?token=abc", "must not carry credentials"),
    ("tracking.mlflow=mlruns", "must be a tracking URI"),
    ("tracking.report_to=[tensorboard]", "use tracking.tensorboard"),
    ("tracking.report_to=[mlflow]", "use tracking.mlflow"),
    ("tracking.report_to=[wandbb]", "unknown integration 'wandbb'"),
    ("tracking.report_to=[wandb,wandb]", "twice"),
    ("tracking.tensorboardd=true", "tensorboardd"),
])
def test_bad_tracking_sections_are_refused_with_the_field(override: str, words: str) -> None:
    with pytest.raises(SpecError, match="tracking") as caught:
        _spec(override)
    assert words in str(caught.value)
    assert "hunter2" not in str(caught.value) or "credentials" in str(caught.value)


def test_tracking_is_not_part_of_what_a_trial_is() -> None:
    plain = _spec()
    tracked = _spec("tracking.tensorboard=true", "tracking.mlflow=local", "tracking.report_to=[wandb]")
    assert tracked.fingerprint() == plain.fingerprint()
    assert tracked.mlflow_uri() == f"sqlite:///{plain.run_root() / 'mlflow.db'}"
    assert _spec("tracking.mlflow=http://127.0.0.1:5000").mlflow_uri() == "http://127.0.0.1:5000"
    assert plain.mlflow_uri() is None and not plain.tracking.enabled() and tracked.tracking.enabled()


def test_numeric_flattens_finite_numbers_only() -> None:
    values = {"loss": 0.5, "rewards": {"chosen": 1, "margins": float("nan")}, "ok": True, "name": "x", "n": 3}
    assert numeric(values) == {"loss": 0.5, "rewards/chosen": 1.0, "n": 3.0}
    assert numeric({"a": {"b": {"c": 2.5}}}, "final/") == {"final/a/b/c": 2.5}


def test_trial_params_hold_the_recipe_and_never_the_storage() -> None:
    spec = _spec("storage=postgresql+psycopg2://bob:s3cret@db:5432/optuna")
    params = trial_params(spec, "ipo", {"beta": 0.2, "learning_rate": 1e-4}, 7, "search")
    assert params["beta"] == 0.2 and params["seed"] == 7 and params["loss_type"] == "ipo"
    assert params["lora.r"] == spec.training.lora.r and params["training.max_length"] == spec.training.max_length
    assert "s3cret" not in json.dumps(params) and not any("storage" in key for key in params)


class _Sink:
    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def scalars(self, prefix: str, step: int, values: dict[str, float]) -> None:
        if self.fail_on == prefix:
            raise ConnectionError("tracking server went away")
        self.calls.append((prefix, step, values))

    def flush(self) -> None:
        self.calls.append(("flush",))

    def close(self, state: str, final: dict[str, float], step: int) -> None:
        self.calls.append(("close", state, final, step))


def test_tracker_mirrors_steps_eval_rows_and_final_metrics(tmp_path: Path) -> None:
    sink = _Sink()
    tracker = TrialTracker([sink], tmp_path, warn=lambda _: None)
    tracker.step(1, {"loss": 0.69, "rewards/chosen": 0.0})
    curves = tmp_path / "curves.jsonl"
    curves.write_text(json.dumps({"step": 0, "base": True, "final": False, "val/accuracy": 0.5}) + "\n")
    tracker.new_points()
    tracker.step(2, {"loss": 0.60})
    with curves.open("a") as out:
        out.write(json.dumps({"step": 2, "final": True, "val/accuracy": 0.75, "note": "x"}) + "\n")
    tracker.new_points()
    tracker.new_points()  # nothing new: nothing mirrored twice
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "complete", "value": 0.75,
                                                       "metrics": {"val": {"accuracy": 0.75}}, "seconds": {"x": 1}}))
    tracker.close("COMPLETE", {"lm_eval/mean": 0.4, "run_dir": "/x"})
    scalars = [c for c in sink.calls if c[0] in ("train", "eval")]
    assert scalars == [("train", 1, {"loss": 0.69, "rewards/chosen": 0.0}), ("eval", 0, {"val/accuracy": 0.5}),
                       ("train", 2, {"loss": 0.60}), ("eval", 2, {"val/accuracy": 0.75})]
    assert sink.calls[-1] == ("close", "COMPLETE", {"value": 0.75, "metrics/val/accuracy": 0.75,
                                                    "lm_eval/mean": 0.4}, 2)


def test_a_failing_tracker_is_switched_off_and_the_others_go_on(tmp_path: Path) -> None:
    broken, working, warnings = _Sink(fail_on="train"), _Sink(), []
    tracker = TrialTracker([broken, working], tmp_path, warn=warnings.append)
    tracker.step(1, {"loss": 0.5})
    tracker.step(2, {"loss": 0.4})
    tracker.close("PRUNED")
    assert len(warnings) == 1 and "_Sink switched off" in warnings[0] and "server went away" in warnings[0]
    assert broken.calls == [] and [c[1] for c in working.calls if c[0] == "train"] == [1, 2]
    assert working.calls[-1][:2] == ("close", "PRUNED")


def test_report_to_passes_trl_integrations_and_keeps_wandb_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert report_to(_spec(), tmp_path, "smoke/dpo#0") == {}
    keywords = report_to(_spec("tracking.report_to=[wandb]"), tmp_path, "smoke/dpo#0")
    assert keywords == {"report_to": ["wandb"], "run_name": "smoke/dpo#0", "project": "smoke"}
    assert os.environ["WANDB_MODE"] == "offline" and os.environ["WANDB_DIR"] == str(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "online")  # the user's own choice wins
    report_to(_spec("tracking.report_to=[wandb]"), tmp_path, "x")
    assert os.environ["WANDB_MODE"] == "online"


def test_dpo_config_carries_report_to_and_nothing_by_default(tmp_path: Path) -> None:
    from prefstudy.training.dpo_config import dpo_config

    spec = _spec("tracking.report_to=[trackio]")
    method = spec.methods["dpo"]
    plain = dpo_config(spec.training, method, {"beta": 0.1, "learning_rate": 1e-4}, tmp_path, 4, 1)
    passed = dpo_config(spec.training, method, {"beta": 0.1, "learning_rate": 1e-4}, tmp_path, 4, 1,
                        **report_to(spec, tmp_path, "smoke/dpo#0"))
    assert plain.report_to == [] and passed.report_to == ["trackio"] and passed.run_name == "smoke/dpo#0"


def test_missing_tracker_modules_are_named_with_how_to_install() -> None:
    assert missing_modules(_spec()) == []
    missing = missing_modules(_spec("tracking.report_to=[swanlab]"))
    assert missing == ["swanlab (pip install swanlab)"]
    assert missing_modules(_spec("tracking.tensorboard=true", "tracking.mlflow=local")) == []  # the test env has both


def test_parent_run_is_created_once_and_a_race_converges_on_the_oldest(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from prefstudy.tracking.mlflow_sink import PARENT_TAG, parent_run

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("smoke", artifact_location=(tmp_path / "art").as_uri())
    first = parent_run(client, experiment, "smoke/dpo", {"study_uuid": "u1"})
    assert parent_run(client, experiment, "smoke/dpo", {}) == first  # found, not created again
    other = parent_run(client, experiment, "smoke/ipo", {})
    assert other != first
    # what two racing workers leave behind: a second parent for the same study, created later
    client.create_run(experiment, run_name="smoke/dpo", tags={PARENT_TAG: "smoke/dpo"})
    assert parent_run(client, experiment, "smoke/dpo", {}) == first
    runs = client.search_runs([experiment], filter_string=f"tags.`{PARENT_TAG}` = 'smoke/dpo'")
    assert client.get_run(first).data.tags["study_uuid"] == "u1" and len(runs) == 2


def test_preflight_refuses_a_tracker_that_is_not_installed_before_loading_anything() -> None:
    from prefstudy.preflight import check_trackers

    check_trackers(_spec("tracking.tensorboard=true", "tracking.mlflow=local"))  # installed: no error
    with pytest.raises(SpecError, match=r"not installed: swanlab \(pip install swanlab\)"):
        check_trackers(_spec("tracking.report_to=[swanlab]"))


class _FakeMlflowServer:
    """Answers MLflow's experiment search on 127.0.0.1 (no experiments) and counts the requests."""

    def __init__(self) -> None:
        import http.server
        import threading

        server = self
        self.paths: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.paths.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = json.dumps({"experiments": []}).encode()
                self.send_response(200 if "experiments/search" in self.path else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_remote_mlflow_server_is_probed_before_the_study(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from support import free_port

    from prefstudy.preflight import check_trackers

    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SpecError, match="no MLflow server answers at") as caught:
        check_trackers(_spec(f"tracking.mlflow={dead}"))
    assert dead in str(caught.value) and "tracking.mlflow=local" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # the probe's quick settings do not outlive it
    server = _FakeMlflowServer()
    try:
        check_trackers(_spec(f"tracking.mlflow={server.url}"))  # it answers: accepted
        assert any("experiments/search" in path for path in server.paths)
    finally:
        server.close()
    check_trackers(_spec(f"runs_dir={tmp_path}", "tracking.mlflow=local"))  # not probed: that would create it
    assert list(tmp_path.iterdir()) == []


def test_the_sink_gives_up_on_a_dead_server_sooner_than_mlflow_but_keeps_the_users_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from prefstudy.tracking.mlflow_sink import RETRY_DEFAULTS, patient_defaults, quick_requests

    for name in RETRY_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    with quick_requests():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"
    patient_defaults()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"
