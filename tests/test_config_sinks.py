"""A route's also_sinks: validated with their sinks' own target models, and each sink's view of the route."""

from __future__ import annotations

import pytest

from alertbridge.config import validate_config
from alertbridge.config_sinks import follows, route_for_sink, sink_names
from alertbridge.errors import ConfigError

SINKS = {"cases": {"type": "http", "url": "http://cases"}, "xsoar": {"type": "xsoar", "url": "http://xsoar", "api_key": "k"},
         "jira": {"type": "jira", "url": "http://jira", "email": "a@b.c", "api_token": "t"}}


def config(**route):
    return validate_config({"sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}}, "sinks": SINKS,
                            "routes": [{"name": "r", "sink": "cases", "summary": "[{{ alert.severity.value }}] {{ alert.title }}",
                                        "fields": {"Team": "SOC"}, **route}]})


def test_each_sink_sees_its_own_target_and_fields_and_the_route_s_templates():
    route = config(also_sinks=[{"sink": "xsoar", "issue_type": "Malware", "fields": {"Verdict": "Suspicious"}},
                               {"sink": "jira", "project": "SEC", "issue_type": "Incident"}]).settings.routes[0]
    assert sink_names(route) == ["cases", "xsoar", "jira"]
    assert route_for_sink(route, None) is route and route_for_sink(route, "cases") is route
    xsoar = route_for_sink(route, "xsoar")
    assert (xsoar.sink, xsoar.issue_type, xsoar.fields, xsoar.also_sinks) == ("xsoar", "Malware", {"Verdict": "Suspicious"}, [])
    assert xsoar.summary == route.summary and xsoar.name == route.name
    assert (route_for_sink(route, "jira").project, route_for_sink(route, "jira").fields) == ("SEC", {})
    with pytest.raises(LookupError, match="no longer files in sink 'gone'"):
        route_for_sink(route, "gone")


@pytest.mark.parametrize(("also", "problem"), [
    ([{"sink": "nope"}], "routes[0].also_sinks[0].sink: unknown sink 'nope' (known: cases, jira, xsoar)"),
    ([{"sink": "cases"}], "routes[0].also_sinks[0].sink: the route files in sink 'cases' already"),
    ([{"sink": "xsoar", "issue_type": "Malware"}, {"sink": "xsoar", "issue_type": "Phishing"}],
     "routes[0].also_sinks[1].sink: the route files in sink 'xsoar' already"),
    ([{"sink": "xsoar"}], "routes[0].also_sinks[0].issue_type: String should have at least 1 character"),
    ([{"sink": "jira", "issue_type": "Incident"}], "routes[0].also_sinks[0].project: String should have at least 1 character"),
    ([{"sink": "xsoar", "issue_type": "Malware", "fields": {"Verdict": "{{ alert.title"}}],
     "routes[0].also_sinks[0].fields['Verdict']: template syntax error"),
    ([{"sink": "xsoar", "issue_type": "Malware", "colour": "red"}], "routes[0].also_sinks[0].colour: Extra inputs are not permitted"),
])
def test_mistakes_are_named_with_their_path(also, problem):
    with pytest.raises(ConfigError) as refused:
        config(also_sinks=also)
    assert any(line.startswith(problem) for line in refused.value.problems), refused.value.problems


def test_what_a_further_sink_follows_is_declared_and_evidence_needs_a_sink_that_takes_attachments():
    route = config(members={"field": "Hosts"}, also_sinks=[
        {"sink": "xsoar", "issue_type": "Malware", "members_field": "Host List"},
        {"sink": "jira", "project": "SEC", "issue_type": "Incident", "follows": ["evidence"]}]).settings.routes[0]
    assert [(t.sink, t.follows) for t in route.also_sinks] == [("xsoar", ["review", "members"]), ("jira", ["evidence"])]
    assert follows(route, "cases", "evidence") and follows(route, None, "members"), "the first sink's ticket gets everything"
    assert follows(route, "xsoar", "review") and not follows(route, "xsoar", "evidence")
    assert follows(route, "jira", "evidence") and not follows(route, "jira", "members")
    assert route_for_sink(route, "xsoar").members.field == "Host List" and route.members.field == "Hosts"
    assert route_for_sink(route, "jira").members.field is None, "a sink's own field names: the first sink's is not guessed at"
    with pytest.raises(ConfigError, match=r"also_sinks\[0\]\.follows: sink 'xsoar' \(xsoar\) takes no attachments"):
        config(also_sinks=[{"sink": "xsoar", "issue_type": "Malware", "follows": ["evidence", "review"]}])
