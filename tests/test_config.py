"""The config file: substitution, secrets from files, and every mistake reported with its path."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.config import load_config, parse_duration, validate_config
from alertbridge.errors import ConfigError

BROKEN = """
workers: 0
sources:
  splunk: {type: splunk}
  weird: {type: splonk}
sinks:
  jira: {type: http, url: "http://127.0.0.1:1"}
routes:
  - name: a
    sink: jira
  - name: b
    sink: jria
    match: {sources: [splunk, nope], min_severity: huge}
  - name: c
    sink: jira
    summary: "{{ alert.title"
    bogus: 1
"""


def test_check_names_every_mistake_with_its_path(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 1
    for expected in (
        "workers: Input should be greater than or equal to 1",
        "sources.weird.type: unknown type 'splonk' (known: ",
        "routes[1].match.min_severity: Input should be",
        "routes[2].bogus: Extra inputs are not permitted",
    ):
        assert expected in result.output
    # route b failed its own validation, so its sink is not cross-checked; check it on its own:
    with pytest.raises(ConfigError) as exc:
        validate_config({"sinks": {"jira": {"type": "http", "url": "x"}}, "sources": {"splunk": {"type": "splunk"}},
                         "routes": [{"name": "b", "sink": "jria", "match": {"sources": ["splunk", "nope"]}},
                                    {"name": "c", "sink": "jira", "summary": "{{ alert.title"}]})
    assert "routes[0].sink: unknown sink 'jria' (known: jira)" in exc.value.problems
    assert "routes[0].match.sources[1]: unknown source 'nope' (known: splunk)" in exc.value.problems
    assert any(p.startswith("routes[1].summary: template syntax error") for p in exc.value.problems)


def test_environment_substitution_and_secret_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    (tmp_path / "token.txt").write_text("from-file\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        "database: ${DB_URL:-sqlite:///x.db}\n"
        "sources:\n"
        "  a: {type: generic, auth: {mode: bearer, token: '${HOOK_TOKEN}'}}\n"
        "  b: {type: generic, auth: {mode: bearer, token_file: token.txt}}\n"
    )
    config = load_config(path)
    assert config.settings.database == f"sqlite:///{tmp_path / 'x.db'}"  # relative to the config file's folder
    assert config.sources["a"].auth.token.get_secret_value() == "s3cret"
    assert config.sources["b"].auth.token.get_secret_value() == "from-file"
    assert "s3cret" not in repr(config.sources["a"])


def test_missing_variable_and_missing_secret_file_are_reported(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("admin_token: ${NOT_SET_ANYWHERE}\nsources:\n  a: {type: generic, auth: {mode: bearer, token_file: nope.txt}}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "admin_token: environment variable NOT_SET_ANYWHERE is not set" in exc.value.problems
    assert any(p.startswith("sources.a.auth.token_file: cannot read secret file") for p in exc.value.problems)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("24h", 86400), ("7d", 604800), (12, 12), ("250ms", 0.25)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration_is_a_clear_error():
    with pytest.raises(ConfigError) as exc:
        validate_config({"routes": [{"name": "a", "drop": True, "reopen_window": "soon"}]})
    assert "not a duration: 'soon'" in exc.value.problems[0]


def test_schema_command_prints_json_schema():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "routes" in schema["properties"]
    assert schema["$defs"]["Route"]["properties"]["group_by"]["description"]


def test_a_webhook_source_needs_auth_and_an_open_one_is_warned_about(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sources:\n  am: {type: alertmanager}\n")
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 1 and "sources.am.auth: field required" in result.output
    path.write_text("sources:\n  am: {type: alertmanager, auth: {mode: none}}\n  hook: {type: generic, auth: {mode: bearer}}\n")
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 1 and "sources.hook.auth: mode bearer needs `token`" in result.output
    path.write_text("sources:\n  am: {type: alertmanager, auth: {mode: none}}\n")
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: sources.am.auth.mode: none" in result.output and "/hooks/am" in result.output


def test_a_poller_without_its_secret_is_a_config_error_with_its_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sources:\n  defender: {type: defender, tenant_id: t, client_id: c}\n")
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 1 and "sources.defender.client_secret: field required" in result.output


def test_a_routes_ticket_target_is_checked_by_its_sinks_own_model():
    sinks = {"jira": {"type": "jira", "url": "https://acme.atlassian.net", "email": "soc@example.com", "api_token": "t"},
             "cases": {"type": "http", "url": "https://cases.example.com"}}
    with pytest.raises(ConfigError) as exc:
        validate_config({"sinks": sinks, "routes": [{"name": "to-jira", "sink": "jira", "issue_type": ""},
                                                    {"name": "to-cases", "sink": "cases"}]})
    assert exc.value.problems == ["routes[0].project: String should have at least 1 character",
                                  "routes[0].issue_type: String should have at least 1 character"]
