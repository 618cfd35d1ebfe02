"""PagerDuty against its emulator: one dedup_key per case, trigger/acknowledge/resolve, retries that do not duplicate."""

from __future__ import annotations

import httpx2
import pytest

from alertbridge.connectors.pagerduty import PagerDutyConfig, PagerDutyNotifier
from alertbridge.errors import Permanent, RateLimited, Retryable
from alertbridge.model import CaseEventKind, HealthEvent, Severity
from alertbridge.sandbox.pagerduty import create_app
from support.events import case_event

SOC_KEY, NETWORK_KEY = "sandboxroutingkey00000000000soc0", "sandboxroutingkey0000000network0"


@pytest.fixture
def app():
    return create_app()


@pytest.fixture
def pd(app):
    return app.state.pagerduty


@pytest.fixture
def notifier(app):
    config = PagerDutyConfig(type="pagerduty", routing_key=SOC_KEY, services={"network": NETWORK_KEY}, url="http://pagerduty")
    return PagerDutyNotifier("pagerduty", config, transport=httpx2.ASGITransport(app=app))


async def test_trigger_acknowledge_resolve_share_the_case_reference(notifier, pd):
    receipt = await notifier.notify(case_event(severity=Severity.critical))
    assert receipt.kept() == {"id": "alertbridge-7", "state": "triggered"}
    ack = await notifier.notify(case_event(CaseEventKind.acknowledged, thread=receipt.kept()))
    done = await notifier.notify(case_event(CaseEventKind.ticket_closed, thread=ack.kept()))
    assert done.state["state"] == "resolved"
    (incident,) = pd.incidents
    assert incident["dedup_key"] == "alertbridge-7" and incident["status"] == "resolved" and incident["severity"] == "critical"
    assert [entry["action"] for entry in incident["log"]] == ["trigger", "acknowledge", "resolve"]
    assert incident["summary"] == "[CRITICAL] Credential dumping on ws-042 (SOC-7)"
    assert {link["href"] for link in incident["links"]} == {"https://acme.atlassian.net/browse/SOC-7", "https://alertbridge.example.com/ui/cases/7",
                                                           "https://wiki.example.com/playbooks/credential-access"}


async def test_a_retried_trigger_does_not_open_a_second_incident(notifier, pd):
    pd.faults.hang_next, pd.faults.hang_seconds = 1, 0.2  # PagerDuty took the event, the answer is lost
    notifier.client.timeout = 0.05
    with pytest.raises(Retryable):
        await notifier.notify(case_event())
    await notifier.notify(case_event())  # the retry
    raised = await notifier.notify(case_event(CaseEventKind.severity_raised, severity=Severity.critical, previous_severity=Severity.high))
    assert len(pd.incidents) == 1 and len(pd.events) == 3
    assert [entry["action"] for entry in pd.incidents[0]["log"]] == ["trigger", "trigger", "trigger"]
    assert raised.state["state"] == "triggered"


async def test_a_case_never_paged_is_not_resolved(notifier, pd):
    assert await notifier.notify(case_event(CaseEventKind.resolved)) is None
    assert await notifier.notify(case_event(CaseEventKind.acknowledged)) is None
    assert pd.events == []


async def test_a_reopened_case_pages_again_after_its_resolve(notifier, pd):
    receipt = await notifier.notify(case_event())
    resolved = await notifier.notify(case_event(CaseEventKind.resolved, thread=receipt.kept()))
    await notifier.notify(case_event(CaseEventKind.reopened, thread=resolved.kept()))
    assert [i["status"] for i in pd.incidents] == ["resolved", "triggered"]


async def test_a_route_can_page_another_service(notifier, pd):
    await notifier.notify(case_event(target="network"))
    assert pd.incidents[0]["service"] == "Network"
    with pytest.raises(Permanent, match="no service named 'dba'"):
        await notifier.notify(case_event(target="dba"))


async def test_errors_are_classified_without_the_routing_key(app, pd):
    wrong = PagerDutyNotifier("pagerduty", PagerDutyConfig(type="pagerduty", routing_key="0" * 32, url="http://pagerduty"),
                              transport=httpx2.ASGITransport(app=app))
    with pytest.raises(Permanent, match="Invalid routing key") as caught:
        await wrong.notify(case_event())
    assert "0" * 32 not in str(caught.value)
    pd.faults.fail_next = [429, 500]
    right = PagerDutyNotifier("pagerduty", PagerDutyConfig(type="pagerduty", routing_key=SOC_KEY, url="http://pagerduty"),
                              transport=httpx2.ASGITransport(app=app))
    with pytest.raises(RateLimited):
        await right.notify(case_event())
    with pytest.raises(Retryable):
        await right.notify(case_event())


async def test_health_conditions_trigger_and_resolve_their_own_alert(notifier, pd):
    await notifier.notify_health(HealthEvent(condition="poller_failing", firing=True, summary="falcon has not polled for 15 min"))
    await notifier.notify_health(HealthEvent(condition="poller_failing", firing=False, summary="falcon polls again"))
    (incident,) = pd.incidents
    assert incident["dedup_key"] == "alertbridge-health-poller_failing" and incident["status"] == "resolved"
