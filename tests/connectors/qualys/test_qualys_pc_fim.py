"""Qualys PC (one ticket per failing control, hosts tracked) and FIM (only incidents worth escalating) through the emulators."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import vendor_json

from alertbridge.model import AlertStatus, Severity
from alertbridge.sandbox.jira import JiraSandboxSettings
from alertbridge.sandbox.jira import create_app as jira_app
from alertbridge.sandbox.qualys import create_app as qualys_app
from alertbridge.sandbox.qualys.subscription import CONTROLS, Subscription, generate
from support.hub import drain
from support.polling import drain as poll_all
from support.qualys import make_hub, poller, runner, tickets

PC = {"qualys-pc": {"type": "qualys_pc", "policy_ids": [900100], "truncation_limit": 10}}
PC_ROUTE = {
    "name": "qualys-pc", "match": {"sources": ["qualys-pc"]}, "sink": "jira", "project": "SOC", "issue_type": "Task",
    "group_by": "{{ alert.raw.group }}", "summary": "{{ alert.title }}",
    "members": {"host": "{{ alert.raw.host.dns }}", "line": "{{ alert.raw.host.ip }} ({{ alert.raw.technology }})",
                "field": "Affected Hosts", "settle": "0s"},
}
FIM = {"qualys-fim": {"type": "qualys_fim"}}
FIM_ROUTE = {"name": "qualys-fim", "match": {"sources": ["qualys-fim"]}, "sink": "jira", "project": "SOC", "issue_type": "Task",
             "group_by": "{{ alert.raw.group }}", "resolve_transition": "Done"}
FIM_SAMPLE = "qualys/fim-incidents-search-response.json"


def failing(sub: Subscription) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for (host_id, control_id), posture in sub.postures.items():
        hosts = found.setdefault(f"control:{control_id}", set()) if posture.first_fail else None
        if hosts is not None and posture.status == "Failed":
            hosts.add(sub.hosts[host_id].dns)
    return found


async def test_failing_controls_make_one_ticket_each_and_compliant_hosts_leave_it(tmp_path):
    sub = generate(hosts=40)
    sub.scan()
    qualys, jira = qualys_app(sub), jira_app(JiraSandboxSettings())
    hub = make_hub(tmp_path, qualys, jira, PC, [PC_ROUTE])
    await poll_all(runner(hub, "qualys-pc"))
    await drain(hub)
    now, want = await tickets(hub, jira.state.jira), failing(sub)
    assert len(now) == len(CONTROLS) == len(want)  # every control fails somewhere: one ticket each
    assert {key: t["hosts"] for key, t in now.items()} == want

    root_login = sorted(h for h, c in sub.failing if c == 2011)
    for host in root_login:
        sub.comply(host, 2011)
    lockout = sorted(h for h, c in sub.failing if c == 1072)
    sub.comply(lockout[0], 1072)
    sub.scan()
    await poll_all(runner(hub, "qualys-pc"))
    await drain(hub)
    now, want = await tickets(hub, jira.state.jira), failing(sub)
    assert {key: t["hosts"] for key, t in now.items()} == want
    assert (now["control:2011"]["status"], now["control:2011"]["case"]) == ("Done", "closed")
    assert now["control:1072"]["status"] == "To Do" and sub.hosts[lockout[0]].dns not in now["control:1072"]["hosts"]
    assert len(jira.state.jira.issues) == len(CONTROLS)
    await hub.aclose()


async def test_pc_takes_only_controls_of_the_chosen_criticality():
    sub = generate(hosts=12)
    sub.scan()
    source = poller("qualys_pc", qualys_app(sub), policy_ids=[900100], min_criticality=4)
    items = (await source.poll(None)).items
    assert {i["control"]["id"] for i in items} == {"1072", "2011", "2012"}  # CRITICAL and URGENT
    [alert] = source.parse(items[0])
    assert alert.severity in (Severity.high, Severity.critical) and alert.status == AlertStatus.new
    assert alert.vendor_id == f"{items[0]['posture']['host_id']}:{items[0]['control']['id']}:os"
    await source.aclose()


async def test_only_escalation_worthy_fim_incidents_become_tickets_and_a_closed_one_closes_its_ticket(tmp_path):
    sub = generate(hosts=2)
    qualys, jira = qualys_app(sub), jira_app(JiraSandboxSettings())
    hub = make_hub(tmp_path, qualys, jira, FIM, [FIM_ROUTE])
    await poll_all(runner(hub, "qualys-fim"))
    await drain(hub)
    now = await tickets(hub, jira.state.jira)
    # Reviewed as POLICY_VIOLATION or UNAPPROVED; approved, pending and pre-approved changes stay in Qualys.
    assert set(now) == {"incident:sandbox-fim-0001", "incident:sandbox-fim-0003", "incident:sandbox-fim-0006"}

    incident = sub.incidents[0]
    incident["status"] = "CLOSED"
    incident["lastUpdatedBy"] = {**incident["lastUpdatedBy"], "date": int(datetime.now(UTC).timestamp() * 1000)}
    await poll_all(runner(hub, "qualys-fim"))
    await drain(hub)
    now = await tickets(hub, jira.state.jira)
    assert (now["incident:sandbox-fim-0001"]["status"], now["incident:sandbox-fim-0001"]["case"]) == ("Done", "closed")
    assert len(jira.state.jira.issues) == 3
    await hub.aclose()


async def test_fim_criteria_combine_disposition_and_the_worst_event_severity():
    app = qualys_app(generate(hosts=2))
    severe = poller("qualys_fim", app, min_severity=4)
    assert [i["incident"]["id"] for i in (await severe.poll(None)).items] == ["sandbox-fim-0001", "sandbox-fim-0003"]
    malware = poller("qualys_fim", app, dispositions=["MALWARE"], approval_statuses=[])
    assert [i["incident"]["id"] for i in (await malware.poll(None)).items] == ["sandbox-fim-0001"]
    everything = poller("qualys_fim", app, approval_statuses=[], backfill=10 * 365 * 86400)
    assert len((await everything.poll(None)).items) == 8  # six generated and the two real ones
    for source in (severe, malware, everything):
        await source.aclose()


def test_the_real_fim_sample_parses():
    source = poller("qualys_fim", qualys_app(generate(hosts=1)))
    first, second = source.parse(vendor_json(FIM_SAMPLE))
    assert (first.vendor_id, first.title, first.status) == ("75539bfc-c0e7-4bcb-b55a-48065ef89ebe", "FIM incident: test1", AlertStatus.resolved)
    assert first.severity == Severity.medium and first.labels == ["CHANGE_CONTROL_VIOLATION", "APPROVED"]
    assert first.detected_at == datetime(2021, 2, 15, 8, 41, 32, 427000, tzinfo=UTC)
    assert "Reviewed by: Gregori Nazarovsky" in first.description and "Rule:" not in first.description  # "None" is no rule
    assert (second.title, second.severity) == ("FIM incident: test", Severity.high)  # MALWARE
