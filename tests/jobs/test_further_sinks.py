"""What else a case sends its tickets goes to every ticket that follows it: the post-incident review and the member sync
reach a route's further sink (XSOAR) as they reach its first (Jira), each in its own lane, in-process against the sandbox."""

from __future__ import annotations

import time

import httpx2
import pytest

from alertbridge.connectors.xsoar import XsoarPoller
from alertbridge.model import TicketEvent
from alertbridge.pipeline.sync import apply_ticket_event
from support.hub import drain, send
from support.notify_hub import analyst, emulator, notify_hub

XSOAR = {"xsoar": {"type": "xsoar", "url": "http://sandbox/xsoar", "api_key": "sandbox-xsoar-key"}}
JIRA = {"jira": {"type": "jira", "url": "http://sandbox", "email": "soc@example.com", "api_token": "sandbox-token"}}
ALSO = [{"sink": "xsoar", "issue_type": "Malware"}]


def hub_with(tmp_path, app, route: dict):
    return notify_hub(tmp_path, app, [route], sinks={**JIRA, **XSOAR})


def incident_of(app, title: str) -> dict:
    [made] = [i for i in emulator(app, "xsoar").incidents.values() if title in i["name"]]
    return made


def notes(app, incident: dict) -> list[str]:
    entries = emulator(app, "xsoar").entries[incident["id"]]
    assert all(entry["note"] for entry in entries), "the hub's entries are notes"
    return [entry["contents"] for entry in entries]


async def polled(app, incident: dict) -> TicketEvent:
    """Read the incident back as the XSOAR poller does."""
    config = XsoarPoller.Config.model_validate({"type": "xsoar", "url": "http://sandbox/xsoar", "api_key": "sandbox-xsoar-key"})
    follow = XsoarPoller("xsoar-incidents", config, transport=httpx2.ASGITransport(app=app))
    try:
        items = (await follow.poll(None)).items
    finally:
        await follow.aclose()
    [event] = [e for item in items for e in follow.parse(item) if e.ticket_key == incident["id"]]
    return event


@pytest.fixture
async def review_hub(tmp_path, app):
    route = {"name": "edr", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}", "review": "confluence",
             "also_sinks": ALSO}
    hub = hub_with(tmp_path, app, route)
    yield hub
    await hub.aclose()


async def test_the_review_page_is_written_once_and_shown_on_every_ticket(review_hub, app):
    hub = review_hub
    await send(hub, {"id": "a1", "title": "Credential dumping on ws-042", "severity": "high"})
    await drain(hub)
    (issue,) = emulator(app, "jira").issues.values()
    await analyst(hub, app, issue.key, "Done", "Done")
    outcomes = await drain(hub)
    assert outcomes.count("review:done") == 2, outcomes
    pages = [p for p in emulator(app, "confluence").pages.values() if p["title"].startswith("PIR - ")]
    assert len(pages) == 1, "one page per case, whichever tickets show it"
    incident = incident_of(app, "Credential dumping on ws-042")
    shown = [text for text in notes(app, incident) if text.startswith("Post-incident review created")]
    assert shown == [f"Post-incident review created: {pages[0]['title']}\n" + shown[0].split("\n")[1]]
    assert shown[0].split("\n")[1].endswith(pages[0]["id"] + "/PIR+-+SOC-1+-+Credential+dumping+on+ws-042")
    jira_texts = ["".join(n.get("text", "") for n in c["body"]["content"][0]["content"]) for c in issue.comments]
    assert sum(t.startswith("Post-incident review created") for t in jira_texts) == 1 and len(issue.remote_links) == 1


async def test_a_further_sink_that_does_not_follow_the_review_hears_nothing_of_it(tmp_path, app):
    route = {"name": "edr", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}", "review": "confluence",
             "also_sinks": [{**ALSO[0], "follows": ["members"]}]}
    hub = hub_with(tmp_path, app, route)
    try:
        await send(hub, {"id": "a1", "title": "Credential dumping on ws-043", "severity": "high"})
        await drain(hub)
        (issue,) = [i for i in emulator(app, "jira").issues.values() if "ws-043" in i.fields["summary"]]
        await analyst(hub, app, issue.key, "Done", "Done")
        assert (await drain(hub)).count("review:done") == 1
        assert not [t for t in notes(app, incident_of(app, "ws-043")) if t.startswith("Post-incident review")]
    finally:
        await hub.aclose()


def vuln(vendor_id: str, host: str, status: str = "new") -> dict:
    return {"id": vendor_id, "title": "Patch MS24-JAN", "hosts": [host], "ips": [f"10.0.0.{vendor_id[-1]}"], "status": status}


async def test_the_member_sync_tells_each_ticket_of_its_hosts_and_closes_and_reopens_each(tmp_path, app):
    route = {"name": "vulns", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}", "reopen_window": "24h",
             "members": {"settle": "0s", "line": "{{ alert.ips|join(', ') }}"}, "also_sinks": ALSO}
    hub = hub_with(tmp_path, app, route)
    try:
        await send(hub, vuln("h1:q1", "h1"), vuln("h2:q1", "h2"))
        made = sorted(o for o in await drain(hub) if o.startswith(("create", "sync")))
        assert made == ["create_sink_ticket:done", "create_ticket:done", "sync_members:done", "sync_members:done"]
        incident = incident_of(app, "Patch MS24-JAN")
        assert notes(app, incident) == ["2 host(s) newly affected, added: h1, h2.\n2 host(s) still need this fix."]
        await send(hub, vuln("h1:q1", "h1", "resolved"))
        await drain(hub)
        assert notes(app, incident)[-1] == "1 host(s) fixed, removed from this ticket: h1.\n1 host(s) still need this fix."
        await send(hub, vuln("h2:q1", "h2", "resolved"))
        await drain(hub)
        assert notes(app, incident)[-1] == "1 host(s) fixed, removed from this ticket: h2.\nEvery host is fixed."
        assert (incident["status"], incident["closeReason"]) == (2, "Resolved"), "the done transition on this ticket too"
        (issue,) = [i for i in emulator(app, "jira").issues.values() if i.fields["summary"].endswith("Patch MS24-JAN")]
        assert issue.status == "Done"
        async with hub.store.tx() as conn:  # the sync's own close, polled back, is the hub's echo
            assert await apply_ticket_event(conn, await polled(app, incident), time.time(), hub.config) == "echo"
        await send(hub, vuln("h2:q1", "h2"))  # re-opened within the window: both tickets reopen and hear of the host
        await drain(hub)
        assert incident["status"] == 1 and notes(app, incident)[-1].startswith("1 host(s) re-opened, added back: h2.")
        assert len(notes(app, incident)) == 4, "each change told once"
    finally:
        await hub.aclose()
