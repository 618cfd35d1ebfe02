"""create_ticket: the keys of a bulk create are recorded in few transactions, not one writer round trip each."""

from __future__ import annotations

import httpx2
import pytest
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.connectors.jira.sink import JiraSink
from alertbridge.jobs import commits
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import cases
from support.hub import send

JIRA = {"type": "jira", "url": "http://sandbox", "email": "soc@example.com", "api_token": "sandbox-token"}
ROUTE = {"name": "soc", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}"}


@pytest.fixture
async def hub(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    config = validate_config({"database": url, "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
                              "sinks": {"jira": JIRA}, "routes": [ROUTE]})
    hub = Hub(config)
    hub.sinks["jira"] = JiraSink("jira", config.sinks["jira"], transport=httpx2.ASGITransport(app=create_app(JiraSandboxSettings())))
    yield hub
    await hub.aclose()


async def test_a_bulk_create_records_its_keys_in_two_transactions(hub, monkeypatch):
    """The first key on its own (a kill just after it leaves the bulk partly recorded), the others together."""
    transactions: list[list[str]] = []
    run_all = commits._run_all

    def noting(conn, taken):
        transactions.append([work.__name__ for work, _, _ in taken])
        return run_all(conn, taken)

    monkeypatch.setattr(commits, "_run_all", noting)
    await send(hub, *({"id": f"a{n}", "title": f"case {n}", "severity": "high"} for n in range(5)))
    while await hub.pipeline.process_batch():
        pass
    assert await hub.runner.run(await hub.queue.claim()) == "done"
    recorded = [units for units in transactions if "_record_unit" in units]
    assert recorded == [["_record_unit"], ["_record_unit"] * 4], transactions
    async with hub.store.read() as conn:
        keys = (await conn.execute(select(cases.c.ticket_key))).scalars().all()
    assert len(keys) == len(set(keys)) == 5 and None not in keys
