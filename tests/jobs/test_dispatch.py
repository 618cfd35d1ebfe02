"""The dispatcher: a new ticket never waits for a worker held by repeat comments; a hung call does not hold a worker."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from alertbridge.config import validate_config
from alertbridge.connectors.jira.sink import JiraSink
from alertbridge.jobs.dispatch import Dispatcher
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
