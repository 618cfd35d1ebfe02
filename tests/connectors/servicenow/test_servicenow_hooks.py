"""ServiceNow → hub, end to end through the real app: the Business Rule's signed call, and the reconcile poll.

The emulator's Business Rule posts every change of a record to the hub's /hooks/<source> over HTTP, signed
as a ServiceNow script signs (base64 HMAC-SHA256 in X-Hmac-Signature).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import httpx2
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Mount

from alertbridge.api import create_app
from alertbridge.connectors.servicenow.events import ServiceNowEventParser
from alertbridge.errors import PayloadError
from alertbridge.sandbox import aws_security_ir
from alertbridge.pipeline.poll import PollRunner
from alertbridge.store.tables import cases, sync_changes, ticket_transitions
from support.snow import SECRET, delivered, serving, snow_hub
from support.hub import drain
from support.recorder import ServerThread
from support.writeback import poll_into_inbox, sir_case

HOOK = {"snow-events": {"type": "servicenow", "sink": "snow", "auth": {"mode": "hmac", "secret": SECRET}}}


def signature(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def the_case(hub) -> dict:
    async with hub.store.read() as conn:
        return dict((await conn.execute(select(cases))).mappings().one())


async def analyst_changes(snow_url: str, table: str, number: str, app, **values: str) -> None:
    """Change a record as an analyst in ServiceNow's UI would."""
    sys_id = app.state.servicenow.select(table, f"number={number}")[0]["sys_id"]
    async with httpx2.AsyncClient() as client:
        answer = await client.post(f"{snow_url}/_sandbox/records/{table}/{sys_id}", json={"user": "jane.analyst", **values})
    assert answer.status_code == 200, answer.text


async def test_a_bad_signature_is_401_and_a_state_change_in_servicenow_closes_the_case(tmp_path, snow):
    app, _, snow_url = snow
    hub = snow_hub(tmp_path, snow_url, sources=HOOK)
    try:
        async with serving(create_app(hub, run_loops=False)) as hub_url:
            app.state.faults.outbound_url, app.state.faults.outbound_secret = f"{hub_url}/hooks/snow-events", SECRET
            await hub.inbox.put("gen", json.dumps({"id": "a-1", "title": "Credential dumping on dc01", "severity": "critical"}).encode())
            await drain(hub)
            case = await the_case(hub)
            assert case["ticket_key"].startswith("SIR") and case["state"] == "open"
            (status, insert), = await delivered(app, 1)  # the Business Rule told the hub of the new record
            assert status == 202

            # A call that is not signed with the shared secret is refused, whatever else it carries.
            async with httpx2.AsyncClient() as client:
                for headers in ({}, {"X-Hmac-Signature": signature(insert, "not-the-secret")}, {"X-Hmac-Signature": signature(insert)[:-2]}):
                    refused = await client.post(f"{hub_url}/hooks/snow-events", content=insert, headers=headers)
                    assert refused.status_code == 401, refused.text

            await analyst_changes(snow_url, "sn_si_incident", case["ticket_key"], app, state="3", close_code="false_positive",
                                  close_notes="Expected admin activity")  # fmt: skip
            sent = await delivered(app, 2)
            assert sent[1][0] == 202
            await drain(hub)
            closed = await the_case(hub)
            assert (closed["state"], closed["ticket_status"], closed["resolution"]) == ("closed", "Closed", "False positive")
            async with hub.store.read() as conn:
                moves = (await conn.execute(select(ticket_transitions.c.status, ticket_transitions.c.by_hub))).all()
            assert ("Closed", 0) in moves, "the analyst's change, not the hub's"
    finally:
        await hub.aclose()


async def beaconing(hub, app, hub_url: str) -> dict:
    """Point the Business Rule at the hub, then send the alert that opens the case; return the alert."""
    app.state.faults.outbound_url, app.state.faults.outbound_secret = f"{hub_url}/hooks/snow-events", SECRET
    alert = {"id": "a-1", "title": "Beaconing from ws42", "severity": "high"}
    await hub.inbox.put("gen", json.dumps(alert).encode())
    await drain(hub)
    return alert


async def test_the_hubs_own_transition_comes_back_as_an_echo(tmp_path, snow):
    app, _, snow_url = snow
    # "Done" names no state: the echo is known by the sys_mod_count the hub's own move left, not by the status it asked for.
    hub = snow_hub(tmp_path, snow_url, sources=HOOK, route={"resolve_transition": "Done", "resolve_resolution": "Done"})
    try:
        async with serving(create_app(hub, run_loops=False)) as hub_url:
            alert = await beaconing(hub, app, hub_url)
            await delivered(app, 1)  # the insert, told before the hub moves the record (see docs: deliveries out of order)
            await drain(hub)
            await hub.inbox.put("gen", json.dumps({**alert, "status": "resolved"}).encode())
            await drain(hub)
            await delivered(app, 3)  # the repeat's work note, and the hub's own move to Closed
            await drain(hub)
            case = await the_case(hub)
            record = app.state.servicenow.select("sn_si_incident", f"number={case['ticket_key']}")[0]
            assert (record["state"], record["close_code"], record["sys_updated_by"]) == ("3", "investigation_completed", "svc-alertbridge")
            async with hub.store.read() as conn:
                moves = (await conn.execute(select(ticket_transitions.c.status, ticket_transitions.c.by_hub))).all()
            assert moves == [("Draft", 0), ("Closed", 1)], "the hub's own change is recognised, not carried back"
            async with hub.store.read() as conn:
                written = (await conn.execute(select(sync_changes.c.value, sync_changes.c.change_id, sync_changes.c.by_hub,
                                                     sync_changes.c.echoed))).all()  # fmt: skip
            assert ("Closed", record["sys_mod_count"], 1, 1) in written, written
    finally:
        await hub.aclose()


async def test_the_reconcile_poll_closes_the_case_without_any_outbound_call(tmp_path, snow):
    app, _, snow_url = snow
    poller = {"snow-reconcile": {"type": "servicenow_reconcile", "sink": "snow", "url": snow_url, "interval": 1,
                                 "login": {"mode": "basic", "username": "svc-alertbridge", "password": "sandbox-password"}}}  # fmt: skip
    hub = snow_hub(tmp_path, snow_url, sources=poller)
    try:
        await hub.inbox.put("gen", json.dumps({"id": "a-1", "title": "Impossible travel for j.doe", "severity": "medium"}).encode())
        await drain(hub)
        case = await the_case(hub)
        runner = PollRunner(hub.store, hub.sources["snow-reconcile"], "node-1", asyncio.Event())
        await runner.step()
        await analyst_changes(snow_url, "sn_si_incident", case["ticket_key"], app, state="3", close_code="threat_mitigated")
        await runner.step()
        await drain(hub)
        closed = await the_case(hub)
        assert (closed["state"], closed["ticket_status"], closed["resolution"]) == ("closed", "Closed", "Threat mitigated")
        assert app.state.business_rule.sent == [], "no outbound call was made: the poll found the change"
    finally:
        await hub.aclose()


async def test_an_analyst_s_work_note_comes_to_the_hub_once_and_the_hub_s_own_as_its_echo(tmp_path, snow):
    app, _, snow_url = snow
    poller = {"snow-reconcile": {"type": "servicenow_reconcile", "sink": "snow", "url": snow_url, "interval": 1,
                                 "login": {"mode": "basic", "username": "svc-alertbridge", "password": "sandbox-password"}}}  # fmt: skip
    hub = snow_hub(tmp_path, snow_url, sources={**HOOK, **poller}, route={"comment_every": 0})
    try:
        async with serving(create_app(hub, run_loops=False)) as hub_url:
            alert = await beaconing(hub, app, hub_url)
            await hub.inbox.put("gen", json.dumps({**alert, "id": "a-2"}).encode())  # a repeat: the hub's own work note
            await drain(hub)
            case = await the_case(hub)
            await analyst_changes(snow_url, "sn_si_incident", case["ticket_key"], app, work_notes="Isolated ws42, reimaging.")
            sent = await delivered(app, 3)  # the insert, the hub's note, the analyst's note
            assert all(status == 202 for status, _ in sent) and json.loads(sent[2][1])["work_notes"][0]["value"] == "Isolated ws42, reimaging."
            await drain(hub)
            # The reconcile poll lists both notes again (their records changed since its start): nothing is carried twice.
            runner = PollRunner(hub.store, hub.sources["snow-reconcile"], "node-1", asyncio.Event())
            await runner.step()
            await drain(hub)
            journal = {note["value"]: note["sys_id"] for note in app.state.servicenow.journal if note["element"] == "work_notes"}
            async with hub.store.read() as conn:
                rows = (await conn.execute(select(sync_changes.c.value, sync_changes.c.change_id, sync_changes.c.by_hub, sync_changes.c.echoed)
                                           .where(sync_changes.c.field == "comment"))).all()  # fmt: skip
            hub_note = next(text for text in journal if text.startswith("1 more alert(s)"))
            assert sorted(rows, key=lambda r: r.by_hub) == [
                ("Isolated ws42, reimaging.", journal["Isolated ws42, reimaging."], 0, 0),  # the analyst's, carried once
                (hub_note, journal[hub_note], 1, 1),  # the hub's own, known as its echo by its text, then by the entry's id
            ], rows
    finally:
        await hub.aclose()


def test_work_notes_that_are_not_journal_entries_are_a_clear_error():
    parser = ServiceNowEventParser("snow-events", ServiceNowEventParser.Config(sink="snow"))
    record = {"number": "SIR0010001", "sys_id": "abc", "state": "10", "sys_mod_count": "2"}
    [status, note] = parser.parse({"table": "sn_si_incident", "result": record,
                                   "work_notes": [{"sys_id": "n1", "value": "Isolated.", "sys_created_by": "jane"}]})
    assert (status.kind, note.kind, note.comment, note.comment_id, note.actor) == ("updated", "commented", "Isolated.", "n1", "jane")
    for bad in ({"sys_id": "n1"}, ["Isolated."], [{"value": "Isolated."}]):
        with pytest.raises(PayloadError, match="work_notes"):
            parser.parse({"table": "sn_si_incident", "result": record, "work_notes": bad})


async def test_an_analyst_s_work_note_goes_to_the_security_ir_case_as_a_jira_comment_does(tmp_path, snow):
    app, _, snow_url = snow
    sir = aws_security_ir.create_app([sir_case()])
    with ServerThread(Starlette(routes=[Mount("/x", app=sir)])) as base:
        aws = {"endpoint_url": f"{base}/x", "access_key_id": aws_security_ir.ACCESS_KEY, "secret_access_key": "any", "region": "us-east-1"}
        hub = snow_hub(tmp_path, snow_url, sources={**HOOK, "sir": {"type": "aws_security_ir", **aws, "comments": 5}},
                       route={"match": {"sources": ["sir"]}, "writeback": ["sir-back"], "on_repeat": "ignore"},
                       writebacks={"sir-back": {"type": "aws_security_ir", "sources": ["sir"], **aws}})
        try:
            async with serving(create_app(hub, run_loops=False)) as hub_url:
                app.state.faults.outbound_url, app.state.faults.outbound_secret = f"{hub_url}/hooks/snow-events", SECRET
                await poll_into_inbox(hub, "sir")
                await drain(hub)
                case = await the_case(hub)
                await analyst_changes(snow_url, "sn_si_incident", case["ticket_key"], app, work_notes="Rotated the keys.")
                await delivered(app, 2)
                assert "writeback:done" in await drain(hub)
                await poll_into_inbox(hub, "sir")  # the case lists the hub's comment now: nothing comes back to the ticket
                assert await drain(hub) == []
        finally:
            await hub.aclose()
    bodies = [c["body"] for c in sir.state.sir.cases["8403556009"]["comments"]]
    assert len(bodies) == 1 and bodies[0].endswith("Rotated the keys."), bodies
    journal = [n["value"] for n in app.state.servicenow.journal if n["element"] == "work_notes"]
    assert journal == ["Rotated the keys."], "the note went to the case once and never came back as a note"
