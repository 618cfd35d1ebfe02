"""The Alertmanager webhook source, on Alertmanager's real v4 body and on variations of it."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from conftest import vendor_json

from alertbridge.connectors.alertmanager import AlertmanagerParser, AlertmanagerSource
from alertbridge.errors import PayloadError, SignatureError
from alertbridge.model import AlertStatus, Severity

SAMPLE = "alertmanager/webhook-v4-high-memory-firing.json"


def source(**config) -> AlertmanagerParser:
    """Build the source from config keywords."""
    return AlertmanagerParser("prometheus", AlertmanagerParser.Config.model_validate({"type": "alertmanager", **config}))


def sample() -> dict:
    return copy.deepcopy(vendor_json(SAMPLE))


def test_real_sample_parses_to_its_alert():
    [alert] = source().parse(sample())
    assert alert.title == "Server High Memory usage"
    assert (alert.severity, alert.vendor_severity, alert.status) == (Severity.medium, "warning", AlertStatus.new)
    assert alert.observables.hosts == ["instance-with-hyphen_and_underscore"]
    assert alert.detected_at == datetime(2018, 3, 7, 6, 33, 21, 873077, tzinfo=timezone(timedelta(hours=-5)))
    assert alert.category == "high_memory_load"
    assert alert.source.instance == "http://docker.for.mac.host.internal:9093"
    # The runbook is a common annotation of the group: it reaches the description, after the alert's own text.
    assert alert.description.startswith("10.80.40.11 reported high memory usage with 23.28%.")
    assert "runbook: https://github.com/bzon/prometheus-msteams" in alert.description
    assert "alertname=high_memory_load" in alert.description
    # No fingerprint in this (pre-0.19) body: computed as Prometheus does, from the labels.
    assert alert.vendor_id == "b29784719d6a11e6@2018-03-07T06:33:21.873077559-05:00"


def test_repeat_and_resolution_of_one_firing_are_the_same_alert_and_a_new_firing_is_not():
    firing = source().parse(sample())[0]
    body = sample()
    body["status"] = "resolved"
    body["alerts"][0] |= {"status": "resolved", "endsAt": "2018-03-07T07:00:00Z", "generatorURL": "http://prom:9090/graph?g0.expr=x"}
    resolved = source().parse(body)[0]
    assert resolved.id == firing.id and resolved.status == AlertStatus.resolved
    assert resolved.url == "http://prom:9090/graph?g0.expr=x"
    body["alerts"][0]["startsAt"] = "2018-03-08T00:00:00Z"
    assert source().parse(body)[0].id != firing.id


def test_fingerprint_is_used_when_sent_and_every_alert_of_the_group_becomes_one():
    body = sample()
    second = copy.deepcopy(body["alerts"][0])
    second["labels"] |= {"instance": "db-1:9100", "severity": "critical"}
    body["alerts"][0]["fingerprint"] = "ab12cd34ef56ab78"
    body["alerts"].append(second)
    first, other = source().parse(body)
    assert first.vendor_id.startswith("ab12cd34ef56ab78@")
    assert (other.severity, other.observables.hosts) == (Severity.critical, ["db-1"])


def test_computed_fingerprint_matches_prometheus():
    # The vector of TestLabelSetToFingerprint in prometheus/common model/signature_test.go.
    labels = {"name": "garland, briggs", "fear": "love is not enough"}
    [alert] = source().parse({"alerts": [{"labels": labels, "startsAt": "2020-01-01T00:00:00Z"}]})
    assert alert.vendor_id == f"{5799056148416392346:016x}@2020-01-01T00:00:00Z"


def test_severity_map_and_label_are_configurable():
    body = sample()
    body["alerts"][0]["labels"]["priority"] = "P1"
    [alert] = source(severity_label="priority", severity_map={"p1": "critical"}).parse(body)
    assert (alert.severity, alert.vendor_severity) == (Severity.critical, "P1")
    body["alerts"][0]["labels"]["priority"] = "P9"
    assert source(severity_label="priority", default_severity="low").parse(body)[0].severity == Severity.low


def test_title_falls_back_to_the_alert_name():
    body = sample()
    del body["alerts"][0]["annotations"]["summary"]
    del body["commonAnnotations"]["summary"]
    assert source().parse(body)[0].title == "high_memory_load"


@pytest.mark.parametrize(
    "body",
    [None, [], {}, {"alerts": []}, {"alerts": "x"}, {"alerts": [None]}, {"alerts": [{"labels": "x"}]}, {"version": "4"}],
)
def test_malformed_bodies_raise_payload_error(body):
    with pytest.raises(PayloadError):
        source().parse(body)


def test_bearer_credentials_from_http_config_are_checked():
    hooked = AlertmanagerSource("prometheus", AlertmanagerSource.Config.model_validate(
        {"type": "alertmanager", "auth": {"mode": "bearer", "token": "am-token"}}))
    hooked.verify({"authorization": "Bearer am-token"}, {}, b"{}")
    with pytest.raises(SignatureError):
        hooked.verify({}, {}, b"{}")
