"""`alertbridge check --live` over XSOAR (incident types, fields, select values), alone and as a route's further sink."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.sandbox.jira import JiraSandboxSettings
from alertbridge.sandbox.jira import create_app as create_jira
from alertbridge.sandbox.xsoar import API_KEY
from alertbridge.sandbox.xsoar import create_app as create_xsoar
from support.recorder import ServerThread

SOURCE = "sources:\n  gen: {type: generic, auth: {mode: bearer, token: t}}\n"


@pytest.fixture(scope="module")
def urls():
    with ServerThread(create_xsoar()) as xsoar, ServerThread(create_jira(JiraSandboxSettings())) as jira:
        yield xsoar, jira


def run_check(tmp_path, urls, routes: str, api_key: str = API_KEY):
    xsoar, jira = urls
    path = tmp_path / "c.yaml"
    path.write_text(
        SOURCE + "sinks:\n"
        f"  xsoar: {{type: xsoar, url: '{xsoar}', api_key: {api_key}}}\n"
        f"  jira: {{type: jira, flavor: cloud, url: '{jira}', email: soc@example.com, api_token: sandbox-token}}\n"
        "routes:" + routes
    )
    return CliRunner().invoke(app, ["check", "--live", "--config", str(path)])


def test_a_good_xsoar_route_passes(tmp_path, urls):
    result = run_check(tmp_path, urls, """
  - name: xdr
    sink: xsoar
    issue_type: Cortex XDR Incident
    fields: {XDR Incident ID: "{{ alert.vendor_id }}", Verdict: Suspicious, Host Count: "{{ alert.hosts|length }}"}
""")
    assert result.exit_code == 0, result.output


def test_unknown_types_fields_and_values_are_named_with_their_route(tmp_path, urls):
    result = run_check(tmp_path, urls, """
  - name: bad-type
    sink: xsoar
    issue_type: Cortex XDR incident
  - name: bad-fields
    sink: xsoar
    issue_type: Malware
    fields: {Verdict: Evil, XDR Incident ID: "{{ alert.vendor_id }}"}
""")
    assert result.exit_code == 1
    out = result.output
    assert "routes[0] (bad-type): Cortex XDR incident: unknown incident type 'Cortex XDR incident'" in out
    assert "routes[1] (bad-fields): Malware: field 'Verdict' takes one of Benign, Suspicious, Malicious; not Evil" in out
    assert "incident type 'Malware' has no field 'XDR Incident ID'" in out


def test_a_further_sink_is_checked_with_its_own_target(tmp_path, urls):
    result = run_check(tmp_path, urls, """
  - name: both
    sink: jira
    project: SOC
    issue_type: Alert
    also_sinks:
      - {sink: xsoar, issue_type: Phishing, fields: {Colour: red}}
""")
    assert result.exit_code == 1
    assert "routes[0] (both) also_sinks xsoar: Phishing: incident type 'Phishing' has no field 'Colour'" in result.output
    assert "routes[0] (both):" not in result.output.replace("routes[0] (both) also_sinks", ""), "the Jira target is fine"


def test_a_refused_key_is_one_problem_of_the_sink(tmp_path, urls):
    result = run_check(tmp_path, urls, "\n  - {name: a, sink: xsoar, issue_type: Malware}\n  - {name: b, sink: xsoar, issue_type: Phishing}\n",
                       api_key="wrong-key")
    assert result.exit_code == 1
    assert result.output.count("sinks.xsoar:") == 1 and "401" in result.output and "wrong-key" not in result.output
