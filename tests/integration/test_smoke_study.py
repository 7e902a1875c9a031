"""End to end through the CLI: the smoke spec (tiny random Mistral) runs, resumes, and fills the storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import ROOT, cli_env, free_port, run_cli, wait_for_json

from prefstudy.search.chosen import trial_attrs
from prefstudy.search.selection import best_trial

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, subprocess.CompletedProcess]:
    """The smoke study as a user outside the repository runs it: the installed `prefstudy` command, the packaged
    spec by name, every output (runs/, reports/) under the current folder, which is not the clone."""
    work = tmp_path_factory.mktemp("elsewhere")
    assert ROOT not in work.parents
    command = Path(sys.executable).with_name("prefstudy")
    assert command.is_file(), f"the installed prefstudy command is missing: {command}"
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}  # the installed package, not this checkout's src
    tracking = ("tracking.tensorboard=true", "tracking.mlflow=local")  # the trackers mirror every trial (test_tracking)
    result = subprocess.run([str(command), "study", "smoke", *tracking], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600)
    runs = work / "runs"
    return runs, f"sqlite:///{runs}/smoke/optuna.db", result


#: lines other libraries print during a study; the console must show none of them (they go to study.log)
NOISE = ("Overwriting default num_fewshot", "`pretrained` model kwarg is not of type `str`",
         "Failed to load CPU gemm_4bit_forward", "it/s]", "Passed an already-initialized model")


def test_the_console_shows_only_prefstudy_lines_and_the_log_keeps_the_rest(smoke_run) -> None:
    runs, _, result = smoke_run
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    shown = [line for line in console.splitlines() if any(noise in line for noise in NOISE)]
    assert not shown, f"library output reached the console: {shown[:5]}"
    assert "%|" not in console  # no progress bar of any kind
    log = (runs / "smoke" / "study.log").read_text()
    assert "Overwriting default num_fewshot" in log  # diverted, not suppressed
    assert "COMPLETE val accuracy" in result.stdout and "ETA" in result.stdout  # one line per finished trial
    assert (runs.parent / "reports" / "smoke" / "index.html").is_file()  # outputs under the current folder
    assert all(Path(t).is_absolute() for t in _run_dirs(runs))


def test_every_eval_point_scores_the_same_val_pairs_from_the_base_model_on(smoke_run) -> None:
    """curves.jsonl: step 0 is the base model, then every eval point (2 and 4) carries the fixed curve set (the first
    val_subset = 4 val pairs) and its two halves; at the last step they are recomputed here from heldout.json."""
    runs, _, result = smoke_run
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(_run_dirs(runs)[0])
    rows = [json.loads(line) for line in (run_dir / "curves.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4] and rows[0]["base"] is True
    assert all({"curve/val/accuracy", "curve/val_a/accuracy", "curve/val_b/accuracy"} <= set(r) for r in rows)
    val = json.loads((run_dir / "heldout.json").read_text())["val"]
    wins = _wins(val, False)[:4]
    assert rows[-1]["curve/val/accuracy"] == pytest.approx(sum(wins) / 4)
    assert rows[-1]["curve/val_a/accuracy"] == pytest.approx((wins[0] + wins[2]) / 2)
    assert rows[-1]["curve/val_b/accuracy"] == pytest.approx((wins[1] + wins[3]) / 2)


def _storage(runs: Path) -> str:
    return f"sqlite:///{runs}/smoke/optuna.db"


def _run_dirs(runs: Path) -> list[str]:
    storage = _storage(runs)
    return [t.user_attrs["run_dir"] for m in ("dpo", "ipo")
            for t in optuna.load_study(study_name=f"smoke/{m}", storage=storage).trials if "run_dir" in t.user_attrs]


def test_validate_works_from_any_folder_on_the_packaged_default(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("prefstudy")
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    for spec in ([], ["study/default.yaml"], ["default"]):
        done = subprocess.run([str(command), "validate", *spec], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "name: default" in done.stdout and "embedded:smollm2-135m-instruct" in done.stdout
    assert list(tmp_path.iterdir()) == []  # validate writes nothing


def test_paths_in_a_spec_file_are_read_from_its_folder(tmp_path: Path) -> None:
    """A spec file in one folder names its data relative to itself; run from another folder it still finds it."""
    here = tmp_path / "project"
    (here / "data").mkdir(parents=True)
    rows = [{"prompt": f"What is {i} + 1?", "chosen": f"{i + 1}.", "rejected": f"{i + 2}."} for i in range(12)]
    for name in ("train", "heldout"):
        (here / "data" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = (ROOT / "study" / "smoke.yaml").read_text().replace(
        "  source: synthetic              # the built-in generator of verifiable pairs",
        "  source: jsonl\n  train: data/train.jsonl\n  heldout: data/heldout.jsonl")
    (here / "spec.yaml").write_text(text)
    other = tmp_path / "other"
    other.mkdir()
    done = run_cli("validate", str(here / "spec.yaml"), cwd=other)
    assert done.returncode == 0, done.stderr
    assert f"train: {here / 'data' / 'train.jsonl'}" in done.stdout
    override = run_cli("validate", str(here / "spec.yaml"), "data.heldout=mine.jsonl", cwd=other)
    assert f"heldout: {other / 'mine.jsonl'}" in override.stdout  # command-line paths: the current folder


def test_smoke_study_finishes_with_trials_in_storage(smoke_run) -> None:
    runs, storage, result = smoke_run
    assert result.returncode == 0, result.stderr[-3000:]
    for method in ("dpo", "ipo"):
        study = optuna.load_study(study_name=f"smoke/{method}", storage=storage)
        finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == 2
        assert study.user_attrs["spec_fingerprint"]
        assert "name: smoke" in study.user_attrs["spec_yaml"]
        assert 0.0 <= study.user_attrs["base/test/accuracy"] <= 1.0
        chosen = best_trial(study)
        assert chosen is not None
        for trial in finished:
            attrs = trial_attrs(study.user_attrs, trial)
            assert set(trial.params) == {"beta", "learning_rate"}
            assert Path(attrs["run_dir"]).is_dir()
            if trial.state == TrialState.COMPLETE:
                assert trial.value == attrs["val/accuracy"]
                for key in ("train/accuracy", "generalization_gap", "val/kl_proxy", "val/chosen_log_ratio"):
                    assert key in attrs, key
            # choose on val, report on test: only the chosen trial is scored on test and OOD (after the search)
            assert ("test/accuracy" in attrs) == (trial.number == chosen.number), trial.number
        attrs = trial_attrs(study.user_attrs, chosen)
        assert attrs["test_gain_ci_low"] <= attrs["test_gain_vs_base"] <= attrs["test_gain_ci_high"]
        assert 0.0 <= attrs["ood/accuracy"] <= 1.0 and attrs["test_scored"] == "chosen"
        heldout = json.loads((Path(attrs["run_dir"]) / "heldout.json").read_text())
        assert len(heldout["test"]["chosen"]) == 8 and len(heldout["val"]["chosen"]) == 8
        stored = json.loads((Path(attrs["run_dir"]) / "metrics.json").read_text())
        assert stored["metrics"]["test"]["accuracy"] == attrs["test/accuracy"]
    assert "method" in result.stdout and "dpo" in result.stdout and "ipo" in result.stdout
    # every comparison is printed with its interval: the chosen trials against the base model too
    assert "DPO trial" in result.stdout and "− base model, test accuracy = " in result.stdout


def test_run_directories_hold_config_env_curves_metrics_adapter(smoke_run) -> None:
    runs, _, _ = smoke_run
    trial = runs / "smoke" / "dpo" / "trial-0000"
    config = json.loads((trial / "config.json").read_text())
    assert config["loss_type"] == "sigmoid" and config["params"]["beta"] > 0
    assert json.loads((trial / "env.json").read_text())["packages"]["trl"] == "1.16.0"
    curves = [json.loads(line) for line in (trial / "curves.jsonl").read_text().splitlines()]
    assert [row["step"] for row in curves] == [0, 2, 4]  # step 0: the base model, from the reference cache
    assert curves[-1]["final"] and "val/accuracy" in curves[-1] and "test/accuracy" not in curves[-1]
    metrics = json.loads((trial / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["value"] == curves[-1]["objective"]
    logged = [json.loads(line) for line in (trial / "trainer_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == [1, 2, 3, 4]  # TRL's log at every optimizer step
    assert all({"loss", "grad_norm", "learning_rate", "rewards/chosen", "logps/chosen"} <= set(row) for row in logged)
    # the eval point runs in on_step_end, before TRL logs that step: its curves row carries the step before's loss
    assert logged[-2]["loss"] == pytest.approx(curves[-1]["loss"]) and logged[0]["loss"] == pytest.approx(
        curves[1]["loss"])
    assert (trial / "adapter" / "adapter_config.json").exists()
    assert not (trial / "adapter" / "ref").exists()  # TRL's unused reference copy of the adapter is not saved
    assert config["prefix_sharing"] == "on" and config["spec"]["training"]["prefix_sharing"] == "auto"
    optuna_trial = optuna.load_study(study_name="smoke/dpo", storage=_storage(runs)).trials[0]
    assert optuna_trial.user_attrs["prefix_sharing"] == "on"
    data = runs / "smoke" / "data"
    assert sum(1 for _ in open(data / "train.jsonl")) == 16
    assert sum(1 for _ in open(data / "ood.jsonl")) == 4


def _first_trials(runs: Path) -> list[tuple[str, optuna.trial.FrozenTrial]]:
    """The trials the fixture's tracked run trained (later tests top the studies up without trackers)."""
    return [(m, t) for m in ("dpo", "ipo")
            for t in optuna.load_study(study_name=f"smoke/{m}", storage=_storage(runs)).trials if t.number < 2]


def test_tensorboard_reader_finds_every_trials_per_step_and_eval_scalars(smoke_run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs, _, _ = smoke_run
    for method, trial in _first_trials(runs):
        run_dir = Path(trial.user_attrs["run_dir"])
        events = EventAccumulator(str(run_dir / "tensorboard"))
        events.Reload()
        logged = [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]
        loss = events.Scalars("train/loss")
        assert [s.step for s in loss] == [row["step"] for row in logged] == [1, 2, 3, 4], method
        assert [s.value for s in loss] == pytest.approx([row["loss"] for row in logged], rel=1e-6)
        assert [s.step for s in events.Scalars("train/grad_norm")] == [1, 2, 3, 4]
        curves = [json.loads(line) for line in (run_dir / "curves.jsonl").read_text().splitlines()]
        val = events.Scalars("eval/val/accuracy")
        scored = [(r["step"], r["val/accuracy"]) for r in curves if "val/accuracy" in r]  # step 0: the base's curve
        assert len(scored) == 2 and [s.step for s in val] == [step for step, _ in scored]
        assert [s.value for s in val] == pytest.approx([value for _, value in scored])
        assert [s.step for s in events.Scalars("eval/curve/val/accuracy")] == [r["step"] for r in curves]
        assert events.Scalars("final/value")[-1].value == pytest.approx(trial.value)
        assert "params/text_summary" in events.Tags()["tensors"]


def test_mlflow_client_lists_one_run_per_trial_under_a_parent_per_study(smoke_run) -> None:
    from mlflow.tracking import MlflowClient

    runs, storage, _ = smoke_run
    client = MlflowClient(tracking_uri=f"sqlite:///{runs}/smoke/mlflow.db")
    experiment = client.get_experiment_by_name("smoke")
    found = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    trials = _first_trials(runs)
    assert set(found) == {"smoke/dpo", "smoke/ipo"} | {f"smoke/{m}/trial-{t.number}" for m, t in trials}
    for method, trial in trials:
        run = found[f"smoke/{method}/trial-{trial.number}"]
        assert run.data.tags["mlflow.parentRunId"] == found[f"smoke/{method}"].info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["state"] == "COMPLETE"
        assert run.data.tags["method"] == method and run.data.tags["seed"] == str(trial.user_attrs["seed"])
        assert float(run.data.params["beta"]) == trial.params["beta"]
        assert float(run.data.params["learning_rate"]) == trial.params["learning_rate"]
        assert run.data.params["loss_type"] == ("sigmoid" if method == "dpo" else "ipo")
        assert run.data.metrics["value"] == pytest.approx(trial.value)
        assert run.data.metrics["lm_eval/mean"] == pytest.approx(trial.user_attrs["lm_eval/mean"])
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert not (runs.parent / "mlruns").exists()  # the local store keeps its artifact folder beside it
    assert "optuna.db" not in json.dumps([run.data.params for run in found.values()])  # no storage URL


def test_second_run_adds_no_trial_and_skips_loading(smoke_run) -> None:
    runs, storage, _ = smoke_run
    again = run_cli("study", "study/smoke.yaml", f"runs_dir={runs}", "--storage", storage)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "'dpo': 0, 'ipo': 0" in again.stdout
    assert "model tiny-random-mistral loaded" not in again.stdout
    study = optuna.load_study(study_name="smoke/dpo", storage=storage)
    assert len(study.trials) == 2


def test_topping_up_runs_only_the_missing_trials(smoke_run) -> None:
    runs, storage, _ = smoke_run
    more = run_cli("study", "study/smoke.yaml", f"runs_dir={runs}", "search.n_trials=3", "--storage", storage)
    assert more.returncode == 0, more.stderr[-2000:]
    assert "'dpo': 1, 'ipo': 1" in more.stdout
    assert "reference log-probs from cache" in more.stdout
    for method in ("dpo", "ipo"):
        assert len(optuna.load_study(study_name=f"smoke/{method}", storage=storage).trials) == 3


def test_changed_search_space_is_refused(smoke_run) -> None:
    runs, storage, _ = smoke_run
    changed = run_cli("study", "study/smoke.yaml", f"runs_dir={runs}", "learning_rate.high=0.01", "--storage", storage)
    assert changed.returncode == 2
    assert "different spec" in changed.stderr and "new `name`" in changed.stderr


def test_bad_spec_exits_2_before_training(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "study" / "smoke.yaml").read_text().replace("batch_size: 4", "batch_size: -4"))
    result = run_cli("study", str(bad), f"runs_dir={tmp_path}/runs")
    assert result.returncode == 2
    assert "training.batch_size" in result.stderr and str(bad) in result.stderr
    assert not (tmp_path / "runs").exists()


def test_help_documents_the_cli() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "study" in result.stdout and "exit codes" in result.stdout


def test_dashboard_serves_the_smoke_storage_on_loopback_with_notes(smoke_run) -> None:
    import urllib.request

    runs, storage, _ = smoke_run
    port = free_port()
    env = cli_env()
    server = subprocess.Popen(
        [sys.executable, "-m", "prefstudy", "dashboard", storage, "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        studies = wait_for_json(f"http://127.0.0.1:{port}/api/studies")
        assert studies is not None, "dashboard did not answer"
        names = {s["study_name"]: s["study_id"] for s in studies["study_summaries"]}
        assert {"smoke/dpo", "smoke/ipo"} <= set(names)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{names['smoke/dpo']}", timeout=5) as r:
            detail = json.loads(r.read())
        notes = [t["note"]["body"] for t in detail["trials"] if t.get("note", {}).get("body")]
        assert notes and "generalization gap" in notes[0] and "scored once the search has chosen" in notes[0]
        assert detail["objective_names"] == ["val accuracy"]
        import socket

        others = [a for a in {i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None)} if a != "127.0.0.1"]
        for address in others[:1]:  # not reachable on the machine's other addresses
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://{address}:{port}/api/studies", timeout=2)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_tensorboard_command_serves_the_run_directories_on_loopback(smoke_run) -> None:
    runs, _, _ = smoke_run
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "prefstudy", "tensorboard", "smoke", "--port", str(port)],
                              cwd=runs.parent, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        names = wait_for_json(f"http://127.0.0.1:{port}/data/runs", attempts=120)
        assert names is not None, "tensorboard did not answer"
        assert {"dpo/trial-0000/tensorboard", "ipo/trial-0001/tensorboard"} <= set(names)
    finally:
        server.terminate()
        server.wait(timeout=20)
    # SIGTERM to `prefstudy tensorboard` stops TensorBoard itself (it was left running, orphaned, before)
    assert wait_for_json(f"http://127.0.0.1:{port}/data/runs", attempts=10) is None


def test_qlora_trial_runs_through_the_same_code(tmp_path: Path) -> None:
    """training.quantization=nf4: bitsandbytes 4-bit base + LoRA, one trial per method, on the CPU."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    result = run_cli("study", "study/smoke.yaml", f"runs_dir={tmp_path}", "name=smoke4bit", "search.n_trials=1",
                  "training.quantization=nf4", "training.optimizer=paged_adamw_32bit", "--storage", storage)
    assert result.returncode == 0, result.stderr[-3000:]
    for method in ("dpo", "ipo"):
        study = optuna.load_study(study_name=f"smoke4bit/{method}", storage=storage)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    config = json.loads((tmp_path / "smoke4bit" / "dpo" / "trial-0000" / "config.json").read_text())
    assert config["spec"]["training"]["quantization"] == "nf4"


def test_dry_run_prints_the_plan_without_loading_anything(tmp_path: Path) -> None:
    result = run_cli("study", "study/mistral7b_qlora.yaml", "--dry-run", "--throughput", "2500", f"runs_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "GPU memory per GPU" in result.stdout and "GiB" in result.stdout
    assert "time per trial at 2,500 tokens/s" in result.stdout
    assert not any(tmp_path.iterdir())


def test_builtin_lm_eval_task_offline_fails_fast_with_exit_2(tmp_path: Path) -> None:
    import time

    started = time.perf_counter()
    result = run_cli("study", "study/smoke.yaml", f"runs_dir={tmp_path}",
                  "evaluation.lm_eval.tasks=[{name: arc_challenge, num_fewshot: 25, metric: acc_norm}]")
    assert result.returncode == 2, result.stderr[-2000:]
    assert time.perf_counter() - started < 30
    assert "arc_challenge" in result.stderr and "ai2_arc" in result.stderr and "could not be loaded" in result.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written before the tasks are resolved"


def test_a_hub_task_without_network_fails_fast_with_the_offline_variable_unset(tmp_path: Path) -> None:
    """No HF_HUB_OFFLINE and no hub (HF_ENDPOINT at a closed port): a 3 s probe turns offline mode on, so the
    missing dataset is refused at once instead of after the hub client's five retries (36-44 s before)."""
    import time

    env = {k: v for k, v in cli_env().items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "prefstudy", "study", "study/smoke.yaml", f"runs_dir={tmp_path}",
                             "evaluation.lm_eval.tasks=[{name: arc_easy, metric: acc}]"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    assert result.returncode == 2, result.stderr[-2000:]
    assert "arc_easy" in result.stderr and "could not be loaded" in result.stderr
    assert "hub is not reachable: offline mode" in result.stdout + result.stderr
    assert "Retrying" not in result.stdout + result.stderr and elapsed < 30, elapsed


def test_lm_eval_results_are_stored_per_trial_and_base_once(smoke_run) -> None:
    runs, storage, result = smoke_run
    assert result.stdout.count("lm-eval of the base model in") == 1
    base = json.loads((runs / "smoke" / "base" / "lm_eval.json").read_text())
    assert set(base["tasks"]) == {"prefstudy_arith", "prefstudy_format"}
    study = optuna.load_study(study_name="smoke/dpo", storage=storage)
    assert "lm_eval_base/prefstudy_arith/acc" in study.user_attrs
    trial = [t for t in study.trials if t.state == TrialState.COMPLETE][0]
    for key in ("lm_eval/prefstudy_arith/acc", "lm_eval/prefstudy_format/exact_match", "lm_eval/mean",
                "lm_eval/delta_vs_base", "lm_eval/delta_ci_low", "lm_eval/delta_ci_high"):
        assert key in trial.user_attrs, key
    stored = json.loads((Path(trial.user_attrs["run_dir"]) / "lm_eval.json").read_text())
    task = stored["tasks"]["prefstudy_arith"]
    assert len(task["per_doc"]) == 8 and task["value"] == pytest.approx(sum(task["per_doc"]) / 8)
    assert trial.user_attrs["lm_eval/mean"] == pytest.approx(
        (stored["tasks"]["prefstudy_arith"]["value"] + stored["tasks"]["prefstudy_format"]["value"]) / 2)


def test_lm_eval_cli_rescoring_of_a_trial_agrees_with_the_stored_numbers(smoke_run, tmp_path: Path) -> None:
    """The README's verification command: lm_eval's own CLI on the cached base folder + the trial's adapter."""
    runs, storage, _ = smoke_run
    study = optuna.load_study(study_name="smoke/dpo", storage=storage)
    trial = [t for t in study.trials if t.state == TrialState.COMPLETE][0]
    run_dir = Path(trial.user_attrs["run_dir"])
    base_folder = Path(os.environ["PREFSTUDY_CACHE"]) / "models" / "tiny-random-mistral"
    tasks = run_cli("tasks", "--out", str(tmp_path / "tasks"), cwd=tmp_path)
    assert tasks.returncode == 0, tasks.stderr
    command = [
        sys.executable, "-m", "lm_eval", "run", "--model", "hf",
        "--model_args", f"pretrained={base_folder},peft={run_dir / 'adapter'},dtype=float32",
        "--include_path", str(tmp_path / "tasks"), "--tasks", "prefstudy_arith", "--limit", "8", "--batch_size", "8",
        "--device", "cpu", "--log_samples", "--output_path", str(tmp_path),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    samples_file = next(tmp_path.rglob("samples_prefstudy_arith_*.jsonl"))
    cli = sorted((json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda s: s["doc_id"])
    stored = json.loads((run_dir / "lm_eval.json").read_text())["tasks"]["prefstudy_arith"]
    assert [s["acc"] for s in cli] == stored["per_doc"]
    for sample, expected in zip(cli, stored["loglikelihoods"], strict=True):
        got = [float(r[0]) for r in sample["filtered_resps"]]
        assert got == pytest.approx(expected, abs=1e-4)


def test_pareto_objective_and_lm_eval_constraint(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    pareto = run_cli("study", "study/smoke.yaml", f"runs_dir={tmp_path}", "name=smokepareto", "search.n_trials=1",
                  "search.objective=pareto", "--storage", storage)
    assert pareto.returncode == 0, pareto.stderr[-2000:]
    assert "pruning is off" in pareto.stdout
    study = optuna.load_study(study_name="smokepareto/dpo", storage=storage)
    assert len(study.directions) == 2
    trial = study.trials[0]
    assert trial.values[0] == trial.user_attrs["val/accuracy"]
    assert trial.values[1] == pytest.approx(trial.user_attrs["lm_eval/mean"])
    constrained = run_cli("study", "study/smoke.yaml", f"runs_dir={tmp_path}", "name=smokedrop", "search.n_trials=1",
                       "search.sampler.type=tpe", "search.max_lm_eval_drop=0.05", "--storage", storage)
    assert constrained.returncode == 0, constrained.stderr[-2000:]
    trial = optuna.load_study(study_name="smokedrop/ipo", storage=storage).trials[0]
    assert trial.user_attrs["constraint"] == [pytest.approx(-0.05 - trial.user_attrs["lm_eval/delta_ci_high"])]


def test_base_accuracy_is_reported_per_family(smoke_run) -> None:
    runs, storage, result = smoke_run
    assert "test per family: " in result.stdout
    study = optuna.load_study(study_name="smoke/dpo", storage=storage)
    families = study.user_attrs["base/ood/family"]
    assert set(families) == {"subtraction", "multiplication"} and all(0.0 <= v <= 1.0 for v in families.values())
    val = study.user_attrs["base/val/family"]
    assert len(val) >= 4 and all(0.0 <= v <= 1.0 for v in val.values())


def _wins(split: dict, per_token: bool) -> list[float]:
    out = []
    for c, r, ct, rt in zip(split["chosen"], split["rejected"], split["chosen_tokens"], split["rejected_tokens"],
                            strict=True):
        a, b = (c / ct, r / rt) if per_token else (c, r)
        out.append(1.0 if a > b else 0.5 if a == b else 0.0)
    return out


def test_a_per_token_study_uses_its_metric_in_every_stored_and_printed_number(tmp_path: Path) -> None:
    """evaluation.metric accuracy_per_token: the objective, the stored val/test values, their Wilson intervals, the
    gain over the base, the verdicts and the printed lines are recomputed here from heldout.json alone."""
    from prefstudy.evaluation.power import paired_difference, wilson_interval

    result = run_cli("study", "study/smoke.yaml", f"runs_dir={tmp_path}", "evaluation.metric=accuracy_per_token",
                     "evaluation.lm_eval.tasks=[]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "base model: train acc/token" in result.stdout and "val acc " not in result.stdout  # the study's metric
    storage = f"sqlite:///{tmp_path}/smoke/optuna.db"
    best = {}
    for method in ("dpo", "ipo"):
        study = optuna.load_study(study_name=f"smoke/{method}", storage=storage)
        base = study.user_attrs
        top = max(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: (t.values[0], -t.number))
        for t in study.get_trials(states=(TrialState.COMPLETE,)):
            heldout = json.loads((Path(t.user_attrs["run_dir"]) / "heldout.json").read_text())
            val = _wins(heldout["val"], True)
            assert t.values[0] == pytest.approx(sum(val) / len(val))
            assert t.user_attrs["val/accuracy_per_token"] == pytest.approx(sum(val) / len(val))
            assert f"val accuracy_per_token {t.values[0]:.3f}" in result.stdout
            assert "step   4/4 loss" in result.stdout and f"val acc/token {t.values[0]:.3f}" in result.stdout
            assert ("test" in heldout) == (t.number == top.number)  # test: the chosen trial only
        attrs = trial_attrs(base, top)
        test = _wins(json.loads((Path(top.user_attrs["run_dir"]) / "heldout.json").read_text())["test"], True)
        assert attrs["test/accuracy_per_token"] == pytest.approx(sum(test) / len(test))
        assert (attrs["test_accuracy_ci_low"], attrs["test_accuracy_ci_high"]) == pytest.approx(
            wilson_interval(sum(test), len(test)))
        gain = sum(test) / len(test) - base["base/test/accuracy_per_token"]
        assert attrs["test_gain_vs_base"] == pytest.approx(gain)
        best[method] = _wins(json.loads((Path(top.user_attrs["run_dir"]) / "heldout.json").read_text())["test"], True)
    verdicts = json.loads((tmp_path / "reports" / "smoke" / "verdicts.json").read_text())
    exploratory = next(v for v in verdicts if v["name"] == "exploratory: search DPO − IPO, test accuracy_per_token")
    hand = paired_difference([best["dpo"]], [best["ipo"]])
    assert exploratory["estimate"] == pytest.approx(hand["estimate"])
    assert exploratory["mde"] == pytest.approx(hand["mde"])
    assert f"{hand['estimate']:+.3f} [95% {hand['ci_low']:+.3f}, {hand['ci_high']:+.3f}]" in result.stdout
    assert "primary: confirmation DPO − IPO, test accuracy_per_token: not yet measured" in result.stdout


def test_export_writes_the_winner_for_trls_own_cli_and_merges_it(smoke_run, tmp_path: Path) -> None:
    """``prefstudy export smoke/dpo --best --merge``: the adapter, a model card, a trl_dpo.yaml that TRL's own
    ``trl dpo`` parser (scripts/dpo.py make_parser, parse_args_and_config) reads back value for value, and merged
    weights whose log-probs equal the adapter model's."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from trl.scripts.dpo import make_parser

    runs, storage, result = smoke_run
    assert result.returncode == 0, result.stderr[-3000:]
    done = run_cli("export", "smoke/dpo", "--best", "--merge", "--storage", storage, "--out", str(tmp_path),
                   cwd=runs.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "smoke-dpo"
    best = best_trial(optuna.load_study(study_name="smoke/dpo", storage=storage))
    assert (folder / "adapter" / "adapter_config.json").is_file() and (folder / "merged" / "config.json").is_file()
    card = (folder / "README.md").read_text()
    assert f"trial {best.number}" in card and "val accuracy" in card and "[95%" in card and "merge_and_unload" in card
    script, dpo, model, data = make_parser().parse_args_and_config(["--config", str(folder / "trl_dpo.yaml")])
    assert dpo.loss_type == ["sigmoid"] and dpo.beta == pytest.approx(best.params["beta"])
    assert dpo.learning_rate == pytest.approx(best.params["learning_rate"])
    assert (dpo.max_steps, dpo.per_device_train_batch_size, dpo.max_length) == (4, 4, 256)
    assert dpo.seed == json.loads((Path(best.user_attrs["run_dir"]) / "config.json").read_text())["seed"]
    assert (model.use_peft, model.lora_r, model.lora_alpha, model.load_in_4bit) == (True, 4, 8, False)
    assert Path(data.datasets[0].data_files).is_file() and data.datasets[0].path == "json"
    assert Path(model.model_name_or_path, "config.json").is_file()  # the built tiny model's local folder
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model.model_name_or_path),
                                        str(folder / "adapter"))
    merged = AutoModelForCausalLM.from_pretrained(str(folder / "merged"))
    with torch.no_grad():
        a, m = adapted(ids).logits.log_softmax(-1), merged(ids).logits.log_softmax(-1)
    assert torch.allclose(a, m, atol=1e-4)
    assert not torch.allclose(a, AutoModelForCausalLM.from_pretrained(model.model_name_or_path)(ids).logits
                              .log_softmax(-1), atol=1e-6)  # the adapter changed something
