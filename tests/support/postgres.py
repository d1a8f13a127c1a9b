"""A throwaway PostgreSQL cluster for tests: ``initdb`` into a temporary directory, the
server on a free loopback port, stopped by its PID at the end.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user
(created by the Debian package) and its commands run through ``runuser``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tests.support.installation import free_port

# The Debian package (`make install-test` installs it) puts its tools here, off the PATH.
SEARCH = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def tool(name: str) -> str:
    found = shutil.which(name) or next((str(d / name) for d in SEARCH if (d / name).exists()), None)
    assert found, f"{name} is not installed: the PostgreSQL tests need the postgresql package"
    return found


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class Cluster:
    port: int
    made: int = 0

    def url(self, database: str) -> str:
        return f"postgresql://eas@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database of this cluster."""
        self.made += 1
        name = f"eas_{self.made}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


@contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    """A running cluster (superuser ``eas``, trust on loopback); stopped when the block ends."""
    root = Path(tempfile.mkdtemp(prefix="eas-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        root.chmod(0o700)
    subprocess.run(
        _as_owner([tool("initdb"), "-D", str(data), "-U", "eas", "-A", "trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = root / "server.log"
    subprocess.run(
        _as_owner([tool("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
        check=True,
        capture_output=True,
    )
    pidfile = data / "postmaster.pid"
    pid = int(pidfile.read_text().split()[0])
    try:
        yield Cluster(port)
    finally:
        _stop(pid, pidfile)
        shutil.rmtree(root, ignore_errors=True)


def _stop(pid: int, pidfile: Path) -> None:
    # SIGINT is PostgreSQL's "fast" shutdown: open sessions are ended, then it exits and
    # removes its PID file (the server is not our child, so its exit is seen there).
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if pidfile.exists():
        os.kill(pid, signal.SIGKILL)
