"""Every failed ticket is recoverable by the operator (issue 9), against the Jira sandbox in-process:

- dead create → fix the route → replay → the ticket has the fixed fields, and `dlq show` names the revisions;
- dead create → discard → the case's jobs are held, not dead-lettered → the next alert gives it a ticket, and
  the held comment lands on that ticket;
- `case list --no-ticket` and `case retry` (CLI) and `POST /api/cases/{id}/retry` do the same by hand.
"""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from alertbridge.api import create_app as hub_app
from alertbridge.web import queries
from alertbridge.cli import app as cli
from alertbridge.config import validate_config
from alertbridge.connectors.jira import JiraSink
from alertbridge.jobs import queue
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import cases, jobs
from support.hub import drain

BAD = {"Incident Category": "Privilege Escalation"}  # not one of the sandbox's options
GOOD = {"Incident Category": "Intrusion"}
ADMIN = "admin-token"


def hub_config(db: str, fields: dict[str, str]) -> dict:
    return {
        "database": db, "search_lag": "0s", "admin_token": ADMIN,
        "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
        "sinks": {"jira": {"type": "jira", "url": "http://jira.test", "email": "soc@example.com", "api_token": "sandbox-token"}},
        "routes": [{"name": "soc", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}", "comment_every": 0,
                    "fields": fields}],
    }


def jira_hub(db: str, jira_app, fields: dict[str, str]) -> Hub:
    """A hub on `db` filing in the sandbox app in-process: a new one per config, as a restart after an edit would make."""
    config = validate_config(hub_config(db, fields))
    hub = Hub(config)
    hub.sinks["jira"] = JiraSink("jira", config.sinks["jira"], transport=httpx2.ASGITransport(app=jira_app))
    return hub


async def send(hub: Hub, *titles: str) -> list[str]:
    for n, title in enumerate(titles):
        await hub.inbox.put("gen", json.dumps({"id": f"{title}-{n}-{id(hub)}", "title": title, "severity": "high"}).encode())
    return await drain(hub)


async def category(hub: Hub, key: str) -> str:
    issue = (await hub.sinks["jira"].api.call("get", "GET", f"issue/{key}")).json()
    return issue["fields"]["customfield_10051"]["value"]


@pytest.fixture
def db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    return url


async def show_job(hub, job_id: int) -> dict:
    """Show a job as `dlq show` and /api/dlq/{id} do."""
    async with hub.store.read() as conn:
        return await queries.show_job(conn, job_id, hub.config)


async def test_a_dead_create_replayed_after_the_route_is_fixed_files_the_fixed_ticket(db):
    jira_app = create_app(JiraSandboxSettings())
    broken = jira_hub(db, jira_app, BAD)
    try:
        assert await send(broken, "Privilege escalation on db-1") == ["create_ticket:dead"]
        async with broken.store.read() as conn:
            (dead,) = await queue.dead_jobs(conn)
        assert "'Privilege Escalation' is not an allowed value of field 'Incident Category'" in dead["last_error"]
        first = (await show_job(broken, dead["id"]))["rendered_by"]
        assert first["route"] == "soc" and first["revision"] == first["current_revision"] and not first["changed_since"]
    finally:
        await broken.aclose()
    assert not jira_app.state.jira.issues

    fixed = jira_hub(db, jira_app, GOOD)  # the operator fixed the route and restarted
    try:
        before = (await show_job(fixed, dead["id"]))["rendered_by"]
        assert before["revision"] == first["revision"] and before["current_revision"] != first["revision"]
        assert before["changed_since"]  # dlq show says a replay renders with another config than the one that failed
        async with fixed.store.tx() as conn:
            assert await queue.replay(conn, dead["id"]) == 1
        assert await drain(fixed) == ["create_ticket:done"]
        (issue,) = jira_app.state.jira.issues.values()
        assert await category(fixed, issue.key) == "Intrusion"
        after = (await show_job(fixed, dead["id"]))["rendered_by"]
        assert after["revision"] == after["current_revision"] == before["current_revision"]
    finally:
        await fixed.aclose()


async def test_after_a_discarded_create_jobs_are_held_and_the_next_alert_gets_the_case_a_ticket(db):
    jira_app = create_app(JiraSandboxSettings())
    broken = jira_hub(db, jira_app, BAD)
    try:
        assert await send(broken, "Beaconing") == ["create_ticket:dead"]
        assert await send(broken, "Beaconing") == []  # the repeat's comment waits behind the dead create
        async with broken.store.tx() as conn:
            (dead,) = await queue.dead_jobs(conn)
            assert await queue.discard(conn, dead["id"]) == 1
        # Nothing is dead-lettered for want of a ticket: the comment is held until the case has one.
        assert await drain(broken) == ["comment_repeats:held"]
    finally:
        await broken.aclose()

    fixed = jira_hub(db, jira_app, GOOD)
    try:
        assert await send(fixed, "Beaconing") == ["create_ticket:done", "comment_repeats:done", "comment_repeats:done"]
        async with fixed.store.read() as conn:
            case = (await conn.execute(select(cases))).mappings().one()
            states = (await conn.execute(select(jobs.c.kind, jobs.c.state).order_by(jobs.c.id))).all()
        (issue,) = jira_app.state.jira.issues.values()
        assert case["ticket_key"] == issue.key and case["reference"] in issue.labels
        assert await category(fixed, issue.key) == "Intrusion"
        assert [c["body"] for c in issue.comments] and len(issue.comments) == 1  # both repeats, counted in one comment
        assert ("create_ticket", "discarded") in states and all(state in ("done", "discarded") for _, state in states)
    finally:
        await fixed.aclose()


async def test_case_retry_from_the_cli_and_the_admin_api(db, tmp_path):
    jira_app = create_app(JiraSandboxSettings())
    broken = jira_hub(db, jira_app, BAD)
    try:
        await send(broken, "Ransomware", "Phish")  # one bulk create of two
        async with broken.store.tx() as conn:
            dead = await queue.dead_jobs(conn)
            assert [job["kind"] for job in dead] == ["create_ticket", "create_ticket"]
            for job in dead:
                await queue.discard(conn, job["id"])
    finally:
        await broken.aclose()

    config = tmp_path / "hub.json"
    config.write_text(json.dumps(hub_config(db, GOOD)))

    def invoke(*args: str):  # in a thread: the CLI runs its own event loop
        return asyncio.to_thread(CliRunner().invoke, cli, [*args, "-c", str(config)])

    listed = await invoke("case", "list", "--no-ticket")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert lines[-1] == "2 case(s) without a ticket"
    assert lines[0].startswith("2\topen\talerts=1\theld=0\tPhish\tcreate job 2 discarded: 'Privilege Escalation'")
    retried = await invoke("case", "retry", "1")
    assert (retried.exit_code, retried.output.strip()) == (0, "case 1: queued a fresh create; its ticket is rendered from the current config")
    again = await invoke("case", "retry", "1")
    assert (again.exit_code, again.output.strip()) == (1, "case 1 has no ticket yet, but its create is already queued")
    assert (await invoke("case", "retry", "99")).output.strip() == "no case 99"

    fixed = jira_hub(db, jira_app, GOOD)
    try:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=hub_app(fixed, run_loops=False)), base_url="http://hub") as api:
            auth = {"Authorization": f"Bearer {ADMIN}"}
            answer = await api.post("/api/cases/2/retry", headers=auth)
            assert (answer.status_code, answer.json()) == (200, {"case": 2, "replayed": 0, "created": True})
            await drain(fixed)
            answer = await api.post("/api/cases/2/retry", headers=auth)
            assert answer.status_code == 409 and "has its ticket SOC-" in answer.json()["detail"]
            assert (await api.post("/api/cases/3/retry", headers=auth)).status_code == 404
            assert (await api.get("/api/cases", params={"no_ticket": True}, headers=auth)).json() == []
            stats = (await api.get("/api/stats", headers=auth)).json()
            assert stats["instance"] == await fixed.job_context.instance() and stats["jobs_held"] == 0
    finally:
        await fixed.aclose()
    assert len(jira_app.state.jira.issues) == 2
