"""Inbox processing in batches: one unit of work per batch, the same result as one row at a time, a bad row isolated,
and two processors sharing the inbox on PostgreSQL with each case's alerts applied in the order they came in."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import func, select, update

from alertbridge.config import validate_config
from alertbridge.connectors.roles import Enricher, EnricherConfig
from alertbridge.model import TicketEvent
from alertbridge.pipeline import process
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import alerts, cases, inbox, jobs
from conftest import fresh_pg_database

from support.hub import make_hub, send
from support.recorder import Recorder

ROUTE = {"name": "soc", "sink": "cases", "project": "SOC", "group_by": "{{ alert.title }}", "comment_every": "5m",
         "resolve_transition": "Done"}


def stream(n: int, cases_: int) -> list[dict]:
    """Alerts over a few cases: repeats, rising severities, a resolve now and then, one unparsable title."""
    severities = ["low", "medium", "high", "critical"]
    out = []
    for i in range(n):
        alert = {"id": f"a{i}", "title": f"case {i % cases_}", "severity": severities[(i // cases_) % 4], "hosts": [f"h{i % 7}"]}
        if i % 11 == 10:
            alert["status"] = "resolved"
        out.append(alert)
    return out


async def snapshot(hub: Hub) -> tuple[list, list]:
    """Cases and jobs as comparable tuples (times left out, due-now kept)."""
    now = time.time()
    async with hub.store.read() as conn:
        case_rows = [(r.id, r.key, r.state, r.severity, r.alert_count, r.repeats_since_comment, sorted(r.observables["hosts"]))
                     for r in await conn.execute(select(cases).order_by(cases.c.id))]
        job_rows = [(r.case_id, r.kind, r.payload, r.state, r.run_after <= now + 1)
                    for r in await conn.execute(select(jobs).order_by(jobs.c.id))]
    return case_rows, job_rows


async def test_a_batch_is_one_unit_of_work_with_the_result_of_one_row_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(process, "INTAKE_BUSY", -1.0)  # intake counts as quiet: the batch takes all it may
    (tmp_path / "batched").mkdir()
    (tmp_path / "single").mkdir()
    batched = make_hub(tmp_path / "batched", [ROUTE], Recorder())
    one_by_one = make_hub(tmp_path / "single", [ROUTE], Recorder())
    try:
        for hub in (batched, one_by_one):
            await send(hub, *stream(120, 9))
        units = 0
        run = batched.store.run

        async def counted(*args, **kwargs):
            nonlocal units
            units += 1
            return await run(*args, **kwargs)

        batched.store.run = counted
        assert await batched.pipeline.process_batch(limit=500) == 120
        assert units == 1  # the whole batch: one hand-off to the database thread
        while await one_by_one.pipeline.process_batch(limit=1):
            pass
        assert await snapshot(batched) == await snapshot(one_by_one)
        case_rows, job_rows = await snapshot(batched)
        assert len(case_rows) == 9 and sum(row[4] for row in case_rows) == 120
        assert [kind for _, kind, *_ in job_rows].count("create_ticket") == 9
    finally:
        await batched.aclose()
        await one_by_one.aclose()


async def test_while_intake_writes_a_batch_is_short_and_the_rest_follows(tmp_path, monkeypatch):
    # Intake's last commit counts as recent for an hour: every batch of this test is taken while intake is busy.
    monkeypatch.setattr(process, "INTAKE_BUSY", 3600.0)
    monkeypatch.setattr(process, "BUSY_LIMIT", 25)
    hub = make_hub(tmp_path, [ROUTE], Recorder())
    try:
        await send(hub, *stream(60, 9))
        taken = [await hub.pipeline.process_batch(limit=500) for _ in range(4)]
        async with hub.store.read() as conn:
            states = dict((await conn.execute(select(inbox.c.state, func.count()).group_by(inbox.c.state))).all())
            counted = (await conn.execute(select(func.sum(cases.c.alert_count)))).scalar()
    finally:
        await hub.aclose()
    assert taken == [25, 25, 10, 0]
    assert states == {"done": 60} and counted == 60


async def test_a_row_that_fails_in_the_batch_is_dead_lettered_alone(tmp_path):
    # The field update renders `100 // n` for every repeat: n = 0 fails on that row only, while the batch is written.
    route = ROUTE | {"on_repeat": "update", "fields": {"Ratio": "{{ 100 // alert.raw.n }}"}}
    hub = make_hub(tmp_path, [route], Recorder())
    try:
        await send(hub, {"id": "1", "title": "X", "n": 1}, {"id": "2", "title": "X", "n": 0}, {"id": "3", "title": "X", "n": 4},
                   {"id": "4", "title": "Y", "n": 0})
        await hub.inbox.put("gen", b"not json")
        assert await hub.pipeline.process_batch() == 5
        async with hub.store.read() as conn:
            rows = (await conn.execute(select(inbox.c.id, inbox.c.state, inbox.c.error).order_by(inbox.c.id))).all()
            case_rows = (await conn.execute(select(cases.c.key, cases.c.alert_count).order_by(cases.c.id))).all()
            job_rows = (await conn.execute(select(jobs.c.kind, jobs.c.state, jobs.c.payload, jobs.c.last_error).order_by(jobs.c.id))).all()
            stored = (await conn.execute(select(func.count()).select_from(alerts))).scalar()
    finally:
        await hub.aclose()
    assert [state for _, state, _ in rows] == ["done", "dead", "done", "done", "dead"]
    assert "ZeroDivisionError" in rows[1].error and "not JSON" in rows[4].error
    assert case_rows == [("X", 2), ("Y", 1)] and stored == 3
    assert [(kind, payload) for kind, state, payload, _ in job_rows if state == "pending"] == [
        ("create_ticket", {}), ("update_fields", {"fields": {"Ratio": "25"}, "sink": None}), ("create_ticket", {})]
    dead = [(payload, error) for kind, state, payload, error in job_rows if kind == "ingest"]
    assert [payload["inbox_id"] for payload, _ in dead] == [rows[1].id, rows[4].id]
    assert all(state == "dead" for kind, state, _, _ in job_rows if kind == "ingest")


N_ALERTS, N_CASES, BATCH = 400, 20, 25


class Unhurried(Enricher):
    """An enricher whose vendor is slow for every other batch, so that a later batch is ready to write first."""

    type = "unhurried"

    async def enrich(self, alerts, cache) -> None:
        """Take a while on batches whose first alert has an even number."""
        if alerts and int(alerts[0].vendor_id[1:]) // BATCH % 2 == 0:
            await asyncio.sleep(0.05)

    async def aclose(self) -> None:
        """Nothing to release."""


@pytest.mark.postgres
async def test_two_processors_share_the_inbox_and_keep_each_cases_order():
    with fresh_pg_database("alertbridge_batch") as url:
        await asyncio.to_thread(upgrade, url)
        settings = {"database": url, "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
                    "sinks": {"cases": {"type": "http", "url": "http://127.0.0.1:9"}}, "routes": [ROUTE]}
        hubs = [Hub(validate_config(settings)), Hub(validate_config(settings))]  # two processes' worth of pools
        for hub in hubs:
            hub.pipeline.enrichers.append(Unhurried("unhurried", EnricherConfig(type="unhurried")))
        try:
            for alert in stream(N_ALERTS, N_CASES):
                await hubs[0].inbox.put("gen", json.dumps(alert).encode())
            taken = await asyncio.gather(*(drain(hub) for hub in hubs))
            async with hubs[0].store.read() as conn:
                states = dict((await conn.execute(select(inbox.c.state, func.count()).group_by(inbox.c.state))).all())
                order = (await conn.execute(select(alerts.c.case_id, alerts.c.inbox_id).order_by(alerts.c.id))).all()
                case_rows = (await conn.execute(select(cases.c.key, cases.c.alert_count))).all()
        finally:
            for hub in hubs:
                await hub.aclose()
    assert states == {"done": N_ALERTS}
    assert all(n > 0 for n in taken), f"one processor took everything: {taken}"
    assert sum(taken) == N_ALERTS
    assert len(case_rows) == N_CASES and sum(count for _, count in case_rows) == N_ALERTS
    per_case: dict[int, list[int]] = {}
    for case_id, inbox_id in order:
        per_case.setdefault(case_id, []).append(inbox_id)
    assert all(ids == sorted(ids) for ids in per_case.values()), "a case's alerts were applied out of inbox order"


async def drain(hub: Hub) -> int:
    """Process batches until the inbox has nothing pending; return how many rows this processor took."""
    taken = 0
    for _ in range(10 * N_ALERTS // BATCH):
        got = await hub.pipeline.process_batch(limit=BATCH)
        taken += got
        if got == 0:
            async with hub.store.read() as conn:
                if not (await conn.execute(select(inbox.c.id).where(inbox.c.state == "pending").limit(1))).first():
                    return taken
            await asyncio.sleep(0.01)
    raise AssertionError("the inbox never emptied")


class TicketFeed:
    """A source whose bodies are ticket changes (as a ticket system's webhook's are): {"key", "status", "category"}."""

    def parse(self, body: dict) -> list[TicketEvent]:
        """Return the one change the body reports."""
        return [TicketEvent(sink="cases", ticket_key=body["key"], kind="updated", status=body["status"],
                            status_category=body["category"])]


async def _alerts_around_a_ticket_change(hub: Hub) -> tuple[list, list, list]:
    hub.sources["tickets"] = TicketFeed()
    await send(hub, {"id": "a1", "title": "X"}, {"id": "b1", "title": "Y"})
    while await hub.pipeline.process_batch():
        pass
    async with hub.store.tx() as conn:
        for case_id in (1, 2):
            await conn.execute(update(cases).where(cases.c.id == case_id).values(ticket_key=f"SOC-{case_id}", ticket_status="Open"))
    await send(hub, {"id": "a2", "title": "X"})
    await hub.inbox.put("tickets", json.dumps({"key": "SOC-1", "status": "Done", "category": "done"}).encode())
    await send(hub, {"id": "a3", "title": "X"}, {"id": "b2", "title": "Y"})
    while await hub.pipeline.process_batch():
        pass
    async with hub.store.read() as conn:
        rows = (await conn.execute(select(inbox.c.source, inbox.c.state).order_by(inbox.c.id))).all()
        applied = (await conn.execute(select(alerts.c.inbox_id, alerts.c.case_id).order_by(alerts.c.id))).all()
    case_rows, job_rows = await snapshot(hub)
    timeless = [(case, kind, {k: v for k, v in payload.items() if k != "at"}, state, due) for case, kind, payload, state, due in job_rows]
    return rows, applied, [case_rows, timeless]


@pytest.mark.postgres
async def test_a_shared_batch_with_a_ticket_change_applies_it_between_the_alerts_around_it(tmp_path):
    """On PostgreSQL the batch holding a ticket event takes the async engine's path: the same result as SQLite's."""
    with fresh_pg_database("alertbridge_batch") as url:
        await asyncio.to_thread(upgrade, url)
        settings = {"database": url, "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
                    "sinks": {"cases": {"type": "http", "url": "http://127.0.0.1:9"}}, "routes": [ROUTE]}
        shared = Hub(validate_config(settings))
        try:
            on_postgres = await _alerts_around_a_ticket_change(shared)
        finally:
            await shared.aclose()
    alone = make_hub(tmp_path, [ROUTE], Recorder())
    try:
        on_sqlite = await _alerts_around_a_ticket_change(alone)
    finally:
        await alone.aclose()
    rows, applied, (_, job_rows) = on_postgres
    assert [state for _, state in rows] == ["done"] * 6
    assert [tuple(row) for row in applied] == [(1, 1), (2, 2), (3, 1), (5, 1), (6, 2)]  # inbox row 4 is the change
    # The change closed case 1 after a2, and a3, which came after it, reopened it.
    assert [(kind, payload.get("event") or payload.get("to")) for case, kind, payload, *_ in job_rows if case == 1][-3:] == [
        ("case_event", "ticket_closed"), ("transition", "Reopen"), ("comment_repeats", None)]
    assert on_postgres == on_sqlite
