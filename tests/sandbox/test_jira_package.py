"""The widely used `jira` client (synchronous, requests-based) against the emulator served by uvicorn.

Endpoints it calls for the operations below: GET serverInfo (construction), POST issue,
GET issue/{key}, GET search (off Cloud) or GET search/jql (Cloud), POST issue/{key}/comment,
GET and POST issue/{key}/transitions, GET project/{key} (when a project is named by key).
"""

import pytest
from jira import JIRA


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_data_center_flavour_create_search_comment_transition(sandbox, auth):
    url, app = sandbox
    credentials = {"basic_auth": ("soc@example.com", "sandbox-token")} if auth == "basic" else {"token_auth": "sandbox-token"}
    jira = JIRA(server=url, **credentials)
    label = f"alertbridge-package-{auth}"
    issue = jira.create_issue(project="SOC", issuetype={"name": "Alert"}, summary="Beaconing host",
                              description="Seen by *EDR*", labels=[label])  # fmt: skip
    assert issue.fields.summary == "Beaconing host" and issue.fields.description == "Seen by *EDR*"

    found = jira.search_issues(f"labels = {label}")
    assert [hit.key for hit in found] == [issue.key] and found.total == 1

    comment = jira.add_comment(issue.key, "Contained by the SOC.")
    assert comment.body == "Contained by the SOC."
    assert {t["name"] for t in jira.transitions(issue.key)} == {"Start Progress", "Done"}
    jira.transition_issue(issue.key, "Done", fields={"resolution": {"name": "Done"}})

    reloaded = jira.issue(issue.key)
    assert reloaded.fields.status.name == "Done" and reloaded.fields.resolution.name == "Done"
    assert app.state.jira.issues[issue.key].status == "Done"
    paths = {path.split("/rest/api/2/")[-1] for _, path, _ in app.state.jira.calls}
    assert {"serverInfo", "issue", "search", f"issue/{issue.key}/transitions", "project/SOC"} <= paths


def test_cloud_flavour_uses_enhanced_search_and_adf(sandbox):
    url, app = sandbox
    jira = JIRA(server=url, basic_auth=("soc@example.com", "sandbox-token"), options={"rest_api_version": "3"})
    assert jira._is_cloud
    description = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "ADF"}]}]}
    issue = jira.create_issue(fields={"project": {"key": "SOC"}, "issuetype": {"name": "Incident"}, "summary": "Cloud",
                                      "description": description, "customfield_10050": {"value": "High"},
                                      "labels": ["alertbridge-cloud"]})  # fmt: skip
    found = jira.search_issues("labels = alertbridge-cloud")
    assert [hit.key for hit in found] == [issue.key]
    assert ("GET", "/rest/api/3/search/jql", 200) in app.state.jira.calls
    jira.transition_issue(issue.key, "Done", fields={"resolution": {"name": "False Positive"}})
    assert jira.issue(issue.key).fields.resolution.name == "False Positive"
