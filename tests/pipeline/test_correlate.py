"""Correlation end to end in-process: cases, repeats, reopen, won't-fix, resolve, and routing."""

from __future__ import annotations

import time

import pytest
import time_machine
from sqlalchemy import select

from alertbridge.model import OBSERVABLE_KINDS, Observables
from alertbridge.pipeline.correlate import merged
from alertbridge.store.tables import cases, jobs

from support.hub import drain, make_hub, send
from support.recorder import Recorder

ROUTE = {"name": "soc", "sink": "cases", "project": "SOC", "group_by": "{{ alert.title }}", "comment_every": "5m",
         "resolve_transition": "Done", "reopen_window": "24h"}


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
async def hub(tmp_path, recorder):
    hub = make_hub(tmp_path, [ROUTE], recorder)
    yield hub
    await hub.aclose()


async def case_rows(hub):
    async with hub.store.read() as conn:
        return [dict(r) for r in (await conn.execute(select(cases).order_by(cases.c.id))).mappings()]


async def test_repeats_share_one_ticket_and_comments_are_throttled(hub, recorder):
    await send(hub, *({"id": f"a{i}", "title": "Brute force", "hosts": [f"h{i}"]} for i in range(5)))
    assert await drain(hub) == ["create_ticket:done", "comment_repeats:done"]
    (ticket,) = recorder.tickets.values()
    assert (ticket["reference"], ticket["labels"]) == (f"alertbridge-{await hub.job_context.instance()}-1", [])
    assert ticket["comments"] == [ticket["comments"][0]]
    assert ticket["comments"][0].startswith("4 more alert(s) for this case; 5 in all")
    (case,) = await case_rows(hub)
    assert case["alert_count"] == 5 and case["observables"]["hosts"] == ["h0", "h1", "h2", "h3", "h4"]
    # More repeats within comment_every wait for one later comment instead of one each.
    await send(hub, {"id": "b1", "title": "Brute force"}, {"id": "b2", "title": "Brute force"})
    assert await drain(hub) == []
    async with hub.store.read() as conn:
        delays = [r.run_after - time.time() for r in await conn.execute(select(jobs.c.run_after).where(jobs.c.state == "pending"))]
    assert len(delays) == 1 and 200 < delays[0] <= 300


async def test_source_resolved_transitions_the_ticket_and_closes_the_case(hub, recorder):
    await send(hub, {"id": "a", "title": "Malware"}, {"id": "a", "title": "Malware", "status": "resolved"})
    assert await drain(hub) == ["create_ticket:done", "comment_repeats:done", "transition:done"]
    assert recorder.tickets["CASE-1"]["status"] == "Done"
    (case,) = await case_rows(hub)
    assert (case["state"], case["resolution"], case["hub_status"]) == ("closed", "Done", "Done")


async def test_repeat_within_window_reopens_after_it_opens_a_new_case(hub, recorder):
    with time_machine.travel(time.time(), tick=True) as clock:
        await send(hub, {"id": "a", "title": "Phish"}, {"id": "a", "title": "Phish", "status": "resolved"})
        await drain(hub)
        clock.shift(3600)
        await send(hub, {"id": "b", "title": "Phish"})
        assert await drain(hub) == ["transition:done", "comment_repeats:done"]
        assert recorder.tickets["CASE-1"]["status"] == "Reopen"
        (case,) = await case_rows(hub)
        assert case["state"] == "open"
        await send(hub, {"id": "c", "title": "Phish", "status": "resolved"})
        await drain(hub)
        clock.shift(2 * 86400)
        await send(hub, {"id": "d", "title": "Phish"})
        assert await drain(hub) == ["create_ticket:done"]
    assert sorted(recorder.tickets) == ["CASE-1", "CASE-2"]
    assert [c["state"] for c in await case_rows(hub)] == ["closed", "open"]


async def test_wont_fix_resolution_is_never_reopened(hub, recorder):
    await send(hub, {"id": "a", "title": "Scanner"})
    await drain(hub)
    async with hub.store.tx() as conn:  # an analyst closed it as a false positive
        await conn.execute(cases.update().values(state="closed", closed_at=time.time(), resolution="False Positive"))
    await send(hub, {"id": "b", "title": "Scanner"})
    assert await drain(hub) == []
    (case,) = await case_rows(hub)
    assert (case["state"], case["alert_count"]) == ("closed", 2)
    assert len(recorder.tickets) == 1


async def test_routing_rules(tmp_path, recorder):
    routes = [
        {"name": "ignore-tests", "drop": True, "match": {"when": "'test' in alert.title|lower"}},
        {"name": "high", "sink": "cases", "match": {"min_severity": "high"}, "labels": ["sev-{{ alert.severity.value }}"]},
    ]
    hub = make_hub(tmp_path, routes, recorder)
    await send(hub, {"id": "1", "title": "TEST alert", "severity": "critical"},
               {"id": "2", "title": "Low thing", "severity": "low"},
               {"id": "3", "title": "Real one", "severity": "critical"})
    await drain(hub)
    instance = await hub.job_context.instance()
    await hub.aclose()
    (ticket,) = recorder.tickets.values()
    assert ticket["summary"] == "[CRITICAL] Real one"
    assert (ticket["reference"], ticket["labels"]) == (f"alertbridge-{instance}-1", ["sev-critical"])


async def test_alert_text_is_data_never_a_template(hub, recorder):
    evil = "{{ ''.__class__.__mro__ }} {% for x in range(3) %}x{% endfor %}"
    await send(hub, {"id": "1", "title": evil, "description": "{{ 7*7 }}"})
    await drain(hub)
    (ticket,) = recorder.tickets.values()
    assert ticket["summary"] == f"[MEDIUM] {evil}"
    assert ticket["description"].startswith("{{ 7*7 }}")


def test_a_repeat_adds_only_the_observables_its_case_lacks_in_first_seen_order():
    known = {kind: [] for kind in OBSERVABLE_KINDS} | {"hosts": ["h1", "h2"], "ips": ["192.0.2.1"]}
    assert merged(known, Observables(hosts=["h2", "h1"], ips=["192.0.2.1"])) is None
    grown = merged(known, Observables(hosts=["h3", "h1", "h3"], users=["alice"]))
    assert grown == known | {"hosts": ["h1", "h2", "h3"], "users": ["alice"]}
    assert known["hosts"] == ["h1", "h2"]  # the case's row as loaded is left as it was
    many = [f"h{n}" for n in range(12)]  # more than a few values: looked up in a set, same result
    assert merged(known, Observables(hosts=many))["hosts"] == ["h1", "h2", "h0", *many[3:]]
