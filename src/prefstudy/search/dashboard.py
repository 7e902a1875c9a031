"""optuna-dashboard integration: trial notes, artifacts, objective names, and serving on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import optuna

from prefstudy.core.secrets import redact

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def artifact_dir(run_root: Path) -> Path:
    return run_root / "artifacts"


def note_markdown(method: str, loss_type: str, params: dict[str, float], final: dict[str, dict[str, float]],
                  derived: dict[str, float], run_dir: Path, lm_eval: dict[str, float] | None = None) -> str:
    """The markdown note a finished trial shows in the dashboard."""
    lines = [
        f"### {method} (`loss_type={loss_type}`)",
        f"beta **{params['beta']:.4g}**, learning_rate **{params['learning_rate']:.3g}**",
        "",
        "| split | accuracy | per-token | implicit | margin | chosen log-ratio | KL proxy |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for split, m in final.items():
        lines.append(
            f"| {split} | {m['accuracy']:.3f} | {m['accuracy_per_token']:.3f} | {m['implicit_accuracy']:.3f} | "
            f"{m['margin']:.2f} | {m['chosen_log_ratio']:.2f} | {m['kl_proxy']:.3f} |"
        )
    lines += [""]
    if "test_gain_vs_base" in derived:
        lines.append(f"test gain over the base model: {derived['test_gain_vs_base']:+.3f} "
                     f"[{derived['test_gain_ci_low']:+.3f}, {derived['test_gain_ci_high']:+.3f}] (paired t, 95%)")
    else:
        lines.append("test and OOD: scored once the search has chosen its trial (evaluation.test_scoring: chosen)")
    lines.append(f"generalization gap (train − val accuracy): {derived['generalization_gap']:+.3f}")
    if lm_eval:
        lines += ["", "| lm-eval | value |", "| --- | --- |"]
        lines += [f"| {key.removeprefix('lm_eval/')} | {value:.4f} |" for key, value in sorted(lm_eval.items())]
    lines += ["", f"run directory: `{run_dir}`"]
    return "\n".join(lines)


def attach(trial: optuna.Trial, run_root: Path, note: str, files: list[Path]) -> None:
    """Save the note and upload the trial's files as dashboard artifacts."""
    from optuna_dashboard import save_note

    save_note(trial, note)
    store_dir = artifact_dir(run_root)
    store_dir.mkdir(parents=True, exist_ok=True)
    store = optuna.artifacts.FileSystemArtifactStore(str(store_dir))
    for path in files:
        if path.exists():
            optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)


#: the storage URL reaches the dashboard process through this variable, never its command line (``ps`` shows that)
STORAGE_ENV = "PREFSTUDY_DASHBOARD_STORAGE"


def serve(storage_url: str, run_root: Path | None, host: str, port: int) -> int:
    """Replace this process with optuna-dashboard bound to ``host`` (127.0.0.1 unless told otherwise). The storage
    URL (it may hold a password) is handed over in the environment: the command line shows only host and port."""
    args = [sys.executable, "-m", "prefstudy.search.dashboard", "--host", host, "--port", str(port)]
    if run_root is not None:
        store = artifact_dir(run_root)
        store.mkdir(parents=True, exist_ok=True)
        args += ["--artifact-dir", str(store.resolve())]
    print(f"optuna-dashboard on http://{host}:{port}/ for {redact(storage_url)} (Ctrl-C stops it)", flush=True)
    os.execve(sys.executable, args, {**os.environ, STORAGE_ENV: storage_url})
    return 0  # not reached


def _main() -> None:
    """The dashboard process itself: ``python -m prefstudy.search.dashboard --host H --port P [--artifact-dir D]``
    with the storage URL in $PREFSTUDY_DASHBOARD_STORAGE."""
    import argparse

    from optuna_dashboard import run_server

    parser = argparse.ArgumentParser(prog="prefstudy-dashboard")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--artifact-dir")
    args = parser.parse_args()
    url = os.environ.pop(STORAGE_ENV, "")
    if not url:
        parser.error(f"${STORAGE_ENV} is not set (start it with `prefstudy dashboard`)")
    store = optuna.artifacts.FileSystemArtifactStore(args.artifact_dir) if args.artifact_dir else None
    run_server(url, host=args.host, port=args.port, artifact_store=store)


if __name__ == "__main__":
    _main()
