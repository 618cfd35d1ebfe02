"""The Jira emulator over HTTP, in both flavours: v3 (Cloud) and v2 (Data Center)."""

import asyncio
import base64

import httpx2
import pytest

from alertbridge.sandbox import faults
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app

from .conftest import AUTH, issue_body, text_value

BOTH = pytest.mark.parametrize("version", [2, 3])
ANALYST_ACCOUNT = "5b10a2844c20165700ede21g"


async def create(client, version: int, **kwargs) -> str:
    response = await client.post(f"/rest/api/{version}/issue", json=issue_body(version, **kwargs))
    assert response.status_code == 201, response.text
    return response.json()["key"]


@BOTH
async def test_create_then_get_returns_every_value_shape_in_the_flavours_form(client, version):
    user = {"accountId": ANALYST_ACCOUNT} if version == 3 else {"name": "analyst"}
    key = await create(
        client, version, labels=["alertbridge-42"], priority={"name": "High"}, duedate="2030-01-31", assignee=user,
        customfield_10050={"value": "Critical"}, customfield_10051={"value": "Malware"},
        customfield_10052="CrowdStrike", customfield_10053=["host-1", "host-2"],
        customfield_10054=text_value(version, "evil.example.com"), customfield_10055="2024-05-01T10:00:00+00:00",
        customfield_10056=3, customfield_10057=[{"value": "Execution"}, {"value": "Persistence"}],
    )  # fmt: skip
    response = await client.get(f"/rest/api/{version}/issue/{key}")
    fields = response.json()["fields"]
    assert key == "SOC-1" and fields["summary"] == "Suspicious login"
    assert fields["description"] == text_value(version, "Seen by the EDR.")
    assert fields["customfield_10054"] == text_value(version, "evil.example.com")
    assert fields["customfield_10050"]["value"] == "Critical" and fields["priority"]["name"] == "High"
    assert [tactic["value"] for tactic in fields["customfield_10057"]] == ["Execution", "Persistence"]
    assert fields["customfield_10053"] == ["host-1", "host-2"] and fields["labels"] == ["alertbridge-42"]
    assert fields["customfield_10055"] == "2024-05-01T10:00:00.000+0000" and fields["customfield_10056"] == 3
    assert fields["status"]["name"] == "To Do" and fields["resolution"] is None
    assert ("accountId" in fields["assignee"]) == (version == 3) and ("name" in fields["assignee"]) == (version == 2)


async def test_text_written_on_cloud_reads_as_text_on_data_center(client):
    key = await create(client, 3)
    v2 = await client.get(f"/rest/api/2/issue/{key}", params={"fields": "description,summary"})
    assert v2.json()["fields"] == {"description": "Seen by the EDR.", "summary": "Suspicious login"}


async def test_v3_demands_an_atlassian_document(client):
    body = issue_body(3, description="plain text")
    response = await client.post("/rest/api/3/issue", json=body)
    assert response.status_code == 400
    assert response.json() == {"errorMessages": [], "errors": {"description": "Operation value must be an Atlassian Document"}}
    assert (await client.post("/rest/api/2/issue", json=issue_body(2, description=text_value(3, "x")))).status_code == 400


async def test_invalid_create_gets_one_error_per_field_and_stores_nothing(client, app):
    body = issue_body(3, summary="", customfield_10051={"value": "Ransomware"}, customfield_99999="x",
                      labels=["two words"], customfield_10056="three", duedate="31/01/2030")  # fmt: skip
    body["fields"]["issuetype"] = {"name": "Incident"}
    response = await client.post("/rest/api/3/issue", json=body)
    assert response.status_code == 400 and response.json()["errorMessages"] == []
    assert response.json()["errors"] == {
        "summary": "You must specify a summary of the issue.",
        "customfield_10051": "Option value 'Ransomware' is not valid",
        "customfield_99999": "Field 'customfield_99999' cannot be set. It is not on the appropriate screen, or unknown.",
        "labels": "The label 'two words' contains spaces which is invalid.",
        "customfield_10056": "Operation value must be a number",
        "duedate": "Error parsing date string: 31/01/2030",
        "customfield_10050": "Incident Severity is required.",
    }
    assert app.state.jira.issues == {}


async def test_unknown_project_or_issue_type_is_reported_first(client):
    body = issue_body(3)
    body["fields"] |= {"project": {"key": "NOPE"}, "issuetype": {"name": "Bug"}}
    response = await client.post("/rest/api/3/issue", json=body)
    assert response.json()["errors"] == {"project": "Specify a valid project ID or key",
                                         "issuetype": "The issue type selected is invalid."}  # fmt: skip


@pytest.mark.parametrize(("version", "user", "accepted"), [
    (3, {"accountId": ANALYST_ACCOUNT}, True), (3, {"name": "analyst"}, False),
    (2, {"name": "analyst"}, True), (2, {"accountId": ANALYST_ACCOUNT}, False),
])  # fmt: skip
async def test_users_are_named_by_account_id_on_cloud_and_by_name_on_data_center(client, version, user, accepted):
    response = await client.post(f"/rest/api/{version}/issue", json=issue_body(version, assignee=user))
    assert (response.status_code == 201) is accepted
    if not accepted:
        assert set(response.json()["errors"]) == {"assignee"}


@BOTH
async def test_missing_or_wrong_credentials_get_401_in_jiras_shape(app, version):
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox") as anonymous:
        missing = await anonymous.get(f"/rest/api/{version}/myself")
        wrong = await anonymous.get(f"/rest/api/{version}/myself", auth=("soc@example.com", "nope"))
        bearer = await anonymous.get(f"/rest/api/{version}/myself", headers={"Authorization": "Bearer sandbox-token"})
        basic = await anonymous.get(f"/rest/api/{version}/myself", auth=AUTH)
    expected = {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
                "errors": {}}  # fmt: skip
    assert (missing.status_code, missing.json()) == (401, expected)
    assert wrong.status_code == 401 and wrong.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    assert bearer.status_code == basic.status_code == 200
    assert basic.json()["emailAddress"] == "soc@example.com"


async def test_edit_sets_fields_and_applies_update_verbs_all_or_nothing(client, app):
    key = await create(client, 3, labels=["a", "b"])
    edit = {"fields": {"summary": "Renamed"}, "update": {"labels": [{"add": "c"}, {"remove": "a"}],
            "customfield_10057": [{"add": {"value": "Impact"}}]}}  # fmt: skip
    assert (await client.put(f"/rest/api/3/issue/{key}", json=edit)).status_code == 204
    issue = app.state.jira.issues[key]
    assert issue.labels == ["b", "c"] and issue.fields["summary"] == "Renamed"
    bad = await client.put(f"/rest/api/3/issue/{key}", json={"fields": {"summary": "Again", "invalid": 1}})
    assert bad.status_code == 400
    assert bad.json() == {"errorMessages": [], "errors": {"invalid": "Field 'invalid' is not valid for this operation."}}
    assert issue.fields["summary"] == "Renamed"


@BOTH
async def test_comments_are_added_and_paged(client, app, version):
    key = await create(client, version)
    for number in range(3):
        added = await client.post(f"/rest/api/{version}/issue/{key}/comment", json={"body": text_value(version, f"c{number}")})
        assert added.status_code == 201 and added.json()["body"] == text_value(version, f"c{number}")
    listed = (await client.get(f"/rest/api/{version}/issue/{key}/comment", params={"startAt": 2, "maxResults": 2})).json()
    assert (listed["total"], listed["startAt"], len(listed["comments"])) == (3, 2, 1)
    assert listed["comments"][0]["body"] == text_value(version, "c2")
    assert len(app.state.jira.issues[key].comments) == 3


async def test_comment_on_v3_must_be_adf(client):
    key = await create(client, 3)
    response = await client.post(f"/rest/api/3/issue/{key}/comment", json={"body": "plain"})
    assert response.status_code == 400 and "Atlassian Document" in response.json()["errors"]["comment"]


@BOTH
async def test_workflow_done_resolves_with_the_given_or_default_resolution_and_reopen_clears_it(client, app, version):
    key = await create(client, version)
    url = f"/rest/api/{version}/issue/{key}/transitions"
    offered = (await client.get(url, params={"expand": "transitions.fields"})).json()["transitions"]
    assert {t["name"]: t["id"] for t in offered} == {"Start Progress": "11", "Done": "31"}
    assert next(t for t in offered if t["id"] == "31")["fields"]["resolution"]["required"] is False
    invalid = await client.post(url, json={"transition": {"id": "41"}})
    assert invalid.json() == {"errorMessages": ["Transition id '41' is not valid for this issue."], "errors": {}}
    unknown = await client.post(url, json={"transition": {"id": "31"}, "fields": {"resolution": {"name": "Nope"}}})
    assert unknown.json()["errors"] == {"resolution": "Invalid resolution."}
    # Jira's default workflow resolves on Done by itself: no resolution field needed.
    assert (await client.post(url, json={"transition": {"id": "31"}})).status_code == 204
    assert app.state.jira.issues[key].resolution == "Done"
    assert (await client.post(url, json={"transition": {"id": "41"}})).status_code == 204
    done = await client.post(url, json={"transition": {"id": "31"}, "fields": {"resolution": {"name": "False Positive"}}})
    assert done.status_code == 204
    fields = (await client.get(f"/rest/api/{version}/issue/{key}")).json()["fields"]
    assert fields["status"]["statusCategory"]["key"] == "done" and fields["resolution"]["name"] == "False Positive"
    assert (await client.post(url, json={"transition": {"id": "41"}})).status_code == 204
    assert app.state.jira.issues[key].resolution is None and app.state.jira.issues[key].status == "To Do"


async def test_admin_transition_moves_an_issue_as_an_analyst_would(client, app):
    key = await create(client, 3)
    moved = await client.post(f"/_sandbox/issues/{key}/transition", json={"status": "Done", "resolution": "Won't Do"})
    assert moved.json() == {"key": key, "status": "Done", "resolution": "Won't Do"}
    assert app.state.jira.issues[key].history[-1]["author"] == ANALYST_ACCOUNT
    app.state.jira.transition(key, "To Do")
    assert app.state.jira.issues[key].status == "To Do"


async def test_jql_subset(client, app):
    first = await create(client, 3, labels=["alertbridge-1", "edr"])
    second = await create(client, 3, labels=["alertbridge-2"])
    third = await create(client, 3, labels=["alertbridge-3", "edr"])
    app.state.jira.transition(second, "In Progress")
    app.state.jira.transition(third, "Done", "Duplicate")

    async def keys(jql: str) -> list[str]:
        response = await client.post("/rest/api/3/search/jql", json={"jql": jql, "fields": ["key"]})
        assert response.status_code == 200, response.text
        return [issue["key"] for issue in response.json()["issues"]]

    assert await keys("labels = alertbridge-2") == [second]
    assert await keys('project = SOC AND labels in (edr, "alertbridge-2") ORDER BY created ASC') == [first, second, third]
    assert await keys('status = "To Do" OR (statusCategory = Done AND resolution = Duplicate)') == [third, first]
    assert await keys("statusCategory != Done AND resolution is EMPTY ORDER BY key DESC") == [second, first]
    assert await keys("resolution = Unresolved AND NOT labels = edr") == [second]
    assert await keys(f"key in ({first}, {third}) ORDER BY key") == [first, third]
    assert await keys("status in ('In Progress', Done) ORDER BY key ASC") == [second, third]


@pytest.mark.parametrize(("jql", "message"), [
    ("foo = bar", "Field 'foo' does not exist or you do not have permission to view it."),
    ('status = "Closed"', "The value 'closed' does not exist for the field 'status'."),
    ("key = SOC-999", "An issue with key 'SOC-999' does not exist for field 'key'."),
    ("labels = a b", "Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'b'."),
])  # fmt: skip
async def test_bad_jql_is_a_400_with_jiras_message(client, jql, message):
    response = await client.get("/rest/api/3/search/jql", params={"jql": jql})
    assert response.status_code == 400 and response.json() == {"errorMessages": [message], "errors": {}}


async def test_search_jql_pages_with_next_page_token(client):
    created = {await create(client, 3, labels=["batch"]) for _ in range(5)}
    seen, token, pages = [], None, 0
    for _ in range(10):  # bounded: a token that never runs out fails the test instead of hanging it
        params = {"jql": "labels = batch", "maxResults": 2} | ({"nextPageToken": token} if token else {})
        body = (await client.get("/rest/api/3/search/jql", params=params)).json()
        seen += [issue["key"] for issue in body["issues"]]
        pages += 1
        if body["isLast"]:
            assert "nextPageToken" not in body
            break
        token = body["nextPageToken"]
    else:
        pytest.fail(f"no last page after {pages} pages")
    assert pages == 3 and set(seen) == created and len(seen) == 5


@BOTH
async def test_legacy_search_pages_with_start_at_and_total(client, version):
    for _ in range(3):
        await create(client, version, labels=["legacy"])
    body = (await client.get(f"/rest/api/{version}/search", params={"jql": "labels = legacy", "startAt": 1, "maxResults": 1})).json()
    assert (body["total"], body["startAt"], body["maxResults"], len(body["issues"])) == (3, 1, 1, 1)
    assert "summary" in body["issues"][0]["fields"]


async def test_new_issues_reach_search_only_after_the_index_lag(client, app, clock):
    app.state.jira.faults.search_lag_seconds = 5
    key = await create(client, 3, labels=["fresh"])
    clock.time += 4.9
    hidden = await client.get("/rest/api/3/search/jql", params={"jql": "labels = fresh"})
    assert hidden.json()["issues"] == [] and (await client.get(f"/rest/api/3/issue/{key}")).status_code == 200
    clock.time += 0.1
    shown = await client.get("/rest/api/3/search/jql", params={"jql": "labels = fresh"})
    assert [issue["key"] for issue in shown.json()["issues"]] == [key]
    await client.post("/_sandbox/faults", json={"search_lag_seconds": 3600})  # the knob is read on every search
    assert (await client.get("/rest/api/3/search/jql", params={"jql": "labels = fresh"})).json()["issues"] == []


async def test_remote_links_are_created_updated_by_global_id_and_validated(client):
    key = await create(client, 3)
    url = f"/rest/api/3/issue/{key}/remotelink"
    link = {"globalId": "alert:1", "object": {"url": "https://edr.example/alert/1", "title": "EDR alert"}}
    first = await client.post(url, json=link)
    again = await client.post(url, json=link | {"object": {"url": "https://edr.example/alert/1", "title": "Renamed"}})
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    listed = (await client.get(url)).json()
    assert len(listed) == 1 and listed[0]["object"]["title"] == "Renamed"
    assert (await client.get(url, params={"globalId": "alert:1"})).json()["globalId"] == "alert:1"
    missing = await client.post(url, json={"object": {"url": "https://x"}})
    assert missing.status_code == 400 and missing.json() == {"errorMessages": [], "errors": {"title": "'title' is required."}}


async def test_attachments_need_the_xsrf_header(client, app):
    key = await create(client, 3)
    files = {"file": ("evidence.txt", b"beacon to 203.0.113.9", "text/plain")}
    refused = await client.post(f"/rest/api/3/issue/{key}/attachments", files=files)
    assert refused.status_code == 403
    accepted = await client.post(f"/rest/api/3/issue/{key}/attachments", files=files,
                                 headers={"X-Atlassian-Token": "no-check"})  # fmt: skip
    assert accepted.status_code == 200 and accepted.json()[0]["filename"] == "evidence.txt"
    assert app.state.jira.issues[key].attachments[0]["content"] == b"beacon to 203.0.113.9"


async def test_bulk_create_reports_failures_per_element(client, app):
    good, bad = issue_body(3, summary="ok"), issue_body(3, summary="")
    response = await client.post("/rest/api/3/issue/bulk", json={"issueUpdates": [good, bad, good]})
    body = response.json()
    assert response.status_code == 201 and [issue["key"] for issue in body["issues"]] == ["SOC-1", "SOC-2"]
    assert body["errors"] == [{"status": 400, "failedElementNumber": 1, "elementErrors": {
        "errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}}}]  # fmt: skip
    all_bad = await client.post("/rest/api/3/issue/bulk", json={"issueUpdates": [bad]})
    assert all_bad.status_code == 400
    too_many = await client.post("/rest/api/3/issue/bulk", json={"issueUpdates": [good] * 51})
    assert too_many.status_code == 400 and len(app.state.jira.issues) == 2


async def test_rate_limit_answers_429_with_jiras_headers(client, app, clock):
    app.state.jira.faults.rate_limit = 0.5  # one token, refilled every 2 s
    first = await client.get("/rest/api/3/myself")
    clock.time += 0.5
    limited = await client.get("/rest/api/3/myself")
    assert first.status_code == 200 and first.headers["X-RateLimit-NearLimit"] == "true"
    assert limited.status_code == 429
    assert limited.headers["RateLimit-Reason"] == "jira-burst-based" and limited.headers["Retry-After"] == "2"  # 1.5 s, rounded up
    assert limited.headers["X-RateLimit-Limit"] == "1" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Reset"].endswith("Z")
    await client.post("/_sandbox/faults", json={"rate_limit_reason": "jira-quota-tenant-based"})
    assert (await client.get("/rest/api/3/myself")).headers["RateLimit-Reason"] == "jira-quota-tenant-based"
    assert (await client.get("/_sandbox/state")).json()["rate_limited"] == 2


async def statuses_under_faults(seed: int) -> list[int]:
    app = create_app(JiraSandboxSettings(seed=seed, fail_rate=0.5, hang_seconds=0))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://s", auth=AUTH) as client:
        return [(await client.get("/rest/api/3/myself")).status_code for _ in range(60)]


async def test_fault_injection_is_deterministic_with_a_seed():
    first, second = await statuses_under_faults(3), await statuses_under_faults(3)
    assert first == second and {429, 200} <= set(first) and set(first) & {500, 503}
    assert await statuses_under_faults(4) != first


class Hung(Exception):
    """The sandbox began holding an answer back: the client would wait, then give up."""


async def test_a_hung_create_stores_the_issue_although_the_client_gives_up(app, client, monkeypatch):
    async def hang(seconds: float) -> None:
        raise Hung(seconds)

    monkeypatch.setattr(faults.asyncio, "sleep", hang)  # where the answer would be held back: give up at once, no wall clock
    app.state.jira.faults.fail_rate = 1.0
    answered = 0
    for _ in range(100):  # the seeded faults hang one of the first few calls; bounded all the same
        try:
            response = await client.post("/rest/api/3/issue", json=issue_body(3, labels=["hang"]))
        except Hung:
            break
        assert response.status_code in (429, 500, 503)
        answered += 1
    else:
        pytest.fail("no call hung in 100")
    assert len(app.state.jira.issues_with_label("hang")) == 1  # only the hung call did the work
    assert answered == sum(1 for call in app.state.jira.calls if call[1] == "/rest/api/3/issue")


async def test_latency_is_an_asyncio_sleep(client, app, monkeypatch):
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(faults.asyncio, "sleep", fake_sleep)
    app.state.jira.faults.latency_ms = 250
    await client.get("/rest/api/3/myself")
    assert slept == [0.25]


@BOTH
async def test_fields_and_create_metadata(client, version):
    fields = {f["id"]: f for f in (await client.get(f"/rest/api/{version}/field")).json()}
    assert fields["customfield_10057"]["schema"] == {
        "type": "array", "items": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:multiselect",
        "customId": 10057}  # fmt: skip
    assert fields["labels"]["schema"] == {"type": "array", "items": "string", "system": "labels"}
    types = (await client.get(f"/rest/api/{version}/issue/createmeta/SOC/issuetypes", params={"maxResults": 1})).json()
    listed = types["issueTypes"] if version == 3 else types["values"]
    assert types["total"] == 3 and [t["name"] for t in listed] == ["Alert"]
    meta = (await client.get(f"/rest/api/{version}/issue/createmeta/SOC/issuetypes/10002")).json()
    by_id = {f["fieldId"]: f for f in (meta["fields"] if version == 3 else meta["values"])}
    assert by_id["customfield_10050"]["required"] is True
    assert [o["value"] for o in by_id["customfield_10050"]["allowedValues"]] == ["Critical", "High", "Medium", "Low"]
    legacy = (await client.get(f"/rest/api/{version}/issue/createmeta",
                               params={"projectKeys": "SOC", "expand": "projects.issuetypes.fields"})).json()  # fmt: skip
    assert "customfield_10054" in legacy["projects"][0]["issuetypes"][0]["fields"]


async def test_calls_are_recorded_and_reset_forgets_everything(client, app):
    await create(client, 3)
    await client.get("/rest/api/3/issue/SOC-404")
    assert app.state.jira.calls == [("POST", "/rest/api/3/issue", 201), ("GET", "/rest/api/3/issue/SOC-404", 404)]
    assert (await client.get("/_sandbox/state")).json()["issues"] == 1
    await client.post("/_sandbox/reset")
    assert app.state.jira.issues == {} and app.state.jira.calls == []
    assert await create(client, 3) == "SOC-1"


async def test_unknown_issue_is_404_in_jiras_shape(client):
    response = await client.get("/rest/api/2/issue/SOC-77")
    assert response.status_code == 404
    assert response.json() == {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}


def test_basic_credentials_may_name_the_data_center_user():
    token = base64.b64encode(b"soc:sandbox-token").decode()
    transport = httpx2.ASGITransport(app=create_app())

    async def call():
        async with httpx2.AsyncClient(transport=transport, base_url="http://s") as http:
            return await http.get("/rest/api/2/myself", headers={"Authorization": f"Basic {token}"})

    assert asyncio.run(call()).json()["name"] == "soc"
