"""core.console: while diverted, only prefstudy's own lines reach the terminal; every other write lands in the log
file (print, raw fd writes, logging, warnings, child processes), and nothing is written for a refused command."""

from __future__ import annotations

import textwrap
from pathlib import Path

from support import run_python

SCRIPT = textwrap.dedent("""
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from prefstudy.core import console

    target = Path(sys.argv[1]) / "run" / "study.log"
    verbose = sys.argv[2] == "1"
    make_dir = sys.argv[3] == "1"
    with console.diverted(target, verbose):
        print("library print")
        os.write(2, b"library raw stderr\\n")
        logging.getLogger("transformers").warning("library logging warning")
        warnings.warn("library warning")
        subprocess.run([sys.executable, "-c", "print('child noise')"], check=True)
        console.log("our line")
        console.error("our error")
        if make_dir:
            target.parent.mkdir(parents=True)
            console.settle()
            print("after settle")
    print("after the block")
""")


def _run(tmp_path: Path, verbose: bool, make_dir: bool = True) -> tuple[str, str, Path]:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = run_python(str(script), str(tmp_path), "1" if verbose else "0", "1" if make_dir else "0", timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr, tmp_path / "run" / "study.log"


def test_only_our_lines_reach_the_terminal_and_the_log_keeps_everything(tmp_path: Path) -> None:
    out, err, log = _run(tmp_path, verbose=False)
    assert out.splitlines() == ["our line", "after the block"]
    assert err.splitlines() == ["our error"]
    text = log.read_text()
    for line in ("library print", "library raw stderr", "library logging warning", "library warning",
                 "child noise", "our line", "our error", "after settle"):
        assert line in text, line
    assert "after the block" not in text
    assert oct(log.stat().st_mode & 0o777) == "0o600"  # the log may hold paths and hosts: the user's only


def test_verbose_shows_everything_and_still_logs_ours(tmp_path: Path) -> None:
    out, err, log = _run(tmp_path, verbose=True)
    assert "library print" in out and "child noise" in out and "our line" in out
    assert "library raw stderr" in err and "library logging warning" in err
    assert "our line" in log.read_text() and "library print" not in log.read_text()


def test_a_command_that_writes_no_run_directory_leaves_no_log(tmp_path: Path) -> None:
    out, _, log = _run(tmp_path, verbose=False, make_dir=False)
    assert "our line" in out
    assert not log.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]
