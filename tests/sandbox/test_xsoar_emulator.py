"""The XSOAR emulator against the vendor's swagger: its paths, request bodies and answers, and XSOAR's ways of saying no."""

from __future__ import annotations

import pytest
from conftest import vendor_json
from fastapi.testclient import TestClient

from alertbridge.sandbox.xsoar import API_KEY, XsoarState, create_app

SPEC = "xsoar/xsoar-server-api-swagger-2.0.json"
KEY = {"Authorization": API_KEY}
# Keys the server keeps on an incident that this old swagger's Incident does not list (the real sample
# incident-object-from-searchincidents.json has them).
NEWER_KEYS = {"dbotMirrorId", "CustomFields"}


@pytest.fixture(scope="module")
def spec():
    return vendor_json(SPEC)


@pytest.fixture
def api():
    state = XsoarState()
    with TestClient(create_app(state)) as client:
        yield client, state


def properties(spec, name: str) -> set[str]:
    return set(spec["definitions"][name]["properties"])


def create(client, **body):
    answer = client.post("/incident", json={"name": "n", "type": "Malware", "severity": 2, "createInvestigation": True, **body},
                         headers=KEY)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_every_route_is_a_path_and_method_of_the_swagger(spec):
    app = create_app()
    served = {(method.lower(), route.path.replace(":path", "")) for route in app.routes for method in getattr(route, "methods", ())
              if route.path.startswith("/") and not route.path.startswith(("/docs", "/openapi"))}
    assert served, "the emulator serves routes"
    for method, path in served:
        assert path in spec["paths"] and method in spec["paths"][path], f"{method.upper()} {path} is not in the swagger"


def test_create_takes_the_request_s_fields_and_answers_an_incident_wrapper(spec, api):
    client, state = api
    made = create(client, labels=[{"type": "alertbridge", "value": "r1"}], dbotMirrorId="r1", CustomFields={"verdict": "Benign"})
    assert set(made) - NEWER_KEYS <= properties(spec, "IncidentWrapper")
    sent = {"name", "type", "severity", "createInvestigation", "labels", "CustomFields"}
    assert sent <= properties(spec, "CreateIncidentRequest") | NEWER_KEYS
    assert set(spec["definitions"]["Label"]["properties"]) == {"type", "value"}
    assert made["id"] and made["version"] == 1 and made["labels"] == [{"type": "alertbridge", "value": "r1"}]


def test_search_uses_the_incident_filter_and_answers_data_and_total(spec, api):
    client, _ = api
    first, second = create(client, dbotMirrorId="alertbridge-x-1"), create(client, dbotMirrorId="alertbridge-x-2")
    filter_ = {"query": 'dbotMirrorId:"alertbridge-x-2"', "size": 10, "sort": [{"field": "created", "asc": True}]}
    assert set(filter_) <= properties(spec, "IncidentFilter") and set(filter_["sort"][0]) <= properties(spec, "Order")
    answer = client.post("/incidents/search", json={"filter": filter_}, headers=KEY).json()
    assert set(answer) == set(spec["paths"]["/incidents/search"]["post"]["responses"]["200"]["schema"]["properties"])
    assert [i["id"] for i in answer["data"]] == [second["id"]] and answer["total"] == 1
    by_id = client.post("/incidents/search", json={"filter": {"id": [first["id"]], "size": 1}}, headers=KEY).json()
    assert [i["id"] for i in by_id["data"]] == [first["id"]]
    # The spec: "Size is limited to 1000, if not passed it defaults to 0, and no results will return".
    assert client.post("/incidents/search", json={"filter": {"id": [first["id"]]}}, headers=KEY).json()["data"] is None


def test_a_query_the_emulator_cannot_read_is_a_400_not_a_match_all(api):
    client, _ = api
    create(client)
    for query in ('name:"n" or type:Malware', "dbotMirrorId:", 'severity:>="high"'):
        answer = client.post("/incidents/search", json={"filter": {"query": query, "size": 5}}, headers=KEY)
        assert answer.status_code == 400 and answer.json()["title"] == "Bad request", query


def test_batch_close_answers_an_incident_search_response_wrapper(spec, api):
    client, state = api
    made = create(client)
    body = {"ids": [made["id"]], "closeReason": "False Positive", "closeNotes": "by test", "all": False}
    assert set(body) <= properties(spec, "UpdateDataBatch")
    answer = client.post("/incident/batchClose", json=body, headers=KEY).json()
    assert set(answer) <= properties(spec, "IncidentSearchResponseWrapper") and answer["total"] == 1 and answer["notUpdated"] == 0
    assert state.incidents[made["id"]]["status"] == 2 and state.incidents[made["id"]]["closeReason"] == "False Positive"
    again = client.post("/incident/batchClose", json=body, headers=KEY).json()
    assert again["notUpdated"] == 1 and again["total"] == 0


def test_entries_go_to_open_investigations_only(spec, api):
    client, _ = api
    made = create(client)
    body = {"investigationId": made["id"], "data": "3 more alerts", "markdown": False}
    assert set(body) <= properties(spec, "updateEntry")
    entry = client.post("/entry", json=body, headers=KEY)
    assert entry.status_code == 200 and set(entry.json()) <= properties(spec, "Entry")
    assert client.post("/entry", json={**body, "investigationId": "404"}, headers=KEY).status_code == 404
    client.post("/incident/batchClose", json={"ids": [made["id"]], "closeReason": "Resolved"}, headers=KEY)
    closed = client.post("/entry", json=body, headers=KEY)
    assert closed.status_code == 412 and "412" in spec["paths"]["/entry"]["post"]["responses"]


def test_an_entry_is_marked_as_a_note_as_update_entry_note_says(spec, api):
    client, state = api
    made = create(client)
    entry = client.post("/entry", json={"investigationId": made["id"], "data": "3 more alerts"}, headers=KEY).json()
    assert entry["note"] is False
    body = {"id": entry["id"], "version": -1, "investigationId": made["id"], "data": "true"}
    assert set(body) <= properties(spec, "updateEntry")
    marked = client.post("/entry/note", json=body, headers=KEY)
    assert marked.status_code == 200 and marked.json()["note"] is True and state.entries[made["id"]][0]["note"] is True
    assert client.post("/entry/note", json={**body, "data": "yes"}, headers=KEY).status_code == 400
    assert client.post("/entry/note", json={**body, "id": "9@" + made["id"]}, headers=KEY).status_code == 404
    client.post("/incident/batchClose", json={"ids": [made["id"]], "closeReason": "Resolved"}, headers=KEY)
    assert client.post("/entry/note", json={**body, "data": "false"}, headers=KEY).status_code == 412


def test_an_update_needs_the_current_version(api):
    client, state = api
    made = create(client)
    stale = client.post("/incident", json={**made, "name": "renamed"}, headers=KEY)
    assert stale.status_code == 200 and stale.json()["version"] == 2
    conflict = client.post("/incident", json={**made, "name": "again"}, headers=KEY)
    assert conflict.status_code == 409 and "version" in conflict.json()["detail"]
    assert state.incidents[made["id"]]["name"] == "renamed"


def test_fields_of_a_type_are_incident_fields_and_an_unknown_type_has_none(spec, api):
    client, _ = api
    fields = client.get("/incidentfields/associatedTypes/Cortex XDR Incident", headers=KEY).json()
    assert fields and all(set(f) <= properties(spec, "IncidentField") for f in fields)
    assert {"xdrincidentid", "name", "owner"} <= {f["cliName"] for f in fields}
    assert client.get("/incidentfields/associatedTypes/cortex xdr incident", headers=KEY).json() == [], "names are case sensitive"


def test_a_wrong_key_is_a_401_in_xsoar_s_error_body(api):
    client, _ = api
    answer = client.post("/incidents/search", json={"filter": {"size": 1}}, headers={"Authorization": "wrong"})
    assert answer.status_code == 401 and {"id", "status", "title", "detail", "error"} <= set(answer.json())
    state = XsoarState(api_key_id="3")
    with TestClient(create_app(state)) as xsoar8:
        assert xsoar8.post("/incidents/search", json={"filter": {"size": 1}}, headers=KEY).status_code == 401
        assert xsoar8.post("/incidents/search", json={"filter": {"size": 1}}, headers={**KEY, "x-xdr-auth-id": "3"}).status_code == 200


def test_faults_answer_in_xsoar_s_error_body(api):
    client, state = api
    state.faults.rate_limit_every, state.faults.retry_after = 1, 5
    answer = client.post("/incidents/search", json={"filter": {"size": 1}}, headers=KEY)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "5" and answer.json()["status"] == 429
