"""AbuseIPDB enricher against its emulator: public IPs only, cached, within a daily budget, never in the way."""

from __future__ import annotations

import ipaddress
import shutil

import httpx2
import pytest
from conftest import vendor_json

from alertbridge.config import Route
from alertbridge.connectors.abuseipdb import AbuseIpdbEnricher
from alertbridge.metrics import ENRICHMENTS
from alertbridge.model import Alert, Observables, SourceInfo
from alertbridge.pipeline.enrich import StoreCache
from alertbridge.pipeline.route import draft_ticket
from alertbridge.sandbox.abuseipdb import API_KEY, create_app, synthetic
from alertbridge.store import Store, upgrade

SAMPLE = "abuseipdb/check-ip-verbose-response.json"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """Migrate one SQLite file per module; each test gets a copy (migrating takes most of a second)."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
async def cache(migrated, tmp_path):
    shutil.copy(migrated, tmp_path / "enrich.db")
    store = Store(f"sqlite:///{tmp_path / 'enrich.db'}")
    yield StoreCache(store)
    await store.aclose()


def enricher(app, **config) -> AbuseIpdbEnricher:
    settings = {"type": "abuseipdb", "url": "http://abuseipdb.test", "api_key": API_KEY, "include_documentation_ranges": True, **config}
    return AbuseIpdbEnricher("abuseipdb", AbuseIpdbEnricher.Config.model_validate(settings), transport=httpx2.ASGITransport(app=app))


def alert(*ips: str, title: str = "ssh brute force") -> Alert:
    source = SourceInfo(name="s", type="splunk", product="Splunk", vendor="Splunk")
    return Alert(source=source, vendor_id=title, title=title, observables=Observables(ips=list(ips)))


def counted(outcome: str) -> float:
    return ENRICHMENTS.labels(enricher="abuseipdb", outcome=outcome)._value.get()


def checked(app) -> list[int]:
    return [status for _, status in app.state.abuseipdb.calls]


async def test_the_real_sample_ip_is_enriched_and_a_route_template_reads_its_score(cache):
    real = vendor_json(SAMPLE)["data"]
    app = create_app([real])
    one = alert("198.51.100.100")
    await enricher(app).enrich([one], cache)
    assert one.enrichment["abuseipdb"] == {
        "max_score": 100,
        "ips": {"198.51.100.100": {"score": 100, "reports": 1, "country": "CN", "isp": "Tencent Cloud Computing (Beijing) Co. Ltd",
                                   "usage": "Data Center/Web Hosting/Transit"}},
    }
    route = Route(name="r", sink="jira", fields={"Abuse score": "{{ alert.enrichment.abuseipdb.max_score }}"},
                  summary="{% if alert.enrichment.abuseipdb.max_score >= 75 %}[known abuser] {% endif %}{{ alert.title }}")
    draft = draft_ticket(route, one, {"id": 1})
    assert draft.fields == {"Abuse score": "100"} and draft.summary == "[known abuser] ssh brute force"


async def test_a_cache_hit_avoids_a_second_call(cache):
    app = create_app([])
    first, second = alert("8.8.8.8"), alert("8.8.8.8", title="again")
    hits = counted("hit")
    await enricher(app).enrich([first], cache)
    await enricher(app).enrich([second], cache)  # another batch, even another process: the database cache answers
    assert checked(app) == [200]
    assert counted("hit") == hits + 1
    score = synthetic(ipaddress.ip_address("8.8.8.8"))["abuseConfidenceScore"]
    assert second.enrichment == first.enrichment and first.enrichment["abuseipdb"]["ips"]["8.8.8.8"]["score"] == score


async def test_the_same_ip_in_one_batch_is_looked_up_once(cache):
    app = create_app([])
    alerts = [alert("1.1.1.1", title=str(n)) for n in range(5)]
    await enricher(app).enrich(alerts, cache)
    assert checked(app) == [200] and all("abuseipdb" in a.enrichment for a in alerts)


@pytest.mark.parametrize("ip", ["10.0.0.5", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1", "224.0.0.1",
                                "240.0.0.1", "::1", "fe80::1", "fd00::1", "not-an-ip"])
async def test_private_and_special_ips_are_never_sent(cache, ip):
    app = create_app([])
    one = alert(ip)
    await enricher(app).enrich([one], cache)
    assert checked(app) == [] and one.enrichment == {}


async def test_documentation_ranges_only_when_asked(cache):
    app = create_app([])
    one = alert("198.51.100.7", "2001:db8::1")
    await enricher(app, include_documentation_ranges=False).enrich([one], cache)
    assert checked(app) == [] and one.enrichment == {}


async def test_an_exhausted_budget_leaves_alerts_unenriched_and_is_counted(cache):
    app = create_app([])
    over = counted("over_budget")
    alerts = [alert(ip, title=ip) for ip in ("8.8.4.4", "9.9.9.9", "1.0.0.1")]
    await enricher(app, daily_budget=2).enrich(alerts, cache)
    assert checked(app) == [200, 200]
    assert ["abuseipdb" in a.enrichment for a in alerts] == [True, True, False]
    assert counted("over_budget") == over + 1


async def test_a_429_skips_without_raising_and_pauses_further_calls(cache):
    app = create_app([], daily_limit=1)
    limited = counted("rate_limited")
    alerts = [alert(ip, title=ip) for ip in ("8.8.4.4", "9.9.9.9", "1.0.0.1")]
    await enricher(app).enrich(alerts, cache)
    assert checked(app) == [200, 429]  # the third is not even tried: Retry-After runs to midnight UTC
    assert ["abuseipdb" in a.enrichment for a in alerts] == [True, False, False]
    assert counted("rate_limited") == limited + 2


async def test_a_wrong_key_or_a_broken_answer_is_counted_not_raised(cache):
    errors = counted("error")
    one = alert("8.8.8.8")
    await enricher(create_app([]), api_key="wrong").enrich([one], cache)

    async def garbage(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"data": {"abuseConfidenceScore": "high"}}'})

    await enricher(garbage).enrich([one], cache)
    assert one.enrichment == {} and counted("error") == errors + 2


async def test_the_emulator_speaks_abuseipdb():
    app = create_app([])
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://x") as client:
        ok = await client.get("/api/v2/check", params={"ipAddress": "8.8.8.8", "maxAgeInDays": 90}, headers={"Key": API_KEY})
        assert ok.status_code == 200 and "reports" not in ok.json()["data"]
        assert ok.headers["x-ratelimit-limit"] == "1000" and ok.headers["x-ratelimit-remaining"] == "999"
        bad = await client.get("/api/v2/check", params={"ipAddress": "8.8.8"}, headers={"Key": API_KEY})
        assert bad.status_code == 422 and bad.json()["errors"][0]["source"] == {"parameter": "ipAddress"}
        anonymous = await client.get("/api/v2/check", params={"ipAddress": "8.8.8.8"})
        assert anonymous.status_code == 401
