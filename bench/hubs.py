"""alertbridge under test: its config, its processes (SQLite or PostgreSQL, one or more `serve`), drain and stats."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2

from measure import parse_metrics
from procs import Processes, free_port, hub_command, proc_usage, progress, wait_for

HOOK_TOKEN, ADMIN_TOKEN = "bench-hook-token", "bench-admin-token"
HOOK_PATH = "/hooks/generic"
HOOK_HEADERS = {"Authorization": f"Bearer {HOOK_TOKEN}"}
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class HubSetup:
    """How the hub of one phase is configured and laid out in processes."""

    workers: int = 64  # job workers per process: the hub's own default (config.py `workers`)
    sink_concurrency: int = 16  # Jira calls in flight per process
    comment_every: float = 60.0
    postgres: bool = False
    serves: int = 1  # `serve` processes (PostgreSQL only for more than one)
    worker_processes: int = 0  # extra `alertbridge worker` processes
    rate_limit: float | None = None  # the sink's own `rate_limit` (calls/s), None: not set
    tree: Path | None = None  # run another checkout's src/ (before/after comparisons)


def hub_config(path: Path, setup: HubSetup, database: str, port: int, sandbox_url: str) -> None:
    """Write the hub's config for one phase."""
    rate_limit = f"\n    rate_limit: {setup.rate_limit:g}/s" if setup.rate_limit else ""
    path.write_text(f"""\
database: {database}
listen: 127.0.0.1:{port}
admin_token: {ADMIN_TOKEN}
workers: {setup.workers}
search_lag: 2s
sources:
  generic:
    type: generic
    auth: {{mode: bearer, token: {HOOK_TOKEN}}}
sinks:
  jira:
    type: jira
    flavor: cloud
    url: {sandbox_url}
    email: soc@example.com
    api_token: sandbox-token
    max_concurrency: {setup.sink_concurrency}{rate_limit}
routes:
  - name: bench
    match: {{sources: [generic]}}
    sink: jira
    project: SOC
    issue_type: Alert
    summary: "{{{{ alert.title }}}}"
    group_by: "{{{{ alert.title }}}}"
    labels: [bench]
    comment_every: {setup.comment_every:g}s
""")


def accepts_rate_limit(logs: Path, tree: Path | None) -> tuple[bool, str]:
    """Ask `alertbridge check` whether the tree under test knows a sink's `rate_limit`; return (accepted, its answer)."""
    config = logs / "rate-limit-check.yaml"
    hub_config(config, HubSetup(rate_limit=10), f"sqlite:///{logs / 'rate-limit-check.db'}", free_port(), "http://127.0.0.1:9")
    args, env = hub_command(tree, "check", "--config", str(config))
    done = subprocess.run(args, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    answer = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, " ".join(line.strip() for line in answer[-3:])


def create_database(name: str) -> str:
    """Create a fresh PostgreSQL database and return its URL."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def node_names(url: str) -> int:
    """Return how many node names (store/leases.py) the hub's processes on the PostgreSQL database `url` hold."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM leases WHERE name LIKE 'node:%'").fetchone()[0]


def jobs_overdue(url: str, late: float) -> int:
    """Return how many jobs on the database `url` have waited more than `late` seconds past their due time."""
    sql = "SELECT count(*) FROM jobs WHERE state = 'pending' AND run_after < ?"
    if url.startswith("sqlite:///"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True, timeout=5)) as conn:
            return conn.execute(sql, (time.time() - late,)).fetchone()[0]
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql.replace("?", "%s"), (time.time() - late,)).fetchone()[0]


def drop_database(name: str) -> None:
    """Drop a benchmark database."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Hub:
    """The hub's processes for one phase: `async with Hub(...) as hub`, then load `hub.urls`; stopped on exit."""

    def __init__(self, procs: Processes, sandbox_url: str, phase: str, setup: HubSetup):
        self.procs, self.sandbox_url, self.phase, self.setup = procs, sandbox_url, phase, setup
        self.db_name = f"alertbridge_bench_{os.getpid()}_{phase.replace('-', '_')}"
        self.database = ""
        self.names: list[str] = []
        self.configs: dict[str, Path] = {}
        self.urls: list[str] = []
        self.client: httpx2.AsyncClient | None = None
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def __aenter__(self) -> Hub:
        setup = self.setup
        self.database = create_database(self.db_name) if setup.postgres else f"sqlite:///{self.procs.logs / f'{self.phase}.db'}"
        for number in range(setup.serves):
            name = f"{self.phase}-serve" + (str(number + 1) if setup.serves > 1 else "")
            port = free_port()
            self.configs[name] = self.procs.logs / f"{name}.yaml"
            hub_config(self.configs[name], setup, self.database, port, self.sandbox_url)
            self.urls.append(f"http://127.0.0.1:{port}")
            await self.start(name, "serve")
        self.client = httpx2.AsyncClient(base_url=self.urls[0], timeout=30)
        for number in range(setup.worker_processes):
            name = f"{self.phase}-worker{number + 1}"
            self.configs[name] = self.configs[self.names[0]]
            await self.start(name, "worker")
        if setup.worker_processes:
            # A worker's start-up (imports, config, schema check: ~2 s of CPU on a slow machine) is not work per alert:
            # the load begins once every process holds its node name, as it begins once a serve answers /healthz.
            await wait_for(self._all_started, f"{setup.worker_processes} workers to take their node names", 90)
        return self

    async def _all_started(self) -> bool:
        """Tell whether every process of the hub holds its node name (raise if one exited instead)."""
        for name in self.names:
            if self.procs.running[name].poll() is not None:
                raise RuntimeError(f"{name} exited while starting: {self.procs.tail(name)}")
        return node_names(self.database) >= len(self.names)

    async def start(self, name: str, command: str) -> None:
        """Start (or restart) one of the hub's processes; for `serve`, wait until /healthz answers."""
        args, env = hub_command(self.setup.tree, command, "--config", str(self.configs[name]))
        self.procs.start(name, args, env)
        if name not in self.names:
            self.names.append(name)
        if command == "serve":
            url = self.urls[[n for n in self.names if "-serve" in n].index(name)]
            async with httpx2.AsyncClient(base_url=url, timeout=10) as probe:
                await wait_for(lambda: _healthy(probe), f"{name} ({self.procs.tail(name)})", 90)

    async def __aexit__(self, *exc) -> None:
        if self.client is not None:
            await self.client.aclose()
        self.procs.stop(*self.names)
        if self.setup.postgres:
            drop_database(self.db_name)

    @property
    def pids(self) -> list[int]:
        """Return the process ids of the hub's running processes."""
        return [self.procs.running[name].pid for name in self.names if name in self.procs.running]

    def usage(self) -> dict[str, tuple[float, int]]:
        """Return (CPU seconds, peak RSS KiB) of each running process."""
        return {name: proc_usage(self.procs.running[name].pid) for name in self.names if name in self.procs.running}

    async def stats(self) -> dict:
        """Return /api/stats of the first `serve`."""
        assert self.client is not None
        return (await self.client.get("/api/stats", headers=self.admin)).json()

    async def metrics(self) -> dict:
        """Return the sink-call and 429 counters of the first `serve`."""
        assert self.client is not None
        return parse_metrics((await self.client.get("/metrics")).text)

    async def drain(self, timeout: float, started: float, late: float | None = None) -> tuple[bool, dict, float]:
        """Wait until the inbox is empty and no job is due or running; return (drained, last stats, seconds since `started`).

        With `late`, jobs that fall due while the bench waits are not backlog as long as each runs within `late`
        seconds of its due time: drained is then an empty inbox and no job waiting longer than that.
        """
        deadline = time.monotonic() + timeout
        stats: dict = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx2.TransportError):
                stats = await self.stats()
                # Repeat comments scheduled for later (comment_every) are not waited for: nothing is due, nothing runs.
                idle = stats["jobs_due"] == 0 and stats["jobs_running"] == 0
                if stats["inbox_pending"] == 0 and (idle or (late is not None and jobs_overdue(self.database, late) == 0)):
                    return True, stats, time.monotonic() - started
            await asyncio.sleep(0.5)
        progress(f"  NOT drained after {timeout:.0f}s: {stats}")
        return False, stats, time.monotonic() - started


async def _healthy(client: httpx2.AsyncClient) -> bool:
    return (await client.get("/healthz")).status_code == 200
