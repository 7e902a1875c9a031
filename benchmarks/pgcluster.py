"""A private, throw-away PostgreSQL cluster for the tests and the chaos soak that need a real PostgreSQL storage.

Why: SQLite does not show what a study does against a server (network errors, authentication, passwords in
URLs, concurrent workers), and tests must not depend on a server someone else runs. So each test session runs
its own cluster: ``initdb`` into a fresh temporary folder, ``pg_ctl start`` on 127.0.0.1 at a free port (the
Unix socket lives in that folder too, never in /var/run/postgresql), and ``pg_ctl stop`` plus removal of the
folder at the end.

Authentication (pg_hba.conf written by this module):

* Unix socket: ``trust`` for everyone: the fixture manages the cluster through it.
* TCP 127.0.0.1, user ``postgres``: ``trust`` (:meth:`PostgresCluster.trust_url`, no password).
* TCP 127.0.0.1, any other user: ``scram-sha-256``. The role ``prefstudy`` has a random password
  (:attr:`PostgresCluster.password`), so :meth:`PostgresCluster.create_database` returns a URL that really
  needs its password: the one to use when checking that passwords never reach logs or errors.

PostgreSQL refuses to run as root, so as root the binaries run as the ``postgres`` user (``runuser``) and the
folder is made under /tmp, mode 755 (pytest's own tmp folders are mode 700 under root's and not traversable by
postgres). Without binaries, :func:`require_bindir` raises :class:`PostgresMissing`; the test suite turns it into a
skip, or a failure where ``PREFSTUDY_REQUIRE_POSTGRES=1`` (CI installs the Debian ``postgresql`` package, so a
missing server there is an error, not a skip).

The server is started with fsync off: its data is thrown away, and the tests run on shared, slow disks.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REQUIRE_ENV = "PREFSTUDY_REQUIRE_POSTGRES"
SERVER_USER = "postgres"  # the OS user that runs the server when the tests run as root
SUPERUSER = "postgres"  # the database superuser (trust: socket and 127.0.0.1)
USER = "prefstudy"  # the database role with a password (scram-sha-256 over TCP)

_HBA = f"""\
# written by benchmarks/pgcluster.py
local all all                  trust
host  all {SUPERUSER} 127.0.0.1/32 trust
host  all all      127.0.0.1/32 scram-sha-256
"""


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path)) or (0,)


def find_bindir() -> Path | None:
    """The folder of initdb/pg_ctl/postgres/psql: ``$PREFSTUDY_PG_BINDIR``, ``pg_config --bindir``, the newest
    /usr/lib/postgresql/*/bin (Debian, which keeps initdb off PATH), then PATH. None when there is none."""
    candidates = []
    if os.environ.get("PREFSTUDY_PG_BINDIR"):
        candidates.append(os.environ["PREFSTUDY_PG_BINDIR"])
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0:
                candidates.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for folder in candidates:
        if all(os.access(Path(folder, tool), os.X_OK) for tool in ("initdb", "pg_ctl", "postgres", "psql")):
            return Path(folder)
    return None


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


MISSING = ("PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) not found via $PREFSTUDY_PG_BINDIR, "
           "pg_config --bindir, /usr/lib/postgresql/*/bin or PATH; install the 'postgresql' package")


def require_bindir() -> Path:
    """:func:`find_bindir`, or :class:`PostgresMissing` when there is none."""
    bindir = find_bindir()
    if bindir is None:
        raise PostgresMissing(MISSING)
    return bindir


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """``with PostgresCluster() as pg: url = pg.create_database("name")``; or start()/stop()/cleanup() by hand.

    ``url`` of :meth:`create_database` is ``postgresql+psycopg2://prefstudy:PASSWORD@127.0.0.1:PORT/NAME``
    (psycopg2: SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3).
    """

    def __init__(self, bindir: Path | None = None, start_timeout: int = 60) -> None:
        self.bindir = Path(bindir) if bindir else require_bindir()
        self.start_timeout = start_timeout
        self.password = secrets.token_urlsafe(18)  # letters, digits, - and _: safe in URLs and SQL literals
        self.user = USER
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.root: Path | None = None  # temporary folder: data/, the socket, postgres.log
        self.as_root = os.geteuid() == 0

    # -- paths -------------------------------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        if self.root is None:
            raise RuntimeError("the cluster has not been started")
        return self.root

    @property
    def datadir(self) -> Path:
        return self.folder / "data"

    @property
    def logfile(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def running(self) -> bool:
        return self.root is not None and (self.datadir / "postmaster.pid").exists()

    # -- commands ----------------------------------------------------------------------------------------------
    def run_tool(self, tool: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        """Run a PostgreSQL binary (as the postgres user when we are root); raise with its output on failure."""
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no stray PGHOST/PGPORT/PGDATA
        env.update(LC_ALL="C", LANG="C")
        done = subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
                               f"{self._log_tail()}")
        return done

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.logfile.read_text(errors="replace").splitlines()[-lines:]
        except (OSError, TypeError):
            return ""
        return "\n--- postgres.log (tail) ---\n" + "\n".join(text) if text else ""

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the Unix socket; returns psql's unaligned output."""
        done = self.run_tool("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.root),
                         "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql)
        return done.stdout.strip()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self, attempts: int = 3) -> PostgresCluster:
        """initdb into a fresh temporary folder, start on 127.0.0.1 at a free port, create the password role."""
        if self.running:
            return self
        if self.as_root:
            try:
                owner = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(f"running as root, but there is no '{SERVER_USER}' user to run PostgreSQL "
                                   "(PostgreSQL refuses root); install the 'postgresql' package") from None
        self.root = Path(tempfile.mkdtemp(prefix="prefstudy-pg-", dir="/tmp" if self.as_root else None))
        try:
            os.chmod(self.root, 0o755)
            if self.as_root:
                os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.run_tool("initdb", "-D", str(self.datadir), "-U", SUPERUSER, "--auth-local=trust",
                      "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
            (self.datadir / "pg_hba.conf").write_text(_HBA)  # the owner may read it; its mode stays 600
            for attempt in range(attempts):  # another process may take the free port before the server does
                self.port = free_port()
                options = (f"-c listen_addresses={self.host} -p {self.port} -k {self.root} -c fsync=off "
                           "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
                try:
                    self.run_tool("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-o", options, "-w",
                              "-t", str(self.start_timeout), "start", timeout=self.start_timeout + 30)
                    break
                except RuntimeError:
                    self._kill()
                    if attempt == attempts - 1:
                        raise
            self.psql(f"CREATE ROLE {self.user} LOGIN CREATEDB PASSWORD '{self.password}'")
        except BaseException:
            self.stop()
            self.cleanup()
            raise
        return self

    def create_database(self, name: str) -> str:
        """A new, empty database owned by the password role; returns its URL (with the password)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r}: use 1 to 63 of a-z, 0-9 and _, not starting with a digit")
        self.psql(f"CREATE DATABASE {name} OWNER {self.user}")
        return self.url(name)

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        """The password role's URL for ``database`` (``password`` overrides the real one, e.g. a wrong one)."""
        secret = self.password if password is None else password
        return f"postgresql+psycopg2://{self.user}:{secret}@{self.host}:{self.port}/{database}"

    def trust_url(self, database: str = "postgres") -> str:
        """The superuser's URL for ``database``: no password (trust from 127.0.0.1)."""
        return f"postgresql+psycopg2://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL of its postmaster); safe to call twice."""
        if not self.running:
            return
        for mode in ("fast", "immediate"):
            try:
                self.run_tool("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "30", "stop", timeout=60)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
        self._kill()

    def _kill(self) -> None:
        """SIGKILL the postmaster this cluster started (its pid from postmaster.pid), if it is still there."""
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(50):  # its children exit when the postmaster is gone
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        (self.datadir / "postmaster.pid").unlink(missing_ok=True)

    def cleanup(self) -> None:
        """Remove the temporary folder (data, socket, log)."""
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.cleanup()
