"""The Proofpoint TAP poller: real SIEM API items, and the poll loop against the emulator's window rules."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from conftest import vendor_path
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.connectors.proofpoint_tap import ProofpointTapSource
from alertbridge.errors import AuthFailed, PayloadError
from alertbridge.model import AlertStatus, Severity
from alertbridge.pipeline.poll import PollRunner
from alertbridge.pipeline.process import Pipeline
from alertbridge.sandbox.proofpoint_tap import create_app
from alertbridge.store.tables import inbox, jobs
from support.polling import run_until_caught_up, stored

SAMPLE = "proofpoint/tap-siem-messages-delivered-ndjson.log"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def samples() -> list[dict]:
    return [json.loads(line) for line in vendor_path(SAMPLE).read_text(encoding="utf-8").splitlines() if line.strip()]


def source(app=None, **config) -> ProofpointTapSource:
    settings = {"type": "proofpoint_tap", "principal": "sandbox-principal", "secret": "sandbox-secret", **config}
    transport = httpx2.ASGITransport(app=app) if app is not None else None
    return ProofpointTapSource("pp", ProofpointTapSource.Config.model_validate(settings), transport=transport, clock=lambda: NOW)


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def message(guid: str, minutes_ago: float, event_type: str = "messagesDelivered", **fields) -> dict:
    threat = {"classification": "phish", "threatType": "url", "threat": "http://bad.example.net/", "threatStatus": "active",
              "threatUrl": f"https://threatinsight.proofpoint.com/t/{guid}"}
    return {"eventType": event_type, "GUID": guid, "messageTime": at(minutes_ago), "recipient": ["ana@example.com"],
            "threatsInfoMap": [threat], "phishScore": 0, **fields}


# --- parse ---------------------------------------------------------------------------------------


def test_real_messages_delivered_parse():
    alerts = [alert for item in samples() for alert in source().parse(item)]
    assert len(alerts) == 8
    first = alerts[0]
    assert first.vendor_id == "Nhxxsxvxixcxx2x5xxxx6xWxBxOxxxxxxj"
    assert (first.severity, first.vendor_severity, first.category) == (Severity.high, "spam, phish", "spam")
    assert first.observables.emails == ["fhsvbUi8axxxxxxUi8abc256326@example.com"]
    assert first.observables.ips == ["175.16.199.1"] and first.observables.urls == ["http://zbcd123456x0.example.com"]
    assert first.url.startswith("https://threatinsight.proofpoint.com/aaabcdef-1234-b1abcdefghe/threat/email/b7e")
    assert first.detected_at == datetime(2022, 1, 5, 10, 5, 56, 20000, tzinfo=UTC)
    assert alerts[2].severity == Severity.low  # spam only
    fifth = alerts[4]
    assert fifth.title == "Speakers Announced | Ecosystem Days Summit"
    assert "QID: 2XX29XX029XXXX38XXX6" in fifth.description
    assert "client.services@example.com" in fifth.observables.emails
    assert "a591a6d40bf420404a011733cfb7b190d62c65bf0bcda32b57b277d9ad9f146e" in fifth.observables.hashes


def test_event_type_scores_and_threat_status_shape_the_alert():
    pp = source()
    delivered = pp.parse(message("g1", 1))[0]
    assert delivered.severity == Severity.high and delivered.title == "Proofpoint TAP: phish message delivered to ana@example.com"
    assert delivered.labels == ["proofpoint", "messagesDelivered"]
    assert pp.parse(message("g1", 1, "messagesBlocked"))[0].severity == Severity.medium
    assert pp.parse(message("g1", 1, threatsInfoMap=[], malwareScore=80))[0].severity == Severity.high
    assert pp.parse(message("g1", 1, threatsInfoMap=[], malwareScore=74))[0].severity == Severity.medium
    cleared = message("g1", 1)
    cleared["threatsInfoMap"][0]["threatStatus"] = "falsePositive"
    assert pp.parse(cleared)[0].status == AlertStatus.resolved
    click = {"eventType": "clicksPermitted", "id": "c-1", "GUID": "g1", "clickTime": at(1), "classification": "MALWARE",
             "url": "http://bad.example.net/x", "clickIP": "198.51.100.7", "recipient": "ana@example.com",
             "threatURL": "https://threatinsight.proofpoint.com/#/abc", "threatStatus": "active"}
    [alert] = pp.parse(click)
    assert (alert.vendor_id, alert.severity, alert.url) == ("c-1", Severity.critical, "https://threatinsight.proofpoint.com/#/abc")
    assert alert.observables.ips == ["198.51.100.7"] and alert.observables.urls == ["http://bad.example.net/x"]
    assert pp.item_id(click) == "clicksPermitted:c-1" and pp.item_id(message("g1", 1)) == "messagesDelivered:g1"


@pytest.mark.parametrize("body", [[], "x", {"messageTime": at(1)}, {"GUID": ""}, {"clickTime": at(1), "GUID": "g"},
                                  {"GUID": "g", "eventType": "messagesQuarantined"}])
def test_malformed_items_raise_payload_error(body):
    with pytest.raises(PayloadError):
        source().parse(body)


# --- polling -------------------------------------------------------------------------------------

ITEMS = [message("old", 230), {**message("click", 150, "clicksPermitted"), "id": "c-1", "clickTime": at(150)},
         message("blocked", 100, "messagesBlocked"), message("mid", 70), message("new", 5)]


async def test_backfill_walks_one_hour_windows_and_keeps_the_chosen_event_types(store):
    app = create_app(ITEMS, now=lambda: NOW)
    runner = PollRunner(store, source(app, backfill=4 * 3600, interval=60), "node-1", asyncio.Event())
    waits = await run_until_caught_up(runner)
    assert waits[-1] == 60 and all(w == 0.0 for w in waits[:-1])
    assert await stored(store) == ["messagesDelivered:old", "clicksPermitted:c-1", "messagesDelivered:mid", "messagesDelivered:new"]
    windows = [call["interval"].split("/") for call in app.state.calls]
    assert len(windows) == 5  # four hours in windows of an hour, each reaching back the one-minute overlap
    for first, last in windows:
        assert timedelta(0) < datetime.fromisoformat(last) - datetime.fromisoformat(first) <= timedelta(hours=1)
    assert await runner.cursor() == "2025-03-10T12:00:00Z"


async def test_restart_in_the_middle_of_a_backfill_loses_and_repeats_nothing(store):
    app = create_app(ITEMS, now=lambda: NOW)
    await PollRunner(store, source(app, backfill=4 * 3600), "node-1", asyncio.Event()).step()
    assert await stored(store) == ["messagesDelivered:old"]
    await run_until_caught_up(PollRunner(store, source(app, backfill=4 * 3600), "node-1", asyncio.Event()))
    assert await stored(store) == ["messagesDelivered:old", "clicksPermitted:c-1", "messagesDelivered:mid", "messagesDelivered:new"]


async def test_backfill_and_stale_cursors_are_clamped_to_seven_days(store):
    app = create_app([], now=lambda: NOW)
    pp = source(app, backfill=30 * 86400)
    await pp.poll(None)
    await pp.poll("2025-01-01T00:00:00Z")
    starts = [datetime.fromisoformat(call["interval"].split("/")[0]) for call in app.state.calls]
    assert starts == [NOW - timedelta(days=7) + timedelta(minutes=1)] * 2


async def test_a_429_is_waited_out(store):
    runner = PollRunner(store, source(create_app(ITEMS, now=lambda: NOW, rate_limit_every=1)), "node-1", asyncio.Event())
    assert await runner.step() >= 600  # Proofpoint sends no Retry-After: the connector's pause applies
    assert await stored(store) == []


async def test_wrong_credentials_fail_as_auth(store):
    pp = source(create_app(ITEMS, now=lambda: NOW), secret="wrong")
    with pytest.raises(AuthFailed, match="401"):
        await pp.poll(None)
    assert await PollRunner(store, pp, "node-1", asyncio.Event()).step() >= 60


async def test_a_window_the_api_refuses_is_reported_with_its_message():
    app = create_app(ITEMS, now=lambda: NOW)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://pp") as client:
        answer = await client.get("/v2/siem/all", params={"format": "json", "interval": f"{at(120)}/{at(0)}"},
                                  auth=("sandbox-principal", "sandbox-secret"))
    assert answer.status_code == 400 and "interval is too long" in answer.text


async def test_a_malformed_item_is_dead_lettered_and_the_others_go_on(store):
    broken = {"eventType": "messagesDelivered", "messageTime": at(3), "subject": "no GUID"}
    pp = source(create_app([message("good", 4), broken], now=lambda: NOW), backfill=600)
    await PollRunner(store, pp, "node-1", asyncio.Event()).step()
    await Pipeline(validate_config({}), store, {"pp": pp}).process_batch()
    async with store.read() as conn:
        states = [(row.state, json.loads(row.body).get("subject")) for row in await conn.execute(select(inbox).order_by(inbox.c.id))]
        dead = (await conn.execute(select(jobs.c.kind, jobs.c.state, jobs.c.last_error))).all()
    assert states == [("done", None), ("dead", "no GUID")]
    assert [(kind, state) for kind, state, _ in dead] == [("ingest", "dead")] and "GUID" in dead[0][2]
