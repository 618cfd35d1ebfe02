"""A create parses the alert's raw payload again only when the route's ticket templates may read it."""

from __future__ import annotations

import httpx2
import pytest

from alertbridge.config import Route, validate_config
from alertbridge.connectors.jira.sink import JiraSink
from alertbridge.jobs.create_ticket import reads_raw
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store import upgrade
from support.hub import drain, send

JIRA = {"type": "jira", "url": "http://sandbox", "email": "soc@example.com", "api_token": "sandbox-token"}


@pytest.mark.parametrize(("templates", "reads"), [
    ({}, False),  # the default summary and description read fields only
    ({"summary": "{{ alert.title }} on {{ alert.hosts|join(', ') }}", "labels": ["{{ alert.source.name }}"]}, False),
    ({"fields": {"Incident Severity": "{{ alert['severity'].value }}"}}, False),
    ({"summary": "{{ alert.raw.rule }}"}, True),
    ({"description": "{{ alert['raw']['rule'] }}"}, True),
    ({"description": "{{ alert.to_ocsf() }}"}, True),  # a method may read raw
    ({"description": "{{ alert }}"}, True),  # the alert whole
    ({"description": "{{ alert|tojson }}"}, True),
    ({"description": "{% set a = alert %}{{ a.title }}"}, True),  # handed on under another name
])
def test_a_route_reads_raw_only_through_raw_or_the_alert_itself(templates, reads):
    route = Route.model_validate({"name": "r", "sink": "jira", "project": "SOC", **templates})
    assert reads_raw(route) is reads


@pytest.fixture
async def hub(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    routes = [{"name": "raw", "sink": "jira", "project": "SOC", "match": {"when": "alert.title.startswith('raw')"},
               "summary": "{{ alert.title }}: {{ alert.raw.rule }}", "group_by": "{{ alert.title }}"},
              {"name": "plain", "sink": "jira", "project": "SOC", "summary": "{{ alert.title }}", "group_by": "{{ alert.title }}"}]
    config = validate_config({"database": url, "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
                              "sinks": {"jira": JIRA}, "routes": routes})
    hub = Hub(config)
    app = create_app(JiraSandboxSettings())
    hub.sinks["jira"] = JiraSink("jira", hub.config.sinks["jira"], transport=httpx2.ASGITransport(app=app))
    hub.jira_state = app.state.jira
    yield hub
    await hub.aclose()


async def test_tickets_of_routes_that_read_raw_get_it_alone_or_in_bulk(hub):
    # Four cases at once: the first create takes the other three along in one bulk call.
    await send(hub, *[{"id": f"a{n}", "title": f"{kind} {n}", "severity": "high", "rule": f"rule-{n}"}
                      for n, kind in enumerate(["raw", "plain", "raw", "plain"])])
    assert await drain(hub) == ["create_ticket:done"]  # the one claimed; the three taken along are recorded with it
    summaries = sorted(issue.fields["summary"] for issue in hub.jira_state.issues.values())
    assert summaries == ["plain 1", "plain 3", "raw 0: rule-0", "raw 2: rule-2"]
    # One by one: a case retried alone (its bulk refused) renders from raw the same way.
    await send(hub, {"id": "b", "title": "raw alone", "severity": "high", "rule": "rule-b"})
    assert await drain(hub) == ["create_ticket:done"]
    assert "raw alone: rule-b" in {issue.fields["summary"] for issue in hub.jira_state.issues.values()}
