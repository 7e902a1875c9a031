"""Command line: ``python -m prefstudy study [SPEC] [--storage URL] [key.path=value ...]``.

Exit codes: 0 success, 2 bad input (refused before any training), 1 a failure during the run,
130 interrupted (SIGINT/SIGTERM; resume with the same command).
Nothing heavy is imported until the spec is valid, so a bad spec is refused in well under a second.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from prefstudy.core.paths import DEFAULT_SPEC, find_spec
from prefstudy.spec.stages import ROLES, STAGES, Request

if TYPE_CHECKING:
    from prefstudy.spec import StudySpec

EPILOG = """examples:
  python -m prefstudy study                                  # study/default.yaml, SQLite under runs/default/
  python -m prefstudy study study/smoke.yaml search.n_trials=2
  python -m prefstudy study study/default.yaml --storage postgresql+psycopg2://user@127.0.0.1:5432/prefstudy
  python -m prefstudy validate study/mistral7b_qlora.yaml
  python -m prefstudy study study/mistral7b_qlora.yaml --dry-run --throughput 2500
  python -m prefstudy study study/default.yaml --confirm       # + top-k configurations re-run with fresh seeds
  python -m prefstudy study study/default.yaml --stage drift   # + claim (a): beta grid, long runs -> claims.json
  python -m prefstudy study study/default.yaml --stage lr-profile  # + claim (b): learning-rate grid -> claims.json
  python -m prefstudy summary study/default.yaml
  python -m prefstudy rerun default/dpo 3                        # re-train trial 3, compare its curves
  python -m prefstudy export default/ipo --best                  # adapter, model card, trl_dpo.yaml -> exports/
  python -m prefstudy report study/default.yaml                  # reports/default/index.html
  python -m prefstudy dashboard study/default.yaml --port 8080   # binds 127.0.0.1 unless --host says otherwise

specs: a file path, or the name of a spec that ships with prefstudy (default, smoke, mistral7b_qlora; also as
study/<name>.yaml), so every command works from any folder. Paths inside a spec file are read relative to that
file's folder, paths in key=value overrides relative to the current folder; runs/ and reports/ are written under
the current folder. Other libraries' output goes to runs/<name>/study.log (--verbose: to the terminal).

exit codes: 0 success, 2 bad input (nothing trained), 1 failure during the run, 130 interrupted"""


def _split_spec_and_overrides(items: list[str]) -> tuple[str, list[str]]:
    spec, overrides = DEFAULT_SPEC, []
    for index, item in enumerate(items):
        if index == 0 and "=" not in item:
            spec = item
        else:
            overrides.append(item)
    return spec, overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefstudy", description="Optuna studies of DPO vs IPO (TRL DPOTrainer) with LoRA/QLoRA.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("study", "launch or resume the search of a spec (tops every method up to search.n_trials)"),
        ("validate", "validate a spec and print it resolved; loads nothing"),
        ("summary", "print the best trial per method from the storage"),
        ("report", "build reports/<name>/index.html from the storage and run directories (works offline)"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("args", nargs="*", metavar="SPEC|key.path=value",
                         help=f"spec file (default {DEFAULT_SPEC}) then overrides such as search.n_trials=8")
        sub.add_argument("--storage", help="Optuna storage URL (default sqlite:///runs/<name>/optuna.db)")
        sub.add_argument("--verbose", action="store_true",
                         help="show other libraries' warnings and progress bars (default: runs/<name>/study.log)")
        if name == "study":
            sub.add_argument("--dry-run", action="store_true",
                             help="validate and print the plan (trials, steps, tokens, GPU memory); download nothing")
            sub.add_argument("--throughput", type=float, default=None,
                             help="training tokens/s to estimate time per trial in the --dry-run plan")
            sub.add_argument("--workers", type=int, default=None, metavar="N",
                             help="N worker processes on this machine, one GPU each when there are GPUs "
                                  "(default workers.count of the spec, 1)")
            sub.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)  # --workers
            sub.add_argument("--needs", action="store_true", help=argparse.SUPPRESS)  # nox: the extras the spec needs
            sub.add_argument("--stage", choices=STAGES, default=None,
                             help="after the search (run first if needed), a fixed-design stage: 'drift' tests "
                                  "claim (a), a beta grid per method in long runs; 'lr-profile' tests claim (b), a "
                                  "learning-rate grid per method, beta re-tuned at the highest (studies "
                                  "<name>/<method>/<stage>; docs/claims.md)")
            sub.add_argument("--confirm", action="store_true",
                             help="after the search, re-train the top confirm.top_k configurations of each method "
                                  "with the seeds in confirm.seeds (studies <name>/<method>/confirm)")
    again = commands.add_parser("rerun", help="re-train one trial from its saved config and seed; compare curves",
                                description="re-train one finished trial from its run directory's config.json and "
                                            "seed and compare curves.jsonl with the original (exit 1 if they differ)")
    again.add_argument("study", help="study name, e.g. default/dpo or default/ipo/confirm")
    again.add_argument("trial", type=int, help="trial number")
    again.add_argument("--storage", help="Optuna storage URL (default sqlite:///runs/<name>/optuna.db)")
    again.add_argument("--tolerance", type=float, default=1e-6, help="largest allowed difference (default 1e-6)")
    again.add_argument("--verbose", action="store_true", help="show other libraries' output on the terminal")
    out = commands.add_parser("export", help="a finished trial's adapter, model card and trl dpo config",
                              description="write exports/<name>-<method>/: the trial's adapter, a model card and "
                                          "trl_dpo.yaml for TRL's own `trl dpo --config` (docs/export.md)")
    out.add_argument("study", help="study name, e.g. default/ipo")
    pick = out.add_mutually_exclusive_group()
    pick.add_argument("--trial", type=int, default=None, help="trial number")
    pick.add_argument("--best", action="store_true", help="the best trial (chosen on val; the default)")
    out.add_argument("--merge", action="store_true", help="also write merged weights (non-quantized base only)")
    out.add_argument("--out", type=Path, default=Path("exports"), help="parent folder (default exports/)")
    out.add_argument("--storage", help="Optuna storage URL (default sqlite:///runs/<name>/optuna.db)")
    tasks = commands.add_parser("tasks", help="write prefstudy's lm-eval tasks to a folder for lm_eval's own CLI",
                                description="copy prefstudy's offline lm-eval tasks to OUT with absolute data paths, "
                                            "for `lm_eval run --include_path OUT --tasks prefstudy_arith ...`")
    tasks.add_argument("--out", type=Path, required=True, help="folder to write (created if missing)")
    dash = commands.add_parser("dashboard", help="serve optuna-dashboard for a spec's storage or a storage URL")
    dash.add_argument("target", nargs="?", default=DEFAULT_SPEC, help=f"spec file or storage URL ({DEFAULT_SPEC})")
    dash.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    dash.add_argument("--port", type=int, default=8080)
    board = commands.add_parser("tensorboard", help="serve TensorBoard over a spec's run directories")
    board.add_argument("target", nargs="?", default=DEFAULT_SPEC, help=f"spec file ({DEFAULT_SPEC})")
    board.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    board.add_argument("--port", type=int, default=6006)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # overrides may come after options too
    stray = any("=" not in item or item.startswith("-") for item in extra)
    if extra and (args.command in ("dashboard", "tasks", "tensorboard") or stray):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.args = [*args.args, *extra]
    from prefstudy.spec import SpecError, load_spec, spec_text

    if args.command == "dashboard":
        return _dashboard(args.target, args.host, args.port)
    if args.command == "tensorboard":
        return _tensorboard(args.target, args.host, args.port)
    if args.command == "tasks":
        from prefstudy.evaluation.lmeval import export_tasks

        print(f"lm-eval tasks: {export_tasks(args.out)} (lm_eval run --include_path {args.out} --tasks ...)")
        return 0
    if args.command == "rerun":
        return _rerun(args.study, args.trial, args.storage, args.tolerance, args.verbose)
    if args.command == "export":
        return _export(args)
    spec_arg, overrides = _split_spec_and_overrides(args.args)
    spec_path = str(find_spec(spec_arg))
    try:
        spec = load_spec(spec_path, overrides)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "validate":
        print(spec_text(spec), end="")
        return 0
    if getattr(args, "needs", False):  # noxfile's study session installs requirements-tracking.lock for these
        print("tracking" if spec.tracking.tensorboard or spec.tracking.mlflow is not None else "")
        return 0
    if getattr(args, "dry_run", False):
        from prefstudy.plan import build_plan, format_plan

        print(format_plan(build_plan(spec, args.throughput)))
        if getattr(args, "stage", None):
            from prefstudy.plan_stages import stage_lines

            print("\n".join(stage_lines(spec, args.stage, args.throughput)))
        return 0
    role = getattr(args, "role", None)
    if role:  # a worker started by --workers: the URL comes through the environment, not the command line
        from prefstudy.search.processes import STORAGE_ENV

        args.storage = args.storage or os.environ.get(STORAGE_ENV)
    storage_url = args.storage or spec.storage or spec.default_storage()
    if args.command == "report":
        return _guarded(spec, args.verbose, lambda pipeline: pipeline.report(spec, storage_url))
    if args.command == "summary":
        return _guarded(spec, args.verbose, lambda pipeline: pipeline.summary(spec, storage_url))
    workers = spec.workers.count if args.workers is None else args.workers
    if workers < 1:
        print(f"error: --workers {workers}: must be at least 1 (one process per worker)", file=sys.stderr)
        return 2
    request = Request(confirm=args.confirm, stage=args.stage, role=role)
    if workers > 1 and not role:
        command = [sys.executable, "-m", "prefstudy", "study", spec_path, *overrides]
        if args.verbose:
            command.append("--verbose")
        return _guarded(spec, args.verbose,
                        lambda pipeline: pipeline.run_workers(spec, storage_url, workers, command, request))
    return _guarded(spec, args.verbose, lambda pipeline: pipeline.run(spec, storage_url, request))


def _export(args: argparse.Namespace) -> int:
    from prefstudy.core.console import error
    from prefstudy.core.secrets import redact
    from prefstudy.export import export
    from prefstudy.spec import SpecError

    try:
        folder = export(args.study, args.trial, args.storage, args.out, args.merge)
    except SpecError as exc:
        error(f"error: {redact(str(exc))}")
        return 2
    print(f"exported: {folder} (adapter/, README.md, trl_dpo.yaml" + (", merged/" if args.merge else "") + ")")
    print(f"train it again with TRL's CLI: trl dpo --config {folder / 'trl_dpo.yaml'}")
    return 0


def _rerun(study: str, trial: int, storage: str | None, tolerance: float, verbose: bool) -> int:
    from prefstudy.core.console import diverted, error
    from prefstudy.core.secrets import redact
    from prefstudy.search.rerun import rerun
    from prefstudy.spec import SpecError

    try:
        with diverted(Path("runs") / study.split("/")[0] / "rerun.log", verbose):
            return rerun(study, trial, storage, tolerance)
    except SpecError as exc:
        error(f"error: {redact(str(exc))}")
        return 2


def _tensorboard(target: str, host: str, port: int) -> int:
    from prefstudy.spec import SpecError, load_spec
    from prefstudy.tracking.serve import serve_tensorboard

    try:
        spec = load_spec(find_spec(target))
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve_tensorboard(spec.run_root(), host, port)


def _dashboard(target: str, host: str, port: int) -> int:
    from prefstudy.search.dashboard import serve
    from prefstudy.spec import SpecError, load_spec

    if "://" in target:
        return serve(target, None, host, port)
    try:
        spec = load_spec(find_spec(target))
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(spec.storage or spec.default_storage(), spec.run_root(), host, port)


def _guarded(spec: StudySpec, verbose: bool, body: Callable[[ModuleType], int | None]) -> int:
    """Run ``body(pipeline)`` with other libraries' output diverted to runs/<name>/study.log; map errors to exit
    codes (None from ``body`` is success)."""
    from prefstudy.core.console import LOG_NAME, diverted, error
    from prefstudy.core.secrets import redact
    from prefstudy.data.sources import DataError
    from prefstudy.evaluation.lmeval import LmEvalError
    from prefstudy.models.loading import ModelError
    from prefstudy.search.storage import StorageError
    from prefstudy.spec import SpecError
    from prefstudy.training.faults import DiskFull

    try:
        with diverted(spec.run_root() / LOG_NAME, verbose):
            try:
                from prefstudy import pipeline

                return body(pipeline) or 0
            except (SpecError, DataError, ModelError, StorageError, LmEvalError) as exc:
                error(f"error: {redact(str(exc))}")
                return 2
            except DiskFull as exc:
                error(f"error: {exc}")
                return 1
            except KeyboardInterrupt:
                error("interrupted: finished trials are kept, the running one is marked 'interrupted' and is re-run "
                      "first by the same command")
                return 130
            except Exception as exc:  # noqa: BLE001 - the last line a user sees should be one clear line
                import traceback

                traceback.print_exc()  # to the log file (the terminal with --verbose)
                error(f"error during the run: {type(exc).__name__}: {redact(str(exc))} "
                      f"(details: {spec.run_root() / 'study.log'})")
                return 1
    except OSError as exc:  # the log file itself cannot be written (e.g. a read-only runs_dir)
        print(f"error: {spec.run_root()}: cannot write there ({exc.strerror or exc}); set runs_dir", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
