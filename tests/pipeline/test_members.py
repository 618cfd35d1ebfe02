"""Case members: a route that tracks hosts one by one, on any source (here the generic webhook) and the recording sink."""

from __future__ import annotations

import time

import pytest
import time_machine
from sqlalchemy import select, update

from alertbridge.store.tables import case_members, cases, jobs
from support.hub import drain, make_hub, send
from support.recorder import Recorder

ROUTE = {"name": "vulns", "sink": "cases", "project": "SOC", "group_by": "{{ alert.title }}", "reopen_window": "24h",
         "members": {"field": "Hosts", "settle": "0s", "line": "{{ alert.ips|join(', ') }}"}}


def alert(vendor_id: str, host: str, status: str = "new", title: str = "Patch MS24-JAN") -> dict:
    return {"id": vendor_id, "title": title, "hosts": [host], "ips": [f"10.0.0.{vendor_id[-1]}"], "status": status}


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
async def hub(tmp_path, recorder):
    hub = make_hub(tmp_path, [ROUTE], recorder)
    yield hub
    await hub.aclose()


async def the_case(hub) -> dict:
    async with hub.store.read() as conn:
        (row,) = (await conn.execute(select(cases))).mappings().all()
    return dict(row)


async def test_fixed_hosts_leave_the_ticket_and_the_last_fix_closes_it(hub, recorder):
    await send(hub, alert("h1:q1", "h1"), alert("h1:q2", "h1"), alert("h2:q1", "h2"))
    assert await drain(hub) == ["create_ticket:done", "sync_members:done"]
    ticket = recorder.tickets["CASE-1"]
    assert ticket["fields"]["Hosts"] == "2 host(s):\n- h1: 10.0.0.1; 10.0.0.2\n- h2: 10.0.0.1"
    assert ticket["comments"] == []  # a new ticket gets its host list, not a comment about it

    await send(hub, alert("h1:q1", "h1", "resolved"))
    assert await drain(hub) == ["sync_members:done"] and ticket["comments"] == []  # h1 still needs q2: nothing changed for hosts
    await send(hub, alert("h1:q2", "h1", "resolved"), alert("h2:q1", "h2"))  # a repeat in the same state changes nothing
    assert await drain(hub) == ["sync_members:done"]
    assert ticket["comments"] == ["1 host(s) fixed, removed from this ticket: h1.\n1 host(s) still need this fix."]
    assert ticket["fields"]["Hosts"] == "1 host(s):\n- h2: 10.0.0.1"

    await send(hub, alert("h2:q1", "h2", "resolved"))
    assert await drain(hub) == ["sync_members:done"]
    assert ticket["comments"][-1] == "1 host(s) fixed, removed from this ticket: h2.\nEvery host is fixed."
    assert ticket["fields"]["Hosts"] == "None: every host is fixed." and ticket["status"] == "Done"
    case = await the_case(hub)
    assert (case["state"], case["resolution"], case["hub_status"]) == ("closed", "Done", "Done")

    await send(hub, alert("h2:q1", "h2"))  # re-opened within the window: the case reopens and the host is back
    assert await drain(hub) == ["transition:done", "sync_members:done"]
    assert ticket["status"] == "Reopen" and ticket["comments"][-1].startswith("1 host(s) re-opened, added back: h2.")
    assert (await the_case(hub))["state"] == "open"


async def test_a_fix_of_something_never_ticketed_opens_nothing(hub, recorder):
    await send(hub, alert("h9:q9", "h9", "resolved"))
    assert await drain(hub) == []
    async with hub.store.read() as conn:
        assert (await conn.execute(select(cases))).first() is None
    assert recorder.tickets == {}


async def test_a_wont_fix_case_is_never_reopened_not_even_after_the_window(hub, recorder):
    with time_machine.travel(time.time(), tick=True) as clock:
        await send(hub, alert("h1:q1", "h1"))
        await drain(hub)
        async with hub.store.tx() as conn:  # an analyst closed the ticket as Won't Fix (the Jira webhook does this)
            await conn.execute(update(cases).values(state="closed", closed_at=time.time(), resolution="Won't Fix"))
        for shift in (3600, 3 * 86400):
            clock.shift(shift)
            await send(hub, alert("h1:q1", "h1", "resolved"), alert("h3:q1", "h3"))
            assert await drain(hub) == []
    assert list(recorder.tickets) == ["CASE-1"]
    case = await the_case(hub)
    assert (case["state"], case["resolution"], case["alert_count"]) == ("closed", "Won't Fix", 5)
    async with hub.store.read() as conn:
        states = dict((await conn.execute(select(case_members.c.member, case_members.c.state))).all())
    assert states == {"h1:q1": "fixed", "h3:q1": "open"}  # recorded on the closed case, sent nowhere


async def test_one_scan_makes_one_sync_after_settle(tmp_path, recorder):
    hub = make_hub(tmp_path, [{**ROUTE, "members": {**ROUTE["members"], "settle": "30s"}}], recorder)
    await send(hub, alert("h1:q1", "h1"))
    await drain(hub)
    for n in range(2, 6):
        await send(hub, alert(f"h{n}:q1", f"h{n}"))
        await drain(hub)
    async with hub.store.read() as conn:
        waiting = (await conn.execute(select(jobs.c.run_after).where(jobs.c.kind == "sync_members", jobs.c.state == "pending"))).scalars().all()
    assert len(waiting) == 1 and 20 < waiting[0] - time.time() <= 30
    await hub.aclose()
