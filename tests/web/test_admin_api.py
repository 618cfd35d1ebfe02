"""The admin API offers what the console and the CLI do: case filters, a case's detail, dead letters by kind."""

from __future__ import annotations

import json

import httpx2

from alertbridge.api import create_app
from support.hub import drain, make_hub, send
from support.recorder import Recorder

ROUTES = [{"name": "soc", "sink": "cases", "group_by": "{{ alert.title }}"}]


async def test_filters_detail_and_replay_by_kind(tmp_path):
    hub = make_hub(tmp_path, ROUTES, Recorder(), admin_token="api-token")
    await send(hub, {"id": "1", "title": "Brute force", "severity": "high", "hosts": ["vpn-1"]},
               {"id": "2", "title": "Port scan", "severity": "low"}, {"id": "3", "title": "Brute force", "severity": "high"})
    await hub.inbox.put("gen", json.dumps({"nothing": "here"}).encode())  # an unparsable event: a dead ingest
    await drain(hub)
    admin = {"Authorization": "Bearer api-token"}
    try:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(hub, run_loops=False)), base_url="http://hub") as api:
            listed = (await api.get("/api/cases", params={"text": "brute", "severity": "high"}, headers=admin)).json()
            assert [(c["title"], c["alert_count"], c["ticket"]["key"]) for c in listed] == [("Brute force", 2, "CASE-1")]
            assert (await api.get("/api/cases", params={"state": "stuck"}, headers=admin)).json() == []
            detail = (await api.get(f"/api/cases/{listed[0]['id']}", headers=admin)).json()
            assert [a["title"] for a in detail["alerts"]] == ["Brute force", "Brute force"]
            assert [j["kind"] for j in detail["jobs"]][0] == "create_ticket" and detail["case"]["observables"]["hosts"] == ["vpn-1"]
            assert (await api.get("/api/cases/999", headers=admin)).status_code == 404
            assert (await api.get("/api/dlq/999", headers=admin)).json() == {"detail": "no job 999"}
            (dead,) = (await api.get("/api/dlq", params={"kind": "ingest"}, headers=admin)).json()
            assert (await api.get("/api/dlq", params={"kind": "create_ticket"}, headers=admin)).json() == []
            assert (await api.post("/api/dlq/replay", params={"kind": "create_ticket"}, headers=admin)).json() == {"replayed": 0}
            assert (await api.post("/api/dlq/replay", params={"kind": "ingest"}, headers=admin)).json() == {"replayed": 1}
            assert (await api.get(f"/api/dlq/{dead['id']}", headers=admin)).json()["state"] == "pending"
    finally:
        await hub.aclose()


def test_the_cli_lists_and_replays_dead_letters_of_one_kind(tmp_path):
    from typer.testing import CliRunner

    from alertbridge.cli import app

    async def seed():
        hub = make_hub(tmp_path, ROUTES, Recorder())
        await hub.inbox.put("gen", json.dumps({"nothing": "here"}).encode())
        await drain(hub)
        await hub.aclose()
        return hub.config.settings.database

    import asyncio

    database = asyncio.run(seed())
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"database": database, "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
                                  "sinks": {"cases": {"type": "http", "url": "http://recorder"}}, "routes": ROUTES}))
    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list", "-c", str(config), "--kind", "ingest"])
    assert listed.exit_code == 0 and "1 dead job(s)" in listed.output
    assert "0 dead job(s)" in runner.invoke(app, ["dlq", "list", "-c", str(config), "--kind", "create_ticket"]).output
    assert runner.invoke(app, ["dlq", "replay", "-c", str(config), "--kind", "ingest", "--all"]).exit_code == 2
    typo = runner.invoke(app, ["dlq", "replay", "-c", str(config), "--kind", "ingets"])
    assert typo.exit_code == 2 and "unknown job kind 'ingets' (known: attach_evidence, case_event," in typo.output
    replayed = runner.invoke(app, ["dlq", "replay", "-c", str(config), "--kind", "ingest"])
    assert replayed.exit_code == 0 and "replayed 1 job(s)" in replayed.output


async def test_retry_of_a_missing_case_is_404_and_of_a_healthy_one_409(tmp_path):
    hub = make_hub(tmp_path, ROUTES, Recorder(), admin_token="api-token")
    await send(hub, {"id": "1", "title": "Brute force", "severity": "high"})
    await drain(hub)
    admin = {"Authorization": "Bearer api-token"}
    try:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(hub, run_loops=False)), base_url="http://hub") as api:
            assert (await api.post("/api/cases/99/retry", headers=admin)).json() == {"detail": "no case 99"}
            healthy = await api.post("/api/cases/1/retry", headers=admin)
            assert healthy.status_code == 409 and "nothing to retry" in healthy.json()["detail"]
    finally:
        await hub.aclose()
