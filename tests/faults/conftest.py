"""Fixtures for the fault tests: a fresh PostgreSQL database that survives a server restart, and the restart itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import fresh_pg_database, pg_unavailable, unavailable

READY_TIMEOUT = 60.0


class LocalPostgres:
    """The local cluster behind 127.0.0.1:5432, driven with Debian's pg_ctlcluster (needs root or the postgres user)."""

    def __init__(self, version: str, cluster: str = "main"):
        self.version = version
        self.cluster = cluster

    def ctl(self, action: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.cluster, action],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    @staticmethod
    def ready() -> bool:
        return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], timeout=10).returncode == 0

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(0.2)
        return False

    def restart(self) -> subprocess.CompletedProcess:
        """Restart the server (fast shutdown: every connection is cut) and wait until it accepts connections."""
        result = self.ctl("restart")
        self.wait_ready()
        return result

    def ensure_running(self) -> None:
        """Start the server if it is down, and wait (bounded) for pg_isready."""
        if not self.ready():
            self.ctl("start")
        if not self.wait_ready():
            raise RuntimeError("PostgreSQL did not come back within 60 s; start it with `make postgres`")


@pytest.fixture
def local_postgres():
    """The restartable local PostgreSQL; running again when the test ends, pass or fail."""
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    if not shutil.which("pg_ctlcluster") or not shutil.which("pg_isready") or not versions:
        unavailable("pg_ctlcluster/pg_isready or /etc/postgresql not found: cannot restart the local server")
    if os.geteuid() != 0 and os.environ.get("USER") != "postgres":
        unavailable("restarting PostgreSQL needs root or the postgres user")
    server = LocalPostgres(versions[-1])
    if not server.ready():
        pg_unavailable("pg_isready fails on 127.0.0.1:5432")
    try:
        yield server
    finally:
        server.ensure_running()


@pytest.fixture
def fresh_pg_db(local_postgres):
    """A new, empty database for this test only, on a server that is running again when it is dropped."""
    with fresh_pg_database("alertbridge_fault") as url:
        try:
            yield url
        finally:
            local_postgres.ensure_running()
