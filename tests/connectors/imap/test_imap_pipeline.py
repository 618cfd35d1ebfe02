"""Mailbox to Jira: one case per lure, repeats counted by reporter, the .eml attached, bad mail dead-lettered."""

from __future__ import annotations

import asyncio
import json

import httpx2
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.pipeline.poll import PollRunner
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import cases, inbox, jobs
from support import phish
from support.hub import drain
from support.polling import drain as drain_poller
from support.recorder import ServerThread

JIRA = {"type": "jira", "flavor": "cloud", "email": "soc@example.com", "api_token": "sandbox-token"}
PHISHING_ROUTE = {
    "name": "phishing", "match": {"sources": ["phish", "tap"]}, "sink": "jira", "project": "SOC", "issue_type": "Incident",
    "rules": [{"when": "alert.source.type == 'imap' and alert.raw.attachments | selectattr('risk') | list", "severity": "high",
               "category": "malware"},
              {"when": "alert.source.type == 'imap' and alert.raw.lookalikes", "severity": "high"}],
    # TAP events join the mailbox's case for the same message.
    "group_by": "phish|{{ alert.raw.message_key if alert.source.type == 'imap' else alert.raw.messageID | trim('<> ') }}",
    "summary": "[Phish] {{ alert.title }}", "description": "{{ alert.description }}",
    "fields": {"Incident Severity": "{{ alert.severity.value|title }}", "Incident Category": "Phishing"},
    "comment_every": "0s",
}  # fmt: skip


async def test_reports_become_one_ticket_per_lure_with_the_eml_attached(tmp_path, mailbox):
    lure = phish.lure("<lure-200@examp1e-it.com>")
    risky = phish.lure("<lure-201@examp1e-it.com>", subject="Invoice", attachment=("invoice.js", b"WScript.Shell.Run"))
    malformed = b"From: a@b.example\r\nSubject: x\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n"
    huge = phish.forward_as_attachment(phish.lure(attachment=("big.bin", b"x" * 300_000)), "gina@acme.com")
    mailbox.append("INBOX", phish.forward_as_attachment(lure, "bob@acme.com"), malformed,
                   phish.forward_as_attachment(lure, "carol@acme.com"), huge, phish.redirect(lure, "erin@acme.com"),
                   phish.forward_as_attachment(risky, "bob@acme.com"))  # fmt: skip
    sandbox = create_app(JiraSandboxSettings())
    with ServerThread(sandbox) as jira_url:
        url = f"sqlite:///{tmp_path / 'hub.db'}"
        upgrade(url)
        imap = mailbox.source().config.model_dump(mode="json") | {"max_bytes": 200_000, "login": {"mode": "password", "password": mailbox.password}}
        hub = Hub(validate_config({
            "database": url, "search_lag": "0s",
            "sources": {"phish": imap, "tap": {"type": "proofpoint_tap", "principal": "p", "secret": "s"}},
            "sinks": {"jira": {**JIRA, "url": jira_url}},
            "routes": [PHISHING_ROUTE],
        }))  # fmt: skip
        try:
            await drain_poller(PollRunner(hub.store, hub.sources["phish"], "test", asyncio.Event()))
            tap = {"eventType": "messagesDelivered", "GUID": "g-1", "messageTime": "2025-12-01T09:00:00Z", "phishScore": 90,
                   "messageID": "<lure-200@examp1e-it.com>", "recipient": ["hank@acme.com"], "threatsInfoMap": []}  # fmt: skip
            await hub.inbox.put("tap", json.dumps(tap).encode(), "messagesDelivered:g-1")
            await drain(hub)
            await asyncio.sleep(0)
            await drain(hub)
            async with hub.store.read() as conn:
                rows = {row.key: row for row in await conn.execute(select(cases))}
                dead = (await conn.execute(select(inbox.c.error).where(inbox.c.state == "dead").order_by(inbox.c.id))).scalars().all()
                dead_jobs = (await conn.execute(select(jobs.c.kind, jobs.c.last_error).where(jobs.c.state == "dead"))).all()
        finally:
            await hub.aclose()

        assert mailbox_uids(mailbox, "INBOX") == []  # every message committed, then moved, bad ones included
        assert len(rows) == 2
        case = rows["phish|lure-200@examp1e-it.com"]
        assert case.alert_count == 4 and set(case.observables["users"]) >= {"bob@acme.com", "carol@acme.com", "erin@acme.com"}
        assert case.severity == "high"  # the lookalike acme-it.com
        assert rows["phish|lure-201@examp1e-it.com"].severity == "high"
        assert len(dead) == 2 and "no boundary" in dead[0] and "over the 200000-byte cap" in dead[1]
        assert [kind for kind, _ in dead_jobs] == ["ingest", "ingest"]

        state = sandbox.state.jira
        issue = state.get(case.ticket_key)
        (attachment,) = issue.attachments
        assert attachment["filename"] == "original.eml"
        async with httpx2.AsyncClient(base_url=jira_url, auth=("soc@example.com", "sandbox-token")) as client:
            served = await client.get(f"/rest/api/3/attachment/content/{attachment['id']}")
        assert served.status_code == 200 and served.content == lure  # the sandbox serves back the very bytes reported
        description = json.dumps(issue.fields["description"])
        assert "hxxps://login[.]mailbox-restore[.]example" in description and "https://login.mailbox" not in description
        assert '"type": "codeBlock"' in description
        comments = json.dumps([c["body"] for c in issue.comments])
        assert f"Users so far: {len(case.observables['users'])} (bob@acme.com, " in comments  # the reporters, counted


def mailbox_uids(mailbox, folder: str) -> list[int]:
    with mailbox.client() as client:
        client.select_folder(folder, readonly=True)
        return client.search(["ALL"])


async def test_the_eml_goes_to_every_ticket_that_follows_the_evidence(tmp_path, mailbox):
    lure = phish.lure("<lure-300@examp1e-it.com>")
    mailbox.append("INBOX", phish.forward_as_attachment(lure, "bob@acme.com"))
    first, second = create_app(JiraSandboxSettings()), create_app(JiraSandboxSettings())  # two Jira sites, one ticket in each
    route = {**PHISHING_ROUTE, "also_sinks": [{"sink": "jira-sec", "project": "SOC", "issue_type": "Incident", "follows": ["evidence"],
                                            "fields": PHISHING_ROUTE["fields"]}]}
    with ServerThread(first) as first_url, ServerThread(second) as second_url:
        url = f"sqlite:///{tmp_path / 'hub.db'}"
        upgrade(url)
        imap = mailbox.source().config.model_dump(mode="json") | {"login": {"mode": "password", "password": mailbox.password}}
        hub = Hub(validate_config({
            "database": url, "search_lag": "0s",
            "sources": {"phish": imap, "tap": {"type": "proofpoint_tap", "principal": "p", "secret": "s"}},
            "sinks": {"jira": {**JIRA, "url": first_url}, "jira-sec": {**JIRA, "url": second_url}},
            "routes": [route],
        }))  # fmt: skip
        try:
            await drain_poller(PollRunner(hub.store, hub.sources["phish"], "test", asyncio.Event()))
            outcomes = await drain(hub)
        finally:
            await hub.aclose()
        assert outcomes.count("attach_evidence:done") == 2, outcomes
        for sandbox in (first, second):
            (issue,) = sandbox.state.jira.issues.values()
            assert [a["filename"] for a in issue.attachments] == ["original.eml"]
