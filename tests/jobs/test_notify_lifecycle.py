"""A case's life through the whole hub, in-process against every emulator: what each notifier hears, in order, once.

Opened (High) → repeated → raised to Critical → started in Jira → closed in Jira. Slack keeps one
thread per case, Teams gets one card per event, PagerDuty one incident under the case's reference,
Confluence one review page linked and commented on the issue, which also got its playbook comment.
"""

from __future__ import annotations

import pytest

from alertbridge.sandbox.confluence import storage_elements
from support.hub import drain, references, send
from support.notify_hub import analyst, emulator, notify_hub

ROUTE = {"name": "edr", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}", "comment_every": 0,
         "notify": ["slack", "teams", {"notifier": "pagerduty", "min_severity": "high"}], "review": "confluence"}
ALERT = {"id": "a1", "title": "Credential dumping on ws-042", "severity": "high", "category": "credential-access",
         "description": "LSASS memory read by an unsigned process.", "hosts": ["ws-042"]}


@pytest.fixture
async def hub(tmp_path, app):
    hub = notify_hub(tmp_path, app, [ROUTE])
    yield hub
    await hub.aclose()


async def test_a_case_life_tells_each_notifier_each_event_once_in_order(hub, app):
    await send(hub, ALERT)
    await drain(hub)
    await send(hub, ALERT | {"id": "a2"})
    await drain(hub)
    await send(hub, ALERT | {"id": "a3", "severity": "critical"})
    await drain(hub)
    (issue,) = emulator(app, "jira").issues.values()
    await analyst(hub, app, issue.key, "In Progress")
    await drain(hub)
    await analyst(hub, app, issue.key, "Done", "Done")
    outcomes = await drain(hub)
    assert "review:done" in outcomes and not [o for o in outcomes if not o.endswith(":done")]

    slack = emulator(app, "slack").channels["C0SOCALERTS"]
    (first,) = slack
    assert [b["text"]["text"].split("\n")[0] for r in first["replies"] for b in r["blocks"][:1]] == [
        "*Severity raised: High → Critical*", "*In progress*", "*Closed by an analyst (Done)*"]
    assert first["blocks"][0]["text"]["text"] == "✅ [CRITICAL] Credential dumping on ws-042" and "edited" in first
    assert first["blocks"][1]["text"]["text"] == "*Closed by an analyst (Done)*\nSOC-1 was closed as Done."  # the first message, edited
    buttons = [e["url"] for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [f"http://sandbox/browse/{issue.key}", "https://alertbridge.example.com/ui/cases/1",
                       "https://wiki.example.com/playbooks/credential-access"]

    cards = [post["card"]["body"][1]["text"] for post in emulator(app, "teams").posts]
    assert cards == ["New case", "Severity raised: High → Critical", "In progress", "Closed by an analyst \\(Done\\)"]

    pd = emulator(app, "pagerduty")
    (incident,) = pd.incidents
    reference = (await references(hub.store))[1]
    assert incident["dedup_key"] == reference and reference.startswith("alertbridge-") and incident["status"] == "resolved"
    assert [entry["action"] for entry in incident["log"]] == ["trigger", "trigger", "acknowledge", "resolve"]
    assert [e["payload"]["severity"] for e in pd.events if e["event_action"] == "trigger"] == ["error", "critical"]
    assert {e["dedup_key"] for e in pd.events} == {reference}

    wiki = emulator(app, "confluence")
    (page,) = [p for p in wiki.pages.values() if p["title"].startswith("PIR - ")]
    assert page["title"] == f"PIR - {issue.key} - Credential dumping on ws-042"
    assert wiki.pages[page["parentId"]]["title"].isdigit() and "script" not in storage_elements(page["body"])
    for expected in ("Ticket SOC-1: To Do → In Progress", "Ticket SOC-1: In Progress → Done", "First alert: Credential dumping on ws-042",
                     "Severity raised to Critical by: Credential dumping on ws-042", "<th>Hosts</th><td>ws-042</td>"):
        assert expected in page["body"], expected

    comments = [c["body"]["content"][0]["content"] for c in issue.comments]
    texts = ["".join(node.get("text", "") for node in nodes) for nodes in comments]
    assert sum(t.startswith("Relevant playbook: Credential theft") for t in texts) == 1
    assert sum(t.startswith("Post-incident review created: PIR - SOC-1") for t in texts) == 1
    (link,) = issue.remote_links
    assert link["object"]["url"].endswith(page["id"] + "/PIR+-+SOC-1+-+Credential+dumping+on+ws-042")


async def test_a_medium_case_gets_no_page_and_no_page_to_the_on_call(hub, app):
    await send(hub, ALERT | {"severity": "medium"})
    await drain(hub)
    (issue,) = emulator(app, "jira").issues.values()
    await analyst(hub, app, issue.key, "Done", "Done")
    await drain(hub)
    assert not [p for p in emulator(app, "confluence").pages.values() if p["title"].startswith("PIR")]
    assert emulator(app, "pagerduty").events == []
    assert len(emulator(app, "slack").channels["C0SOCALERTS"][0]["replies"]) == 1  # the close, in the case's thread
