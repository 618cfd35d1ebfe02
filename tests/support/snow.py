"""For ServiceNow tests: an emulator over real HTTP, a hub filing into it, and the hub's own app served where the emulator can call it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from alertbridge.config import validate_config
from alertbridge.service import Hub
from alertbridge.sandbox.servicenow import ServiceNowSettings, create_app
from support.recorder import ServerThread
from support.schema import migrated_sqlite

SECRET = "snow-hook-secret"
LOGIN = {"mode": "basic", "username": "svc-alertbridge", "password": "sandbox-password"}
MAX_WAIT_STEPS = 400  # bounded waits: 400 × 25 ms at most


class HoldCreates:
    """Let the emulator store a created record but hold its answer back while `hold` is set (an ambiguous create)."""

    def __init__(self, app):
        self.app = app
        self.hold = False

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/api/now/table/") and self.hold:
            async def late(message):
                if message["type"] == "http.response.start":
                    while self.hold:
                        await asyncio.sleep(0.02)
                await send(message)
            return await self.app(scope, receive, late)
        return await self.app(scope, receive, send)


@pytest.fixture
def snow():
    """The emulator, empty, behind HoldCreates, served on a free port: (app, holder, url); import it into a conftest."""
    app = create_app(ServiceNowSettings(), records=[])
    held = HoldCreates(app)
    with ServerThread(held) as url:
        yield app, held, url


@contextlib.asynccontextmanager
async def serving(app) -> AsyncIterator[str]:
    """Serve an ASGI app on 127.0.0.1 in this event loop (the hub's store lives in it); yield its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(MAX_WAIT_STEPS):
        if server.started:
            break
        await asyncio.sleep(0.025)
    else:
        raise RuntimeError("the hub's app did not start")
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


def snow_hub(tmp_path, snow_url: str, *, sources: dict[str, Any] | None = None, route: dict[str, Any] | None = None,
             **settings: Any) -> Hub:
    """A hub with an open generic source `gen`, ServiceNow sink `snow` and one route `soc` into sn_si_incident."""
    url = migrated_sqlite(tmp_path / "hub.db")
    return Hub(validate_config({
        "database": url,
        "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}, **(sources or {})},
        "sinks": {"snow": {"type": "servicenow", "url": snow_url, "login": LOGIN, "timeout": 2}},
        "routes": [{"name": "soc", "sink": "snow", "project": "SOC", "issue_type": "sn_si_incident", "group_by": "{{ alert.title }}",
                    **(route or {})}],
        **settings,
    }))  # fmt: skip


async def delivered(app, count: int) -> list[tuple[int | None, bytes]]:
    """Wait (bounded) until the emulator's Business Rule has made `count` outbound calls; return them."""
    for _ in range(MAX_WAIT_STEPS):
        if len(app.state.business_rule.sent) >= count:
            return app.state.business_rule.sent
        await asyncio.sleep(0.025)
    raise AssertionError(f"the Business Rule made {len(app.state.business_rule.sent)} calls, not {count}")
