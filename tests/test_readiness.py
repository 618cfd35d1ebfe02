"""Liveness and readiness are separate: /healthz says the process serves, /readyz that it can do its work."""

from __future__ import annotations

import threading

import httpx2
import sqlalchemy as sa

from alertbridge.api import create_app
from alertbridge.config import validate_config
from alertbridge.service import Hub
from alertbridge.store import head_revision, upgrade


async def _get(hub: Hub, path: str) -> httpx2.Response:
    app = create_app(hub, run_loops=False)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
        return await client.get(path)


async def test_ready_when_the_schema_is_current(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    hub = Hub(validate_config({"database": url}))
    response = await _get(hub, "/readyz")
    await hub.aclose()
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "schema": head_revision()}


async def test_not_ready_on_an_old_schema_while_still_alive(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    hub = Hub(validate_config({"database": url}))
    ready, alive = await _get(hub, "/readyz"), await _get(hub, "/healthz")
    await hub.aclose()
    assert ready.status_code == 503
    assert ready.json() == {"status": "not ready", "schema": "0001", "expected": head_revision()}
    assert alive.status_code == 200


async def test_not_ready_without_a_database(tmp_path):
    before = set(threading.enumerate())
    hub = Hub(validate_config({"database": f"sqlite:///{tmp_path / 'missing' / 'hub.db'}"}))
    ready, alive = await _get(hub, "/readyz"), await _get(hub, "/healthz")
    await hub.aclose()
    # Each failed open has stopped its aiosqlite worker thread before answering: none is left to report to a closed loop.
    assert [t.name for t in set(threading.enumerate()) - before if "_connection_worker_thread" in t.name] == []
    assert ready.status_code == 503 and ready.json()["status"] == "not ready"
    assert alive.status_code == 200 and alive.json()["database"].startswith("unreachable")
