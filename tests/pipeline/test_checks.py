"""`alertbridge check --live` against the Jira sandbox."""

from __future__ import annotations

import httpx2
import pytest
from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from support.recorder import ServerThread

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
        "sources:\n  gen: {type: generic, auth: {mode: bearer, token: t}}\n"
        "sinks:\n  jira: {type: jira, flavor: cloud, url: '" + jira_url + "', email: soc@example.com, api_token: sandbox-token}\n"
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
