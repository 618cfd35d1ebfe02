"""Run Qualys pollers and a hub against the Qualys and Jira emulators, in process."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.connectors.jira.sink import JiraSink
from alertbridge.connectors.qualys.fim import QualysFimPoller
from alertbridge.connectors.qualys.pc import QualysPcPoller
from alertbridge.connectors.qualys.vm import QualysVmPoller
from alertbridge.pipeline.poll import PollRunner
from alertbridge.sandbox.jira.adf import to_text
from alertbridge.sandbox.qualys import PASSWORD, USERNAME
from alertbridge.service import Hub
from alertbridge.store.tables import cases

from .schema import migrated_sqlite

URL = "http://qualys.test"
CREDENTIALS = {"url": URL, "username": USERNAME, "password": PASSWORD}
JIRA = {"type": "jira", "flavor": "cloud", "url": "http://jira.test", "email": "soc@example.com", "api_token": "sandbox-token"}
POLLERS = {"qualys_vm": QualysVmPoller, "qualys_pc": QualysPcPoller, "qualys_fim": QualysFimPoller}
HOSTS_FIELD = "customfield_10058"  # the sandbox's "Affected Hosts"


def poller(type_name: str, app, **config: Any):
    """Build a Qualys poller named after its type, talking to the emulator `app`."""
    cls = POLLERS[type_name]
    return cls(type_name, cls.Config.model_validate({"type": type_name, **CREDENTIALS, **config}), transport=httpx2.ASGITransport(app=app))


def make_hub(tmp_path, qualys_app, jira_app, sources: dict[str, dict], routes: list[dict]) -> Hub:
    """Build a hub on a SQLite file (kept across calls: a second call is a restart) with Qualys sources and the Jira sink."""
    url = migrated_sqlite(tmp_path / "hub.db")
    config = validate_config({
        "database": url, "search_lag": "0s",
        "sources": {name: {**CREDENTIALS, **source} for name, source in sources.items()},
        "sinks": {"jira": JIRA}, "routes": routes,
    })
    hub = Hub(config)
    hub.sinks["jira"] = JiraSink("jira", config.sinks["jira"], transport=httpx2.ASGITransport(app=jira_app))
    for name, cfg in config.sources.items():
        hub.sources[name] = POLLERS[cfg.type](name, cfg, transport=httpx2.ASGITransport(app=qualys_app))
    return hub


def runner(hub: Hub, name: str) -> PollRunner:
    """Return a poll runner for one of the hub's sources."""
    return PollRunner(hub.store, hub.sources[name], "test-node", asyncio.Event())


async def tickets(hub: Hub, jira_state) -> dict[str, dict[str, Any]]:
    """Map each case key to its Jira issue: key, status, resolution, hosts listed, comments."""
    async with hub.store.read() as conn:
        rows = (await conn.execute(select(cases.c.key, cases.c.ticket_key, cases.c.state))).all()
    found = {}
    for key, ticket_key, state in rows:
        issue = jira_state.issues[ticket_key]
        listed = issue.fields.get(HOSTS_FIELD)
        text = to_text(listed) if isinstance(listed, dict) else ""
        found[key] = {
            "key": ticket_key, "case": state, "status": issue.status, "resolution": issue.resolution,
            "hosts": {line[2:].split(":")[0] for line in text.splitlines() if line.startswith("- ")},
            "comments": [to_text(c["body"]) for c in issue.comments], "assignee": issue.fields.get("assignee"),
        }
    return found
