"""The emulator's v3 responses against Atlassian's own OpenAPI spec and its published examples.

Reads ../shared/vendor/jira/jira-cloud-platform-openapi-v3.json (never copied into the repository).
"""

import copy
import json

import httpx2
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from alertbridge.sandbox.jira import create_app

from .conftest import AUTH, issue_body, text_value

SPEC_URI = "urn:jira-cloud-platform-openapi-v3"


def json_schema_from_openapi(node):
    """Rewrite OpenAPI 3.0's `nullable: true` as JSON Schema's null type, everywhere."""
    if isinstance(node, list):
        return [json_schema_from_openapi(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema_from_openapi(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@pytest.fixture(scope="module")
def spec(vendor_jira) -> dict:
    with open(vendor_jira / "jira-cloud-platform-openapi-v3.json", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def registry(spec) -> Registry:
    schema_document = json_schema_from_openapi(spec)
    return Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(schema_document))


def response_schema(spec: dict, path: str, method: str, status: int) -> dict:
    """Return the spec's JSON schema for one response, as a $ref into the registered spec when it is one."""
    schema = spec["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    return json_schema_from_openapi(copy.deepcopy(schema))


def assert_conforms(spec, registry, path: str, method: str, response: httpx2.Response) -> None:
    schema = response_schema(spec, path, method, response.status_code)
    schema = json.loads(json.dumps(schema).replace('"#/components/', f'"{SPEC_URI}#/components/'))
    validator = Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(response.json()), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{list(error.path)}: {error.message}" for error in errors[:5])


@pytest.fixture
async def client():
    transport = httpx2.ASGITransport(app=create_app())
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox", auth=AUTH) as http:
        yield http


def test_the_checker_rejects_a_body_that_breaks_the_spec(spec, registry):
    bad = httpx2.Response(201, json={"id": 10001, "key": "SOC-1", "unexpected": True})
    with pytest.raises(AssertionError, match="unexpected|is not of type"):
        assert_conforms(spec, registry, "/rest/api/3/issue", "post", bad)


async def test_issue_operations_answer_in_the_specs_shapes(spec, registry, client):
    created = await client.post("/rest/api/3/issue", json=issue_body(3, labels=["alertbridge-7"], customfield_10050={"value": "High"},
                                                                   customfield_10057=[{"value": "Impact"}]))  # fmt: skip
    assert_conforms(spec, registry, "/rest/api/3/issue", "post", created)
    key = created.json()["key"]
    issue_path = "/rest/api/3/issue/{issueIdOrKey}"
    await client.post(f"/rest/api/3/issue/{key}/comment", json={"body": text_value(3, "first")})
    await client.post(f"/rest/api/3/issue/{key}/attachments", files={"file": ("a.txt", b"x", "text/plain")},
                      headers={"X-Atlassian-Token": "no-check"})  # fmt: skip
    assert_conforms(spec, registry, issue_path, "get", await client.get(f"/rest/api/3/issue/{key}"))
    assert_conforms(spec, registry, issue_path + "/transitions", "get",
                    await client.get(f"/rest/api/3/issue/{key}/transitions", params={"expand": "transitions.fields"}))  # fmt: skip
    comment = await client.post(f"/rest/api/3/issue/{key}/comment", json={"body": text_value(3, "second")})
    assert_conforms(spec, registry, issue_path + "/comment", "post", comment)
    assert_conforms(spec, registry, issue_path + "/comment", "get", await client.get(f"/rest/api/3/issue/{key}/comment"))
    link = await client.post(f"/rest/api/3/issue/{key}/remotelink", json={"object": {"url": "https://x", "title": "x"}})
    assert_conforms(spec, registry, issue_path + "/remotelink", "post", link)
    attachment = await client.post(f"/rest/api/3/issue/{key}/attachments", files={"file": ("b.txt", b"y", "text/plain")},
                                   headers={"X-Atlassian-Token": "no-check"})  # fmt: skip
    assert_conforms(spec, registry, issue_path + "/attachments", "post", attachment)


async def test_search_metadata_and_bulk_answer_in_the_specs_shapes(spec, registry, client):
    for _ in range(3):
        await client.post("/rest/api/3/issue", json=issue_body(3, labels=["many"]))
    search = await client.post("/rest/api/3/search/jql", json={"jql": "labels = many", "maxResults": 2, "fields": ["*all"]})
    assert_conforms(spec, registry, "/rest/api/3/search/jql", "post", search)
    assert_conforms(spec, registry, "/rest/api/3/search", "get", await client.get("/rest/api/3/search", params={"jql": "labels = many"}))
    assert_conforms(spec, registry, "/rest/api/3/field", "get", await client.get("/rest/api/3/field"))
    meta = "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes"
    assert_conforms(spec, registry, meta, "get", await client.get("/rest/api/3/issue/createmeta/SOC/issuetypes"))
    assert_conforms(spec, registry, meta + "/{issueTypeId}", "get", await client.get("/rest/api/3/issue/createmeta/SOC/issuetypes/10002"))
    bulk = await client.post("/rest/api/3/issue/bulk", json={"issueUpdates": [issue_body(3), issue_body(3, summary="")]})
    assert_conforms(spec, registry, "/rest/api/3/issue/bulk", "post", bulk)
    failed_bulk = await client.post("/rest/api/3/issue/bulk", json={"issueUpdates": [issue_body(3, summary="")]})
    assert_conforms(spec, registry, "/rest/api/3/issue/bulk", "post", failed_bulk)
    assert_conforms(spec, registry, "/rest/api/3/serverInfo", "get", await client.get("/rest/api/3/serverInfo"))
    assert_conforms(spec, registry, "/rest/api/3/myself", "get", await client.get("/rest/api/3/myself"))
    errors = await client.post("/rest/api/3/issue", json=issue_body(3, summary=""))
    assert_conforms(spec, registry, "/rest/api/3/issue", "post", errors)


async def test_the_specs_request_examples_are_accepted(spec, client):
    def example(path: str, method: str) -> dict:
        return spec["paths"][path][method]["requestBody"]["content"]["application/json"]["example"]

    create_example = example("/rest/api/3/issue", "post")["fields"]
    ours = {name: create_example[name] for name in ("summary", "description", "labels", "duedate")}
    created = await client.post("/rest/api/3/issue", json={"fields": ours | {"project": {"key": "SOC"}, "issuetype": {"id": "10001"}}})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    issue_path = "/rest/api/3/issue/{issueIdOrKey}"
    comment = await client.post(f"/rest/api/3/issue/{key}/comment", json=example(issue_path + "/comment", "post"))
    assert comment.status_code == 201, comment.text
    link = await client.post(f"/rest/api/3/issue/{key}/remotelink", json=example(issue_path + "/remotelink", "post"))
    assert link.status_code == 201, link.text
    transition = example(issue_path + "/transitions", "post")
    ours_transition = {"transition": {"id": "31"}, "fields": {"resolution": {"name": "Done"}}, "update": transition["update"]}
    assert (await client.post(f"/rest/api/3/issue/{key}/transitions", json=ours_transition)).status_code == 204
    comments = (await client.get(f"/rest/api/3/issue/{key}/comment")).json()["comments"]
    assert comments[-1]["body"] == transition["update"]["comment"][0]["add"]["body"]


def same_shape(ours, theirs) -> bool:
    """Tell whether two JSON values have the same keys at the levels the example shows."""
    if isinstance(theirs, dict):
        return isinstance(ours, dict) and set(ours) == set(theirs)
    return type(ours) is type(theirs)


async def test_bodies_have_the_keys_of_atlassians_examples(vendor_jira, client):
    examples = {path.stem: json.loads(path.read_text()) for path in (vendor_jira / "spec-examples").glob("*.json")}
    await client.post("/rest/api/3/issue", json=issue_body(3, labels=["one"]))
    search = (await client.get("/rest/api/3/search/jql", params={"jql": "labels = one"})).json()
    assert set(search) == set(examples["search-jql-200"])  # isLast + issues; no token on the last page
    legacy = (await client.get("/rest/api/3/search", params={"jql": "labels = one"})).json()
    assert set(legacy) <= set(examples["search-legacy-200"])
    created = (await client.post("/rest/api/3/issue", json=issue_body(3))).json()
    assert set(created) <= set(examples["create-issue-201"])
    error = (await client.post("/rest/api/3/issue", json=issue_body(3, summary=""))).json()
    assert same_shape(error, examples["create-issue-400-errors-map"])
    remote = (await client.post("/rest/api/3/issue/SOC-1/remotelink", json={"object": {"url": "https://x"}})).json()
    assert remote == examples["remotelink-400-errors-map"]
    bulk = (await client.post("/rest/api/3/issue/bulk", json={"issueUpdates": [issue_body(3, summary="")]})).json()
    their_error = examples["bulk-create-400-errors-map"]["errors"][0]
    assert set(bulk) == set(examples["bulk-create-400-errors-map"]) and set(bulk["errors"][0]) == set(their_error)
    assert set(bulk["errors"][0]["elementErrors"]) == set(their_error["elementErrors"])
    types = (await client.get("/rest/api/3/issue/createmeta/SOC/issuetypes")).json()
    assert set(types) == set(examples["createmeta-issuetypes-200"])
    fields = (await client.get("/rest/api/3/issue/createmeta/SOC/issuetypes/10001")).json()
    assert set(fields) == set(examples["createmeta-fields-200"])
    assert set(examples["createmeta-fields-200"]["fields"][0]) <= set(fields["fields"][0])
    comment = (await client.post("/rest/api/3/issue/SOC-1/comment", json={"body": text_value(3, "x")})).json()
    assert set(comment) >= set(examples["add-comment-201"]) - {"visibility"}
    transitions = (await client.get("/rest/api/3/issue/SOC-1/transitions")).json()
    assert set(transitions["transitions"][0]) >= set(examples["get-transitions-200"]["transitions"][0]) - {"fields"}


async def test_data_center_bodies_have_the_keys_of_a_real_server(vendor_jira, client):
    server_issue = json.loads((vendor_jira / "server-get-issue-rest-api-2.json").read_text())
    await client.post("/rest/api/2/issue", json=issue_body(2))
    ours = (await client.get("/rest/api/2/issue/SOC-1")).json()
    assert set(ours) == set(server_issue)
    for name in ("issuetype", "status", "priority", "project", "reporter", "comment"):
        assert set(server_issue["fields"][name]) <= set(ours["fields"][name]), name  # a newer server adds keys
    assert isinstance(ours["fields"]["summary"], str) and isinstance(ours["fields"]["labels"], list)
    server_comment = json.loads((vendor_jira / "server-add-comment-response-rest-api-2.json").read_text())
    comment = (await client.post("/rest/api/2/issue/SOC-1/comment", json={"body": "new comment"})).json()
    assert set(server_comment) <= set(comment) and comment["body"] == "new comment"
