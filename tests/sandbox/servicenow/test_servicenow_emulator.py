"""The ServiceNow emulator against real Table API answers (../shared/vendor/servicenow/) and the platform's rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

import httpx2
import pytest

from alertbridge.sandbox.servicenow import ServiceNowSettings, create_app
from alertbridge.sandbox.servicenow.query import parse
from alertbridge.sandbox.servicenow.render import record_json
from conftest import vendor_json

AUTH = ("svc-alertbridge", "sandbox-password")
JOURNAL_ENTRY = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) - ([^\n]+) \((Work notes|Additional comments)\)\n(.*?)\n\n", re.DOTALL)


@pytest.fixture
def emulator():
    return create_app(ServiceNowSettings(), records=[])


@pytest.fixture
async def client(emulator):
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=emulator), base_url="https://sandbox.service-now.com",
                                  auth=AUTH) as client:  # fmt: skip
        yield client


async def create(client, table: str = "sn_si_incident", **values) -> dict:
    answer = await client.post(f"/api/now/table/{table}", json={"short_description": "Phishing", "category": "Phishing", **values})
    assert answer.status_code == 201, answer.text
    return answer.json()["result"]


def shape(value):
    """What a JSON value is: a reference {link, value}, a display pair, or a plain string."""
    return sorted(value) if isinstance(value, dict) else type(value).__name__


async def test_a_record_reads_in_the_shape_of_a_real_sn_si_incident(client):
    real = vendor_json("servicenow/table-api-get-sn_si_incident-record.json")["result"]
    instance = client._transport.app.state.servicenow
    made = await create(client, cmdb_ci=next(iter(instance.tables["cmdb_ci"])))
    user = next(iter(instance.tables["sys_user"]))
    await client.patch(f"/api/now/table/sn_si_incident/{made['sys_id']}", json={"affected_user": user, "state": "16"})
    ours = (await client.get(f"/api/now/table/sn_si_incident/{made['sys_id']}")).json()["result"]
    common = set(real) & set(ours)
    assert {"number", "state", "priority", "close_code", "affected_user", "sys_updated_on", "short_description"} <= common
    # business_criticality is a number in the (sanitised) sample only; every other shared column has the same shape.
    assert {key: shape(ours[key]) for key in common - {"business_criticality", "assignment_group", "assigned_to", "closed_by"}} == {
        key: shape(real[key]) for key in common - {"business_criticality", "assignment_group", "assigned_to", "closed_by"}}
    assert shape(ours["affected_user"]) == ["link", "value"] and ours["affected_user"]["link"].endswith(f"/api/now/table/sys_user/{user}")
    assert re.fullmatch(r"SIR\d{7}", ours["number"]) and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", ours["sys_updated_on"])


async def test_display_values_come_in_the_shape_of_a_real_answer(client):
    real = vendor_json("servicenow/table-api-create-change_request-record.json")["result"]
    made = await create(client, table="incident", impact="3", urgency="3")
    ours = (await client.get(f"/api/now/table/incident/{made['sys_id']}", params={"sysparm_display_value": "all"})).json()["result"]
    for key in ("number", "state", "impact", "priority", "active", "sys_updated_on", "sys_created_by"):
        assert sorted(ours[key]) == sorted(real[key]), key
    assert ours["impact"] == {"display_value": "3 - Low", "value": "3"} and real["impact"]["display_value"] == "3 - Low"
    assert ours["state"]["display_value"] == "New" and ours["priority"]["display_value"] == "5 - Planning"


async def test_work_notes_and_comments_render_as_a_real_journal(client):
    real = vendor_json("servicenow/table-api-incident-comments-worknotes-fields.json")["result"]
    made = await create(client, table="incident")
    path = f"/api/now/table/incident/{made['sys_id']}"
    for values in ({"work_notes": "First note"}, {"comments": "First line\n\nSecond paragraph"}, {"work_notes": "Second note"}):
        await client.patch(path, json=values)
    ours = (await client.get(path, params={"sysparm_fields": "comments,work_notes"})).json()["result"]
    assert set(ours) == set(real)
    headers = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - [^\n]+ \((?:Work notes|Additional comments)\)$", re.MULTILINE)
    assert JOURNAL_ENTRY.fullmatch(real["work_notes"]) and len(headers.findall(real["comments"])) == 2  # the patterns read the real ones
    assert len(headers.findall(ours["work_notes"])) == 2 and len(headers.findall(ours["comments"])) == 1
    assert [entry[3] for entry in JOURNAL_ENTRY.findall(ours["work_notes"])] == ["Second note", "First note"], "newest first"
    assert JOURNAL_ENTRY.fullmatch(ours["comments"]).groups()[1:] == ("alertbridge Integration", "Additional comments",
                                                                      "First line\n\nSecond paragraph")


async def test_writes_follow_the_platforms_rules(client):
    made = await create(client, table="incident", impact="1", urgency="2", correlation_id="alertbridge-x-1", number="INC9999999",
                        sys_mod_count="42", no_such_column="ignored")
    assert (made["priority"], made["sys_mod_count"], made["state"], made["active"]) == ("2", "0", "1", "true")
    assert made["number"] != "INC9999999" and "no_such_column" not in made, "system and unknown columns are ignored"
    path = f"/api/now/table/incident/{made['sys_id']}"
    refused = await client.patch(path, json={"state": "6"})
    assert refused.status_code == 403 and refused.json() == {"error": {"message": "Operation Failed", "detail": (
        "Data Policy Exception: \n The following fields are mandatory: Resolution code, Resolution notes")}, "status": "failure"}
    resolved = (await client.patch(path, json={"state": "6", "close_code": "Solution provided", "close_notes": "done"})).json()["result"]
    assert (resolved["active"], resolved["sys_mod_count"], bool(resolved["resolved_at"])) == ("false", "1", True)
    reopened = (await client.patch(path, json={"state": "2"})).json()["result"]
    assert (reopened["active"], reopened["resolved_at"], reopened["sys_mod_count"]) == ("true", "", "2")
    missing = await client.get("/api/now/table/incident/00000000000000000000000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "No Record found"
    unknown = await client.get("/api/now/table/incidents")
    assert unknown.status_code == 400 and unknown.json()["error"]["message"] == "Invalid table incidents"


async def test_encoded_queries_filter_sort_and_page(client, emulator):
    for number in range(5):
        await create(client, correlation_id=f"alertbridge-q-{number}", risk_score=str(10 * number))
    await create(client, table="incident", correlation_id="someone-else")
    found = (await client.get("/api/now/table/task", params={
        "sysparm_query": "correlation_idSTARTSWITHalertbridge-q-^risk_score>=20^ORcorrelation_id=someone-else^ORDERBYDESCrisk_score",
        "sysparm_fields": "correlation_id", "sysparm_limit": 2, "sysparm_offset": 1})).json()["result"]
    assert found == [{"correlation_id": "alertbridge-q-3"}, {"correlation_id": "alertbridge-q-2"}]
    columns = emulator.state.servicenow.columns("incident")
    # An unreadable condition is dropped, as an instance does by default; with the property set it matches nothing.
    assert parse("correlation_idd=x^active=true", columns).groups == [[("active", "=", "true")]]
    assert parse("correlation_idd=x", columns, invalid_returns_no_rows=True).matches({"correlation_id": "x"}) is False
    assert parse("sys_idINa,b^ORDERBYnumber", columns).matches({"sys_id": "b"})


async def test_the_business_rule_signs_each_change_it_posts(emulator):
    captured: list[httpx2.Request] = []
    settings = emulator.state.faults
    settings.outbound_url, settings.outbound_secret = "https://hub.example/hooks/snow", "s3cret"
    instance, rule = emulator.state.servicenow, emulator.state.business_rule

    async def post(url, body, headers):  # where the call goes: recorded here instead of sent
        captured.append(httpx2.Request("POST", url, content=body, headers=headers))

    rule._post = post
    record = instance.insert("sn_si_incident", {"short_description": "x", "correlation_id": "alertbridge-r-1"}, "svc-alertbridge")
    instance.update("sn_si_incident", record["sys_id"], {"state": "16"}, "jane.analyst")
    await rule.drain()
    assert [json.loads(r.content)["operation"] for r in captured] == ["insert", "update"]
    last = captured[-1]
    assert last.headers["x-hmac-signature"] == base64.b64encode(hmac.new(b"s3cret", last.content, hashlib.sha256).digest()).decode()
    assert last.headers["x-delivery-id"] == f"{record['sys_id']}:1"
    body = json.loads(last.content)["result"]
    assert body["state"] == {"display_value": "Analysis", "value": "16"} and body["sys_updated_by"]["value"] == "jane.analyst"
    assert body == record_json(instance, instance.record("sn_si_incident", record["sys_id"]), base=rule.base, display="all",
                               exclude_links=True)


async def test_refusals_have_servicenows_shape_and_headers(client, emulator):
    emulator.state.faults.unauthorized = 1
    denied = await client.get("/api/now/table/incident")
    assert denied.status_code == 401 and denied.json()["error"] == {"message": "User Not Authenticated",
                                                                    "detail": "Required to provide Auth information"}
    emulator.state.faults.rate_limit_every, emulator.state.faults.retry_after = 1, 7
    limited = await client.get("/api/now/table/incident")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert int(limited.headers["x-ratelimit-reset"]) > 0 and limited.headers["x-ratelimit-rule"]
    assert (await client.post("/oauth_token.do", data={"grant_type": "client_credentials", "client_id": "x",
                                                       "client_secret": "y"})).status_code == 401  # not counted, not limited
