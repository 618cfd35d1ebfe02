"""Defender for Cloud Apps source: the real sample parses, text extraction works, and several tenants poll independently."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from conftest import vendor_json
from pydantic import ValidationError
from sqlalchemy import select

from alertbridge.config import Config, Route, Settings
from alertbridge.connectors.mcas import McasParser, McasSource
from alertbridge.errors import AuthFailed, PayloadError, RateLimited
from alertbridge.model import AlertStatus, Severity
from alertbridge.pipeline.poll import PollRunner
from alertbridge.pipeline.process import Pipeline
from alertbridge.sandbox.mcas import TOKENS, create_app, default_tenants, synthetic_alert
from alertbridge.store.tables import cursors, inbox, jobs
from support.polling import drain

SAMPLE = "mcas/alerts-list-response-item.json"
START = datetime(2026, 1, 1, tzinfo=UTC)
FIVE = [synthetic_alert(n, START + timedelta(minutes=n // 2)) for n in range(5)]  # pairs share a millisecond
THREE = [synthetic_alert(100 + n, START + timedelta(minutes=n), "contoso") for n in range(3)]


def source(**config) -> McasParser:
    """The parser alone; with `tenants`, the whole poller (it knows its tenants' URLs)."""
    cls = McasSource if "tenants" in config else McasParser
    return cls("mcas", cls.Config.model_validate({"type": "mcas", **config}))


def tenant(name: str, **extra) -> dict:
    return {"name": name, "url": f"http://mcas.test/{name}", "token": TOKENS[name], **extra}


# --- parse ----------------------------------------------------------------------------------------


def test_real_sample_parses_to_the_expected_alert():
    polled = {"tenant": "contoso", "alert": vendor_json(SAMPLE)}
    [alert] = source(tenants=[tenant("contoso")]).parse(polled)
    assert (alert.vendor_id, alert.title) == ("603f704aaf7417985bbf3b22", "Honeytoken activity")
    assert (alert.severity, alert.vendor_severity, alert.status) == (Severity.medium, "MEDIUM", AlertStatus.new)
    assert (alert.source.tenant, alert.source.instance) == ("contoso", "mcas.test")
    assert alert.url == "https://contoso.portal.cloudappsecurity.com/#/alerts/603f704aaf7417985bbf3b22"
    assert alert.detected_at == datetime(2021, 5, 25, 11, 25, 16, 475000, tzinfo=UTC)
    assert alert.observables.users == ["user1@contoso.com"]  # the account entity's principal, not its label
    assert alert.observables.hosts == ["DC3", "DC4", "Client1", "DC1"]
    assert alert.techniques == ["T1087", "T1087.002"] and alert.category == "Threat detection"
    assert "Threat score: 34" in alert.description
    assert alert.raw == vendor_json(SAMPLE)


def test_a_bare_alert_and_a_list_answer_parse_too():
    sample = vendor_json(SAMPLE)
    [bare] = source(tenant="contoso").parse(sample)
    assert (bare.source.tenant, bare.source.instance) == ("contoso", "contoso.portal.cloudappsecurity.com")
    listed = source().parse({"data": [sample, FIVE[0]], "hasNext": False, "total": 2})
    assert [a.vendor_id for a in listed] == [sample["_id"], FIVE[0]["_id"]]


@pytest.mark.parametrize(
    ("fields", "severity", "status"),
    [
        ({"severityValue": 0}, Severity.low, AlertStatus.new),
        ({"severityValue": 2, "statusValue": 1}, Severity.high, AlertStatus.new),
        ({"severityValue": 3}, Severity.info, AlertStatus.new),
        ({"severityValue": 9}, Severity.medium, AlertStatus.new),
        ({"resolutionStatusValue": 5}, Severity.low, AlertStatus.resolved),
        ({"resolutionStatusValue": 3}, Severity.low, AlertStatus.resolved),
        ({"statusValue": 2}, Severity.low, AlertStatus.resolved),
    ],
)
def test_severity_and_status_values(fields, severity, status):
    [alert] = source().parse(FIVE[0] | fields)
    assert (alert.severity, alert.status) == (severity, status)


def test_users_and_ips_are_extracted_from_the_text_by_default_and_by_configured_patterns():
    [alert] = source().parse(FIVE[3])
    assert alert.observables.users == ["bob3@fabrikam.com"]
    assert alert.observables.ips == ["198.51.100.4", "2001:db8::3"]
    assert alert.tactics == ["Initial Access"]
    custom = source(extract={"users": [r"user (CONTOSO\\\w+)", r"by (?P<who>\w+) at"], "ips": [r"from (\S+)"]})
    [alert] = custom.parse(FIVE[0] | {"title": "Mass download by eve at 10:00", "description": "user CONTOSO\\mallory from 10.1.2.3 from 999.1.1.1", "entities": []})
    assert alert.observables.users == ["CONTOSO\\mallory", "eve"]
    assert alert.observables.ips == ["10.1.2.3"]  # 999.1.1.1 matched the pattern but is no address


def test_config_refuses_bad_patterns_and_duplicate_tenants():
    with pytest.raises(ValidationError, match="not a regular expression"):
        source(extract={"users": ["(unclosed"]})
    with pytest.raises(ValidationError, match="must differ"):
        source(tenants=[tenant("contoso"), tenant("contoso")])


@pytest.mark.parametrize("body", [None, [], "x", {}, {"_id": 5}, {"tenant": "contoso", "alert": "x"}, {"tenant": None, "alert": {"_id": "a"}}, {"data": [1]}])
def test_malformed_payloads_raise_payload_error(body):
    with pytest.raises(PayloadError):
        source().parse(body)


# --- poller against the emulator ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poller(app, tenants=None, clock=None, **config) -> McasSource:
    settings = {"type": "mcas", "tenants": tenants or [tenant("fabrikam"), tenant("contoso")], "page_size": 2,
                "backfill": 10 * 365 * 86400, "interval": 60, **config}  # fmt: skip
    return McasSource("mcas", McasSource.Config.model_validate(settings), transport=httpx2.ASGITransport(app=app), clock=clock or Clock())


async def stored(store) -> list[str]:
    async with store.read() as conn:
        bodies = [json.loads(b) for b in (await conn.execute(select(inbox.c.body).order_by(inbox.c.id))).scalars()]
    return sorted(f"{b['tenant']}/{b['alert'].get('_id')}" for b in bodies)


EVERYTHING = sorted([f"fabrikam/{a['_id']}" for a in FIVE] + [f"contoso/{a['_id']}" for a in THREE])


async def test_backfill_pages_every_tenant_and_keeps_a_position_for_each(store):
    app = create_app({"fabrikam": copy.deepcopy(FIVE), "contoso": copy.deepcopy(THREE)})
    runner = PollRunner(store, poller(app), "node-1", asyncio.Event())
    assert await drain(runner) == 60
    assert await stored(store) == EVERYTHING
    async with store.read() as conn:
        positions = json.loads((await conn.execute(select(cursors.c.value))).scalar_one())
    # Caught up, each tenant sits on its newest alert's millisecond (re-read next time, or skipped once read again).
    assert {name: p["since"] for name, p in positions.items()} == {"contoso": THREE[-1]["timestamp"], "fabrikam": FIVE[-1]["timestamp"]}
    assert {p["skip"] for p in positions.values()} <= {0, 1}
    # Each stored alert carries its tenant, for routes' match.tenants.
    async with store.read() as conn:
        body = json.loads((await conn.execute(select(inbox.c.body).order_by(inbox.c.id))).scalars().first())
    assert runner.poller.parse(body)[0].source.tenant == body["tenant"]


async def test_restart_mid_backfill_loses_nothing_and_repeats_nothing(store):
    app = create_app({"fabrikam": copy.deepcopy(FIVE), "contoso": copy.deepcopy(THREE)})
    assert await PollRunner(store, poller(app), "node-1", asyncio.Event()).step() == 0.0  # one page each, then the process dies
    await drain(PollRunner(store, poller(app), "node-1", asyncio.Event()))
    assert await stored(store) == EVERYTHING


async def test_a_burst_in_one_millisecond_larger_than_a_page_is_read_through(store):
    burst = [synthetic_alert(n, START) for n in range(5)]
    app = create_app({"fabrikam": burst})
    await drain(PollRunner(store, poller(app, [tenant("fabrikam")]), "node-1", asyncio.Event()))
    assert await stored(store) == sorted(f"fabrikam/{a['_id']}" for a in burst)


async def test_a_tenant_with_a_wrong_token_is_recorded_and_the_others_go_on(store):
    app = create_app({"fabrikam": copy.deepcopy(FIVE), "contoso": copy.deepcopy(THREE)})
    clock = Clock()
    mcas = poller(app, [tenant("fabrikam"), tenant("contoso", token="wrong")], clock)
    runner = PollRunner(store, mcas, "node-1", asyncio.Event())
    assert await drain(runner) == 60
    assert await stored(store) == sorted(f"fabrikam/{a['_id']}" for a in FIVE)
    assert "401" in mcas.tenant_errors["contoso"] and "fabrikam" not in mcas.tenant_errors
    contoso_calls = [c for c in app.state.faults.calls if c[1].startswith("/contoso/")]
    assert len(contoso_calls) == 1  # left alone for an interval, not hammered on every page of the others
    # Every tenant failing makes poll raise, so that the core backs off.
    with pytest.raises(AuthFailed):
        await poller(app, [tenant("contoso", token="wrong")]).poll(None)


async def test_a_429_is_waited_out_for_at_least_retry_after(store):
    app = create_app({"fabrikam": copy.deepcopy(FIVE)}, rate_limit_every=2, retry_after=90)
    clock = Clock()
    runner = PollRunner(store, poller(app, [tenant("fabrikam")], clock), "node-1", asyncio.Event())
    assert await runner.step() == 0.0
    assert await runner.step() >= 90
    with pytest.raises(RateLimited):  # the tenant waits its turn without calling
        await runner.poller.poll(None)
    app.state.faults.rate_limit_every = None
    clock.now += 90
    assert await drain(runner) == 60
    assert await stored(store) == sorted(f"fabrikam/{a['_id']}" for a in FIVE)


async def test_min_severity_asks_only_for_the_severities_at_or_above_it(store):
    app = create_app({"fabrikam": copy.deepcopy(FIVE)})
    await drain(PollRunner(store, poller(app, [tenant("fabrikam", min_severity="medium")]), "node-1", asyncio.Event()))
    assert await stored(store) == sorted(f"fabrikam/{a['_id']}" for a in FIVE if a["severityValue"] in (1, 2))


async def test_a_malformed_alert_is_dead_lettered_and_the_others_go_on(store):
    broken = {k: v for k, v in FIVE[2].items() if k != "_id"}
    app = create_app({"fabrikam": [FIVE[0], broken, FIVE[1]]})
    mcas = poller(app, [tenant("fabrikam")])
    await drain(PollRunner(store, mcas, "node-1", asyncio.Event()))
    config = Config(Settings(routes=[Route(name="drop-all", drop=True)]), {"mcas": mcas.config}, {}, {}, {})
    assert await Pipeline(config, store, {"mcas": mcas}).process_batch() == 3
    async with store.read() as conn:
        states = sorted((json.loads(r.body)["alert"].get("_id") or "", r.state) for r in await conn.execute(select(inbox)))
        dead = (await conn.execute(select(jobs.c.kind, jobs.c.state, jobs.c.last_error))).all()
    assert states == sorted([("", "dead"), (FIVE[0]["_id"], "done"), (FIVE[1]["_id"], "done")])
    assert [(kind, state) for kind, state, _ in dead] == [("ingest", "dead")] and "no '_id'" in dead[0][2]


def test_emulator_default_tenants_are_recent_enough_for_a_default_backfill():
    day_ago = (datetime.now(UTC) - timedelta(days=1)).timestamp() * 1000
    tenants = default_tenants()
    assert set(tenants) == {"contoso", "fabrikam"}
    assert all(alert["timestamp"] > day_ago for alerts in tenants.values() for alert in alerts)
