"""The Prisma Cloud poller: the real alert sample, and the poll loop with tokens and page tokens against the emulator."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from conftest import vendor_path
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.connectors.prisma_cloud import PrismaCloudSource
from alertbridge.errors import AuthFailed, PayloadError
from alertbridge.model import AlertStatus, Severity
from alertbridge.pipeline.poll import PollRunner
from alertbridge.pipeline.process import Pipeline
from alertbridge.sandbox.prisma_cloud import create_app
from alertbridge.store.tables import inbox, jobs
from support.polling import run_until_caught_up, stored

SAMPLE = "prisma-cloud/alerts-v2-ndjson.log"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def sample_lines() -> list[dict]:
    return [json.loads(line) for line in vendor_path(SAMPLE).read_text(encoding="utf-8").splitlines() if line.strip()]


class Clock:
    """A clock tests move by hand."""

    def __init__(self):
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def source(app=None, clock=None, **config) -> PrismaCloudSource:
    settings = {"type": "prisma_cloud", "access_key": "sandbox-access-key", "secret_key": "sandbox-secret-key", **config}
    transport = httpx2.ASGITransport(app=app) if app is not None else None
    return PrismaCloudSource("pc", PrismaCloudSource.Config.model_validate(settings), transport=transport, clock=clock or Clock())


def alert(n: int, **fields) -> dict:
    return {"id": f"N-{n}", "status": "open", "alertTime": NOW_MS - (60 - n) * 60_000,
            "policy": {"name": f"policy {n}", "severity": "medium", "policyType": "config"},
            "resource": {"id": f"i-{n}", "name": f"vm-{n}", "cloudType": "aws"}, **fields}


ALERTS = [alert(n) for n in range(1, 8)]


def logins(app) -> int:
    return app.state.calls.count(("POST", "/login"))


# --- parse ---------------------------------------------------------------------------------------


def test_real_alert_parses():
    [parsed] = source().parse(sample_lines()[0])
    assert parsed.vendor_id == "N-3910"
    assert parsed.title == "AWS EC2 instance that is internet reachable with unrestricted access (0.0.0.0/0)"
    assert (parsed.severity, parsed.vendor_severity, parsed.category, parsed.status) == (Severity.high, "high", "network", AlertStatus.new)
    assert parsed.url == "https://app.prismacloud.io/alerts/overview?viewId=default&filters=alert.id=N-3910"
    assert parsed.observables.hosts == ["IS-37133", "i-04578e97170000047"] and parsed.observables.users == ["alex123"]
    assert parsed.detected_at == datetime(2023, 9, 6, 12, 30, 41, 966000, tzinfo=UTC)
    assert "Account id: 7111xx259376" in parsed.description and "Recommendation:" in parsed.description


def test_the_other_sample_lines_are_not_alerts():
    for body in sample_lines()[1:]:
        with pytest.raises(PayloadError, match="not a Prisma Cloud alert"):
            source().parse(body)


@pytest.mark.parametrize(("status", "expected"), [("dismissed", AlertStatus.resolved), ("resolved", AlertStatus.resolved),
                                                  ("snoozed", AlertStatus.in_progress), ("open", AlertStatus.new)])
def test_status_maps(status, expected):
    assert source().parse(alert(1, status=status))[0].status == expected


def test_severity_and_console_url_come_from_the_config():
    body = alert(1, policy={"name": "p", "severity": "informational"})
    [parsed] = source(console_url="https://app2.prismacloud.io").parse(body)
    assert parsed.severity == Severity.info and parsed.url.startswith("https://app2.prismacloud.io/alerts/overview?")


@pytest.mark.parametrize("body", [None, [], {"id": "N-1"}, {"policy": {}}, {"id": 5, "policy": {}}, {"id": "N-1", "policy": "p"}])
def test_malformed_alerts_raise_payload_error(body):
    with pytest.raises(PayloadError):
        source().parse(body)


# --- polling -------------------------------------------------------------------------------------


async def test_backfill_over_several_pages_logs_in_once(store):
    app = create_app(ALERTS)
    runner = PollRunner(store, source(app, page_size=3, interval=60), "node-1", asyncio.Event())
    assert await run_until_caught_up(runner) == [0.0, 0.0, 60]
    assert await stored(store) == [f"N-{n}:open" for n in range(1, 8)]
    assert logins(app) == 1
    assert json.loads(await runner.cursor()) == {"start": NOW_MS - 86_400_000, "end": NOW_MS, "token": None}


async def test_restart_in_the_middle_of_the_pages_loses_and_repeats_nothing(store):
    app = create_app(ALERTS)
    await PollRunner(store, source(app, page_size=3), "node-1", asyncio.Event()).step()
    assert json.loads(await PollRunner(store, source(app), "node-1", asyncio.Event()).cursor())["token"]
    await run_until_caught_up(PollRunner(store, source(app, page_size=3), "node-1", asyncio.Event()))
    assert await stored(store) == [f"N-{n}:open" for n in range(1, 8)]


async def test_the_next_window_overlaps_and_a_status_change_is_a_new_item(store):
    app = create_app(ALERTS)
    clock = Clock()
    runner = PollRunner(store, source(app, clock, overlap=300), "node-1", asyncio.Event())
    await run_until_caught_up(runner)
    clock.now += timedelta(minutes=1)
    app.state.items[0] = {**app.state.items[0], "status": "dismissed", "lastUpdated": NOW_MS + 30_000}
    await run_until_caught_up(runner)
    assert (await stored(store))[-2:] == ["N-7:open", "N-1:dismissed"]
    assert {call["filters"][0]["value"] for call in app.state.bodies} == {"ALERT_UPDATED"}


async def test_tokens_are_extended_before_expiry_and_renewed_after_a_401(store):
    app = create_app(ALERTS, expire_tokens_after=2)
    clock = Clock()
    pc = source(app, clock, page_size=2)
    runner = PollRunner(store, pc, "node-1", asyncio.Event())
    await run_until_caught_up(runner)
    assert await stored(store) == [f"N-{n}:open" for n in range(1, 8)]
    assert logins(app) >= 2  # each token served two calls; the 401 after them was answered by logging in again
    clock.now += timedelta(minutes=9)
    await pc.poll(await runner.cursor())
    assert ("GET", "/auth_token/extend") in app.state.calls


async def test_a_refused_page_token_rereads_the_window(store):
    app = create_app(ALERTS)
    cursor = json.dumps({"start": NOW_MS - 86_400_000, "end": NOW_MS, "token": "not-a-token!"})
    result = await source(app, page_size=10).poll(cursor)
    assert [item["id"] for item in result.items] == [f"N-{n}" for n in range(1, 8)]


async def test_a_429_is_waited_out(store):
    runner = PollRunner(store, source(create_app(ALERTS, rate_limit_every=1, retry_after=42)), "node-1", asyncio.Event())
    assert await runner.step() >= 42
    assert await stored(store) == []


async def test_wrong_secret_fails_as_auth(store):
    pc = source(create_app(ALERTS), secret_key="wrong")
    with pytest.raises(AuthFailed, match="401"):
        await pc.poll(None)
    assert await PollRunner(store, pc, "node-1", asyncio.Event()).step() >= 60


async def test_a_malformed_alert_is_dead_lettered_and_the_others_go_on(store):
    pc = source(create_app([alert(1), {"id": "N-2", "status": "open", "alertTime": NOW_MS - 1000}]))
    await PollRunner(store, pc, "node-1", asyncio.Event()).step()
    await Pipeline(validate_config({}), store, {"pc": pc}).process_batch()
    async with store.read() as conn:
        states = [(row.delivery_id, row.state) for row in await conn.execute(select(inbox).order_by(inbox.c.id))]
        dead = (await conn.execute(select(jobs.c.kind, jobs.c.state, jobs.c.last_error))).all()
    assert states == [("N-1:open", "done"), ("N-2:open", "dead")]
    assert [(kind, state) for kind, state, _ in dead] == [("ingest", "dead")] and "policy" in dead[0][2]
