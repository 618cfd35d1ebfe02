"""kill -9 the hub between every notification's call and its commit: each notifier still hears each event once, in order.

`alertbridge serve` runs as a real subprocess on SQLite with
``ALERTBRIDGE_FAILPOINTS`` set so that it SIGKILLs itself right after the first
attempt of any message was answered (Slack, Teams, PagerDuty), right after the
review page was written, and right after a comment went on the ticket — before
any of it is recorded. A supervisor restarts it on the same database each time.
The sandbox (Jira, Slack, Teams, PagerDuty, Confluence) runs in a thread of
this process and sends Jira's webhooks to the hub. A case lives through
opened → repeated → raised to Critical → started in Jira → closed in Jira, and
then: Slack has one thread with each event once, Teams each card once,
PagerDuty one incident with one dedup_key, Confluence one page, the Jira issue
one playbook comment, one review comment and one remote link; no job is dead.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import httpx2
import pytest

from alertbridge.sandbox import pagerduty, slack, teams
from alertbridge.sandbox.jira import JiraSandboxSettings
from alertbridge.sandbox.server import create_sandbox
from support.notify_hub import emulator
from support.procs import ProcGroup, free_port, procs, wait_healthy  # noqa: F401 - procs is a fixture
from support.recorder import ServerThread

TOKEN, SECRET = "crash-token", "crash-webhook-secret"
KILLS = "notify.after_call=kill;review.after_page=kill;comment.after_call=kill"
STEP_TIMEOUT = 90.0
ALERT = {"id": "a1", "title": "Credential dumping on ws-042", "severity": "high", "category": "credential-access",
         "description": "LSASS memory read by an unsigned process.", "hosts": ["ws-042"]}


def config(db: Path, port: int, sandbox: str) -> str:
    return json.dumps({
        "database": f"sqlite:///{db}", "listen": f"127.0.0.1:{port}", "workers": 2, "lease": "3s",
        "retry": {"base_delay": "0.2s", "max_delay": "2s"}, "public_url": "https://alertbridge.example.com",
        "sources": {"gen": {"type": "generic", "auth": {"mode": "bearer", "token": TOKEN}},
                    "jira-events": {"type": "jira", "secret": SECRET, "sink": "jira"}},
        "sinks": {"jira": {"type": "jira", "url": sandbox, "email": "soc@example.com", "api_token": "sandbox-token"}},
        "notifiers": {
            "slack": {"type": "slack", "bot_token": slack.TOKEN, "channel": "C0SOCALERTS", "api_url": f"{sandbox}/slack/api"},
            "teams": {"type": "teams", "webhook_url": f"{sandbox}/teams/workflows/{teams.WORKFLOW}?sig={teams.SIGNATURE}"},
            "pagerduty": {"type": "pagerduty", "routing_key": next(iter(pagerduty.SERVICES)), "url": f"{sandbox}/pagerduty"},
        },
        "reviews": {"confluence": {"type": "confluence", "url": f"{sandbox}/confluence/wiki", "email": "soc@example.com",
                                   "api_token": "sandbox-token", "space": "SOC"}},
        "playbooks": [{"category": "credential-access", "url": "https://wiki.example.com/playbooks/credential-access"}],
        "routes": [{"name": "edr", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}", "comment_every": 0,
                    "notify": ["slack", "teams", "pagerduty"], "review": "confluence"}],
    })


@pytest.mark.slow
async def test_every_notification_survives_a_kill_between_its_call_and_its_commit(tmp_path: Path, procs: ProcGroup):
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    app = create_sandbox(JiraSandboxSettings(webhook_url=f"{hub_url}/hooks/jira-events", webhook_secret=SECRET))
    with ServerThread(app) as sandbox:
        db, path = tmp_path / "hub.db", tmp_path / "hub.json"
        path.write_text(config(db, port, sandbox))
        kills: list[float] = []
        stopping = asyncio.Event()
        async with httpx2.AsyncClient(timeout=10) as client:
            server = procs.start("serve", "serve", "--config", str(path), env={"ALERTBRIDGE_FAILPOINTS": KILLS})
            await wait_healthy(client, hub_url, server, procs)

            async def supervise() -> None:
                nonlocal server
                while not stopping.is_set():
                    if not server.alive():
                        code = server.wait(10)
                        if code != -9:
                            procs.fail(f"the hub exited with {code}, not by its own SIGKILL")
                        kills.append(time.time())
                        # Not waited for: an incarnation may die again on a pending send before it answers /healthz.
                        server = procs.start("serve", "serve", "--config", str(path), env={"ALERTBRIDGE_FAILPOINTS": KILLS})
                    await asyncio.sleep(0.05)

            async def until(what: str, check) -> None:
                deadline = time.monotonic() + STEP_TIMEOUT
                while not check():
                    if time.monotonic() > deadline:
                        procs.fail(f"timed out waiting for {what} ({len(kills)} kills so far)")
                    await asyncio.sleep(0.1)

            async def send(alert: dict) -> None:
                deadline = time.monotonic() + STEP_TIMEOUT
                while time.monotonic() < deadline:
                    try:
                        answer = await client.post(f"{hub_url}/hooks/gen", json=alert, headers={"Authorization": f"Bearer {TOKEN}"})
                        if answer.status_code == 202:
                            return
                    except httpx2.TransportError:
                        pass  # down between a kill and its restart: send again
                    await asyncio.sleep(0.1)
                procs.fail(f"alert {alert['id']} not accepted within {STEP_TIMEOUT}s ({len(kills)} kills so far)")

            async def settle(what: str) -> None:
                """Wait until the queue is drained, through any kills on the way (the analyst acts on a quiet hub, as
                the sandbox's webhook gives up after a few seconds of a hub that is down)."""
                deadline = time.monotonic() + STEP_TIMEOUT
                while True:
                    try:
                        stats = (await client.get(f"{hub_url}/healthz", timeout=2)).json()
                        if stats["jobs_pending"] == stats["jobs_running"] == stats["inbox_pending"] == 0:
                            return
                    except (httpx2.TransportError, ValueError):
                        pass
                    if time.monotonic() > deadline:
                        procs.fail(f"timed out waiting for {what} ({len(kills)} kills so far)")
                    await asyncio.sleep(0.2)

            chat = emulator(app, "slack").channels["C0SOCALERTS"]
            cards = emulator(app, "teams").posts
            pd = emulator(app, "pagerduty")
            jira = emulator(app, "jira")
            supervisor = asyncio.create_task(supervise())
            try:
                await send(ALERT)
                await settle("the opening")
                await send(ALERT | {"id": "a2"})
                await send(ALERT | {"id": "a3", "severity": "critical"})
                await settle("the repeat and the raise")
                (key,) = [issue.key for issue in jira.issues.values()]
                await client.post(f"{sandbox}/_sandbox/issues/{key}/transition", json={"status": "In Progress"})
                await until("the acknowledgement", lambda: any(e["event_action"] == "acknowledge" for e in pd.events))
                await settle("the acknowledgement")
                await client.post(f"{sandbox}/_sandbox/issues/{key}/transition", json={"status": "Done", "resolution": "Done"})
                await until("the review comment", lambda: any("Post-incident review" in str(c["body"]) for c in jira.issues[key].comments))
                await settle("the close")
            finally:
                stopping.set()
                await supervisor
            server.stop()

    with sqlite3.connect(db) as conn:
        dead = conn.execute("SELECT kind, last_error FROM jobs WHERE state = 'dead'").fetchall()
    print(f"{len(kills)} kills; jobs dead: {dead}")
    assert len(kills) >= 12, f"only {len(kills)} kills: not every send was cut off before its commit"
    assert not dead, dead

    (thread,) = chat
    replies = [reply["blocks"][0]["text"]["text"].split("\n")[0] for reply in thread["replies"]]
    assert replies == ["*Severity raised: High → Critical*", "*In progress*", "*Closed by an analyst (Done)*"]
    assert thread["blocks"][0]["text"]["text"].startswith("✅ [CRITICAL]")
    assert [card["card"]["body"][1]["text"] for card in cards] == [
        "New case", "Severity raised: High → Critical", "In progress", "Closed by an analyst \\(Done\\)"]
    (incident,) = pd.incidents
    assert incident["status"] == "resolved" and len({event["dedup_key"] for event in pd.events}) == 1
    wiki = emulator(app, "confluence")
    assert len([page for page in wiki.pages.values() if page["title"].startswith("PIR - ")]) == 1
    texts = [str(comment["body"]) for comment in jira.issues[key].comments]
    assert sum("Relevant playbook" in text for text in texts) == 1
    assert sum("Post-incident review created" in text for text in texts) == 1
    assert len(jira.issues[key].remote_links) == 1
