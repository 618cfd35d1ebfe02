"""`alertbridge check --live` against the ServiceNow emulator: tables, fields, choices, states and close codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.sandbox.servicenow import create_app
from support.recorder import Recorder, ServerThread
from support.snow import LOGIN

SOURCE = {"gen": {"type": "generic", "auth": {"mode": "bearer", "token": "t"}}}
GOOD = {"name": "good", "sink": "snow", "project": "SOC", "issue_type": "sn_si_incident", "match": {"min_severity": "low"},
        "resolve_transition": "Done", "reopen_transition": "Analysis",
        # A reference rendered from the sample alert (its host) is not searched for: the table is only read.
        "fields": {"Category": "Phishing", "Configuration item": "{{ alert.hosts[0] }}", "Alert rule": "{{ alert.title }}"}}  # fmt: skip
BAD = [
    {"name": "bad-fields", "sink": "snow", "issue_type": "incident", "fields": {"Colour": "red", "Category": "Ransomware"}},
    {"name": "bad-group", "sink": "snow", "project": "Red Team", "issue_type": "incident"},
    {"name": "bad-state", "sink": "snow", "issue_type": "sn_si_incident", "resolve_transition": "Resolved"},
]


@pytest.fixture(scope="module")
def snow_url():
    with ServerThread(create_app()) as url:
        yield url


def check(tmp_path, url: str, routes: list[dict], **sink) -> tuple[int, list[str]]:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"sources": SOURCE, "sinks": {"snow": {"type": "servicenow", "url": url, "login": LOGIN, **sink}},
                                "routes": routes}))  # fmt: skip
    result = CliRunner().invoke(app, ["check", "--live", "--config", str(path)])
    return result.exit_code, [line.strip() for line in result.output.splitlines()]


def test_a_good_route_passes(tmp_path, snow_url):
    code, lines = check(tmp_path, snow_url, [GOOD], close_codes={"sn_si_incident": {"Benign": "Investigation completed"}})
    assert code == 0 and not any("another alertbridge instance" in line for line in lines), lines
    # The emulator holds two records another hub ('sandbox') filed, in no group: a route into no group sees them, as for Jira.
    code, lines = check(tmp_path, snow_url, [{**GOOD, "project": ""}])
    assert code == 0 and any("another alertbridge instance, 'sandbox'" in line for line in lines), lines


def test_each_mistake_is_named_with_its_route(tmp_path, snow_url):
    code, lines = check(tmp_path, snow_url, BAD, close_codes={"incident": {"False Positive": "Bogus"}},
                        transitions={"sn_si_incident": {"Done": "Finished"}})
    assert code == 1

    def has(*words: str) -> bool:
        return any(all(word in line for word in words) for line in lines)

    assert has("routes[0] (bad-fields)", "unknown field 'Colour' on table incident")
    assert has("routes[0] (bad-fields)", "'Ransomware' is not a choice of field 'Category'; choices: Inquiry, Software")
    assert has("routes[1] (bad-group)", "no sys_user_group record named 'Red Team'")
    assert has("routes[2] (bad-state)", "no state 'Resolved' on sn_si_incident; states: Draft, Analysis")
    assert has("routes[0] (bad-fields)", "close_codes: False Positive → Bogus", "choices: Duplicate, Known error")
    assert has("routes[2] (bad-state)", "transitions: Done → Finished", "no state 'Done' on sn_si_incident (mapped to 'Finished')")


def test_refused_credentials_and_a_url_that_is_not_servicenow_are_said_once(tmp_path, snow_url):
    code, lines = check(tmp_path, snow_url, [GOOD, {**GOOD, "name": "again"}], login={**LOGIN, "password": "wrong"})
    assert code == 1 and lines == ["sinks.snow: servicenow GET /api/now/table/sys_db_object -> 401: User Not Authenticated: "
                                   "Required to provide Auth information"], lines
    with ServerThread(Recorder().app()) as elsewhere:
        code, lines = check(tmp_path, elsewhere, [GOOD, {**GOOD, "name": "again"}])
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"sinks.snow: not a ServiceNow instance at {elsewhere}"), lines
