"""Run a Hub in-process against the recording case system, and drain it deterministically."""

from __future__ import annotations

import json

import httpx2
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.connectors.http_sink import HttpSink
from alertbridge.service import Hub
from alertbridge.store import Store
from alertbridge.store.tables import cases

from .recorder import Recorder
from .schema import migrated_sqlite


def make_hub(tmp_path, routes: list[dict], recorder: Recorder, **settings) -> Hub:
    """Build a hub on a fresh SQLite file with an open `generic` source `gen` and the recorder as sink `cases`."""
    url = migrated_sqlite(tmp_path / "hub.db")
    config = validate_config({
        "database": url,
        "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
        "sinks": {"cases": {"type": "http", "url": "http://recorder"}},
        "routes": routes,
        **settings,
    })
    hub = Hub(config)
    hub.sinks["cases"] = HttpSink("cases", config.sinks["cases"], transport=httpx2.ASGITransport(app=recorder.app()))
    return hub


async def send(hub: Hub, *alerts: dict) -> None:
    """Put alerts through the inbox as the webhook would."""
    for alert in alerts:
        await hub.inbox.put("gen", json.dumps(alert).encode())


async def drain(hub: Hub, limit: int = 10_000) -> list[str]:
    """Process the inbox and run every job that is due now; return the job outcomes."""
    outcomes = []
    while await hub.pipeline.process_batch():
        pass
    for _ in range(limit):
        job = await hub.queue.claim()
        if job is None:
            break
        outcomes.append(f"{job.kind}:{await hub.runner.run(job)}")
    return outcomes


async def references(store: Store) -> dict[int, str | None]:
    """Map each case id to the reference its ticket carries (None until its create was sent)."""
    async with store.read() as conn:
        return {case_id: ref for case_id, ref in await conn.execute(select(cases.c.id, cases.c.reference))}
