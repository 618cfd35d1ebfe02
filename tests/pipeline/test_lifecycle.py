"""A route's lifecycle both ways: ticket states to source states, unmapped ones reported by `check`, never dropped."""

from __future__ import annotations

import pytest

from alertbridge.config import validate_config
from alertbridge.errors import ConfigError
from alertbridge.lifecycle import Lifecycle
from alertbridge.model import Alert, AlertStatus, SourceInfo, SourceState
from alertbridge.pipeline.checks import check_routes_live
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.sandbox.jira import seed
from support.recorder import ServerThread


def test_ticket_states_map_to_source_states_by_resolution_then_status():
    lifecycle = Lifecycle(ticket_states={"Not a threat": "benign"})
    assert lifecycle.ticket_state("new", "To Do", None) == SourceState.firing
    assert lifecycle.ticket_state("indeterminate", "In Progress", None) == SourceState.in_progress
    assert lifecycle.ticket_state("done", "Done", "False Positive") == SourceState.false_positive
    assert lifecycle.ticket_state("done", "Done", "not a threat") == SourceState.benign  # names match case-insensitively
    assert lifecycle.ticket_state("done", "Done", "Done") == SourceState.resolved  # the defaults stay beneath
    assert lifecycle.ticket_state("done", "Closed", "Cannot Reproduce") is None  # unmapped: the write-back dead-letters saying so


def test_the_alert_state_is_its_disposition_once_resolved():
    source = SourceInfo(name="d", type="defender", product="Defender", vendor="Microsoft")
    alert = Alert(source=source, vendor_id="1", title="t", status=AlertStatus.resolved, disposition=SourceState.false_positive)
    assert alert.state == SourceState.false_positive
    assert alert.model_copy(update={"disposition": None}).state == SourceState.resolved
    assert alert.model_copy(update={"status": AlertStatus.in_progress}).state == SourceState.in_progress
    assert alert.model_copy(update={"status": AlertStatus.new}).state == SourceState.firing


def test_a_route_with_write_backs_and_no_sync_resolves_as_it_did_before():
    from alertbridge.config import Route
    from alertbridge.lifecycle import lifecycle_of

    assert lifecycle_of(Route(name="r", sink="j")) is None  # no write-backs, no sync: the route works as it always did
    moves = lifecycle_of(Route(name="r", sink="j", writeback=["w"], resolve_transition="Close", resolve_resolution="Fixed")).source_states
    assert (moves[SourceState.resolved].transition, moves[SourceState.resolved].resolution) == ("Close", "Fixed")
    assert (moves[SourceState.false_positive].transition, moves[SourceState.false_positive].resolution) == ("Close", "False Positive")
    left = lifecycle_of(Route(name="r", sink="j", writeback=["w"])).source_states
    assert all(move.transition is None for move in left.values())  # no resolve_transition: a resolved alert leaves the ticket


def _config(**route):
    return {
        "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
        "sinks": {"jira": {"type": "jira", "flavor": "cloud", "url": "http://127.0.0.1:9", "email": "a@b.c", "api_token": "t"}},
        "writebacks": {"hec": {"type": "splunk_hec", "url": "http://127.0.0.1:9", "token": "x"}},
        "routes": [{"name": "soc", "sink": "jira", "project": "SOC", "writeback": ["hec"], **route}],
    }


def test_check_reports_a_resolution_the_route_sets_that_maps_to_nothing():
    with pytest.raises(ConfigError) as caught:
        validate_config(_config(wont_fix=["Not a threat"]))
    assert caught.value.problems == ["routes[0].sync.ticket_states: resolution 'Not a threat' is set by this route but maps to no source state"]
    validate_config(_config(wont_fix=["Not a threat"], sync={"ticket_states": {"Not a threat": "benign"}}))


def test_check_reports_unknown_write_backs_and_sources_of_another_type():
    config = _config(writeback=["nope"])
    config["writebacks"]["back"] = {"type": "defender", "sources": ["gen", "ghost"], "tenant_id": "t", "client_id": "c", "client_secret": "s"}
    config["writebacks"]["lonely"] = {"type": "cortex_xdr", "url": "https://x.example", "api_key_id": "1", "api_key": "k"}
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert sorted(caught.value.problems) == [
        "routes[0].writeback[0]: unknown write-back 'nope' (known: back, hec, lonely)",
        "writebacks.back.sources[0]: source 'gen' is of type 'generic'; a defender write-back updates defender sources",
        "writebacks.back.sources[1]: unknown source 'ghost' (known: gen)",
        "writebacks.lonely.sources: name the cortex_xdr sources this writes back for",
    ]


async def test_check_live_reports_a_sink_resolution_the_lifecycle_leaves_unmapped(monkeypatch):
    monkeypatch.setattr(seed, "RESOLUTIONS", [*seed.RESOLUTIONS, {"id": "10009", "name": "Cannot Reproduce", "description": "x"}])
    monkeypatch.setattr("alertbridge.sandbox.jira.app.RESOLUTIONS", seed.RESOLUTIONS, raising=False)
    with ServerThread(create_app(JiraSandboxSettings())) as url:
        raw = _config(sync={"source_states": {"in_progress": {"transition": "Start Work"}}})
        raw["sinks"]["jira"] |= {"url": url, "email": "soc@example.com", "api_token": "sandbox-token"}
        report = await check_routes_live(validate_config(raw))
    found = [p for p in report.problems + report.warnings if "Cannot Reproduce" in p or "Start Work" in p]
    assert any("resolution 'Cannot Reproduce' of sink jira maps to no source state" in p for p in found), report
    assert any("Start Work" in p for p in found), report  # a lifecycle transition the workflow lacks
