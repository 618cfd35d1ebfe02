"""The hub filing into ServiceNow through its jobs: exactly one record per case, and each failure retried or dead-lettered."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import select

from alertbridge.store.tables import cases, jobs
from support.hub import drain
from support.snow import MAX_WAIT_STEPS, snow_hub

FAST_RETRIES = {"retry": {"base_delay": 0.01, "max_delay": 0.05}, "search_lag": 0.5}


async def rows(hub, table) -> list[dict]:
    async with hub.store.read() as conn:
        return [dict(row) for row in (await conn.execute(select(table).order_by(table.c.id))).mappings()]


async def test_an_ambiguous_create_is_searched_by_correlation_id_before_any_second_create(tmp_path, snow):
    app, held, snow_url = snow
    hub = snow_hub(tmp_path, snow_url, **FAST_RETRIES)
    instance, calls = app.state.servicenow, app.state.faults.calls
    try:
        await hub.inbox.put("gen", json.dumps({"id": "a-1", "title": "Mimikatz on dc01", "severity": "critical"}).encode())
        held.hold = True  # ServiceNow stores the record, its answer never reaches the hub in time
        outcomes = await drain(hub)
        assert any(outcome.startswith("create_ticket:") for outcome in outcomes)
        assert len(instance.tables["sn_si_incident"]) == 1
        held.hold = False
        for _ in range(MAX_WAIT_STEPS):  # the retry waits out its backoff (tens of milliseconds)
            await drain(hub)
            if (await rows(hub, cases))[0]["ticket_key"]:
                break
            await asyncio.sleep(0.025)
        case = (await rows(hub, cases))[0]
        (record,) = instance.tables["sn_si_incident"].values()
        assert (case["ticket_key"], record["correlation_id"]) == (record["number"], case["reference"])
        posts = [index for index, (method, path, _) in enumerate(calls) if method == "POST" and path == "/api/now/table/sn_si_incident"]
        searches = [index for index, (method, path, _) in enumerate(calls) if method == "GET" and path == "/api/now/table/task"]
        assert len(posts) == 1 and searches and searches[-1] > posts[0], "found by its correlation_id, not created again"
    finally:
        await hub.aclose()


async def test_refused_credentials_dead_letter_the_create_with_servicenows_message(tmp_path, snow):
    app, _, snow_url = snow
    hub = snow_hub(tmp_path, snow_url, **FAST_RETRIES)
    app.state.faults.unauthorized = 1000
    try:
        await hub.inbox.put("gen", json.dumps({"id": "a-1", "title": "Mimikatz on dc01"}).encode())
        await drain(hub)
        (job,) = [job for job in await rows(hub, jobs) if job["kind"] == "create_ticket"]
        assert (job["state"], job["attempts"]) == ("dead", 1)
        assert "401: User Not Authenticated: Required to provide Auth information" in job["last_error"]
        assert "sandbox-password" not in job["last_error"]
    finally:
        await hub.aclose()


async def test_a_rate_limit_rule_reschedules_the_create_after_its_retry_after(tmp_path, snow):
    app, _, snow_url = snow
    hub = snow_hub(tmp_path, snow_url, **FAST_RETRIES)
    app.state.faults.rate_limit_every, app.state.faults.retry_after = 1, 45
    try:
        await hub.inbox.put("gen", json.dumps({"id": "a-1", "title": "Mimikatz on dc01"}).encode())
        await drain(hub)
        (job,) = [job for job in await rows(hub, jobs) if job["kind"] == "create_ticket"]
        # A 429 costs no attempt (jobs/queue.py): the sink paced the hub before it did anything.
        assert (job["state"], job["attempts"]) == ("pending", 0) and "429" in job["last_error"]
        assert job["run_after"] - job["created_at"] >= 45, "not before the rule's Retry-After"
        assert app.state.servicenow.tables["sn_si_incident"] == {}
    finally:
        await hub.aclose()


async def test_a_repeat_on_a_deleted_record_dead_letters_its_work_note_with_the_404(tmp_path, snow):
    app, _, snow_url = snow
    hub = snow_hub(tmp_path, snow_url, route={"comment_every": 0}, **FAST_RETRIES)
    alert = {"id": "a-1", "title": "Mimikatz on dc01"}
    try:
        await hub.inbox.put("gen", json.dumps(alert).encode())
        await drain(hub)
        (record,) = app.state.servicenow.tables["sn_si_incident"].values()
        app.state.servicenow.delete("sn_si_incident", record["sys_id"])
        await hub.inbox.put("gen", json.dumps({**alert, "id": "a-2"}).encode())
        await drain(hub)
        dead = [job for job in await rows(hub, jobs) if job["state"] == "dead"]
        assert [job["kind"] for job in dead] == ["comment_repeats"]
        assert "404: No Record found: Record doesn't exist or ACL restricts the record retrieval" in dead[0]["last_error"]
    finally:
        await hub.aclose()
