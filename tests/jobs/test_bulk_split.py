"""A bulk create Jira refused is sent again as smaller bulks, down to single creates; one that may have happened is not.

The keys a bulk create brought back are recorded in two transactions, not one writer round trip each.
"""

from __future__ import annotations

import json

import httpx2
import pytest
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.connectors.jira.sink import JiraSink
from alertbridge.jobs import commits
from alertbridge.jobs.dispatch import Dispatcher
from alertbridge.jobs.queue import OTHER, Job
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import cases
from support.clock import FakeClock
from support.hub import send

JIRA = {"type": "jira", "url": "http://sandbox", "email": "soc@example.com", "api_token": "sandbox-token"}
ROUTE = {"name": "soc", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}"}


class RefuseBulks:
    """ASGI wrapper of the Jira sandbox: answer the next bulk creates with `status` (nothing created), note each bulk's size."""

    def __init__(self, app, answers: list[int]):
        self.app = app
        self.answers = answers
        self.bulks: list[tuple[int, int]] = []  # (issues in the bulk, status answered)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith("/issue/bulk"):
            return await self.app(scope, receive, send)
        message = await receive()
        size = len(json.loads(message["body"])["issueUpdates"])
        status = self.answers.pop(0) if self.answers else 201
        self.bulks.append((size, status))
        if status == 201:
            replay = [message]

            async def again():  # the body once more for the sandbox, then the client's own messages
                return replay.pop() if replay else await receive()

            return await self.app(scope, again, send)
        body = json.dumps({"errorMessages": ["Rate limit exceeded." if status == 429 else "Service unavailable"], "errors": {}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(b"retry-after", b"1")] if status == 429 else []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def hub(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    config = validate_config({"database": url, "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
                              "sinks": {"jira": JIRA}, "routes": [ROUTE]})
    hub = Hub(config)
    yield hub
    await hub.aclose()


async def four_new_cases(hub: Hub, answers: list[int]) -> RefuseBulks:
    jira = RefuseBulks(create_app(JiraSandboxSettings()), answers)
    hub.sinks["jira"] = JiraSink("jira", hub.config.sinks["jira"], transport=httpx2.ASGITransport(app=jira), clock=FakeClock())
    hub.runner.clock = FakeClock()  # the wait for Retry-After between a refused bulk and its halves
    await send(hub, *({"id": f"a{n}", "title": f"case {n}", "severity": "high"} for n in range(4)))
    while await hub.pipeline.process_batch():
        pass
    return jira


async def test_a_refused_bulk_goes_again_in_halves_and_every_case_gets_its_ticket(hub):
    jira = await four_new_cases(hub, [429, 201, 429])
    outcome = await hub.runner.run(await hub.queue.claim())
    assert outcome == "done"
    # 4 refused -> 2 created; 2 refused -> 1 and 1 created. Not all four jobs into backoff together.
    assert jira.bulks == [(4, 429), (2, 201), (2, 429), (1, 201), (1, 201)]
    assert hub.runner.clock.sleeps == [1.0, 1.0]  # each time after the Retry-After Jira gave
    async with hub.store.read() as conn:
        keys = (await conn.execute(select(cases.c.ticket_key))).scalars().all()
    assert len(keys) == 4 and all(keys)
    assert await hub.queue.claim() is None


async def test_a_bulk_that_may_have_created_its_issues_is_not_sent_again_blindly(hub):
    jira = await four_new_cases(hub, [503])
    first = await hub.queue.claim()
    assert await hub.runner.run(first) == "retry"
    assert jira.bulks == [(4, 503)]
    async with hub.store.read() as conn:
        rows = (await conn.execute(select(cases.c.ticket_key, cases.c.create_claimed_at))).all()
    # Each case stays claimed without a key: its next attempt searches for its label before it creates.
    assert all(key is None and claimed is not None for key, claimed in rows)


async def test_a_create_whose_lease_lapsed_while_it_ran_is_not_taken_along_again(hub):
    # A busy machine can starve the heartbeat past the lease between the claim and the bulk's gathering of more creates:
    # the job in hand then looks claimable, and taken along a second time it would be created twice.
    jira = await four_new_cases(hub, [])
    job = await hub.queue.claim()
    hub.runner.in_hand[0] = Job(0, None, "digest", {}, 1, 0.0, None, OTHER)  # a job of no case in hand leaves the rest alone
    lapsed = hub.queue.clock() + hub.queue.lease + 1.0
    hub.queue.clock = lambda: lapsed
    assert await hub.runner.run(job) == "done"
    assert jira.bulks == [(4, 201)]
    async with hub.store.read() as conn:
        keys = (await conn.execute(select(cases.c.ticket_key))).scalars().all()
    assert len(keys) == len(set(keys)) == 4 and None not in keys


async def test_the_dispatcher_never_claims_again_a_job_it_holds_whose_lease_lapsed(hub):
    await four_new_cases(hub, [])
    dispatcher = Dispatcher(hub.runner, {}, capacity=8)
    held = await dispatcher._claim()
    assert len(held) == 4  # one job per case, all still in hand: none has a task yet, so there is room for more
    lapsed = hub.queue.clock() + hub.queue.lease + 1.0
    hub.queue.clock = lambda: lapsed
    assert await dispatcher._claim() == []  # claimed again, each would run twice at once in this process
    assert set(hub.runner.in_hand) == {job.id for job in held}


async def test_a_bulk_create_records_its_keys_in_two_transactions(hub, monkeypatch):
    """The first key on its own (a kill just after it leaves the bulk partly recorded), the others together."""
    transactions: list[list[str]] = []
    run_all = commits._run_all

    def noting(conn, taken):
        transactions.append([work.__name__ for work, _, _ in taken])
        return run_all(conn, taken)

    monkeypatch.setattr(commits, "_run_all", noting)
    jira = await four_new_cases(hub, [])
    assert await hub.runner.run(await hub.queue.claim()) == "done"
    assert jira.bulks == [(4, 201)]
    assert [units for units in transactions if "_record_unit" in units] == [["_record_unit"], ["_record_unit"] * 3], transactions
    async with hub.store.read() as conn:
        keys = (await conn.execute(select(cases.c.ticket_key))).scalars().all()
    assert len(keys) == len(set(keys)) == 4 and None not in keys


async def test_a_key_that_fails_to_record_leaves_the_others_of_its_bulk_recorded(hub, monkeypatch):
    from alertbridge.jobs import create_ticket

    record_unit = create_ticket._record_unit

    def failing_for_case_3(conn, config, queue, job, ticket, further, now):
        if job.case_id == 3:  # one of the keys recorded together (the first key of the bulk, case 1's, goes alone)
            raise RuntimeError("disk I/O error")
        return record_unit(conn, config, queue, job, ticket, further, now)

    monkeypatch.setattr(create_ticket, "_record_unit", failing_for_case_3)
    await four_new_cases(hub, [])
    assert await hub.runner.run(await hub.queue.claim()) == "retry"  # the failure is the attempt's, as before
    async with hub.store.read() as conn:
        keys = dict((await conn.execute(select(cases.c.id, cases.c.ticket_key))).all())
    assert keys[3] is None and all(keys[case] for case in (1, 2, 4)), keys  # the keys beside the failed one are kept
