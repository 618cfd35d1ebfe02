"""Fixtures for the fault tests: a private PostgreSQL server of the test's own, and its restart.

The restart test used to restart the machine's shared server at 127.0.0.1:5432: every other PostgreSQL test running
at that moment — in this run or in another worktree's on the same machine — lost its connections and failed
("Connection refused" in the kill tests). So the server it restarts is its own: a cluster made with `initdb` in
the test's tmp_path, on a free port of 127.0.0.1, stopped when the test ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import unavailable
from support.procs import free_port

READY_TIMEOUT = 60.0


def _bindir() -> Path | None:
    """Return the folder of the newest installed PostgreSQL server programs (initdb, pg_ctl), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own, driven with pg_ctl as the postgres user (initdb refuses to run as root)."""

    def __init__(self, bindir: Path, folder: Path):
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def _ctl(self, action: str, *args: str) -> subprocess.CompletedProcess:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        return self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options,
                         "-w", "-t", str(int(READY_TIMEOUT)), *args)

    def create(self) -> None:
        """Make the cluster and start it; raise RuntimeError with the tool's output when that fails."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        for result in (self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"),
                       self._ctl("start")):
            if result.returncode != 0:
                raise RuntimeError(f"{result.args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")

    def ready(self) -> bool:
        """Tell whether the server accepts connections now."""
        return self._run("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port), timeout=10).returncode == 0

    def restart(self) -> subprocess.CompletedProcess:
        """Restart the server (fast shutdown: every connection is cut); pg_ctl -w returns once it accepts connections."""
        return self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """Stop the server at once and wait (bounded) until it is gone."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", str(int(READY_TIMEOUT)))


@pytest.fixture
def local_postgres(tmp_path):
    """A private PostgreSQL server for this test only, free to be restarted; stopped when the test ends, pass or fail."""
    bindir = _bindir()
    if bindir is None or not (bindir / "initdb").exists():
        unavailable("initdb/pg_ctl not found: cannot make a private PostgreSQL server to restart")
    if os.geteuid() != 0 and os.environ.get("USER") != "postgres":
        unavailable("a private PostgreSQL server needs root (to run initdb as the postgres user) or the postgres user")
    # Short: a Unix socket path is limited to about 100 bytes, and pytest's tmp_path can be long.
    server = PrivatePostgres(bindir, Path(f"/tmp/ab-pg-{tmp_path.name[-20:]}-{os.getpid()}"))
    try:
        server.create()
        deadline = time.monotonic() + READY_TIMEOUT
        while not server.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the private PostgreSQL server did not accept connections within {READY_TIMEOUT}s")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def fresh_pg_db(local_postgres):
    """The private server's database: empty, for this test only."""
    return local_postgres.url
