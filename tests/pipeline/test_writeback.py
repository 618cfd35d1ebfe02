"""Closing the Jira ticket as False Positive is written back once to Defender, AWS Security IR and Splunk HEC; nothing echoes.

End to end through the Jira sandbox and the vendor emulators: the analyst's
transition comes in as Jira's signed webhook, the write-backs run as jobs, and
the sources' own polls then see the changes the hub made — which move nothing.
The second test has both sides change the status before the hub carries either
across: the field's owner wins.
"""

from __future__ import annotations

import httpx2
import pytest
from sqlalchemy import select

from alertbridge.api import create_app
from alertbridge.service import Hub
from alertbridge.store.tables import cases, jobs, sync_changes
from support.hub import drain
from support.writeback import IP, comment_webhook, hub_config, poll_into_inbox, world


def calls(app, method: str, fragment: str) -> int:
    return sum(1 for m, path, status in app.state.faults.calls if m == method and fragment in path and status < 400)


async def job_kinds(hub: Hub) -> list[str]:
    async with hub.store.read() as conn:
        return [kind for (kind,) in await conn.execute(select(jobs.c.kind).order_by(jobs.c.id))]


async def test_false_positive_in_jira_is_written_back_once_and_the_polls_do_not_echo(tmp_path):
    with world() as w:
        hub = Hub(hub_config(tmp_path, w.urls))
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            assert await poll_into_inbox(hub, "defender") == 1 and await poll_into_inbox(hub, "sir") == 1
            # The ticket, the repeat comment for the second source's alert, and HEC told of the ticket.
            assert await drain(hub) == ["create_ticket:done", "comment_repeats:done", "writeback:done"]
            async with hub.store.read() as conn:
                (key, count) = (await conn.execute(select(cases.c.ticket_key, cases.c.alert_count))).one()
            assert (key, count) == ("SOC-1", 2)

            w.jira.state.jira.transition(key, "Done", "False Positive")  # the analyst's verdict
            body, headers = w.jira_webhook(key)
            assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202
            outcomes = await drain(hub)
            assert sorted(outcomes) == ["case_event:done"] + ["writeback:done"] * 3

            alert = w.defender.state.defender.items[0]
            assert (alert["status"], alert["classification"], alert["determination"]) == ("resolved", "falsePositive", "notMalicious")
            case = w.sir.state.sir.cases["8403556009"]
            assert case["caseStatus"] == "Closed"
            assert {"key": "closureCode", "value": "False Positive"} in case["caseMetadata"]
            assert {"key": "severity", "value": "High"} in case["caseMetadata"]  # merged, not replaced
            assert [c["body"] for c in case["comments"]] == [f"Closed from {key} closed as False Positive by {_analyst(w, key)}; "
                                                             "closure code: False Positive"]
            events = [e["event"] for e in w.hec.state.hec.events]
            assert [e["action"] for e in events] == ["ticket_created", "ticket_closed"]
            closed = events[1]
            assert (closed["ticket_key"], closed["status"], closed["resolution"], closed["verdict"]) == (key, "Done", "False Positive", "false_positive")
            assert {a["vendor_id"] for a in closed["alerts"]} == {alert["id"], "8403556009"} and closed["alert_id"] == alert["id"]
            assert w.hec.state.hec.events[1]["sourcetype"] == "alertbridge:ticket" and w.hec.state.hec.events[1]["index"] == "notable_feedback"

            # The sources' own polls now see what the hub wrote: recognised as the hub's, nothing moves.
            jobs_before = await job_kinds(hub)
            assert await poll_into_inbox(hub, "defender") == 1 and await poll_into_inbox(hub, "sir") == 1
            assert await drain(hub) == []
            assert await job_kinds(hub) == jobs_before
            async with hub.store.read() as conn:
                echoed = (await conn.execute(select(sync_changes.c.system, sync_changes.c.echoed)
                                          .where(sync_changes.c.by_hub == 1, sync_changes.c.field == "status"))).all()
            assert sorted(echoed) == [("defender", 1), ("sir", 1)]
        await hub.aclose()
    assert calls(w.defender, "PATCH", "alerts_v2/") == 1
    assert calls(w.sir, "POST", "close-case") == 1 and calls(w.sir, "POST", "create-comment") == 1
    assert [c["to"] for c in w.jira.state.jira.get(key).history] == ["Done"]  # only the analyst's transition, never the hub's


@pytest.mark.parametrize("owner", ["ticket", "source"])
async def test_both_sides_change_the_status_and_the_owner_wins(tmp_path, owner):
    with world() as w:
        # A Defender alert taken back into work reopens the ticket (when the source owns the status).
        hub = Hub(hub_config(tmp_path, w.urls, owner=owner, writeback=["defender-back"], source_states={"in_progress": {"transition": "Reopen"}}, on_repeat="ignore"))
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            await poll_into_inbox(hub, "defender")
            await drain(hub)
            # The analyst closes the ticket as False Positive ...
            w.jira.state.jira.transition("SOC-1", "Done", "False Positive")
            body, headers = w.jira_webhook("SOC-1")
            assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202
            await hub.pipeline.process_batch()
            # ... while, before the hub writes that back, a Defender analyst takes the alert back into work.
            alert = w.defender.state.defender.items[0]
            alert.update(status="inProgress", lastUpdateDateTime=_now())
            await poll_into_inbox(hub, "defender")
            outcomes = sorted(await drain(hub))
            if owner == "source":  # the hub reopens the ticket; Jira's webhook of that is the hub's own change
                assert outcomes == ["case_event:done", "transition:done", "writeback:done"]
                body, headers = w.jira_webhook("SOC-1")
                assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202
            else:
                assert outcomes == ["case_event:done", "writeback:done"]
            await poll_into_inbox(hub, "defender")  # and the source's next poll of whatever it now says
            assert await drain(hub) == []
            async with hub.store.read() as conn:
                state = (await conn.execute(select(cases.c.state))).scalar()
        await hub.aclose()
    history = [c["to"] for c in w.jira.state.jira.get("SOC-1").history]
    if owner == "ticket":  # the analyst's verdict stands and overwrites the source's; the ticket is not moved
        assert (history, state) == (["Done"], "closed")
        assert (alert["status"], alert["classification"], calls(w.defender, "PATCH", "alerts_v2/")) == ("resolved", "falsePositive", 1)
    else:  # the source's change stands: the ticket reopened, the write-back skipped
        assert (history, state) == (["Done", "To Do"], "open")
        assert (alert["status"], calls(w.defender, "PATCH", "alerts_v2/")) == ("inProgress", 0)


async def test_comments_go_both_ways_once_and_never_come_back(tmp_path):
    with world() as w:
        hub = Hub(hub_config(tmp_path, w.urls, writeback=["sir-back"], on_repeat="ignore"))
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            await poll_into_inbox(hub, "sir")
            await drain(hub)
            # A responder comments on the Security IR case: the poller reads it, the hub comments it on the ticket.
            case = w.sir.state.sir.cases["8403556009"]
            case["comments"].append({"commentId": "000901", "body": "Isolated the instance.", "createdDate": _epoch(), "creator": "responder"})
            case["lastUpdatedDate"] = _epoch()
            await poll_into_inbox(hub, "sir")
            assert await drain(hub) == ["mirror_comment:done"]
            issue = w.jira.state.jira.get("SOC-1")
            (mirrored,) = issue.comments
            # Jira's webhook for that comment is the hub's own: nothing goes back to AWS.
            body, headers = comment_webhook("SOC-1", mirrored["id"], "[AWS Security Incident Response responder] Isolated the instance.")
            assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202
            assert await drain(hub) == []
            # An analyst's comment in Jira goes to the case, once; the next poll lists it and the responder's again: nothing moves.
            body, headers = comment_webhook("SOC-1", "99999", "Rotated the keys.")
            assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202
            assert await drain(hub) == ["writeback:done"]
            await poll_into_inbox(hub, "sir")
            assert await drain(hub) == []
        await hub.aclose()
    assert len(w.jira.state.jira.get("SOC-1").comments) == 1
    assert [c["body"] for c in case["comments"]] == ["Isolated the instance.", "[SOC-1 5c5f880629be9642ba529340] Rotated the keys."]


def _epoch() -> float:
    import time

    return time.time()


def _analyst(w, key: str) -> str:
    return w.jira.state.jira.get(key).history[-1]["author"]


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


assert IP  # the shared IP groups both sources' alerts into one case


async def test_a_siem_feedback_hears_only_of_cases_from_its_sources(tmp_path):
    with world() as w:
        config = hub_config(tmp_path, w.urls, writeback=["hec"], on_repeat="ignore")
        config.writebacks["hec"] = config.writebacks["hec"].model_copy(update={"sources": ["sir"]})
        hub = Hub(config)
        await poll_into_inbox(hub, "defender")
        assert await drain(hub) == ["create_ticket:done"]  # a Defender-only case: this collector is not told
        await poll_into_inbox(hub, "sir")
        await drain(hub)
        w.jira.state.jira.transition("SOC-1", "Done", "Done")
        body, headers = w.jira_webhook("SOC-1")
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202
        assert "writeback:done" in await drain(hub)  # now the case has a Security IR alert: the close is told
        await hub.aclose()
    assert [e["event"]["action"] for e in w.hec.state.hec.events] == ["ticket_closed"]
