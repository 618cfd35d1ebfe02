"""The emulators' write endpoints, checked against the vendors' specs: AWS's service model, Graph's, Falcon's, XDR's and HEC's answers."""

from __future__ import annotations

import json
import re

import httpx2
import pytest
from starlette.testclient import TestClient

from alertbridge.connectors.aws_security_ir.writeback import TRANSITIONS as SIR_TRANSITIONS
from alertbridge.sandbox import aws_security_ir, cortex_xdr, crowdstrike, defender, sir_writes, splunk_hec
from conftest import vendor_json
from support.writeback import sir_case

MODEL = "aws/security-ir-2018-05-10-service-2.json"
WRITES = {"UpdateCaseStatus": {"caseStatus": "Post-incident Activities"}, "CloseCase": {},
          "UpdateCase": {"caseMetadata": [{"key": "severity", "value": "Low"}]}, "CreateCaseComment": {"body": "Case comment body."}}
AUTH = {"Authorization": f"AWS4-HMAC-SHA256 Credential={aws_security_ir.ACCESS_KEY}/20260101/us-east-1/security-ir/aws4_request"}


def test_the_security_ir_writes_follow_the_service_model():
    model = vendor_json(MODEL)
    shapes = model["shapes"]
    assert list(sir_writes.SELF_MANAGED) == shapes["SelfManagedCaseStatus"]["enum"]
    assert sir_writes.COMMENT_MAX == shapes["CommentBody"]["max"] and sir_writes.METADATA_MAX == shapes["CaseMetadata"]["max"]
    assert sir_writes.WRITABLE <= set(shapes["UpdateCaseRequest"]["members"])
    client = TestClient(aws_security_ir.create_app([sir_case()]))
    for operation, body in WRITES.items():
        http = model["operations"][operation]["http"]
        path = http["requestUri"].replace("{caseId}", "8403556009")
        answer = client.request(http["method"], path, json=body, headers=AUTH)
        assert answer.status_code == http.get("responseCode", 200), (operation, answer.text)
        output = shapes[model["operations"][operation]["output"]["shape"]]
        assert set(answer.json()) <= set(output["members"]) and set(output.get("required", [])) <= set(answer.json())
        missing = client.request(http["method"], path.replace("8403556009", "1111111111"), json=body, headers=AUTH)
        assert (missing.status_code, missing.headers["x-amzn-ErrorType"]) == (404, "ResourceNotFoundException")
        assert "ResourceNotFoundException" in {e["shape"] for e in model["operations"][operation]["errors"]}
    again = client.post("/v1/cases/8403556009/close-case", headers=AUTH)
    assert (again.status_code, again.headers["x-amzn-ErrorType"]) == (409, "ConflictException")
    refused = client.post("/v1/cases/8403556009/update-case-status", json={"caseStatus": "Closed"}, headers=AUTH)
    assert (refused.status_code, refused.headers["x-amzn-ErrorType"]) == (400, "ValidationException")


def _documented_transitions() -> set[tuple[str, str]]:
    """Read UpdateCaseStatus's self-managed transitions out of its documentation (the list items before 'AWS supported')."""
    doc = vendor_json(MODEL)["operations"]["UpdateCaseStatus"]["documentation"].split("AWS supported")[0]
    pairs = {tuple(part.strip() for part in item.split("→")) for item in re.findall(r"<li> <p>([^<]+)</p> </li>", doc)}
    # The documentation writes "Containment, Eradication, and Recovery"; the enum value has no serial comma.
    return {tuple(status.replace("Eradication, and", "Eradication and") for status in pair) for pair in pairs if pair[0] != "Any"}


def test_the_security_ir_status_table_is_the_documented_one_and_the_rest_is_refused():
    allowed = _documented_transitions()
    assert len(allowed) == 7 and {s for pair in allowed for s in pair} == set(sir_writes.SELF_MANAGED)
    assert {(a, b) for a, targets in sir_writes.TRANSITIONS.items() for b in targets} == allowed
    assert {(a, b) for a, targets in SIR_TRANSITIONS.items() for b in targets} == allowed  # the hub's updater's copy
    error = vendor_json(MODEL)["shapes"]["ValidationException"]
    reasons = vendor_json(MODEL)["shapes"]["ValidationExceptionReason"]["enum"]
    for current in sir_writes.SELF_MANAGED:
        for wanted in sir_writes.SELF_MANAGED:
            client = TestClient(aws_security_ir.create_app([{**sir_case(), "caseStatus": current}]))
            answer = client.post("/v1/cases/8403556009/update-case-status", json={"caseStatus": wanted}, headers=AUTH)
            if (current, wanted) in allowed:
                assert answer.status_code == 201 and answer.json() == {"caseStatus": wanted}, (current, wanted)
                continue
            body = answer.json()
            assert (answer.status_code, answer.headers["x-amzn-ErrorType"]) == (400, "ValidationException"), (current, wanted)
            assert set(error["required"]) <= set(body) <= set(error["members"]) and body["reason"] in reasons
            assert body["fieldList"][0]["name"] == "caseStatus" and current in body["message"] and wanted in body["message"]
            assert client.get("/v1/cases/8403556009/get-case", headers=AUTH).json()["caseStatus"] == current  # nothing changed


def test_a_comment_token_makes_a_retry_the_same_comment():
    client = TestClient(aws_security_ir.create_app([sir_case()]))
    ids = {client.post("/v1/cases/8403556009/create-comment", json={"body": "x", "clientToken": "t-1"}, headers=AUTH).json()["commentId"]
           for _ in range(3)}
    listed = client.post("/v1/cases/8403556009/list-comments", json={}, headers=AUTH).json()["items"]
    assert len(ids) == 1 and len(listed) == 1 and "clientToken" not in listed[0]


def _graph(app) -> tuple[TestClient, dict[str, str]]:
    client = TestClient(app)
    form = {"grant_type": "client_credentials", "client_id": defender.CLIENT_ID, "client_secret": defender.CLIENT_SECRET,
            "scope": "https://graph.microsoft.com/.default"}
    token = client.post(f"/{defender.TENANT_ID}/oauth2/v2.0/token", data=form).json()["access_token"]
    return client, {"Authorization": f"Bearer {token}"}


def test_the_graph_alert_patch_takes_the_writable_properties_only():
    sample = vendor_json("msgraph/security-alerts_v2-list-response.json")["value"][0]
    client, auth = _graph(defender.create_app([dict(sample)]))
    path = f"/v1.0/security/alerts_v2/{sample['id']}"
    updated = client.patch(path, json={"status": "resolved", "classification": "falsePositive", "determination": "notMalicious"}, headers=auth)
    assert updated.status_code == 200 and set(updated.json()) >= set(sample)  # the whole alert comes back, as Graph returns it
    assert updated.json()["lastUpdateDateTime"] != sample["lastUpdateDateTime"] and updated.json()["resolvedDateTime"]
    assert client.patch(path, json={"title": "x"}, headers=auth).json()["error"]["code"] == "BadRequest"
    assert client.patch(path, json={"classification": "benignPositive"}, headers=auth).status_code == 400
    assert client.patch("/v1.0/security/alerts_v2/nope", json={"status": "new"}, headers=auth).json()["error"]["code"] == "NotFound"
    assert client.patch(path, json={"status": "new"}).status_code == 401


def test_the_falcon_alert_update_validates_actions_and_ids():
    app = crowdstrike.create_app()
    client = TestClient(app)
    token = client.post("/oauth2/token", data={"client_id": crowdstrike.CLIENT_ID, "client_secret": crowdstrike.CLIENT_SECRET}).json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    alert = app.state.falcon.alerts[0]
    body = {"composite_ids": [alert["composite_id"]], "action_parameters": [{"name": "update_status", "value": "closed"},
                                                                            {"name": "add_tag", "value": "false_positive"}]}
    assert client.patch("/alerts/entities/alerts/v3", json=body, headers=auth).status_code == 200
    assert alert["status"] == "closed" and "false_positive" in alert["tags"]
    bad = {**body, "action_parameters": [{"name": "update_status", "value": "resolved"}]}
    assert client.patch("/alerts/entities/alerts/v3", json=bad, headers=auth).status_code == 400
    gone = client.patch("/alerts/entities/alerts/v3", json={**body, "composite_ids": ["nope"]}, headers=auth)
    assert gone.status_code == 404 and gone.json()["errors"][0]["message"].startswith("no alerts found")


def test_the_xdr_update_incident_validates_status_and_fields():
    app = cortex_xdr.create_app(auth_type="standard")
    client = TestClient(app)
    auth = {"x-xdr-auth-id": cortex_xdr.API_KEY_ID, "Authorization": cortex_xdr.API_KEY}
    incident = app.state.xdr.incidents[0]
    def update(data):
        return client.post("/public_api/v1/incidents/update_incident", json={"request_data": data}, headers=auth)
    ok = update({"incident_id": incident["incident_id"], "update_data": {"status": "resolved_false_positive", "resolve_comment": "SOC-1"}})
    assert ok.json() == {"reply": True} and incident["status"] == "resolved_false_positive"
    assert update({"incident_id": incident["incident_id"], "update_data": {"status": "closed"}}).status_code == 400
    assert update({"incident_id": incident["incident_id"], "update_data": {"name": "x"}}).status_code == 400
    assert update({"incident_id": "404404", "update_data": {"status": "new"}}).status_code == 404


@pytest.mark.parametrize(("headers", "body", "status", "code"), [
    ({}, b'{"event": "x"}', 401, 2),
    ({"Authorization": f"Bearer {splunk_hec.TOKEN}"}, b'{"event": "x"}', 401, 3),
    ({"Authorization": "Splunk wrong"}, b'{"event": "x"}', 403, 4),
    ({"Authorization": f"Splunk {splunk_hec.TOKEN}"}, b"", 400, 5),
    ({"Authorization": f"Splunk {splunk_hec.TOKEN}"}, b'{"event": "x"} {"event": ', 400, 6),
    ({"Authorization": f"Splunk {splunk_hec.TOKEN}"}, b'{"event": "x", "index": "secret"}', 400, 7),
    ({"Authorization": f"Splunk {splunk_hec.TOKEN}"}, b'{"time": 1}', 400, 12),
    ({"Authorization": f"Splunk {splunk_hec.TOKEN}"}, b'{"event": ""}', 400, 13),
    ({"Authorization": f"Splunk {splunk_hec.TOKEN}"}, b'{"event": {"a": 1}}\n{"event": "b", "index": "notable_feedback"}', 200, 0),
])
def test_the_collector_answers_as_splunk_does(headers, body, status, code):
    app = splunk_hec.create_app()
    answer = TestClient(app).post("/services/collector/event", content=body, headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert len(app.state.hec.events) == (2 if code == 0 else 0)


async def test_the_hec_connector_posts_one_envelope_the_collector_indexes():
    from alertbridge.connectors.splunk_hec import SplunkHec
    from alertbridge.connectors.writeback_roles import TicketFeedback
    from alertbridge.model import SourceState

    app = splunk_hec.create_app()
    hec = SplunkHec("hec", SplunkHec.Config(type="splunk_hec", url="http://hec", token=splunk_hec.TOKEN, index="notable_feedback"),
                    transport=httpx2.ASGITransport(app=app))
    await hec.send(TicketFeedback(event="closed", ticket_key="SOC-1", ticket_url=None, status="Done", status_category="done",
                                  resolution="False Positive", state=SourceState.false_positive, case_reference="r", route="soc",
                                  alert_ids=[{"source": "splunk", "vendor_id": "sid-1"}], at=1.5))
    await hec.aclose()
    (envelope,) = app.state.hec.events
    assert envelope["sourcetype"] == "alertbridge:ticket" and envelope["index"] == "notable_feedback" and envelope["time"] == 1.5
    assert json.loads(json.dumps(envelope["event"]))["alert_id"] == "sid-1"


def test_the_sandbox_state_shows_what_the_write_backs_did():
    # docs/writeback.md's walk-through reads these to show the verdict arrived: not vendor APIs, so no auth.
    app = defender.create_app([dict(vendor_json("msgraph/security-alerts_v2-list-response.json")["value"][0])])
    client = TestClient(app)
    alert = app.state.defender.items[0]
    alert.update(status="resolved", classification="falsePositive", determination="notMalicious")
    shown = client.get("/_sandbox/state").json()["alerts"]
    assert [(a["id"], a["status"], a["classification"], a["determination"]) for a in shown] == [
        (alert["id"], "resolved", "falsePositive", "notMalicious")]
    hec = splunk_hec.create_app()
    client = TestClient(hec)
    sent = client.post("/services/collector/event", headers={"Authorization": f"Splunk {splunk_hec.TOKEN}"},
                       content=json.dumps({"event": {"action": "ticket_closed", "ticket_key": "SOC-1"}, "index": "notable_feedback"}))
    assert sent.status_code == 200, sent.text
    assert [e["event"]["action"] for e in client.get("/_sandbox/state").json()["events"]] == ["ticket_closed"]
