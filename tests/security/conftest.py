"""Shared pieces of the bad-input and security suite (docs/security.md).

Every secret in the configs built here is the same canary, so a test can look
for one string in anything the hub shows or writes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib.util
import json
from collections.abc import Coroutine
from typing import Any

import httpx2
import pytest
from pydantic import ValidationError

from alertbridge.api import create_app
from alertbridge.config import validate_config
from alertbridge.connectors import SOURCES, load
from alertbridge.connectors.roles import Parser, parser_class
from alertbridge.service import Hub
from conftest import unavailable
from support.examples import example_config
from support.schema import migrated_sqlite

CANARY = "cnry-Q7xZ4vLp2Ww9-do-not-leak"
JIRA_EMAIL = "soc@example.com"
ADMIN = {"Authorization": f"Bearer {CANARY}"}
# A canary sent as HTTP basic auth travels base64-encoded: look for that form too.
CANARY_FORMS = (CANARY, base64.b64encode(f"{JIRA_EMAIL}:{CANARY}".encode()).decode(), base64.b64encode(f"svc:{CANARY}".encode()).decode())

# Sources of every auth mode, all keyed with the canary; "open" says it needs nothing, for payload tests.
SOURCES_CONFIG: dict[str, dict[str, Any]] = {
    "open": {"type": "generic", "auth": {"mode": "none"}},
    "bearer": {"type": "generic", "auth": {"mode": "bearer", "token": CANARY}},
    "signed": {"type": "generic", "auth": {"mode": "hmac", "secret": CANARY, "header": "X-Signature"}},
    "splunk": {"type": "splunk", "auth": {"mode": "query_token", "token": CANARY}},
    "jira-events": {"type": "jira", "secret": CANARY, "sink": "cases"},
}


def sign(body: bytes, secret: str = CANARY) -> str:
    """Return the `sha256=<hex>` signature both the hmac mode and Jira use."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def hub_config(tmp_path, *, name: str = "sec", **settings: Any):
    """A validated config on a fresh SQLite file: every source above, an http sink, one catch-all route."""
    url = migrated_sqlite(tmp_path / f"{name}.db")
    data = {
        "database": url,
        "admin_token": CANARY,
        "sources": SOURCES_CONFIG,
        "sinks": {"cases": {"type": "http", "url": "http://cases.invalid", "token": CANARY}},
        "routes": [{"name": "all", "sink": "cases"}],
    } | settings
    return validate_config(data)


def client_for(hub: Hub) -> httpx2.AsyncClient:
    """An in-process client of the hub's HTTP app (no background loops)."""
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(hub, run_loops=False)), base_url="http://hub")


@pytest.fixture
async def hub(tmp_path):
    hub = Hub(hub_config(tmp_path))
    yield hub
    await hub.aclose()


@pytest.fixture
async def client(hub):
    async with client_for(hub) as c:
        yield c


class LoopHub:
    """A hub and its HTTP client on an event loop the test owns, for synchronous (hypothesis) tests.

    Hypothesis drives plain functions; every example runs its coroutine to completion
    on this one loop, so the hub's connections and writer task stay on one loop.
    """

    def __init__(self, config) -> None:
        self.loop = asyncio.new_event_loop()
        self.hub = Hub(config)
        self.app = create_app(self.hub, run_loops=False)
        self.client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app), base_url="http://hub")

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.hub.aclose())
        self.loop.close()


@pytest.fixture
def loop_hub(tmp_path):
    owned = LoopHub(hub_config(tmp_path, name="loop"))
    yield owned
    owned.close()


# --- sources from the registry ------------------------------------------------------------------

SOURCE_TYPES = sorted(SOURCES)


def source_class(type_name: str) -> type[Parser]:
    """Import a registered source class; fail (skip without CI settings) when its module does not exist yet."""
    module = SOURCES[type_name].partition(":")[0]
    if importlib.util.find_spec(module) is None:
        unavailable(f"{module}, registered as {type_name!r}, does not exist yet")
    return load(SOURCES, type_name)


def default_config(type_name: str) -> dict[str, Any]:
    """A registered source's config from its defaults: its type, and each required field's first documented example."""
    return example_config(source_class(type_name).Config, type_name)


def make_source(type_name: str) -> Parser:
    """Build a registered source's parser (what `alertbridge parse` runs) from its default config."""
    cls = parser_class(source_class(type_name))
    try:
        return cls("fuzz", cls.Config.model_validate(example_config(cls.Config, type_name)))
    except ValidationError as exc:  # the contract test (tests/connectors) asks for the same
        pytest.fail(f"{type_name}: a source must build from its defaults and examples for these tests: {exc}")


def dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode()


# --- a hub filing into the Jira sandbox -----------------------------------------------------------

JIRA_CREDENTIALS = {"cloud": {"email": JIRA_EMAIL, "api_token": "sandbox-token"}, "datacenter": {"pat": "sandbox-token"}}


def jira_hub(tmp_path, flavor: str, jira_app, route: dict[str, Any] | None = None, **settings: Any) -> Hub:
    """A hub whose `open` source feeds one route into sink `jira`, the sandbox app of the given flavor, in-process."""
    from alertbridge.connectors.jira import JiraSink

    route = {"name": "soc", "sink": "jira", "project": "SOC", "issue_type": "Alert", "comment_every": 0} | (route or {})
    config = hub_config(tmp_path, name=f"jira-{flavor}", routes=[route], sinks={
        "jira": {"type": "jira", "flavor": flavor, "url": "http://jira.test", **JIRA_CREDENTIALS[flavor]},
    }, **settings)
    hub = Hub(config)
    hub.sinks["jira"] = JiraSink("jira", config.sinks["jira"], transport=httpx2.ASGITransport(app=jira_app))
    return hub


async def send_and_drain(hub: Hub, *payloads: Any) -> list[str]:
    """Put payloads through the inbox of source `open`, process them and run every due job; return the outcomes."""
    for payload in payloads:
        await hub.inbox.put("open", dumps(payload))
    while await hub.pipeline.process_batch():
        pass
    outcomes = []
    while (job := await hub.queue.claim()) is not None:
        outcomes.append(f"{job.kind}:{await hub.runner.run(job)}")
    return outcomes
