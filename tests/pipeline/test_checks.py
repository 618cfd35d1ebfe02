"""`alertbridge check --live` against the Jira sandbox."""

from __future__ import annotations

import httpx2
import pytest
from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from support.recorder import ServerThread

SOURCE = "sources:\n  gen: {type: generic, auth: {mode: bearer, token: t}}\n"  # a config with no source is incomplete
GOOD_ROUTE = """
  - name: good
    sink: jira
    project: SOC
    issue_type: Alert
    match: {min_severity: low}
    resolve_transition: Done
    fields:
      Incident Severity: "{{ alert.severity.value|title }}"
      Affected Assets: "{{ alert.hosts|join(', ') }}"
"""
BAD_ROUTES = """
  - name: bad-project
    sink: jira
    project: NOPE
  - name: bad-fields
    sink: jira
    project: SOC
    issue_type: Incident
    fields:
      Incident Severity: "{{ alert.severity.value|title }}"
      Incident Sevirity: "x"
      Incident Category: "Spam"
  - name: bad-transition
    sink: jira
    project: SOC
    resolve_transition: Finish
"""


@pytest.fixture(scope="module")
def jira_url():
    with ServerThread(create_app(JiraSandboxSettings())) as url:
        # A project in use has issues in every status; transitions can only be read off issues.
        for _ in range(3):
            httpx2.post(f"{url}/rest/api/2/issue", auth=("soc@example.com", "sandbox-token"),
                        json={"fields": {"project": {"key": "SOC"}, "issuetype": {"name": "Alert"}, "summary": "seed"}}).raise_for_status()
        httpx2.post(f"{url}/_sandbox/issues/SOC-1/transition", json={"status": "Done", "resolution": "Done"}).raise_for_status()
        httpx2.post(f"{url}/_sandbox/issues/SOC-2/transition", json={"status": "In Progress"}).raise_for_status()
        yield url


def run_check(tmp_path, jira_url, routes):
    path = tmp_path / "c.yaml"
    path.write_text(
        SOURCE + "sinks:\n  jira: {type: jira, flavor: cloud, url: '" + jira_url + "', email: soc@example.com, api_token: sandbox-token}\n"
        "routes:" + routes
    )
    return CliRunner().invoke(app, ["check", "--live", "--config", str(path)])


def test_a_good_route_passes(tmp_path, jira_url):
    result = run_check(tmp_path, jira_url, GOOD_ROUTE)
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_each_mistake_is_named_with_its_route(tmp_path, jira_url):
    result = run_check(tmp_path, jira_url, BAD_ROUTES)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    def has(*words):
        return any(all(w in line for w in words) for line in lines)
    assert has("routes[0] (bad-project)", "NOPE")
    assert has("routes[1] (bad-fields)", "Incident Sevirity")
    assert has("routes[1] (bad-fields)", "Spam")
    assert has("routes[1] (bad-fields)", "Info")  # info severity renders a value outside the options
    assert has("routes[2] (bad-transition)", "Finish")


# --- what is really wrong, said once; transitions; neighbours (issue 9) --------------------------------------------

JIRA_SINK = "sinks:\n  jira: {{type: jira, flavor: {flavor}, url: '{url}', email: soc@example.com, api_token: {token}, pat: {token}}}\n"
TWO_ROUTES = """
  - {name: one, sink: jira, project: SOC, resolve_transition: Done}
  - {name: two, sink: jira, project: SOC, issue_type: Task, resolve_transition: Done}
"""


def check_lines(tmp_path, url: str, routes: str, *, flavor: str = "cloud", token: str = "sandbox-token", extra: str = ""):
    path = tmp_path / "c.yaml"
    path.write_text(SOURCE + JIRA_SINK.format(flavor=flavor, url=url, token=token) + extra + "routes:" + routes)
    result = CliRunner().invoke(app, ["check", "--live", "--config", str(path)])
    return result.exit_code, [line.strip() for line in result.output.splitlines()]


def test_a_url_that_is_not_jira_is_said_so_once(tmp_path):
    from support.recorder import Recorder

    with ServerThread(Recorder().app()) as not_jira:  # some other web service: /rest/api/3/serverInfo is a 404
        code, lines = check_lines(tmp_path, not_jira, TWO_ROUTES)
    assert code == 1
    assert lines == [f"sinks.jira: not a Jira server at {not_jira} (jira GET /rest/api/3/serverInfo -> 404: Not Found)"], lines


def test_a_web_page_that_is_not_jira_is_said_so_too(tmp_path):
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    page = Starlette(routes=[Route("/{path:path}", lambda request: HTMLResponse("<html>Welcome to the intranet</html>"))])
    with ServerThread(page) as intranet:  # answers 200 to everything, with HTML
        code, lines = check_lines(tmp_path, intranet, TWO_ROUTES)
    assert (code, lines) == (1, [f"sinks.jira: not a Jira server at {intranet} (GET {intranet}/rest/api/3/serverInfo "
                                 "did not answer JSON)"])


def test_refused_credentials_are_one_problem_of_the_sink(tmp_path, jira_url):
    code, lines = check_lines(tmp_path, jira_url, TWO_ROUTES, token="wrong")
    assert code == 1 and len(lines) == 1 and lines[0].startswith("sinks.jira: ") and "401" in lines[0], lines


def test_an_unknown_project_is_said_once_per_route(tmp_path, jira_url):
    routes = "\n  - {name: nope, sink: jira, project: NOPE, resolve_transition: Done, reopen_transition: Reopen}\n"
    code, lines = check_lines(tmp_path, jira_url, routes)
    assert code == 1
    assert lines == ["routes[0] (nope): NOPE/Alert: unknown project 'NOPE' (or no permission to create issues in it)"]


@pytest.mark.parametrize("flavor", ["cloud", "datacenter"])
def test_a_transition_that_cannot_be_checked_is_reported_unchecked(tmp_path, flavor):
    # A bot account cannot read workflows, and the project has no issue in Done: Reopen (offered only from Done)
    # can be neither confirmed nor refuted.
    with ServerThread(create_app(JiraSandboxSettings(workflow_admin=False))) as url:
        code, lines = check_lines(tmp_path, url, "\n  - {name: soc, sink: jira, project: SOC}\n", flavor=flavor)
    assert code == 0, lines
    assert lines[0].startswith("warning: routes[0] (soc): SOC/Alert: transition 'Reopen' unchecked: the workflow is not "
                               "readable with these credentials"), lines
    assert lines[-1].endswith("OK (1 sources, 1 sinks, 1 routes)")


def test_a_transition_is_checked_against_the_workflow_even_with_no_issue(tmp_path):
    with ServerThread(create_app(JiraSandboxSettings())) as url:  # an administrator's credentials, an empty project
        code, lines = check_lines(tmp_path, url, "\n  - {name: soc, sink: jira, project: SOC, resolve_transition: Finish}\n")
    assert code == 1
    assert lines == ["routes[0] (soc): SOC/Alert: workflow 'SOC workflow' has no transition or status named 'Finish'; "
                     "transitions: Done, Reopen, Start Progress, Stop Progress; statuses: Done, In Progress, To Do"]


def seed_labels(url: str, *labels: str) -> None:
    for label in labels:
        httpx2.post(f"{url}/rest/api/2/issue", auth=("soc@example.com", "sandbox-token"), json={"fields": {
            "project": {"key": "SOC"}, "issuetype": {"name": "Alert"}, "summary": "filed by a hub", "labels": [label]}},
        ).raise_for_status()


def test_check_names_the_other_instances_filing_in_the_project(tmp_path):
    with ServerThread(create_app(JiraSandboxSettings())) as url:
        seed_labels(url, "alertbridge-prod-1", "alertbridge-prod-2", "alertbridge-k3f9qz2a-7", "alertbridge-12", "triage")
        code, lines = check_lines(tmp_path, url, "\n  - {name: soc, sink: jira, project: SOC}\n", extra="instance: staging\n")
    assert code == 0, lines
    assert lines[:-1] == [
        "warning: sinks.jira: project SOC: holds 2 recent ticket(s) of another alertbridge instance, 'prod': a hub with "
        "its own database files there too (is this staging pointed at production's project?)",
        "warning: sinks.jira: project SOC: holds 1 recent ticket(s) of another alertbridge instance, 'k3f9qz2a': a hub with "
        "its own database files there too (is this staging pointed at production's project?)",
        "warning: sinks.jira: project SOC: holds 1 recent ticket(s) labelled alertbridge-<case id> by an alertbridge "
        "without instance ids, whose cases this database does not have",
    ]


def test_check_sees_its_own_name_on_tickets_of_cases_its_database_does_not_have(tmp_path):
    from alertbridge.store import upgrade

    upgrade(f"sqlite:///{tmp_path / 'hub.db'}")  # a new, empty database under an old name: a reset
    with ServerThread(create_app(JiraSandboxSettings())) as url:
        seed_labels(url, "alertbridge-soc-prod-1", "alertbridge-soc-prod-2")
        code, lines = check_lines(tmp_path, url, "\n  - {name: soc, sink: jira, project: SOC}\n",
                                  extra=f"instance: soc-prod\ndatabase: sqlite:///{tmp_path / 'hub.db'}\n")
    assert code == 0, lines
    ours = ", ".join(sorted(["soc-prod", instance_of(tmp_path / "hub.db")]))
    assert lines[0] == (f"warning: sinks.jira: project SOC: holds 2 recent ticket(s) of this instance ({ours}) for cases "
                        "this database does not have: was it reset under the same `instance` name? Give this hub a new one")


def instance_of(db) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id FROM instance").fetchone()[0]
