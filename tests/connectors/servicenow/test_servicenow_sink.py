"""The ServiceNow sink against its emulator: fields typed from the dictionary, states, close codes, refusals."""

from __future__ import annotations

import httpx2
import pytest

from alertbridge.connectors.roles import TicketDraft
from alertbridge.connectors.servicenow import ServiceNowConfig, ServiceNowSink
from alertbridge.errors import AuthFailed, Permanent, Reason
from alertbridge.model import Severity
from alertbridge.sandbox.servicenow import ServiceNowSettings, create_app
from support.snow import LOGIN


@pytest.fixture
def emulator():
    return create_app(ServiceNowSettings(), records=[])


@pytest.fixture
async def sink(emulator):
    built = ServiceNowSink("snow", ServiceNowConfig.model_validate({"url": "http://snow", "login": LOGIN}),
                           transport=httpx2.ASGITransport(app=emulator))
    yield built
    await built.aclose()


def draft(**changes) -> TicketDraft:
    values = dict(project="SOC", issue_type="sn_si_incident", summary="Brute force on vpn01", description="Many failed logins.",
                  severity=Severity.high, reference="alertbridge-test-1")  # fmt: skip
    return TicketDraft(**(values | changes))


def stored(emulator, number: str) -> dict:
    return emulator.state.servicenow.select("task", f"number={number}")[0]


@pytest.mark.parametrize(("severity", "priority"), [(Severity.critical, "1"), (Severity.high, "2"), (Severity.medium, "3"),
                                                     (Severity.low, "4"), (Severity.info, "5")])  # fmt: skip
@pytest.mark.parametrize("table", ["incident", "sn_si_incident"])
async def test_the_severity_gives_the_quick_references_priority(sink, emulator, severity, priority, table):
    ref = await sink.create(draft(issue_type=table, severity=severity, reference=f"alertbridge-test-{table}-{severity.value}"))
    assert ref.key.startswith({"incident": "INC", "sn_si_incident": "SIR"}[table])
    assert stored(emulator, ref.key)["priority"] == priority


async def test_fields_by_label_or_name_are_typed_from_the_dictionary(sink, emulator):
    fields = {"Category": "phishing", "Configuration item": "vpn01", "affected_user": "jane.analyst@example.com", "Risk score": "87.0",
              "Due date": "2026-12-24T18:30:00+01:00", "contact_type": "Monitoring", "Alert rule": "line one\r\nline two\x07"}
    ref = await sink.create(draft(fields=fields))
    record = stored(emulator, ref.key)
    instance = emulator.state.servicenow
    assert record["category"] == "Phishing", "a choice's label or value, any case, stores its value"
    assert instance.tables["cmdb_ci"][record["cmdb_ci"]]["name"] == "vpn01", "a reference by name stores the record's sys_id"
    assert instance.tables["sys_user"][record["affected_user"]]["user_name"] == "jane.analyst"
    assert instance.tables["sys_user_group"][record["assignment_group"]]["name"] == "SOC", "the route's project is the group"
    assert (record["risk_score"], record["due_date"], record["contact_type"]) == ("87", "2026-12-24 17:30:00", "monitoring")
    assert record["alert_rule"] == "line one\nline two"
    assert (record["correlation_id"], record["correlation_display"]) == ("alertbridge-test-1", "alertbridge")


async def test_every_field_problem_is_reported_at_once_and_nothing_is_created(sink, emulator):
    fields = {"Colour": "red", "Category": "Ransomware", "Configuration item": "nope01", "Risk score": "high", "Number": "SIR1"}
    with pytest.raises(Permanent) as refused:
        await sink.create(draft(fields=fields))
    message = str(refused.value)
    assert "unknown field 'Colour'" in message
    assert "'Ransomware' is not a choice of field 'Category'; choices: Phishing, Malicious code activity" in message
    assert "no cmdb_ci record named 'nope01'" in message and "'Risk score' (integer) cannot take 'high'" in message
    assert "field 'Number' is read-only" in message
    assert emulator.state.servicenow.tables["sn_si_incident"] == {}
    problems = await sink.check([draft(fields=fields), draft(project="Nobody")])
    assert all(problem.startswith("sn_si_incident: ") for problem in problems)
    # A check does not search for a reference's record (its value comes from a sample alert): the rest is the same.
    assert "; ".join(problem.removeprefix("sn_si_incident: ") for problem in problems[:-1]) == message.replace(
        "; field 'Configuration item': no cmdb_ci record named 'nope01'", "")
    assert problems[-1] == "sn_si_incident: field 'Assignment group': no sys_user_group record named 'Nobody'"


@pytest.mark.parametrize(("table", "done", "code", "reopened"), [
    ("incident", "Resolved", "Solution provided", "In Progress"), ("sn_si_incident", "Closed", "Investigation completed", "Analysis")])
async def test_done_and_reopen_move_each_table_to_its_own_states(sink, emulator, table, done, code, reopened):
    ref = await sink.create(draft(issue_type=table))
    await sink.comment(ref.key, "2 more alert(s) for this case")
    await sink.transition(ref.key, "Done", "Done")
    status = await sink.status(ref.key)
    assert (status.name, status.category, status.resolution) == (done, "done", code)
    record = stored(emulator, ref.key)
    assert record["active"] == "false" and record["close_notes"].startswith("Closed by alertbridge")
    await sink.transition(ref.key, "Reopen")
    status = await sink.status(ref.key)
    assert (status.name, status.category, status.resolution) == (reopened, "indeterminate", None)
    assert stored(emulator, ref.key)["active"] == "true"
    notes = emulator.state.servicenow.journal
    assert [(note["element"], note["value"]) for note in notes] == [("work_notes", "2 more alert(s) for this case")]


async def test_a_false_positive_gets_each_tables_close_code(sink, emulator):
    incident, security = await sink.create(draft(issue_type="incident")), await sink.create(draft(reference="alertbridge-test-2"))
    for ref in (incident, security):
        await sink.transition(ref.key, "Done", "False Positive")
    assert stored(emulator, incident.key)["close_code"] == "No resolution provided"
    assert stored(emulator, security.key)["close_code"] == "false_positive"
    assert await sink.check_transition("", "incident", "Closed") == []
    assert await sink.check_transition("", "sn_si_incident", "Won't Do") == [
        "no state 'Won't Do' on sn_si_incident; states: Draft, Analysis, Contain, Eradicate, Recover, Review, Closed, Cancelled"]


async def test_a_data_policy_refusal_is_permanent_not_an_auth_failure(sink):
    ref = await sink.create(draft(issue_type="incident"))
    table, sys_id = sink._records[ref.key]
    with pytest.raises(Permanent) as refused:
        await sink.api.patch(table, sys_id, {"state": "6"})  # resolved, without resolution code and notes
    assert not isinstance(refused.value, AuthFailed) and refused.value.reason == Reason.client_error
    assert "Data Policy Exception" in str(refused.value) and "Resolution code, Resolution notes" in str(refused.value)
    with pytest.raises(AuthFailed) as denied:  # an ACL's "Operation Failed" is a permission the account lacks
        await sink.api.create("sys_user", {"user_name": "mallory"})
    assert "ACL Exception" in str(denied.value)


async def test_a_deleted_record_is_a_404_with_servicenows_message(sink, emulator):
    ref = await sink.create(draft())
    table, sys_id = sink._records[ref.key]
    emulator.state.servicenow.delete(table, sys_id)
    with pytest.raises(Permanent) as gone:
        await sink.comment(ref.key, "one more")
    assert gone.value.status == 404 and "No Record found: Record doesn't exist or ACL restricts the record retrieval" in str(gone.value)


async def test_oauth_client_credentials_and_password_grant_sign_in(emulator):
    oauth = {"mode": "oauth", "client_id": "alertbridge-sandbox-client", "client_secret": "sandbox-client-secret"}
    for login in (oauth, {**oauth, "grant": "password", "username": "svc-alertbridge", "password": "sandbox-password"}):
        sink = ServiceNowSink("snow", ServiceNowConfig.model_validate({"url": "http://snow", "login": login}),
                              transport=httpx2.ASGITransport(app=emulator))
        try:
            assert await sink.find_by_reference("alertbridge-none") == []
        finally:
            await sink.aclose()
    refused = ServiceNowSink("snow", ServiceNowConfig.model_validate({"url": "http://snow", "login": {**oauth, "client_secret": "wrong"}}),
                             transport=httpx2.ASGITransport(app=emulator))
    with pytest.raises(AuthFailed, match="access_denied"):
        await refused.find_by_reference("alertbridge-none")
    await refused.aclose()


def test_the_config_needs_its_secrets_and_a_known_table():
    with pytest.raises(ValueError, match="password"):
        ServiceNowConfig.model_validate({"url": "https://acme.service-now.com", "login": {"mode": "basic", "username": "svc"}})
    with pytest.raises(ValueError, match="password grant needs"):
        ServiceNowConfig.model_validate({"url": "https://acme.service-now.com",
                                         "login": {"mode": "oauth", "client_id": "c", "client_secret": "s", "grant": "password"}})
    with pytest.raises(ValueError, match="table"):
        ServiceNowSink.Target.model_validate({"project": "SOC", "issue_type": "Bug"})
    assert ServiceNowSink.Target.model_validate({"issue_type": "Security Incident"}).issue_type == "Security Incident"


async def test_the_last_change_is_the_sys_mod_count_our_own_transition_left(sink, emulator):
    ref = await sink.create(draft(issue_type="incident"))
    await sink.comment(ref.key, "a note")
    await sink.transition(ref.key, "Done")
    assert await sink.last_change(ref.key) == ("2", "Resolved")  # the insert is 0, the note 1, our move 2
    await sink.transition(ref.key, "Resolved")  # already there: nothing written, so nothing of ours comes back
    assert await sink.last_change(ref.key) == (None, "Resolved")
    await sink.comment(ref.key, "another note")
    assert await sink.last_change(ref.key) == ("3", "Resolved"), "without a move of ours to tell, the record's latest"


async def test_the_history_reads_the_audit_trail_and_the_journal(sink):
    ref = await sink.create(draft())
    await sink.comment(ref.key, "3 more alert(s) for this case")
    await sink.transition(ref.key, "Done", "False Positive")
    history = await sink.history(ref.key)
    assert history.created is not None
    assert [(who, move) for _, who, move in history.transitions] == [("svc-alertbridge", "Draft → Closed")]
    assert [(c.author, c.text) for c in history.comments] == [("svc-alertbridge", "3 more alert(s) for this case")]
