"""Graceful shutdown: SIGTERM answers what it accepted, finishes what it can, and hands the rest back at once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import jobs
from support.procs import ProcGroup, free_port, procs, wait_healthy  # noqa: F401 - procs is a fixture


class HangingServer:
    """A TCP server that reads a request and never answers (a vendor API that hangs)."""

    def __init__(self) -> None:
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            await asyncio.Event().wait()  # until the server closes

        self.server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()


async def test_a_job_still_running_after_the_grace_is_released_not_left_leased(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    async with HangingServer() as cases_api:
        config = validate_config({
            "database": url, "shutdown_grace": 0.2, "lease": 300, "workers": 1,
            "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
            "sinks": {"cases": {"type": "http", "url": cases_api, "timeout": 120}},
            "routes": [{"name": "all", "sink": "cases"}],
        })
        hub = Hub(config, poll_interval=0.05)
        hub.start()
        await hub.inbox.put("gen", b'{"title": "beacon", "severity": "high"}')
        for _ in range(400):  # until the create is in flight (bounded; asserts nothing about time)
            async with hub.store.read() as conn:
                running = (await conn.execute(select(jobs.c.state).where(jobs.c.kind == "create_ticket"))).scalar()
            if running == "running":
                break
            await asyncio.sleep(0.05)
        assert running == "running"
        await asyncio.wait_for(hub.aclose(), 60)  # a hang guard only: the grace is 0.2 s, the call's timeout 120 s

    store = sqlite3.connect(tmp_path / "hub.db")
    state, lease, attempts = store.execute("SELECT state, lease_until, attempts FROM jobs WHERE kind='create_ticket'").fetchone()
    # Back in the queue for another worker right now: not leased for 300 s, and the cut-off attempt not counted.
    assert (state, lease, attempts) == ("pending", None, 0)


@pytest.mark.slow
async def test_sigterm_answers_every_accepted_request_and_exits_cleanly(tmp_path: Path, procs: ProcGroup):
    port = free_port()
    config = tmp_path / "hub.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'hub.db'}\nlisten: 127.0.0.1:{port}\nshutdown_grace: 5s\n"
        "sources:\n  gen: {type: generic, auth: {mode: bearer, token: t}}\n"
        "sinks:\n  cases: {type: http, url: 'http://127.0.0.1:9'}\n"
        "routes:\n  - {name: all, sink: cases}\n"
    )
    base = f"http://127.0.0.1:{port}"
    server = procs.start("serve", "serve", "--config", str(config))
    async with httpx2.AsyncClient(headers={"Authorization": "Bearer t"}, timeout=10) as client:
        await wait_healthy(client, base, server, procs)

        async def send(i: int) -> int | None:
            try:
                response = await client.post(f"{base}/hooks/gen", json={"id": f"a{i}", "title": f"alert {i}"})
            except httpx2.TransportError:
                return None  # refused after the listener closed: the sender retries, nothing was promised
            return response.json()["id"] if response.status_code == 202 else None

        first = await asyncio.gather(*(send(i) for i in range(40)))
        later = [asyncio.create_task(send(i)) for i in range(40, 120)]
        server.popen.send_signal(signal.SIGTERM)
        accepted = [i for i in [*first, *await asyncio.gather(*later)] if i is not None]
    code = server.wait(60)
    # uvicorn re-raises SIGTERM once its shutdown is complete; systemd and Docker count that as a clean stop.
    assert code in (0, -signal.SIGTERM), f"exit {code}: {server.tail()}"
    assert "Application shutdown complete." in server.tail()
    stored = {row[0] for row in sqlite3.connect(tmp_path / "hub.db").execute("SELECT id FROM inbox")}
    assert len(accepted) >= 40 and set(accepted) <= stored  # every 202 is committed, none lost by the shutdown


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_sigkilled_serve_runs_its_cut_jobs_as_soon_as_it_restarts(tmp_path: Path, procs: ProcGroup, backend: str):
    import sqlalchemy
    from conftest import fresh_pg_database
    from support.procs import wait_until
    from support.recorder import Recorder, ServerThread

    recorder = Recorder()
    hold = recorder.hold_next_create()  # the create is stored, then its answer kept back: the job is mid-call
    port = free_port()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_pg_database()) if backend == "postgres" else f"sqlite:///{tmp_path / 'hub.db'}"
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"), poolclass=sqlalchemy.NullPool)
        stack.callback(engine.dispose)
        sink_url = stack.enter_context(ServerThread(recorder.app()))
        config = tmp_path / "hub.yaml"
        # An hour-long lease: only the restart's hand-back can explain the cut job running again within the test.
        config.write_text(
            f"database: {url}\nlisten: 127.0.0.1:{port}\nlease: 1h\nsearch_lag: 0.5s\n"
            "sources:\n  gen: {type: generic, auth: {mode: bearer, token: t}}\n"
            f"sinks:\n  cases: {{type: http, url: '{sink_url}', timeout: 60}}\n"
            "routes:\n  - {name: all, sink: cases}\n"
        )

        def healthy() -> bool:
            try:
                return httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx2.TransportError:
                return False

        def create_job() -> tuple[str, int] | None:
            with engine.connect() as conn:
                row = conn.execute(select(jobs.c.state, jobs.c.attempts).where(jobs.c.kind == "create_ticket")).first()
            return tuple(row) if row is not None else None

        first = procs.start("serve", "serve", "--config", str(config))
        wait_until(healthy, timeout=60, what="the first serve healthy", group=procs)
        response = httpx2.post(f"http://127.0.0.1:{port}/hooks/gen", json={"title": "beacon", "severity": "high"},
                               headers={"Authorization": "Bearer t"}, timeout=10)
        assert response.status_code == 202, response.text
        wait_until(lambda: hold.stored.is_set(), timeout=60, what="the create inside the sink", group=procs)
        assert create_job() == ("running", 1)
        first.kill()
        recorder.disarm(hold)  # the answer goes to a dead connection

        second = procs.start("serve", "serve", "--config", str(config))
        wait_until(lambda: create_job() == ("done", 2), timeout=60, what="the cut create done by the restarted serve",
                   group=procs, status=create_job)
        second.stop()

    assert "took over from this node's previous boot" in second.tail(200)
    assert [len(keys) for keys in recorder.by_reference().values()] == [1]  # found by its label, not made twice
