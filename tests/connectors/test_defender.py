"""Defender (Graph alerts_v2) source: the real sample parses, and the poller pages, resumes, refreshes and waits against the emulator."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from pydantic import ValidationError
from conftest import vendor_json
from sqlalchemy import select

from alertbridge.config import Config, Route, Settings
from alertbridge.connectors.defender import DefenderParser, DefenderSource
from alertbridge.errors import AuthFailed, PayloadError, Permanent
from alertbridge.model import AlertStatus, Severity
from alertbridge.pipeline.poll import PollRunner
from alertbridge.pipeline.process import Pipeline
from alertbridge.sandbox.defender import CLIENT_ID, CLIENT_SECRET, TENANT_ID, create_app, default_items, synthetic_alert
from alertbridge.store.tables import cursors, inbox, jobs
from support.polling import drain

SAMPLE = "msgraph/security-alerts_v2-list-response.json"
START = datetime(2026, 1, 1, tzinfo=UTC)
SEVEN = [synthetic_alert(n, START + timedelta(minutes=n // 2)) for n in range(7)]  # pairs share a time
IDS = [a["id"] for a in SEVEN]


def source(**config) -> DefenderParser:
    return DefenderParser("defender", DefenderParser.Config.model_validate({"type": "defender", **config}))


# --- parse ----------------------------------------------------------------------------------------


def test_real_sample_parses_to_the_expected_alert():
    [alert] = source().parse(vendor_json(SAMPLE))
    assert alert.vendor_id == "da637551227677560813_-961444813"
    assert alert.title == "Suspicious execution of hidden file"
    assert (alert.severity, alert.vendor_severity, alert.status) == (Severity.low, "low", AlertStatus.new)
    assert alert.url == "https://security.microsoft.com/alerts/da637551227677560813_-961444813?tid=b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
    assert (alert.category, alert.tactics, alert.techniques) == ("DefenseEvasion", ["Defense Evasion"], ["T1564.001"])
    assert alert.source.tenant == "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
    assert alert.detected_at == datetime(2021, 4, 26, 7, 45, 50, 116000, tzinfo=UTC)
    assert alert.observables.hosts == ["tempDns"] and alert.observables.ips == ["1.1.1.1"]
    assert alert.observables.hashes == [
        "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec", "5f1e8acedc065031aad553b710838eb366cfee9a",
    ]
    assert alert.observables.users == []  # the only account is NT AUTHORITY\SYSTEM (S-1-5-18)
    assert alert.labels == ["Defender Experts"]
    # The doc's example has U+FFFD where its bullets were: kept as sent, never a crash.
    assert "\ufffd\tReview the machine timeline" in alert.description


def test_every_evidence_kind_gives_its_observables():
    alert = copy.deepcopy(SEVEN[0]) | {"status": "resolved", "severity": "high"}
    alert["evidence"] += [
        {"@odata.type": "#microsoft.graph.security.mailboxEvidence", "primaryAddress": "carol@contoso.com",
         "userAccount": {"accountName": "carol", "domainName": "CONTOSO", "userPrincipalName": None}},
        {"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence", "senderIp": "192.0.2.9",
         "recipientEmailAddress": "dave@contoso.com", "p1Sender": {"emailAddress": "evil@example.org"}},
        {"@odata.type": "#microsoft.graph.security.networkConnectionEvidence", "destinationAddress": {"ipAddress": "2001:db8::5"}},
        {"@odata.type": "#microsoft.graph.security.dnsEvidence", "domainName": "c2.example.org", "hostIpAddress": {"ipAddress": "not-an-ip"}},
    ]  # fmt: skip
    [parsed] = source(tenant="contoso").parse(alert)
    assert (parsed.severity, parsed.status, parsed.source.tenant) == (Severity.high, AlertStatus.resolved, "contoso")
    found = parsed.observables
    assert found.hosts == ["ws-000.contoso.com"]
    assert found.ips == ["10.0.0.1", "203.0.113.7", "192.0.2.9", "2001:db8::5"]
    assert found.users == ["alice@contoso.com", "CONTOSO\\carol"]
    assert found.emails == ["carol@contoso.com", "dave@contoso.com", "evil@example.org"]
    assert found.urls == ["https://malicious.example.net/payload"]
    assert found.domains == ["malicious.example.net", "c2.example.org"]


@pytest.mark.parametrize(("word", "severity"), [("informational", Severity.info), ("medium", Severity.medium), ("unknownFutureValue", Severity.medium)])
def test_severity_words(word, severity):
    [parsed] = source().parse(SEVEN[0] | {"severity": word})
    assert (parsed.severity, parsed.vendor_severity) == (severity, word)


@pytest.mark.parametrize("body", [None, [], "alert", {}, {"id": ""}, {"id": 7}, {"value": [{"id": "a"}, "b"]}])
def test_malformed_payloads_raise_payload_error(body):
    with pytest.raises(PayloadError):
        source().parse(body)


def test_item_id_marks_a_resolved_alert_and_digests_one_without_id():
    poller = DefenderSource("defender", DefenderSource.Config.model_validate(
        {"type": "defender", "tenant_id": TENANT_ID, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))
    assert poller.item_id(SEVEN[0]) == IDS[0]
    assert poller.item_id(SEVEN[0] | {"status": "resolved"}) == IDS[0] + "#resolved"
    assert poller.item_id({"title": "x"}).startswith("no-id:") and poller.item_id({"title": "x"}) != poller.item_id({"title": "y"})


# --- poller against the emulator ------------------------------------------------------------------


def poller(app, **config) -> DefenderSource:
    settings = {"type": "defender", "url": "http://graph.test", "login_url": "http://login.test", "tenant_id": TENANT_ID,
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "page_size": 3, "backfill": 10 * 365 * 86400,
                "interval": 60, **config}  # fmt: skip
    return DefenderSource("defender", DefenderSource.Config.model_validate(settings), transport=httpx2.ASGITransport(app=app))


async def stored(store) -> list[str]:
    async with store.read() as conn:
        return [json.loads(b).get("id") for b in (await conn.execute(select(inbox.c.body).order_by(inbox.c.id))).scalars()]


async def cursor(store) -> dict:
    async with store.read() as conn:
        return json.loads((await conn.execute(select(cursors.c.value))).scalar_one())


async def test_backfill_follows_next_links_then_waits_and_picks_up_a_resolved_alert(store):
    app = create_app(copy.deepcopy(SEVEN), page_size=3)
    runner = PollRunner(store, poller(app), "node-1", asyncio.Event())
    assert [await runner.step() for _ in range(3)] == [0.0, 0.0, 60]
    assert await stored(store) == IDS
    assert await cursor(store) == {"since": SEVEN[-1]["lastUpdateDateTime"], "next": None}
    # Polling again re-reads the newest time (ge): nothing is stored twice.
    assert await drain(runner) == 60 and await stored(store) == IDS
    # The analyst resolves alert 2 in Defender: it comes back once, as a resolved event of the same alert.
    app.state.defender.items[2] |= {"status": "resolved", "lastUpdateDateTime": "2026-02-01T00:00:00.1234567Z"}
    await drain(runner)
    await drain(runner)
    assert await stored(store) == [*IDS, IDS[2]]
    async with store.read() as conn:
        last = json.loads((await conn.execute(select(inbox.c.body).order_by(inbox.c.id.desc()))).scalars().first())
    assert runner.poller.parse(last)[0].status == AlertStatus.resolved
    assert (await cursor(store))["since"] == "2026-02-01T00:00:00.1234567Z"  # Graph's 7 digits, kept exactly


async def test_restart_mid_backfill_resumes_the_next_link_and_loses_nothing(store):
    app = create_app(copy.deepcopy(SEVEN), page_size=3)
    assert await PollRunner(store, poller(app), "node-1", asyncio.Event()).step() == 0.0  # one page, then the process dies
    assert (await cursor(store))["next"].startswith("http://graph.test/v1.0/security/alerts_v2?$skiptoken=")
    await drain(PollRunner(store, poller(app), "node-1", asyncio.Event()))
    assert await stored(store) == IDS
    lists = [path for _, path, _ in app.state.faults.calls if path.endswith("alerts_v2")]
    assert len(lists) == 3  # the restart did not start over


async def test_a_refused_next_link_restarts_the_chain_from_since(store):
    app = create_app(copy.deepcopy(SEVEN), page_size=3)
    runner = PollRunner(store, poller(app), "node-1", asyncio.Event())
    await runner.step()
    async with store.tx() as conn:
        stale = (await cursor(store)) | {"next": "http://graph.test/v1.0/security/alerts_v2?$skiptoken=expired"}
        await conn.execute(cursors.update().values(value=json.dumps(stale)))
    await drain(runner)
    assert await stored(store) == IDS
    assert ("GET", "/v1.0/security/alerts_v2", 400) in app.state.faults.calls


async def test_the_first_query_filters_and_orders_by_last_update(store):
    seen: list[httpx2.URL] = []
    app = create_app(copy.deepcopy(SEVEN), page_size=3)

    async def spy(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url)
        return await httpx2.ASGITransport(app=app).handle_async_request(request)

    graph = DefenderSource("defender", poller(app).config, transport=httpx2.MockTransport(spy))
    await graph.poll(json.dumps({"since": "2026-01-01T00:01:00Z", "next": None}))
    query = parse_qs(urlsplit(str(seen[-1])).query)
    assert query == {"$filter": ["lastUpdateDateTime ge 2026-01-01T00:01:00Z"], "$orderby": ["lastUpdateDateTime asc"], "$top": ["3"]}


async def test_an_expired_token_is_refreshed_once_and_the_call_retried(store):
    app = create_app(copy.deepcopy(SEVEN), page_size=3, expire_tokens_after=1)
    await drain(PollRunner(store, poller(app), "node-1", asyncio.Event()))
    assert await stored(store) == IDS
    calls = app.state.faults.calls
    assert ("GET", "/v1.0/security/alerts_v2", 401) in calls
    assert sum(1 for c in calls if c[1].endswith("/token")) == sum(1 for c in calls if c[2] == 401) + 1


async def test_a_429_is_waited_out_for_at_least_retry_after(store):
    app = create_app(copy.deepcopy(SEVEN), page_size=3, rate_limit_every=2, retry_after=30)
    runner = PollRunner(store, poller(app), "node-1", asyncio.Event())
    assert await runner.step() == 0.0
    assert await runner.step() >= 30  # the second list call is refused
    assert await stored(store) == IDS[:3]
    app.state.faults.rate_limit_every = None
    await drain(runner)
    assert await stored(store) == IDS


async def test_wrong_or_missing_credentials_fail_auth(store):
    app = create_app(copy.deepcopy(SEVEN))
    for wrong in ({"client_secret": "nope"}, {"tenant_id": "00000000-0000-0000-0000-000000000000"}, {"client_id": "other"}):
        with pytest.raises(AuthFailed, match="AADSTS|invalid|unauthorized"):
            await poller(app, **wrong).poll(None)
    with pytest.raises(ValidationError, match="client_secret"):  # a missing credential is a config error, before any poll
        poller(app, client_secret=None)
    assert await PollRunner(store, poller(app, client_secret="nope"), "node-1", asyncio.Event()).step() >= 60


async def test_a_next_link_to_another_host_is_refused():
    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            return httpx2.Response(200, json={"token_type": "Bearer", "expires_in": 3599, "access_token": "t"})
        return httpx2.Response(200, json={"value": [], "@odata.nextLink": "https://graph.example.net/v1.0/security/alerts_v2?$skiptoken=x"})

    graph = DefenderSource("defender", poller(create_app([])).config, transport=httpx2.MockTransport(answer))
    with pytest.raises(Permanent, match="nextLink"):  # the bearer token must never follow it there
        await graph.poll(None)


async def test_a_malformed_alert_is_dead_lettered_and_the_others_go_on(store):
    broken = {k: v for k, v in SEVEN[2].items() if k != "id"}
    app = create_app([SEVEN[0], broken, SEVEN[1]], page_size=3)
    graph = poller(app)
    await drain(PollRunner(store, graph, "node-1", asyncio.Event()))
    config = Config(Settings(routes=[Route(name="drop-all", drop=True)]), {"defender": graph.config}, {}, {}, {})
    assert await Pipeline(config, store, {"defender": graph}).process_batch() == 3
    async with store.read() as conn:
        states = [(json.loads(r.body).get("id"), r.state) for r in await conn.execute(select(inbox).order_by(inbox.c.id))]
        dead = (await conn.execute(select(jobs.c.kind, jobs.c.state, jobs.c.last_error))).all()
    assert sorted(states, key=str) == sorted([(IDS[0], "done"), (None, "dead"), (IDS[1], "done")], key=str)
    assert [(kind, state) for kind, state, _ in dead] == [("ingest", "dead")] and "no 'id'" in dead[0][2]


async def test_the_real_sample_travels_through_the_emulator_intact(store):
    sample = vendor_json(SAMPLE)["value"][0]
    sample["lastUpdateDateTime"] = "2026-01-01T00:00:00Z"
    app = create_app([sample])
    graph = poller(app)
    await drain(PollRunner(store, graph, "node-1", asyncio.Event()))
    async with store.read() as conn:
        [body] = (await conn.execute(select(inbox.c.body))).scalars()
    assert json.loads(body) == sample  # U+FFFD and all
    assert "\ufffd" in graph.parse(json.loads(body))[0].description


def test_emulator_default_items_are_recent_enough_for_a_default_backfill():
    day_ago = datetime.now(UTC) - timedelta(days=1)
    items = default_items()
    assert items and all(datetime.fromisoformat(i["lastUpdateDateTime"]) > day_ago for i in items)
