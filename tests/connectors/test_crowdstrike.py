"""CrowdStrike Falcon: the Fusion webhook source and the Alerts API v2 poller, on real alerts and against the emulator."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx2
import pytest
from pydantic import ValidationError
from conftest import vendor_json
from sqlalchemy import select

from alertbridge.config import Config, Route, Settings
from alertbridge.connectors.crowdstrike import CrowdStrikeAlertsPoller, CrowdStrikeSource
from alertbridge.errors import AuthFailed, PayloadError, SignatureError
from alertbridge.model import AlertStatus, Severity, SourceState
from alertbridge.pipeline.poll import PollRunner
from alertbridge.pipeline.process import Pipeline
from alertbridge.sandbox.crowdstrike import CLIENT_ID, CLIENT_SECRET, create_app, default_alerts
from alertbridge.store.tables import inbox, jobs
from support.polling import drain

ENTITIES = "crowdstrike/falcon-alerts-v2-entities-response.json"
FIRST = "00000000000000000000000000000001:fcs:ioa-211:00000000-0000-0000-0000-000000000002"


def webhook(**auth) -> CrowdStrikeSource:
    """Build the webhook source, with `auth` settings if given."""
    return CrowdStrikeSource("falcon", CrowdStrikeSource.Config.model_validate({"type": "crowdstrike", "auth": auth or {"mode": "none"}}))


def alert_at(n: int, updated: str, **fields) -> dict:
    """Return one synthetic Alerts API v2 alert."""
    return {"composite_id": f"cid:ind:{n}", "id": f"ind:{n}", "display_name": f"alert {n}", "severity": 50,
            "severity_name": "Medium", "status": "new", "updated_timestamp": updated, **fields}  # fmt: skip


# --- parse ----------------------------------------------------------------------------------------


def test_real_entities_answer_parses_to_its_alerts():
    first, second = webhook().parse(vendor_json(ENTITIES))
    assert first.vendor_id == FIRST
    assert first.title == "EC2 security group modified with new ingress rule allowing traffic from the public internet"
    assert (first.severity, first.vendor_severity) == (Severity.high, "High")
    assert first.url == f"https://falcon.crowdstrike.com/unified-detections/{FIRST}"
    assert first.detected_at == datetime(2026, 4, 20, 22, 49, 13, tzinfo=UTC)
    assert (first.tactics, first.techniques) == (["Defense Evasion"], ["T1562.007"])
    assert (first.observables.ips, first.observables.users) == (["192.0.2.1"], ["dummy-user"])
    assert first.status == AlertStatus.new and first.category == "cloud-ioa"
    assert "Resource: sg-0000000000000dummy" in first.description
    assert (second.title, second.severity) == ("Another IOA", Severity.low)


@pytest.mark.parametrize("wrap", [lambda a: a, lambda a: {"data": a}, lambda a: {"data": {"resources": [a]}}, lambda a: [a]])
def test_webhook_takes_one_alert_in_each_shape_fusion_sends(wrap):
    alert = vendor_json(ENTITIES)["resources"][0]
    [parsed] = webhook().parse(wrap(copy.deepcopy(alert)))
    assert parsed.vendor_id == FIRST


@pytest.mark.parametrize(
    ("fields", "severity", "status"),
    [
        ({"severity_name": None, "severity": 95}, Severity.critical, AlertStatus.new),
        ({"severity_name": None, "severity": 10}, Severity.info, AlertStatus.new),
        ({"severity_name": "Informational", "status": "closed"}, Severity.info, AlertStatus.resolved),
        ({"status": "in_progress"}, Severity.medium, AlertStatus.in_progress),
    ],
)
def test_severity_score_and_status(fields, severity, status):
    [parsed] = webhook().parse(alert_at(1, "2026-01-01T00:00:00Z", **fields))
    assert (parsed.severity, parsed.status) == (severity, status)


@pytest.mark.parametrize(("status", "tags", "state"), [
    ("closed", ["false_positive"], SourceState.false_positive), ("closed", ["ops-reviewed", "benign"], SourceState.benign),
    ("closed", ["duplicate"], SourceState.suppressed), ("closed", [], SourceState.resolved),
    ("closed", ["true_positive", "false_positive"], SourceState.resolved),  # two verdicts: none of them
    ("in_progress", ["false_positive"], SourceState.in_progress),  # a verdict tag on an open alert is no verdict yet
])
def test_a_closed_alerts_verdict_is_its_one_verdict_tag(status, tags, state):
    [parsed] = webhook().parse(alert_at(1, "2026-01-01T00:00:00Z", status=status, tags=tags))
    assert parsed.state == state


@pytest.mark.parametrize("body", [None, [], {}, {"resources": []}, {"composite_id": 7}, {"data": [{"name": "x"}]}, "alert"])
def test_malformed_bodies_raise_payload_error(body):
    with pytest.raises(PayloadError):
        webhook().parse(body)


# --- webhook signature ----------------------------------------------------------------------------

BODY = b'{"composite_id": "cid:ind:1"}'
STAMP = "2026-04-20T22:49:16Z"


def signed(message: bytes, encode) -> dict[str, str]:
    digest = hmac.new(b"s3cret", message, hashlib.sha256).digest()
    return {"x-cs-primary-signature": encode(digest), "x-cs-delivery-timestamp": STAMP}


@pytest.mark.parametrize("message", [BODY + STAMP.encode(), STAMP.encode() + BODY])
@pytest.mark.parametrize("encode", [lambda d: base64.b64encode(d).decode(), bytes.hex])
def test_falcon_signature_verifies(message, encode):
    source = webhook(mode="hmac", secret="s3cret")
    source.verify(signed(message, encode), {}, BODY)
    assert source.delivery_id(signed(message, encode)).startswith("sig:")


@pytest.mark.parametrize(
    "headers",
    [
        signed(BODY + STAMP.encode(), bytes.hex) | {"x-cs-delivery-timestamp": "2026-04-20T22:49:17Z"},
        signed(b"other" + STAMP.encode(), bytes.hex),
        {"x-cs-delivery-timestamp": STAMP},
        {k: v for k, v in signed(BODY + STAMP.encode(), bytes.hex).items() if k != "x-cs-delivery-timestamp"},
    ],
    ids=["other timestamp", "other body", "no signature", "no timestamp"],
)
def test_wrong_falcon_signature_is_refused(headers):
    with pytest.raises(SignatureError):
        webhook(mode="hmac", secret="s3cret").verify(headers, {}, BODY)


def test_bearer_mode_still_works():
    source = webhook(mode="bearer", token="t0ken")
    source.verify({"authorization": "Bearer t0ken"}, {}, BODY)
    with pytest.raises(SignatureError):
        source.verify({"authorization": "Bearer nope"}, {}, BODY)


# --- poller against the emulator ------------------------------------------------------------------

SEVEN = [alert_at(n, f"2026-01-0{1 + n // 2}T00:00:00Z") for n in range(7)]  # pairs share a time, to page through ties


def poller(app, **config) -> CrowdStrikeAlertsPoller:
    settings = {"type": "crowdstrike_alerts", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "page_size": 2, "backfill": 10 * 365 * 86400, "interval": 60, **config}  # fmt: skip
    return CrowdStrikeAlertsPoller("falcon", CrowdStrikeAlertsPoller.Config.model_validate(settings), transport=httpx2.ASGITransport(app=app))


async def stored(store) -> list[str]:
    async with store.read() as conn:
        return [json.loads(b)["composite_id"] for b in (await conn.execute(select(inbox.c.body).order_by(inbox.c.id))).scalars()]


async def test_backfill_pages_through_ties_then_picks_up_a_closed_alert(store):
    app = create_app(copy.deepcopy(SEVEN))
    runner = PollRunner(store, poller(app), "node-1", asyncio.Event())
    assert await drain(runner) == 60
    assert await stored(store) == [a["composite_id"] for a in SEVEN]
    # The analyst closes alert 2 in Falcon: it comes back once, as a new event of the same alert.
    app.state.falcon.alerts[2] |= {"status": "closed", "updated_timestamp": "2026-02-01T00:00:00Z"}
    await drain(runner)
    assert await stored(store) == [a["composite_id"] for a in SEVEN] + ["cid:ind:2"]
    async with store.read() as conn:
        last = json.loads((await conn.execute(select(inbox.c.body).order_by(inbox.c.id.desc()))).scalars().first())
    assert runner.poller.parse(last)[0].status == AlertStatus.resolved


async def test_restart_mid_backfill_loses_nothing_and_repeats_nothing(store):
    app = create_app(copy.deepcopy(SEVEN))
    assert await PollRunner(store, poller(app), "node-1", asyncio.Event()).step() == 0.0  # one page, then the process dies
    await drain(PollRunner(store, poller(app), "node-1", asyncio.Event()))
    assert await stored(store) == [a["composite_id"] for a in SEVEN]


async def test_an_expired_token_is_refreshed_once(store):
    app = create_app(copy.deepcopy(SEVEN), expire_tokens_after=3)
    await drain(PollRunner(store, poller(app), "node-1", asyncio.Event()))
    assert await stored(store) == [a["composite_id"] for a in SEVEN]
    calls = app.state.faults.calls
    assert ("GET", "/alerts/queries/alerts/v2", 401) in calls
    assert sum(1 for c in calls if c[1] == "/oauth2/token") == sum(1 for c in calls if c[2] == 401) + 1


async def test_a_429_is_waited_out_for_at_least_what_falcon_asks(store):
    app = create_app(copy.deepcopy(SEVEN), rate_limit_every=2, retry_after=30)
    runner = PollRunner(store, poller(app), "node-1", asyncio.Event())
    assert await runner.step() >= 30  # call 2, the first query, is refused
    assert await stored(store) == []
    app.state.faults.rate_limit_every = None
    await drain(runner)
    assert await stored(store) == [a["composite_id"] for a in SEVEN]


async def test_wrong_credentials_fail_auth(store):
    app = create_app(copy.deepcopy(SEVEN))
    with pytest.raises(AuthFailed):
        await poller(app, client_secret="wrong").poll(None)
    with pytest.raises(ValidationError, match="client_id"):  # a missing credential is a config error, before any poll
        poller(app, client_id="")
    assert await PollRunner(store, poller(app, client_secret="wrong"), "node-1", asyncio.Event()).step() >= 60


async def test_a_malformed_alert_is_dead_lettered_and_the_others_go_on(store):
    broken = alert_at(9, "2026-01-01T00:00:00Z", composite_id="", id=None)
    app = create_app([SEVEN[0], broken, SEVEN[1]])
    source = poller(app)
    await drain(PollRunner(store, source, "node-1", asyncio.Event()))
    config = Config(Settings(routes=[Route(name="drop-all", drop=True)]), {"falcon": source.config}, {}, {}, {})
    assert await Pipeline(config, store, {"falcon": source}).process_batch() == 3
    async with store.read() as conn:
        states = [(json.loads(r.body)["composite_id"], r.state) for r in await conn.execute(select(inbox).order_by(inbox.c.id))]
        dead = (await conn.execute(select(jobs.c.kind, jobs.c.state, jobs.c.last_error))).all()
    assert sorted(states) == [("", "dead"), ("cid:ind:0", "done"), ("cid:ind:1", "done")]
    assert [(kind, state) for kind, state, _ in dead] == [("ingest", "dead")] and "composite_id" in dead[0][2]


def test_emulator_serves_a_filtered_sorted_query():
    from fastapi.testclient import TestClient

    client = TestClient(create_app(copy.deepcopy(SEVEN)))
    token = client.post("/oauth2/token", data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    answer = client.get("/alerts/queries/alerts/v2", headers=auth,
                        params={"filter": "updated_timestamp:>'2026-01-02T00:00:00Z'+status:'new'", "sort": "updated_timestamp|desc"})  # fmt: skip
    assert answer.json()["resources"] == ["cid:ind:6", "cid:ind:5", "cid:ind:4"]
    assert client.get("/alerts/queries/alerts/v2", headers=auth, params={"filter": "bad filter"}).status_code == 400
    assert client.get("/alerts/queries/alerts/v2").status_code == 401
    assert len(default_alerts()) >= 2
