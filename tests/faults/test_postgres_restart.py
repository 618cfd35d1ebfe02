"""Restart PostgreSQL under a scale-out hub: the processes reconnect on their own and finish with the same result.

One `alertbridge serve` (intake, processor, workers) and two `alertbridge worker` processes share a fresh
PostgreSQL server of the test's own (DESIGN.md §3; tests/faults/conftest.py makes it with initdb, so the restart
cuts no other test's connections). Alerts flow over HTTP; once a third are acknowledged the test restarts the
server (`pg_ctl restart -m fast`: a fast shutdown that cuts every connection, then a start), while the alerts
keep coming — intake answers 503 while the database is away, and the sender retries those.

Then, with no operator action: every process is still running, both workers took their node lock again on a
new database session (they reconnected, not just survived), jobs finished after the restart, and `harness.check_outcome` holds — nothing acknowledged
is lost, one issue per case, no dead jobs. The `local_postgres` fixture stops the private server when the test
ends, pass or fail.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import httpx2
import pytest
import sqlalchemy
from sqlalchemy import func, select

from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.store.tables import jobs
from faults.harness import Sender, check_outcome, healthy_or_dead, plan, sync_url, wait_drained, write_config
from support.procs import ProcGroup, free_port, procs, wait_until  # noqa: F401 - procs is a fixture
from support.recorder import ServerThread

N_ALERTS, N_CASES = 200, 30
PACE = 0.03
DRAIN_TIMEOUT = 90.0
RETAKEN = "took this node's name again on a new database session"


@pytest.mark.slow
@pytest.mark.postgres
async def test_a_postgres_restart_mid_run_is_ridden_out(tmp_path: Path, fresh_pg_db: str, local_postgres, procs: ProcGroup):
    alerts = plan(N_ALERTS, N_CASES, seed=7)
    sandbox = create_app(JiraSandboxSettings(search_lag_seconds=0.5, latency_ms=20))
    with ServerThread(sandbox) as jira_url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = write_config(tmp_path / "hub.json", database=fresh_pg_db, jira_url=jira_url, port=port,
                              workers=3, lease="3s", search_lag="1s",
                              retry={"max_attempts": 30, "base_delay": "0.1s", "max_delay": "1s"})
        serve = procs.start("serve", "serve", "--config", str(config))
        sender = Sender(base)
        restarted = asyncio.Event()
        restart_log: list[str] = []
        back_at: list[float] = []

        async def restart_when(acked: int) -> None:
            if acked == N_ALERTS // 3:
                result = await asyncio.to_thread(local_postgres.restart)
                back_at.append(time.time())
                restart_log.append(f"restart: exit {result.returncode} {result.stdout.strip()} {result.stderr.strip()}")
                restarted.set()

        engine = sqlalchemy.create_engine(sync_url(fresh_pg_db), poolclass=sqlalchemy.NullPool)
        try:
            async with httpx2.AsyncClient() as client:
                assert await healthy_or_dead(client, base, serve, procs), procs.logs()  # serve ran the migrations
                workers = [procs.start(f"worker{i}", "worker", "--config", str(config)) for i in (1, 2)]
                # A worker that cannot reach the database as it starts exits at once (store/preflight.py), so the
                # restart must find both running, not still starting.
                for proc in workers:
                    await asyncio.to_thread(wait_until, lambda proc=proc: "alertbridge started" in proc.tail(200) or not proc.alive(),
                                            timeout=60, what=f"{proc.name} to start", group=procs)
                    assert proc.alive(), procs.logs()
                await sender.send_all(client, alerts, until=time.monotonic() + 90, pace=PACE, on_ack=restart_when)
                await asyncio.wait_for(restarted.wait(), 90)
            assert back_at, restart_log
            await wait_drained(engine, procs, DRAIN_TIMEOUT)
            for proc in [serve, *workers]:
                assert proc.alive(), f"{proc.name} died instead of reconnecting\n{procs.logs()}"
            with engine.connect() as conn:
                after = dict(conn.execute(select(jobs.c.worker, func.count()).where(jobs.c.finished_at > back_at[0])
                                          .group_by(jobs.c.worker)).all())
            # Which process runs the jobs after the restart is the scheduler's business (serve wakes its own runners at
            # once, the workers poll), so each worker's reconnection is proven by its node lock, taken again on a new
            # session (store/leases.py), and the work by the jobs finished after the restart across all processes.
            for proc in workers:
                await asyncio.to_thread(wait_until, lambda proc=proc: RETAKEN in proc.tail(400) or not proc.alive(),
                                        timeout=60, what=f"{proc.name} to reconnect", group=procs)
                assert RETAKEN in proc.tail(400), f"{proc.name} did not reconnect\n{procs.logs()}"
            assert sum(after.values()), f"no job finished after the restart: {after}"
            for proc in [serve, *workers]:
                assert proc.stop() in (0, -signal.SIGTERM), procs.logs()
            summary = check_outcome(engine, sandbox.state.jira, sender=sender, sent=alerts)
        finally:
            engine.dispose()
    print(f"{restart_log}; jobs finished after it by process {after}; {summary}", file=sys.stderr)
