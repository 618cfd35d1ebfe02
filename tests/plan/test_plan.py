"""`alertbridge plan`: what it predicts is what a real run of the new config then does."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import httpx2
import pytest
from sqlalchemy import func, select

from alertbridge.config import validate_config
from alertbridge.connectors.jira import JiraConfig, JiraSink
from alertbridge.plan import diff_text, explain_text, plan_since
from alertbridge.plan.explain import explain
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.store import Store
from alertbridge.store.tables import alerts, cases, jobs
from support.hub import drain, make_hub, send
from support.recorder import Recorder

OLD_ROUTES = [
    {"name": "noise", "match": {"when": "alert.severity.value == 'info'"}, "drop": True},
    {"name": "soc", "sink": "cases", "project": "SOC", "group_by": "{{ alert.title }}",
     "fields": {"Detection Source": "{{ alert.title }}"}},
]
# The change under review: group by host instead of by title, and a field that now names the host.
NEW_ROUTES = [OLD_ROUTES[0], {**OLD_ROUTES[1], "group_by": "{{ alert.hosts|join(',') }}",
                              "fields": {"Detection Source": "{{ alert.title }} on {{ alert.hosts|join(',') }}"}}]


def generated(count: int = 60) -> list[dict]:
    rng = random.Random(15)
    titles = ["Brute force", "Impossible travel", "Malware quarantined", "DNS tunnelling", "Port scan"]
    return [{"id": f"a{i}", "title": rng.choice(titles), "severity": rng.choice(["info", "low", "high"]),
             "hosts": [f"ws-{rng.randint(1, 7)}"]} for i in range(count)]


async def run(tmp_path, name: str, routes: list[dict], payloads: list[dict]):
    """Run a real hub on its own database and return it drained (caller closes it)."""
    folder = tmp_path / name
    folder.mkdir()
    hub = make_hub(folder, routes, Recorder())
    await send(hub, *payloads)
    await drain(hub)
    return hub


async def partition(store: Store) -> dict[str, int]:
    """Map each alert (by its stable id) to the case it joined."""
    async with store.read() as conn:
        return dict((await conn.execute(select(alerts.c.alert_id, alerts.c.case_id))).all())


def merges_and_splits(old: dict[str, int], new: dict[str, int]) -> tuple[list[list[int]], list[int]]:
    by_new, by_old = defaultdict(set), defaultdict(set)
    for alert_id in old.keys() & new.keys():
        by_new[new[alert_id]].add(old[alert_id])
        by_old[old[alert_id]].add(new[alert_id])
    return sorted(sorted(o) for o in by_new.values() if len(o) > 1), sorted(c for c, n in by_old.items() if len(n) > 1)


async def test_plan_of_a_group_by_change_matches_a_real_run_of_the_new_config(tmp_path):
    payloads = generated()
    before = await run(tmp_path, "before", OLD_ROUTES, payloads)
    new_config = validate_config({**json.loads(json.dumps({"routes": NEW_ROUTES})), "database": before.config.settings.database,
                                  "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}}, "sinks": {"cases": {"type": "http", "url": "http://recorder"}}})
    async with before.store.read() as conn:
        counts_before = [(await conn.execute(select(func.count()).select_from(t))).scalar() for t in (cases, alerts, jobs)]
    diff = await plan_since(new_config, 3600, current=before.config)
    async with before.store.read() as conn:  # no side effects
        assert [(await conn.execute(select(func.count()).select_from(t))).scalar() for t in (cases, alerts, jobs)] == counts_before

    after = await run(tmp_path, "after", NEW_ROUTES, payloads)
    try:
        old, new = await partition(before.store), await partition(after.store)
        real_merges, real_splits = merges_and_splits(old, new)
        assert real_merges and real_splits  # the change really merges and splits
        assert sorted(m["old_cases"] for m in diff["merges"]) == real_merges
        assert sorted(s["old_case"] for s in diff["splits"]) == real_splits
        async with after.store.read() as conn:
            real_cases = (await conn.execute(select(func.count()).select_from(cases))).scalar()
            real_tickets = (await conn.execute(select(func.count()).where(jobs.c.kind == "create_ticket", jobs.c.state == "done"))).scalar()
        assert diff["cases_before"] == len(set(old.values())) and diff["cases_after"] == real_cases
        assert diff["tickets_after"] == real_tickets
        assert diff["alerts"] == len(payloads) and diff["alerts_newly_dropped"] == diff["alerts_newly_routed"] == 0
        assert {c["what"] for c in diff["ticket_changes"]} <= {"field Detection Source"}  # the one field the change touches
        text = diff_text(diff, "new.yaml")
        assert f"merges: {len(real_merges)} new case(s)" in text and f"splits: {len(real_splits)} of today's case(s)" in text
    finally:
        await before.aclose()
        await after.aclose()


async def test_plan_of_the_running_config_changes_nothing(tmp_path):
    hub = await run(tmp_path, "same", OLD_ROUTES, generated())
    try:
        diff = await plan_since(hub.config, 3600, current=hub.config)
        assert diff["merges"] == diff["splits"] == diff["ticket_changes"] == [] and diff["routes"]["moves"] == []
        assert diff["cases_before"] == diff["cases_after"] and diff["alerts_other_case"] == 0
        assert "every alert keeps its route" in diff_text(diff, "same.yaml")
    finally:
        await hub.aclose()


async def test_a_route_that_no_longer_matches_is_named(tmp_path):
    hub = await run(tmp_path, "routes", OLD_ROUTES, generated())
    changed = validate_config({"database": hub.config.settings.database, "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
                               "sinks": {"cases": {"type": "http", "url": "http://recorder"}},
                               "routes": [OLD_ROUTES[0], {**OLD_ROUTES[1], "name": "soc-high", "match": {"min_severity": "high"}}]})
    try:
        diff = await plan_since(changed, 3600)
        assert [gone["route"] for gone in diff["routes"]["no_longer_matching"]] == ["soc"]
        assert diff["alerts_newly_dropped"] > 0  # the low ones
        assert "soc no longer matches any alert" in diff_text(diff, "x.yaml")
    finally:
        await hub.aclose()


@pytest.fixture
def jira_sink():
    app = create_app(JiraSandboxSettings(email="soc@example.com", api_token="sandbox-token", pat="sandbox-token"))
    config = JiraConfig(type="jira", url="http://jira.test", email="soc@example.com", api_token="sandbox-token")
    return JiraSink("jira", config, transport=httpx2.ASGITransport(app=app))


async def test_payload_plan_says_why_each_route_did_not_match_and_shows_the_jira_request(tmp_path, jira_sink):
    hub = await run(tmp_path, "explain", OLD_ROUTES, [{"id": "x1", "title": "Brute force", "severity": "high", "hosts": ["ws-1"]}])
    config = validate_config({
        "database": hub.config.settings.database, "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
        "sinks": {"jira": {"type": "jira", "url": "http://jira.test", "email": "soc@example.com", "api_token": "sandbox-token"}},
        "routes": [{"name": "splunk-only", "match": {"sources": ["gen"], "min_severity": "critical"}, "sink": "jira", "project": "SOC"},
                   {"name": "soc", "sink": "jira", "project": "SOC", "issue_type": "Alert", "group_by": "{{ alert.title }}",
                    "fields": {"Incident Severity": "{{ alert.severity.value|title }}"}},
                   {"name": "later", "sink": "jira", "project": "SOC"}],
    })
    from alertbridge.plan import sources_of

    source = sources_of(config)["gen"]
    new = source.parse({"id": "x2", "title": "Port scan", "severity": "high"})[0]
    repeat = source.parse({"id": "x3", "title": "Port scan", "severity": "high"})[0]
    known = source.parse({"id": "x4", "title": "Brute force", "severity": "high"})[0]
    try:
        plans = await explain(config, hub.store, {"jira": jira_sink}, [new, repeat, known], 0.0)
    finally:
        await jira_sink.aclose()
        await hub.aclose()
    first, second, third = plans
    assert third.case == "join case 1 (open, 1 alerts, ticket CASE-1)" and third.case_id == 1
    assert [(v.route, v.verdict) for v in first.routes] == [("splunk-only", "no"), ("soc", "taken"), ("later", "not reached")]
    assert first.routes[0].reason == "severity high is below critical"
    assert first.key == "Port scan" and first.case == "open a new case"
    assert first.preview is not None and first.preview.problems == []
    assert first.preview.field_ids == {"Incident Severity": "customfield_10050"}
    assert first.preview.body["fields"]["customfield_10050"]["value"] == "High"
    assert first.preview.body["fields"]["project"] == {"key": "SOC"}
    assert second.case == "join the case alert 1 above would open" and second.draft is None
    text = explain_text(plans)
    assert "Incident Severity -> customfield_10050" in text and "✗ splunk-only: severity high is below critical" in text
