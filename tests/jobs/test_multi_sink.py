"""One case, several systems: a route with also_sinks files one ticket per case in each sink, independently.

The route's first sink is the recording case system (tests/support/recorder.py),
its further sink the XSOAR emulator, both in-process. Each sink's jobs run in
their own lane of the case, so XSOAR refusing, failing or answering late holds
back nothing of the other sink; every ticket shows on the case.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx2
import pytest
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.connectors.http_sink import HttpSink
from alertbridge.connectors.xsoar import XsoarPoller, XsoarSink
from alertbridge.jobs.queue import dead_jobs, discard, replay
from alertbridge.jobs.recovery import NothingToRetry, retry_case
from alertbridge.model import TicketEvent
from alertbridge.pipeline.sync import apply_ticket_event
from alertbridge.sandbox.xsoar import API_KEY, XsoarState
from alertbridge.sandbox.xsoar import create_app as create_xsoar
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import case_tickets
from alertbridge.web.queries import CaseFilter, case_detail, list_cases
from support.recorder import Recorder

ROUTE = {"name": "xdr", "sink": "cases", "project": "SOC", "group_by": "{{ alert.title }}", "comment_every": 0,
         "resolve_transition": "Done",
         "also_sinks": [{"sink": "xsoar", "issue_type": "Cortex XDR Incident", "fields": {"XDR Incident ID": "{{ alert.vendor_id }}"}}]}


@pytest.fixture
async def hub(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    config = validate_config({
        "database": url, "search_lag": "0.2s", "retry": {"base_delay": "0.01s", "max_delay": "0.05s", "max_attempts": 3},
        "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
        "sinks": {"cases": {"type": "http", "url": "http://recorder"},
                  "xsoar": {"type": "xsoar", "url": "http://xsoar", "api_key": API_KEY, "timeout": 0.5}},
        "routes": [ROUTE],
    })
    made = Hub(config)
    made.recorder, made.xsoar = Recorder(), XsoarState()
    made.sinks["cases"] = HttpSink("cases", config.sinks["cases"], transport=httpx2.ASGITransport(app=made.recorder.app()))
    made.sinks["xsoar"] = XsoarSink("xsoar", config.sinks["xsoar"], transport=httpx2.ASGITransport(app=create_xsoar(made.xsoar)))
    yield made
    await made.aclose()


async def send(hub: Hub, *alerts: dict) -> None:
    for alert in alerts:
        await hub.inbox.put("gen", json.dumps(alert).encode())
    while await hub.pipeline.process_batch():
        pass


async def run_due(hub: Hub, rounds: int = 400) -> list[str]:
    """Run the jobs that are due, waiting out the short retry delays, until none has been claimable for a while (bounded)."""
    outcomes, idle = [], 0
    for _ in range(rounds):
        job = await hub.queue.claim()
        if job is None:
            idle += 1
            if idle > 15:  # 0.3 s: three times the longest retry delay; what is left waits behind a dead job
                return outcomes
            await asyncio.sleep(0.02)
            continue
        idle = 0
        outcomes.append(f"{job.kind}:{await hub.runner.run(job)}")
    raise AssertionError(f"jobs still claimable after {rounds} rounds: {outcomes}")


def alert(n: int, title: str = "Ransomware on fs01", **extra) -> dict:
    return {"id": f"xdr-{n}", "title": title, "severity": "high", "description": "Many files renamed.", **extra}


def incidents_with(state: XsoarState, reference: str) -> list[dict]:
    return [i for i in state.incidents.values() if i["dbotMirrorId"] == reference]


async def test_each_sink_gets_one_ticket_and_the_case_shows_both(hub):
    await send(hub, alert(1), alert(2))
    outcomes = await run_due(hub)
    assert sorted(o for o in outcomes if o.startswith("create")) == ["create_sink_ticket:done", "create_ticket:done"]
    async with hub.store.read() as conn:
        [case] = await list_cases(conn, CaseFilter())
    ref = case["reference"]
    assert hub.recorder.by_reference() == {ref: [case["ticket"]["key"]]}
    [incident] = incidents_with(hub.xsoar, ref)
    assert incident["CustomFields"] == {"xdrincidentid": "xdr-1"} and incident["severity"] == 3
    assert [(t["sink"], t["key"]) for t in case["tickets"]] == [("cases", case["ticket"]["key"]), ("xsoar", incident["id"])]
    # The repeat is a comment on each ticket, each sink counting its own.
    assert hub.recorder.tickets[case["ticket"]["key"]]["comments"][0].startswith("1 more alert(s)")
    assert [e["contents"].splitlines()[0] for e in hub.xsoar.entries[incident["id"]]] == [
        "1 more alert(s) for this case; 2 in all, the last at " + e["contents"].splitlines()[0].split("the last at ")[1]
        for e in hub.xsoar.entries[incident["id"]]]


async def test_a_sink_that_refuses_holds_back_no_other_and_is_recovered_by_replay(hub):
    hub.xsoar.faults.unauthorized = 1000  # XSOAR refuses the key: the create is dead at once
    await send(hub, alert(1))
    await run_due(hub)
    await send(hub, alert(2), alert(3, status="resolved"))
    await run_due(hub)
    async with hub.store.read() as conn:
        [case] = await list_cases(conn, CaseFilter())
        dead = await dead_jobs(conn)
    key = case["ticket"]["key"]
    ticket = hub.recorder.tickets[key]
    assert ticket["comments"] and ticket["status"] == "Done", "the first sink got its repeat comment and its resolve"
    assert [job["kind"] for job in dead] == ["create_sink_ticket"] and "401" in dead[0]["last_error"]
    assert not hub.xsoar.incidents and case["tickets"][1] == {"sink": "xsoar", "key": None, "url": None, "status": None}
    hub.xsoar.faults.unauthorized = 0
    async with hub.store.tx() as conn:
        assert await replay(conn, dead[0]["id"]) == 1
    await run_due(hub)
    [incident] = incidents_with(hub.xsoar, case["reference"])
    assert incident["status"] == 2 and incident["closeReason"] == "Resolved", "the jobs behind the create ran in order once it did"
    assert len(hub.recorder.by_reference()[case["reference"]]) == 1


class LateFirstCreate:
    """Let XSOAR make the first incident but answer after the client's deadline, as a hung proxy would."""

    def __init__(self, app):
        self.app, self.late = app, 1

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/incident" and self.late:
            self.late -= 1

            async def late(message):
                if message["type"] == "http.response.start":
                    await asyncio.sleep(1.0)
                await send(message)
            return await self.app(scope, receive, late)
        return await self.app(scope, receive, send)


async def test_a_create_whose_answer_is_lost_is_found_by_its_reference_not_made_twice(hub):
    slow = LateFirstCreate(create_xsoar(hub.xsoar))
    hub.sinks["xsoar"] = XsoarSink("xsoar", hub.config.sinks["xsoar"], transport=httpx2.ASGITransport(app=slow))
    await send(hub, alert(1))
    outcomes = await run_due(hub)
    assert "create_sink_ticket:retry" in outcomes and outcomes.count("create_sink_ticket:done") == 1
    async with hub.store.read() as conn:
        [case] = await list_cases(conn, CaseFilter())
        row = (await conn.execute(select(case_tickets))).mappings().one()
    [incident] = incidents_with(hub.xsoar, case["reference"])
    assert row["ticket_key"] == incident["id"] and len(hub.xsoar.incidents) == 1


async def test_closing_the_xsoar_incident_closes_the_case(hub):
    await send(hub, alert(1))
    await run_due(hub)
    async with hub.store.read() as conn:
        [case] = await list_cases(conn, CaseFilter())
    incident_id = case["tickets"][1]["key"]
    event = TicketEvent(sink="xsoar", ticket_key=incident_id, kind="updated", status="Closed", status_category="done",
                        resolution="False Positive")
    async with hub.store.tx() as conn:
        assert await apply_ticket_event(conn, event, time.time()) == "closed"
    async with hub.store.read() as conn:
        detail = await case_detail(conn, case["id"])
    assert detail["case"]["state"] == "closed" and detail["case"]["resolution"] == "False Positive"
    assert detail["case"]["tickets"][1]["status"] == "Closed" and detail["case"]["ticket_status"] == "created"


async def xsoar_create_discarded(hub: Hub) -> None:
    """Open a case while XSOAR refuses the key (and keeps refusing it), and discard its dead create as an operator would."""
    hub.xsoar.faults.unauthorized = 1000
    await send(hub, alert(1))
    await run_due(hub)
    async with hub.store.tx() as conn:
        [dead] = await dead_jobs(conn)
        assert dead["kind"] == "create_sink_ticket" and await discard(conn, dead["id"]) == 1


async def test_case_retry_gives_a_further_sink_a_fresh_create_after_its_dead_one_was_discarded(hub):
    await xsoar_create_discarded(hub)
    hub.xsoar.faults.unauthorized = 0
    async with hub.store.tx() as conn:
        retried = await retry_case(conn, 1)
    assert retried.created
    async with hub.store.tx() as conn:
        with pytest.raises(NothingToRetry):
            await retry_case(conn, 1)  # the fresh create is on its way
    await run_due(hub)
    async with hub.store.read() as conn:
        [case] = await list_cases(conn, CaseFilter())
    assert [i["id"] for i in incidents_with(hub.xsoar, case["reference"])] == [case["tickets"][1]["key"]]
    async with hub.store.tx() as conn:
        with pytest.raises(NothingToRetry, match="has its ticket"):
            await retry_case(conn, 1)


async def poll_events(hub: Hub) -> list[TicketEvent]:
    """Read every XSOAR incident as the poller does, each change one ticket event."""
    config = XsoarPoller.Config.model_validate({"type": "xsoar", "url": "http://xsoar", "api_key": API_KEY, "sink": "xsoar"})
    follow = XsoarPoller("xsoar-incidents", config, transport=httpx2.ASGITransport(app=create_xsoar(hub.xsoar)))
    try:
        result = await follow.poll(None)
        return [event for item in result.items for event in follow.parse(item)]
    finally:
        await follow.aclose()


async def test_the_hub_s_own_xsoar_close_polled_back_is_its_echo_and_an_analyst_s_close_is_not(hub):
    await send(hub, alert(1))
    await run_due(hub)
    await send(hub, alert(2, status="resolved"))  # the route's resolve: "Done" on each ticket, which XSOAR shows as "Closed"
    await run_due(hub)
    async with hub.store.read() as conn:
        [case] = await list_cases(conn, CaseFilter())
    incident_id = case["tickets"][1]["key"]
    assert hub.xsoar.incidents[incident_id]["status"] == 2
    [closed] = [e for e in await poll_events(hub) if e.ticket_key == incident_id]
    assert (closed.status, closed.change_id) == ("Closed", str(hub.xsoar.incidents[incident_id]["version"]))
    async with hub.store.tx() as conn:
        assert await apply_ticket_event(conn, closed, time.time(), hub.config) == "echo"
    # An analyst reopens and closes it again in XSOAR: those are not the hub's.
    current = hub.xsoar.incidents[incident_id]
    hub.xsoar.update({**current, "status": 1, "closeReason": ""})
    [reopened] = [e for e in await poll_events(hub) if e.ticket_key == incident_id]
    async with hub.store.tx() as conn:
        assert await apply_ticket_event(conn, reopened, time.time(), hub.config) == "reopened"
    hub.xsoar.close({"ids": [incident_id], "closeReason": "False Positive"})
    [again] = [e for e in await poll_events(hub) if e.ticket_key == incident_id]
    assert again.status == closed.status, "the same status as the hub's close: only the change id tells them apart"
    async with hub.store.tx() as conn:
        assert await apply_ticket_event(conn, again, time.time(), hub.config) == "closed"


async def test_the_next_alert_gives_a_further_sink_a_fresh_create_after_its_dead_one_was_discarded(hub):
    await xsoar_create_discarded(hub)
    await send(hub, alert(2))  # XSOAR still refuses: the fresh create dies too, and is not queued twice
    outcomes = await run_due(hub)
    assert outcomes.count("create_sink_ticket:dead") == 1 and not hub.xsoar.incidents
    async with hub.store.tx() as conn:
        [dead] = await dead_jobs(conn)
        assert await discard(conn, dead["id"]) == 1
    hub.xsoar.faults.unauthorized = 0
    await send(hub, alert(3), alert(4))  # two alerts of one batch: one fresh create
    outcomes = await run_due(hub)
    assert outcomes.count("create_sink_ticket:done") == 1
    async with hub.store.read() as conn:
        [case] = await list_cases(conn, CaseFilter())
    [incident] = incidents_with(hub.xsoar, case["reference"])
    assert case["tickets"][1]["key"] == incident["id"] and len(hub.recorder.by_reference()[case["reference"]]) == 1
    await send(hub, alert(5))
    assert "create_sink_ticket:done" not in await run_due(hub), "a sink with its ticket gets no other create"
    assert len(hub.xsoar.incidents) == 1
