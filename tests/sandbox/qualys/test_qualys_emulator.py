"""The Qualys emulator answers as Qualys does: statuses over scans, truncation by WARNING/URL, limits, errors."""

from __future__ import annotations

import io

import httpx2
import pytest
from defusedxml.ElementTree import parse

from alertbridge.sandbox.qualys import PASSWORD, USERNAME, create_app
from alertbridge.sandbox.qualys.subscription import generate
from alertbridge.sandbox.server import create_sandbox

HEADERS = {"X-Requested-With": "test"}
DETECTION = "/api/2.0/fo/asset/host/vm/detection/"
POSTURE = "/api/2.0/fo/compliance/posture/info/"


def client(app, base: str = "http://qualys.test") -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=base, auth=(USERNAME, PASSWORD), headers=HEADERS)


def scanned(hosts: int):
    sub = generate(hosts=hosts)
    sub.scan()
    return sub


def test_a_scan_reports_new_active_fixed_and_reopened_as_qualys_does():
    sub = generate(hosts=4)
    pair = sorted(sub.vulnerable)[0]
    seen = []
    for change in (None, None, sub.fix, None, sub.infect, None):
        if change:
            change(*pair)
        sub.scan()
        seen.append(sub.detections[pair].status)
    assert seen == ["New", "Active", "Fixed", "Fixed", "Re-Opened", "Active"]
    detection = sub.detections[pair]
    assert detection.times_reopened == 1 and detection.last_fixed < detection.last_reopened <= detection.last_found


async def test_truncated_pages_end_with_a_warning_url_that_keeps_every_parameter():
    async with client(create_app(scanned(10))) as http:
        first = await http.get(DETECTION, params={"action": "list", "truncation_limit": "4", "severities": "4-5", "show_results": "1"})
        root = parse(io.BytesIO(first.content)).getroot()
        assert root.tag == "HOST_LIST_VM_DETECTION_OUTPUT" and len(root.findall("RESPONSE/HOST_LIST/HOST")) == 4
        assert root.findtext("RESPONSE/WARNING/CODE") == "1980"
        url = root.findtext("RESPONSE/WARNING/URL")
        assert "truncation_limit=4" in url and "severities=4-5" in url and "id_min=" in url
        severities = {d.findtext("SEVERITY") for d in root.iter("DETECTION")}
        assert severities <= {"4", "5"}
        assert first.headers["X-Concurrency-Limit-Limit"] == "2" and first.headers["X-RateLimit-Remaining"] == "299"
        last = await http.get((await http.get(url)).content.split(b"<URL><![CDATA[")[1].split(b"]]>")[0].decode())
        assert b"<WARNING>" not in last.content


async def test_behind_the_sandbox_server_the_next_url_keeps_the_mount_prefix():
    async with client(create_sandbox(), "http://sandbox.test") as http:
        answer = await http.get("/qualys" + DETECTION, params={"action": "list", "truncation_limit": "5"})
    assert answer.status_code == 200 and b"http://sandbox.test/qualys/api/2.0/fo/asset/host/vm/detection/?" in answer.content


async def test_posture_pages_list_records_then_a_glossary_of_their_hosts_and_controls():
    async with client(create_app(scanned(8))) as http:
        answer = await http.get(POSTURE, params={"action": "list", "policy_id": "900100", "truncation_limit": "5", "status": "Failed"})
        wrong = await http.get(POSTURE, params={"action": "list", "policy_id": "1"})
    root = parse(io.BytesIO(answer.content)).getroot()
    infos = root.findall("RESPONSE/INFO_LIST/INFO")
    assert len(infos) == 5 and {i.findtext("STATUS") for i in infos} == {"Failed"}
    assert {h.findtext("ID") for h in root.iter("HOST")} == {i.findtext("HOST_ID") for i in infos}
    assert {c.findtext("ID") for c in root.iter("CONTROL")} == {i.findtext("CONTROL_ID") for i in infos}
    assert "id_min=" in root.findtext("RESPONSE/WARNING/URL")
    assert wrong.status_code == 400 and b"<SIMPLE_RETURN>" in wrong.content


async def test_calls_over_the_concurrency_limit_get_409_1960():
    app = create_app(generate(hosts=2))
    app.state.qualys.running["detection"] = 2  # two calls already running
    async with client(app) as http:
        answer = await http.get(DETECTION, params={"action": "list"})
    assert answer.status_code == 409 and b"<CODE>1960</CODE>" in answer.content
    assert answer.headers["X-Concurrency-Limit-Running"] == "2"


@pytest.mark.parametrize(("auth", "headers", "status"), [(("someone", "else"), HEADERS, 401), ((USERNAME, PASSWORD), {}, 400)])
async def test_credentials_and_x_requested_with_are_required(auth, headers, status):
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(generate(hosts=2))), base_url="http://q") as http:
        answer = await http.get(DETECTION, params={"action": "list"}, auth=auth, headers=headers)
    assert answer.status_code == status and b"<SIMPLE_RETURN>" in answer.content


async def test_fim_search_needs_the_gateway_token_and_reads_only_date_ranges():
    app = create_app(generate(hosts=2))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://q") as http:
        assert (await http.post("/fim/v3/incidents/search", json={})).status_code == 401
        token = (await http.post("/auth", data={"username": USERNAME, "password": PASSWORD, "token": "true"})).text
        bearer = {"Authorization": f"Bearer {token}"}
        found = (await http.post("/fim/v3/incidents/search", json={"pageSize": 3}, headers=bearer)).json()
        unknown = await http.post("/fim/v3/incidents/search", json={"filter": "severity:4"}, headers=bearer)
    assert len(found) == 3 and all(set(entry) == {"sortValues", "data"} for entry in found)
    assert unknown.status_code == 400


async def test_the_sandbox_scan_endpoint_fixes_and_reopens():
    app = create_app(scanned(20))
    sub = app.state.qualys.subscription
    async with client(app) as http:
        for _ in range(3):
            assert (await http.post("/_sandbox/scan")).status_code == 200
    states = {d.status for d in sub.detections.values()}
    assert {"Active", "Fixed", "Re-Opened"} <= states and sub.scans == 4
