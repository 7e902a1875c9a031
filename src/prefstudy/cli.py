"""Command line: ``python -m prefstudy study [SPEC] [--storage URL] [key.path=value ...]``.

Exit codes: 0 success, 2 bad input (refused before any training), 1 a failure during the run,
130 interrupted (SIGINT/SIGTERM; resume with the same command).
Nothing heavy is imported until the spec is valid, so a bad spec is refused in well under a second.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_SPEC = "study/default.yaml"

EPILOG = """examples:
  python -m prefstudy study                                  # study/default.yaml, SQLite under runs/default/
  python -m prefstudy study study/smoke.yaml search.n_trials=2
  python -m prefstudy study study/default.yaml --storage postgresql+psycopg2://user@127.0.0.1:5432/prefstudy
  python -m prefstudy validate study/mistral7b_qlora.yaml
  python -m prefstudy study study/mistral7b_qlora.yaml --dry-run --throughput 2500
  python -m prefstudy summary study/default.yaml
  python -m prefstudy report study/default.yaml                  # reports/default/index.html
  python -m prefstudy dashboard study/default.yaml --port 8080   # binds 127.0.0.1 unless --host says otherwise

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
        if name == "study":
            sub.add_argument("--dry-run", action="store_true",
                             help="validate and print the plan (trials, steps, tokens, GPU memory); download nothing")
            sub.add_argument("--throughput", type=float, default=None,
                             help="training tokens/s to estimate time per trial in the --dry-run plan")
    dash = commands.add_parser("dashboard", help="serve optuna-dashboard for a spec's storage or a storage URL")
    dash.add_argument("target", nargs="?", default=DEFAULT_SPEC, help=f"spec file or storage URL ({DEFAULT_SPEC})")
    dash.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    dash.add_argument("--port", type=int, default=8080)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # overrides may come after options too
    if extra and (args.command == "dashboard" or any("=" not in item or item.startswith("-") for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.args = [*args.args, *extra]
    from prefstudy.spec import SpecError, load_spec, spec_text

    if args.command == "dashboard":
        return _dashboard(args.target, args.host, args.port)
    spec_path, overrides = _split_spec_and_overrides(args.args)
    try:
        spec = load_spec(spec_path, overrides)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "validate":
        print(spec_text(spec), end="")
        return 0
    if getattr(args, "dry_run", False):
        from prefstudy.plan import build_plan, format_plan

        print(format_plan(build_plan(spec, args.throughput)))
        return 0
    storage_url = args.storage or spec.storage or spec.default_storage()
    return _run_guarded(args.command, spec, storage_url)


def _dashboard(target: str, host: str, port: int) -> int:
    from prefstudy.dashboard import serve
    from prefstudy.spec import SpecError, load_spec

    if "://" in target:
        return serve(target, None, host, port)
    try:
        spec = load_spec(target)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(spec.storage or spec.default_storage(), spec.run_root(), host, port)


def _run_guarded(command: str, spec, storage_url: str) -> int:  # type: ignore[no-untyped-def]
    from prefstudy.data import DataError
    from prefstudy.lmeval import LmEvalError
    from prefstudy.model import ModelError
    from prefstudy.secrets import redact
    from prefstudy.spec import SpecError
    from prefstudy.study import StorageError

    try:
        if command == "report":
            from prefstudy.report import build_report

            print(f"report: {build_report(spec, storage_url)}")
            return 0
        if command == "summary":
            from prefstudy.study import create_studies, open_storage
            from prefstudy.summary import print_summary

            print_summary(spec, create_studies(spec, open_storage(storage_url, spec)), storage_url, sys.stdout)
            return 0
        from prefstudy.runner import run

        return run(spec, storage_url)
    except (SpecError, DataError, ModelError, StorageError, LmEvalError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished trials are kept, the running one is marked 'interrupted' and is re-run "
              "first by the same command", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line a user sees should be one clear line
        print(f"error during the run: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
