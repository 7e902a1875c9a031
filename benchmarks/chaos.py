"""``nox -s chaos``: many workers, a private PostgreSQL, and everything that can go wrong, at once.

N worker processes (``prefstudy study SPEC --role search``, the storage URL in their environment) run the tiny smoke
study toward a target of finished trials per method, while this process:

- SIGKILLs a random worker every ``--kill-every`` seconds (a random pick in the range) and starts a replacement with
  the same command;
- restarts PostgreSQL once (``pg_ctl restart -m fast``);
- fills the run directory's file system once (a small tmpfs mounted for the run) and frees it again after a while;
- replaces any worker that exits before the studies are done (after the disk filled, workers stop on purpose).

Then it checks what must hold, and writes ``<out>/results.json``:

- every study reached its target; no trial was lost: every trial that failed (killed, or failed by the full disk)
  has a finished trial with the same parameters; finished trials overshoot the target by at most the number of
  workers minus one; every finished trial's run directory is complete and names its own study and trial;
- the full disk failed a trial with a clear reason ("disk full ...") and did not spin: at most ``2 * workers``
  trials failed while it was full.

The PostgreSQL cluster is the test suite's (``benchmarks/pgcluster.py``: a throw-away ``initdb`` on 127.0.0.1, stopped
and removed at the end); the tmpfs needs root (without it the disk-full event is skipped and the run says so).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUN_FILES = ("config.json", "env.json", "curves.jsonl", "metrics.json", "heldout.json")


def _spec(folder: Path, target: int, steps: int) -> tuple[Path, list[str]]:
    """The smoke spec, sized for the soak: no lm-eval, no adapters saved, a short heartbeat, many retries."""
    from prefstudy.core.paths import find_spec

    text = find_spec("smoke").read_text()
    path = folder / "chaos.yaml"
    path.write_text(text.replace("name: smoke", "name: chaos", 1))
    return path, [
        f"search.n_trials={target}", f"training.max_steps={steps}", "evaluation.eval_steps=4",
        "evaluation.lm_eval.tasks=[]", "training.save_adapter=none", "evaluation.test_scoring=every",
        "workers.heartbeat_interval=1",
        "workers.grace_period=5", "workers.max_retry=50"]


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.events: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.exits: list[int] = []
        self.kills = self.restarts = self.disk_full_events = 0
        self.disk_window: tuple[float, float] | None = None
        self.mounted = False

    def note(self, what: str, **extra: Any) -> None:
        at = round(time.monotonic() - self.started, 1)
        self.events.append({"t": at, "event": what, **extra})
        print(f"[chaos {at:7.1f}s] {what}" + (f" {extra}" if extra else ""), flush=True)

    def start_worker(self, command: list[str], env: dict[str, str], log: Path) -> None:
        with open(log, "ab") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.args.work)
        self.workers.append(process)
        self.note("worker started", pid=process.pid)


def _mount_tmpfs(path: Path, size_mb: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                          capture_output=True, text=True)
    return done.returncode == 0


def _fill(path: Path) -> Path:
    """Write a filler file until the file system is full; returns its path."""
    filler = path / ".chaos-filler"
    block = b"\0" * (1 << 20)
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError:
            pass
    return filler


def run(args: argparse.Namespace) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    from benchmarks.pgcluster import PostgresCluster  # the throw-away cluster the tests use too
    from prefstudy.search.processes import STORAGE_ENV
    from prefstudy.spec import load_spec

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runs = work / "runs"
    soak = Soak(args)
    mounted = soak.mounted = _mount_tmpfs(runs, args.tmpfs_mb)
    soak.note("run directory on a tmpfs" if mounted else "no tmpfs (needs root): the disk-full event is skipped",
              size_mb=args.tmpfs_mb)
    spec_path, overrides = _spec(work, args.trials, args.steps)
    overrides = [*overrides, f"runs_dir={runs}"]
    spec = load_spec(spec_path, overrides)
    cluster = PostgresCluster().start()
    try:
        cluster.psql("CREATE DATABASE chaos")
        url = cluster.trust_url("chaos")  # no password: nothing secret to keep off command lines here
        from prefstudy.pipeline import prepare
        from prefstudy.search.registry import by_name

        prepare(spec, url, [by_name("search")])  # the launcher's part: studies created once, before any worker races
        command = [sys.executable, "-m", "prefstudy", "study", str(spec_path), *overrides, "--role", "search"]
        env = dict(os.environ, **{STORAGE_ENV: url, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"})
        log = work / "workers.log"
        for _ in range(args.workers):
            soak.start_worker(command, env, log)
        storage = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        studies = {m: optuna.load_study(study_name=spec.study_name(m), storage=storage) for m in spec.methods}

        def finished(study: optuna.Study) -> int:
            return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

        def done() -> bool:
            try:
                return all(finished(s) >= args.trials for s in studies.values()) and not any(
                    s.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
                    for s in studies.values())
            except Exception:  # noqa: BLE001 - the database may be restarting
                return False

        next_kill = time.monotonic() + soak.rng.uniform(*args.kill_every)
        restart_at = time.monotonic() + args.restart_after
        fill_at = time.monotonic() + args.fill_after
        filler: Path | None = None
        deadline = time.monotonic() + args.timeout
        while not done():
            now = time.monotonic()
            if now > deadline:
                soak.note("timeout")
                break
            for w in list(soak.workers):
                if w.poll() is not None:
                    soak.workers.remove(w)
                    soak.exits.append(w.returncode)
                    if w.returncode != -signal.SIGKILL:
                        soak.note("worker exited", pid=w.pid, code=w.returncode)
                    if filler is None:  # keep N workers (while the disk is full they would only stop again)
                        soak.start_worker(command, env, log)
            if now >= next_kill and soak.workers:
                victim = soak.rng.choice(soak.workers)
                victim.send_signal(signal.SIGKILL)
                soak.kills += 1
                soak.note("SIGKILL", pid=victim.pid)
                next_kill = now + soak.rng.uniform(*args.kill_every)
            if soak.restarts == 0 and now >= restart_at:
                # -l again: without it the restarted server keeps pg_ctl's output pipes open (the same options
                # are reused from postmaster.opts)
                cluster.run_tool("pg_ctl", "-D", str(cluster.datadir), "-l", str(cluster.logfile), "-m", "fast", "-w",
                             "-t", "60", "restart", timeout=120)
                soak.restarts += 1
                soak.note("PostgreSQL restarted")
            if mounted and soak.disk_full_events == 0 and now >= fill_at:
                filler = _fill(runs)
                soak.disk_full_events += 1
                soak.disk_window = (now, now + args.full_for)
                soak.note("run directory's file system filled", free_kb=os.statvfs(runs).f_bavail
                          * os.statvfs(runs).f_frsize // 1024)
            if filler is not None and soak.disk_window and now >= soak.disk_window[1]:
                filler.unlink()
                filler = None
                soak.note("file system freed")
                while len(soak.workers) < args.workers:
                    soak.start_worker(command, env, log)
            time.sleep(0.5)
        _stop(soak.workers)
        result = _check(spec, studies, soak, args)
    finally:
        _stop(soak.workers)
        cluster.stop()
        cluster.cleanup()
        if mounted:
            subprocess.run(["umount", "-l", str(runs)], capture_output=True)
    return result


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(timeout=60)
        except subprocess.TimeoutExpired:
            w.kill()


def _check(spec: Any, studies: dict[str, Any], soak: Soak, args: argparse.Namespace) -> dict[str, Any]:
    from optuna.trial import TrialState

    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)
    out: dict[str, Any] = {"workers": args.workers, "target_per_method": args.trials, "kills": soak.kills,
                           "database_restarts": soak.restarts, "disk_full_events": soak.disk_full_events,
                           "worker_exits": len(soak.exits), "wall_s": round(time.monotonic() - soak.started, 1),
                           "finished": {}, "overshoot": {}, "failed": {}, "trials_lost": 0, "incomplete_run_dirs": 0,
                           "disk_full_failures": 0, "problems": []}
    for method, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state in finished_states]
        failed = [t for t in trials if t.state == TrialState.FAIL]
        out["finished"][method] = len(finished)
        out["overshoot"][method] = max(0, len(finished) - args.trials)
        out["failed"][method] = len(failed)
        done_params = [t.params for t in finished]
        carried = {n for t in finished for n in _retried_from(t)}
        for t in failed:
            # a failed trial is lost unless a finished trial retried it (a kill before every parameter was suggested
            # leaves a failed trial with some or none: its retry samples the rest) or has its exact parameters
            if t.number not in carried and t.params not in done_params:
                out["trials_lost"] += 1
                out["problems"].append(f"{study.study_name} trial {t.number} failed ({t.user_attrs.get('fail_reason')})"
                                       f" with parameters {t.params} and no finished trial retried it or has them")
            if str(t.user_attrs.get("fail_reason", "")).startswith("disk full"):
                out["disk_full_failures"] += 1
        for t in finished:
            run_dir = Path(t.user_attrs.get("run_dir", "/nonexistent"))
            files = [f for f in RUN_FILES if t.state == TrialState.COMPLETE or f != "heldout.json"]
            missing = [f for f in files if not (run_dir / f).is_file()]
            config = json.loads((run_dir / "config.json").read_text()) if "config.json" not in missing else {}
            if missing or config.get("trial") != t.number or config.get("study") != study.study_name:
                out["incomplete_run_dirs"] += 1
                out["problems"].append(f"{study.study_name} trial {t.number}: run dir {run_dir} missing {missing} "
                                       f"or names another trial")
        if len(finished) < args.trials:
            out["problems"].append(f"{study.study_name}: {len(finished)} finished of {args.trials}")
    bound = args.workers - 1
    if any(v > bound for v in out["overshoot"].values()):
        out["problems"].append(f"overshoot {out['overshoot']} above the documented bound of workers - 1 = {bound}")
    if soak.kills < args.min_kills:
        out["problems"].append(f"only {soak.kills} kills (at least {args.min_kills} asked): make trials longer")
    if soak.restarts < 1:
        out["problems"].append("the run ended before PostgreSQL was restarted")
    if soak.mounted and soak.disk_full_events < 1:
        out["problems"].append("the run ended before the disk was filled")
    if soak.disk_full_events and not out["disk_full_failures"]:
        out["problems"].append("the disk filled but no trial failed with a 'disk full' reason")
    if out["disk_full_failures"] > 2 * args.workers:
        out["problems"].append(f"{out['disk_full_failures']} trials failed on the full disk: the workers spun")
    out["events"] = soak.events
    out["passed"] = not out["problems"]
    return out


def _retried_from(trial: Any) -> set[int]:
    """The failed trials a trial carries forward: Optuna's heartbeat retries list them in ``retry_history``; a trial
    the full disk failed is queued again with ``retry_of`` (search/loop.py), which a later heartbeat retry keeps."""
    history = {int(n) for n in trial.system_attrs.get("retry_history", [])}
    if "retry_of" in trial.user_attrs:
        history.add(int(trial.user_attrs["retry_of"]))
    return history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40, help="finished trials per method")
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps per trial (long enough for the kills)")
    parser.add_argument("--min-kills", type=int, default=8, help="fewer kills than this fail the soak")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(20.0, 40.0), metavar=("MIN", "MAX"))
    parser.add_argument("--restart-after", type=float, default=45.0, help="seconds before PostgreSQL restarts")
    parser.add_argument("--fill-after", type=float, default=90.0, help="seconds before the disk fills")
    parser.add_argument("--full-for", type=float, default=20.0, help="seconds the disk stays full")
    parser.add_argument("--tmpfs-mb", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--out", default="reports/chaos")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be at least 2 (one is killed while the others go on)")
    temporary = None
    if args.work is None:
        temporary = tempfile.mkdtemp(prefix="prefstudy-chaos-")
        args.work = temporary
    result = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "events"}, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
