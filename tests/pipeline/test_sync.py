"""Jira's webhook moves cases; the hub's own changes are not echoed; replays are dropped."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx2
from sqlalchemy import select

from alertbridge.api import create_app
from alertbridge.config import validate_config
from alertbridge.sandbox.jira import JiraSandboxSettings
from alertbridge.sandbox.jira import create_app as create_sandbox
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import cases, jobs
from conftest import vendor_json
from support.hub import drain
from support.recorder import ServerThread

SECRET = "whsec"


def signed(body: bytes, delivery: str) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature": f"sha256={digest}", "X-Atlassian-Webhook-Identifier": delivery, "Content-Type": "application/json"}


async def test_closing_in_jira_closes_the_case_and_hub_changes_are_not_echoed(tmp_path):
    sandbox = create_sandbox(JiraSandboxSettings())
    jira = sandbox.state.jira
    with ServerThread(sandbox) as jira_url:
        hub = _hub(tmp_path, jira_url, resolve_transition="Done")
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            for title in ("Human closes", "Source resolves"):
                await hub.inbox.put("gen", json.dumps({"id": title, "title": title}).encode())
            await drain(hub)

            # An analyst closes SOC-1 in Jira; Jira's webhook tells the hub.
            issue = jira.transition("SOC-1", "Done", "Done")
            body = json.dumps(_webhook(issue.key, "Done", "done", "Done")).encode()
            assert (await client.post("/hooks/jira-events", content=body, headers=signed(body, "d-1"))).status_code == 202
            replay = await client.post("/hooks/jira-events", content=body, headers=signed(body, "d-1"))
            assert replay.status_code == 200 and replay.json()["duplicate"] is True
            bad = await client.post("/hooks/jira-events", content=body, headers={**signed(body, "d-2"), "X-Hub-Signature": "sha256=00"})
            assert bad.status_code == 401
            await drain(hub)

            # The source resolves case 2: the hub transitions SOC-2 and Jira echoes that back.
            await hub.inbox.put("gen", json.dumps({"id": "Source resolves", "title": "Source resolves", "status": "resolved"}).encode())
            await drain(hub)
            jobs_before = await _count_jobs(hub)
            echo = json.dumps(_webhook("SOC-2", "Done", "done", "Done")).encode()
            assert (await client.post("/hooks/jira-events", content=echo, headers=signed(echo, "d-3"))).status_code == 202
            await drain(hub)
            assert await _count_jobs(hub) == jobs_before  # the echo caused nothing

            async with hub.store.read() as conn:
                rows = (await conn.execute(select(cases.c.id, cases.c.state, cases.c.ticket_status, cases.c.resolution).order_by(cases.c.id))).all()
        await hub.aclose()
    assert [tuple(r) for r in rows] == [(1, "closed", "Done", "Done"), (2, "closed", "Done", "Done")]


def _hub(tmp_path, jira_url: str, *, resolve_transition: str | None = None) -> Hub:
    """Build a hub on SQLite with an open generic source, Jira's signed webhook and one route to the Jira sandbox."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    route = {"name": "soc", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}"}
    return Hub(validate_config({
        "database": url,
        "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}, "jira-events": {"type": "jira", "sink": "jira", "secret": SECRET}},
        "sinks": {"jira": {"type": "jira", "flavor": "cloud", "url": jira_url, "email": "soc@example.com", "api_token": "sandbox-token"}},
        "routes": [route | ({"resolve_transition": resolve_transition} if resolve_transition else {})],
    }))


async def _count_jobs(hub) -> int:
    async with hub.store.read() as conn:
        return len((await conn.execute(select(jobs.c.id))).all())


def _webhook(key: str, status: str, category: str, resolution: str | None) -> dict:
    """Reshape the real resolved-changelog sample to point at one of our issues."""
    payload = vendor_json("jira/webhook-cloud-jira-issue_updated-resolved-changelog.json")
    payload["issue"]["key"] = key
    payload["issue"]["fields"]["status"]["name"] = status
    payload["issue"]["fields"]["status"]["statusCategory"]["key"] = category
    payload["issue"]["fields"]["resolution"] = {"name": resolution} if resolution else None
    return payload


async def test_a_change_delivered_after_a_later_one_does_not_undo_it(tmp_path):
    sandbox = create_sandbox(JiraSandboxSettings())
    with ServerThread(sandbox) as jira_url:
        hub = _hub(tmp_path, jira_url)
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            await hub.inbox.put("gen", json.dumps({"id": "late", "title": "Late delivery"}).encode())
            await drain(hub)

            async def deliver(delivery: str, status: str, category: str, resolution: str | None, timestamp: int) -> None:
                body = json.dumps(_webhook("SOC-1", status, category, resolution) | {"timestamp": timestamp}).encode()
                assert (await client.post("/hooks/jira-events", content=body, headers=signed(body, delivery))).status_code == 202
                await drain(hub)

            # The analyst started work (12:00:00) and then closed the ticket (12:00:05); the earlier change arrives last.
            await deliver("d-close", "Done", "done", "Done", 1_767_268_805_000)
            await deliver("d-start", "In Progress", "indeterminate", None, 1_767_268_800_000)
            async with hub.store.read() as conn:
                after_late = tuple((await conn.execute(select(cases.c.state, cases.c.ticket_status))).one())
            # A reopen made after the close is applied.
            await deliver("d-reopen", "In Progress", "indeterminate", None, 1_767_268_810_000)
            async with hub.store.read() as conn:
                after_reopen = tuple((await conn.execute(select(cases.c.state, cases.c.ticket_status))).one())
        await hub.aclose()
    assert after_late == ("closed", "Done")
    assert after_reopen == ("open", "In Progress")
