"""A route's severity and category rules."""

from __future__ import annotations

import pytest

from alertbridge.config import Route, validate_config
from alertbridge.errors import ConfigError
from alertbridge.model import Alert, Severity, SourceInfo
from alertbridge.pipeline.route import route_alert


def alert(**raw) -> Alert:
    source = SourceInfo(name="phish", type="imap", product="p", vendor="v")
    return Alert(source=source, vendor_id="1", title="Reported phishing: invoice", category="phishing", raw=raw)


RULES = [
    {"when": "alert.raw.attachments | selectattr('risk') | list", "severity": "high", "category": "malware"},
    {"when": "alert.raw.lookalikes", "severity": "critical"},
    {"when": "true", "category": "phishing-confirmed"},
]


@pytest.mark.parametrize(("raw", "severity", "category"), [
    ({"attachments": [{"risk": ".js runs code"}], "lookalikes": [{"domain": "acme-it.com"}]}, Severity.high, "malware"),
    ({"attachments": [{"risk": None}], "lookalikes": [{"domain": "acme-it.com"}]}, Severity.critical, "phishing-confirmed"),
    ({"attachments": [], "lookalikes": []}, Severity.medium, "phishing-confirmed"),
])  # fmt: skip
def test_the_first_rule_that_holds_decides_each_field(raw, severity, category):
    routed = route_alert(alert(**raw), [Route(name="phishing", sink="jira", rules=RULES)])
    assert routed is not None
    assert (routed.alert.severity, routed.alert.category) == (severity, category)


def test_a_rule_with_a_syntax_error_is_a_config_error():
    with pytest.raises(ConfigError, match=r"routes\[0\]\.rules\[0\]\.when: template syntax error"):
        validate_config({"sinks": {"jira": {"type": "http", "url": "http://x"}},
                         "routes": [{"name": "r", "sink": "jira", "rules": [{"when": "alert.raw.(", "severity": "high"}]}]})
