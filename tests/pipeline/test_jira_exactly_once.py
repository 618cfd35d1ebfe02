"""Exactly one Jira issue per case, against the sandbox: a crash mid-create, and a faulty Jira."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time

import pytest
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.jobs.queue import dead_jobs
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import cases
from support.procs import free_port, procs, wait_until  # noqa: F401 - procs is a fixture
from support.recorder import ServerThread

JIRA = {"type": "jira", "flavor": "cloud", "email": "soc@example.com", "api_token": "sandbox-token"}


class HoldCreates:
    """Let the sandbox store a created issue but hold its answer back while `hold` is set."""

    def __init__(self, app):
        self.app = app
        self.hold = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/issue") and self.hold.is_set():
            async def late(message):
                if message["type"] == "http.response.start":
                    while self.hold.is_set():
                        await asyncio.sleep(0.05)
                await send(message)
            return await self.app(scope, receive, late)
        return await self.app(scope, receive, send)


@pytest.mark.slow
def test_kill_between_the_create_reaching_jira_and_the_commit_leaves_one_issue(tmp_path, procs):
    sandbox = create_app(JiraSandboxSettings(search_lag_seconds=1.0))
    state = sandbox.state.jira
    held = HoldCreates(sandbox)
    held.hold.set()
    with ServerThread(held) as jira_url:
        port = free_port()
        db = tmp_path / "hub.db"
        config = tmp_path / "hub.yaml"
        config.write_text(json.dumps({
            "database": f"sqlite:///{db}", "listen": f"127.0.0.1:{port}", "search_lag": "1.5s", "lease": "5s",
            "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
            "sinks": {"jira": {**JIRA, "url": jira_url}},
            "routes": [{"name": "soc", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}"}],
        }))
        hub = procs.start("serve-1", "serve", "--config", str(config))
        import httpx2

        wait_until(lambda: _healthy(port), timeout=30, what="hub", group=procs)
        assert httpx2.post(f"http://127.0.0.1:{port}/hooks/gen", json={"id": "1", "title": "Ransomware"}).status_code == 202
        ref = wait_until(lambda: _reference(db), timeout=30, what="the create claim", group=procs)
        wait_until(lambda: state.issues_with_label(ref), timeout=30, what="the create to reach Jira", group=procs)
        hub.kill()  # Jira has the issue; the hub never heard back and never committed the key
        held.hold.clear()
        procs.start("serve-2", "serve", "--config", str(config))
        wait_until(lambda: _ticket_key(db), timeout=30, what="the case to record its ticket", group=procs)
    assert [i.key for i in state.issues_with_label(ref)] == ["SOC-1"]
    assert len(state.issues) == 1
    assert _ticket_key(db) == "SOC-1"


def _healthy(port: int) -> bool:
    import httpx2

    try:
        return httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx2.TransportError:
        return False


def _ticket_key(db) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("select ticket_key from cases where id = 1").fetchone()
    return row[0] if row else None


def _reference(db) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("select reference from cases where id = 1").fetchone()
    return row[0] if row else None


@pytest.mark.slow
async def test_under_429s_5xx_and_timeouts_every_case_gets_exactly_one_issue(tmp_path):
    settings = JiraSandboxSettings(fail_rate=0.3, hang_seconds=1.5, search_lag_seconds=0.5, seed=11)
    sandbox = create_app(settings)
    state = sandbox.state.jira
    with ServerThread(sandbox) as jira_url:
        url = f"sqlite:///{tmp_path / 'hub.db'}"
        upgrade(url)
        hub = Hub(validate_config({
            "database": url, "workers": 8, "search_lag": "0.8s",
            "retry": {"max_attempts": 20, "base_delay": "50ms", "max_delay": "1s"},
            "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
            "sinks": {"jira": {**JIRA, "url": jira_url, "timeout": 0.5}},
            "routes": [{"name": "soc", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}",
                        "fields": {"Incident Severity": "{{ alert.severity.value|title }}"}}],
        }), poll_interval=0.05)
        hub.start()
        for i in range(240):
            await hub.inbox.put("gen", json.dumps({"id": str(i), "title": f"case-{i % 40}", "severity": "high"}).encode())
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            stats = await hub.stats()
            async with hub.store.read() as conn:
                without_ticket = len((await conn.execute(select(cases.c.id).where(cases.c.ticket_key.is_(None)))).all())
            # Throttled repeat comments stay scheduled for minutes; retries must be done.
            if stats["inbox_pending"] == 0 and not without_ticket and stats["jobs_due"] == 0 and stats["jobs_running"] == 0:
                break
            await asyncio.sleep(0.2)
        async with hub.store.read() as conn:
            rows = (await conn.execute(select(cases.c.reference, cases.c.ticket_key))).all()
            dead = await dead_jobs(conn)
        await hub.aclose()
    assert stats["jobs_dead"] == 0, (stats, [(d["kind"], d["last_error"]) for d in dead])
    assert len(rows) == 40
    failures = [c for c in state.calls if c[2] >= 429]
    assert failures, "the sandbox injected no faults; the test proves nothing"
    for ref, ticket_key in rows:
        issues = [i.key for i in state.issues_with_label(ref)]
        assert issues == [ticket_key], (ref, issues)
    assert len(state.issues) == 40
