"""JQL as common clients send it, one test per form, through two independent client libraries over real HTTP.

The `jira` package and `atlassian-python-api` build their requests differently (different endpoints, parameters
and quoting); both must get what a real Jira would answer. Dates are only compared with the sandbox's own clock
through JQL itself (`-7d`, `startOfDay()`, …), so no test depends on when it runs.
"""

import pytest
from atlassian import Jira
from jira import JIRA, JIRAError

USER = ("soc@example.com", "sandbox-token")
ANALYST = "5b10a2844c20165700ede21g"


@pytest.fixture(scope="module")
def jira(sandbox):
    url, _app = sandbox
    return JIRA(server=url, basic_auth=USER)


@pytest.fixture(scope="module")
def issues(jira, sandbox):
    """Create the issues every test below searches (a module of its own, so the set is known)."""
    _url, app = sandbox
    made = {
        "beacon": jira.create_issue(project="SOC", issuetype={"name": "Alert"}, summary="Beaconing host web-01",
                                    description="C2 traffic to evil.example", labels=["edr", "jql"]),
        "lateral": jira.create_issue(project="SOC", issuetype={"name": "Incident"}, summary="Lateral movement seen",
                                     description="mimikatz on dc-02", labels=["jql"],
                                     customfield_10050={"value": "High"}),
        "phish": jira.create_issue(project="SOC", issuetype={"name": "Alert"}, summary="Phishing reported",
                                   description="Invoice lure", labels=["mail", "jql"]),
    }  # fmt: skip
    jira.add_comment(made["phish"].key, "User clicked the link: credential reset done")
    jira.transition_issue(made["phish"].key, "Done")  # no resolution field: the default workflow resolves it
    app.state.jira.issues[made["lateral"].key].fields["assignee"] = ANALYST
    return {name: issue.key for name, issue in made.items()}


def keys(jira: JIRA, jql: str) -> set[str]:
    return {issue.key for issue in jira.search_issues(f"labels = jql AND ({jql})")}


@pytest.mark.parametrize(("jql", "expected"), [
    ('summary ~ "beaconing"', {"beacon"}),
    ('summary~"BEACON*"', {"beacon"}),  # no spaces around ~: what the issue's client sent
    ('summary ~ "\\"lateral movement\\""', {"lateral"}),
    ('description ~ mimikatz', {"lateral"}),
    ('comment ~ "credential"', {"phish"}),
    ('text ~ "evil"', {"beacon"}),
    ('summary !~ "beaconing"', {"lateral", "phish"}),
])  # fmt: skip
def test_text_search(jira, issues, jql, expected):
    assert keys(jira, jql) == {issues[name] for name in expected}


@pytest.mark.parametrize(("jql", "expected"), [
    ("status != Done", {"beacon", "lateral"}),
    ('issuetype != "Incident"', {"beacon", "phish"}),
])  # fmt: skip
def test_not_equal(jira, issues, jql, expected):
    assert keys(jira, jql) == {issues[name] for name in expected}


def test_not_in(jira, issues):
    assert keys(jira, "labels not in (edr, mail)") == {issues["lateral"]}


@pytest.mark.parametrize(("jql", "expected"), [
    ("assignee is EMPTY", {"beacon", "phish"}),
    ("assignee is not EMPTY", {"lateral"}),
    ("resolution is not EMPTY", {"phish"}),
    ("resolved is EMPTY", {"beacon", "lateral"}),
])  # fmt: skip
def test_is_empty(jira, issues, jql, expected):
    assert keys(jira, jql) == {issues[name] for name in expected}


@pytest.mark.parametrize(("jql", "everything"), [
    ('created >= "2020-01-01"', True),
    ('created < "2020/01/01 00:00"', False),
    ('updated > "2020-01-01 08:30"', True),
])  # fmt: skip
def test_absolute_dates(jira, issues, jql, everything):
    assert keys(jira, jql) == (set(issues.values()) if everything else set())


@pytest.mark.parametrize(("jql", "everything"), [
    ("created >= -7d", True),
    ('created < "-1w"', False),
    ('updated >= "-1w 2d"', True),
    ("created > -30m", True),
])  # fmt: skip
def test_relative_dates(jira, issues, jql, everything):
    assert keys(jira, jql) == (set(issues.values()) if everything else set())


@pytest.mark.parametrize(("jql", "everything"), [
    ("created >= startOfDay()", True),
    ("created <= endOfDay()", True),
    ("updated >= startOfDay(-1)", True),
    ("created > now()", False),
    ("created >= startOfWeek() AND created >= startOfMonth() AND created >= startOfYear()", True),
    ("created > endOfMonth()", False),
    ('created < startOfMonth("-1M")', False),
])  # fmt: skip
def test_date_functions(jira, issues, jql, everything):
    assert keys(jira, jql) == (set(issues.values()) if everything else set())


def test_resolved_date_of_a_closed_issue(jira, issues):
    assert keys(jira, "resolved >= startOfDay()") == {issues["phish"]}


def test_order_by_several_fields(jira, issues):
    found = [issue.key for issue in jira.search_issues("labels = jql ORDER BY status DESC, key ASC")]
    # "To Do" sorts after "Done" descending; within To Do, keys ascend.
    assert found == [issues["beacon"], issues["lateral"], issues["phish"]]
    found = [issue.key for issue in jira.search_issues("labels = jql ORDER BY issuetype ASC, created DESC")]
    assert found == [issues["phish"], issues["beacon"], issues["lateral"]]


def test_current_user(jira, issues, sandbox):
    url, _app = sandbox
    assert keys(jira, "reporter = currentUser()") == set(issues.values())
    assert keys(jira, "assignee = currentUser()") == set()
    analyst = JIRA(server=url, basic_auth=("analyst@example.com", "sandbox-token"))
    assert {i.key for i in analyst.search_issues("labels = jql AND assignee = currentUser()")} == {issues["lateral"]}


@pytest.mark.parametrize(("jql", "message"), [
    ('summary = "Phishing reported"', "The operator '=' is not supported by the 'summary' field."),
    ('created > "yesterday"', "Date value 'yesterday' for field is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
                              "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."),
    ("watcher = soc", "Field 'watcher' does not exist or you do not have permission to view it."),
    ("created > lastLogin()", "Unable to find JQL function 'lastlogin()'."),
    ("labels ~ edr", "The operator '~' is not supported by the 'labels' field."),
])  # fmt: skip
def test_unsupported_forms_get_jiras_error_shape(jira, issues, jql, message):
    with pytest.raises(JIRAError) as refused:
        jira.search_issues(jql)
    assert refused.value.status_code == 400
    assert refused.value.response.json() == {"errorMessages": [message], "errors": {}}


def test_atlassian_python_api_search_create_comment_and_bump(sandbox):
    """A second client's typical script: find an open ticket by summary, comment on it, or create one."""
    url, app = sandbox
    client = Jira(url=url, username=USER[0], password=USER[1])

    def file_or_bump(summary: str, severity: str) -> str:
        found = client.jql(f'project = SOC AND summary ~ "\\"{summary}\\"" AND statusCategory != Done ORDER BY created DESC',
                           fields=["summary"])["issues"]
        if found:
            client.issue_add_comment(found[0]["key"], "Seen again")
            return found[0]["key"]
        created = client.issue_create(fields={
            "project": {"key": "SOC"}, "issuetype": {"name": "Incident"}, "summary": summary,
            "description": "From a script", "labels": ["atlassian-client"], "customfield_10050": {"value": severity},
        })
        return created["key"]

    first = file_or_bump("Ransomware note on fs-01", "High")
    assert file_or_bump("Ransomware note on fs-01", "High") == first
    assert file_or_bump("Ransomware note on fs-02", "Critical") != first
    issue = app.state.jira.issues[first]
    assert [c["body"] for c in issue.comments] and len(issue.comments) == 1
    assert client.get_issue(first, fields="customfield_10050")["fields"]["customfield_10050"]["value"] == "High"
    client.set_issue_status(first, "Done")
    assert file_or_bump("Ransomware note on fs-01", "High") != first  # closed: a new ticket, not a bump
    assert ("GET", "/rest/api/2/search", 200) in app.state.jira.calls
