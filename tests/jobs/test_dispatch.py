"""The dispatcher: a new ticket waits neither for a worker held by repeat comments nor for another ticket's call; a hung call does not hold a worker."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from alertbridge.config import validate_config
from alertbridge.connectors.jira.sink import JiraSink
from alertbridge.jobs.budget import sink_budgets
from alertbridge.jobs.dispatch import CREATING, Dispatcher
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store import upgrade
from support.hub import drain, send

WAIT = 60.0  # generous: only a broken dispatcher takes this long
# The held comment must outlast the wait, so its call's own timeout cannot free the worker.
JIRA = {"type": "jira", "url": "http://sandbox", "email": "soc@example.com", "api_token": "sandbox-token", "timeout": 3 * WAIT}
ROUTE = {"name": "soc", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}", "comment_every": "60s"}


class HoldComments:
    """ASGI wrapper of the Jira sandbox: comment calls wait until `release` is set; creates are noted as they arrive."""

    def __init__(self, app):
        self.app = app
        self.release = asyncio.Event()
        self.comment_held = asyncio.Event()
        self.created = asyncio.Event()
        self.comments: list[str] = []  # the issue of each comment call, as it arrived

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            if scope["path"].endswith("/comment"):
                self.comments.append(scope["path"].split("/")[-2])
                self.comment_held.set()
                await self.release.wait()
            elif scope["path"].endswith(("/issue", "/issue/bulk")):
                self.created.set()
        return await self.app(scope, receive, send)


class HoldCreates:
    """ASGI wrapper of the Jira sandbox: create calls wait until `release` is set; the issues of each are noted as it arrives."""

    def __init__(self, app):
        self.app = app
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.creates: list[int] = []  # issues asked for by each create call, as it arrived

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith(("/issue", "/issue/bulk")):
            message = await receive()
            body = json.loads(message["body"])
            self.creates.append(len(body["issueUpdates"]) if "issueUpdates" in body else 1)
            self.arrived.set()
            await self.release.wait()
            replay = [message]

            async def again():  # the body once more for the sandbox, then the client's own messages
                return replay.pop() if replay else await receive()

            return await self.app(scope, again, send)
        return await self.app(scope, receive, send)


@pytest.fixture
async def hub(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    config = validate_config({"database": url, "workers": 1, "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
                              "sinks": {"jira": JIRA}, "routes": [ROUTE]})
    hub = Hub(config)
    yield hub
    await hub.aclose()


async def test_a_new_case_gets_its_ticket_while_every_worker_waits_on_a_comment(hub):
    jira = HoldComments(create_app(JiraSandboxSettings()))
    hub.sinks["jira"] = JiraSink("jira", hub.config.sinks["jira"], transport=httpx2.ASGITransport(app=jira))
    await send(hub, {"id": "a1", "title": "case a", "severity": "low"})
    assert await drain(hub) == ["create_ticket:done"]
    jira.created.clear()
    await send(hub, {"id": "a2", "title": "case a", "severity": "low"})  # a repeat: its comment is due at once
    while await hub.pipeline.process_batch():
        pass
    stopping, ready = asyncio.Event(), asyncio.Event()
    dispatcher = asyncio.create_task(Dispatcher(hub.runner, {}, capacity=1).run_forever(stopping, ready))
    try:
        await asyncio.wait_for(jira.comment_held.wait(), WAIT)  # the one worker is now held by the comment
        await send(hub, {"id": "b1", "title": "case b", "severity": "low"})
        while await hub.pipeline.process_batch():
            pass
        ready.set()
        await asyncio.wait_for(jira.created.wait(), WAIT)
        assert not jira.release.is_set()  # the create went while the comment still held the only worker
    finally:
        jira.release.set()
        stopping.set()
        ready.set()
        await asyncio.wait_for(dispatcher, WAIT)


async def test_a_hung_call_stops_holding_its_worker_once_it_is_slow(hub):
    jira = HoldComments(create_app(JiraSandboxSettings()))
    hub.sinks["jira"] = JiraSink("jira", hub.config.sinks["jira"], transport=httpx2.ASGITransport(app=jira))
    await send(hub, {"id": "a1", "title": "case a", "severity": "low"}, {"id": "b1", "title": "case b", "severity": "low"})
    assert await drain(hub) == ["create_ticket:done"]  # one bulk create for both cases
    await send(hub, {"id": "a2", "title": "case a", "severity": "low"}, {"id": "b2", "title": "case b", "severity": "low"})
    while await hub.pipeline.process_batch():
        pass
    stopping, ready = asyncio.Event(), asyncio.Event()
    # One worker; a job is slow after 0.01 s here (2 s in service), so the second comment need not wait for the first.
    dispatcher = asyncio.create_task(Dispatcher(hub.runner, {}, capacity=1, poll_interval=0.05, slow_after=0.01).run_forever(stopping, ready))
    try:
        for _ in range(int(WAIT / 0.05)):  # bounded: until both comments are at the sandbox, both still held
            if len(jira.comments) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(jira.comments) == 2 and not jira.release.is_set()
    finally:
        jira.release.set()
        stopping.set()
        ready.set()
        await asyncio.wait_for(dispatcher, WAIT)
    assert sorted(await drain(hub)) == []  # both comments finished once released: nothing left to run


async def test_a_new_case_gets_its_ticket_while_the_create_call_before_it_hangs(hub):
    jira = HoldCreates(create_app(JiraSandboxSettings()))
    hub.sinks["jira"] = JiraSink("jira", hub.config.sinks["jira"], transport=httpx2.ASGITransport(app=jira))
    await send(hub, {"id": "a1", "title": "case a", "severity": "low"})
    while await hub.pipeline.process_batch():
        pass
    stopping, ready = asyncio.Event(), asyncio.Event()
    dispatcher = asyncio.create_task(Dispatcher(hub.runner, {}, capacity=1).run_forever(stopping, ready))
    try:
        await asyncio.wait_for(jira.arrived.wait(), WAIT)  # case a's create holds the one worker, its call unanswered
        jira.arrived.clear()
        await send(hub, {"id": "b1", "title": "case b", "severity": "low"})
        while await hub.pipeline.process_batch():
            pass
        ready.set()
        await asyncio.wait_for(jira.arrived.wait(), WAIT)
        assert jira.creates == [1, 1] and not jira.release.is_set()  # case b's create left while case a's still waited
    finally:
        jira.release.set()
        stopping.set()
        ready.set()
        await asyncio.wait_for(dispatcher, WAIT)
    assert await drain(hub) == []  # both tickets recorded: nothing left to run


@pytest.mark.parametrize("budgeted", [False, True])
async def test_creates_beside_busy_workers_are_bounded_and_a_budgeted_sink_has_one_at_a_time(hub, budgeted):
    jira = HoldCreates(create_app(JiraSandboxSettings()))
    hub.sinks["jira"] = JiraSink("jira", hub.config.sinks["jira"], transport=httpx2.ASGITransport(app=jira))
    budgets = sink_budgets({"jira": 1000.0} if budgeted else {}, hub.store)
    dispatcher = Dispatcher(hub.runner, budgets, capacity=1, poll_interval=0.0)  # no ready event here: look at every claim
    try:
        for number in range(CREATING + 1):  # from the second new case on, the one worker is busy with a create
            await send(hub, {"id": f"n{number}", "title": f"case {number}", "severity": "low"})
            while await hub.pipeline.process_batch():
                pass
            if claimed := await dispatcher._claim():
                jira.arrived.clear()
                dispatcher._start(claimed)
                await asyncio.wait_for(jira.arrived.wait(), WAIT)  # its call is out: it gathers no later case
        # One task per new case up to CREATING, the last case waiting for one of them; a budgeted sink's one task at a
        # time, the others waiting to be gathered into the next bulk.
        assert len(dispatcher.running) == (1 if budgeted else CREATING)
        assert jira.creates == [1] * len(dispatcher.running)
    finally:
        jira.release.set()
        await asyncio.wait_for(asyncio.gather(*dispatcher.running), WAIT)
        await dispatcher._record_finished()
        for budget in budgets.values():
            await budget.aclose()
    assert await drain(hub) == ["create_ticket:done"]  # the cases left waiting: one bulk create


async def test_the_warm_up_reads_the_create_metadata_so_the_first_ticket_is_one_call(hub):
    app, paths = create_app(JiraSandboxSettings()), []

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            paths.append(scope["path"])
        return await app(scope, receive, send)

    hub.sinks["jira"] = JiraSink("jira", hub.config.sinks["jira"], transport=httpx2.ASGITransport(app=recording))
    await hub._warm_sinks()  # what a started hub runs once, beside its loops
    assert paths and all("/issue/createmeta/" in path or path.endswith("/field") for path in paths)
    paths.clear()
    await send(hub, {"id": "a1", "title": "case a", "severity": "low"})
    assert await drain(hub) == ["create_ticket:done"]
    assert paths == ["/rest/api/3/issue"]  # the create alone: nothing left to read first
