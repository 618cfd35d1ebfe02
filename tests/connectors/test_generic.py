"""The generic JSON source, on real vendor bodies mapped by config, and on its edge cases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import vendor_json
from pydantic import ValidationError

from alertbridge.connectors.generic import GenericParser
from alertbridge.errors import PayloadError
from alertbridge.model import AlertStatus, Severity


def source(**config) -> GenericParser:
    """Build a generic source named 'hook' from config keywords."""
    return GenericParser("hook", GenericParser.Config.model_validate({"type": "generic", **config}))


ALERTMANAGER = {
    "product": "Alertmanager",
    "vendor": "Prometheus",
    "items": "alerts",
    "fields": {
        "title": "labels.alertname",
        "description": "annotations.description",
        "severity": "labels.severity",
        "detected_at": "startsAt",
        "hosts": "labels.instance",
    },
    "severity_map": {"Warning": "high"},
}

CROWDSTRIKE = {
    "items": "resources",
    "fields": {
        "severity": "severity_name",
        "url": "falcon_host_link",
        "ips": "source_ip_address",
        "users": "user_name",
        "tactics": "mitre_attack[].tactic",
        "techniques": "mitre_attack[].technique_id",
    },
}


def test_alertmanager_webhook():
    body = vendor_json("alertmanager/webhook-v4-high-memory-firing.json")
    [alert] = source(**ALERTMANAGER).parse(body)
    assert alert.title == "high_memory_load"
    assert alert.description == "10.80.40.11 reported high memory usage with 23.28%."
    assert (alert.vendor_severity, alert.severity) == ("warning", Severity.high)
    assert alert.detected_at == datetime(2018, 3, 7, 11, 33, 21, 873077, tzinfo=UTC)
    assert alert.hosts == ["instance-with-hyphen_and_underscore"]
    assert (alert.source.product, alert.source.vendor, alert.source.type) == ("Alertmanager", "Prometheus", "generic")
    assert alert.raw == body["alerts"][0]
    # The default `labels` guess meets Alertmanager's label *object*: ignored, not an error.
    assert alert.labels == []


def test_crowdstrike_alerts_list_with_mitre_paths():
    first, second = source(**CROWDSTRIKE).parse(vendor_json("crowdstrike/falcon-alerts-v2-entities-response.json"))
    assert first.vendor_id == "fcs:ioa-211:00000000-0000-0000-0000-000000000002"
    assert first.title == "EC2 security group modified with new ingress rule allowing traffic from the public internet"
    assert (first.severity, second.severity) == (Severity.high, Severity.low)
    assert first.url.startswith("https://falcon.crowdstrike.com/unified-detections/")
    assert first.ips == ["192.0.2.1"] and first.users == ["dummy-user"]
    assert (first.tactics, first.techniques) == (["Defense Evasion"], ["T1562.007"])
    assert (second.tactics, second.techniques) == ([], [])
    assert first.detected_at == datetime(2026, 4, 20, 22, 49, 13, tzinfo=UTC)
    assert first.status == AlertStatus.new


def test_pagerduty_event_as_one_object_with_templates():
    config = {
        "fields": {
            "vendor_id": "dedup_key",
            "title": "payload.summary",
            "description": "{{ item.client }}: {{ item.payload.custom_details['free space'] }} free",
            "severity": "payload.severity",
            "category": "payload.class",
            "url": "client_url",
            "detected_at": "payload.timestamp",
            "hosts": "payload.source",
        }
    }
    [alert] = source(**config).parse(vendor_json("pagerduty/events-v2-enqueue-trigger-request.json"))
    assert (alert.vendor_id, alert.title) == ("srv01/mysql", "DISK at 99% on machine prod-datapipe03.example.com")
    assert alert.description == "Sample Monitoring Service: 1% free"
    assert alert.severity == Severity.critical  # a value that names a severity needs no map
    assert (alert.category, alert.url) == ("disk", "https://monitoring.service.com")
    assert alert.detected_at == datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC)
    assert alert.hosts == ["prod-datapipe03.example.com"]


def test_defaults_read_common_names_and_a_list_is_many_alerts():
    body = [
        {"id": 7, "name": "Brute force", "severity": "LOW", "host": "web01", "ips": ["192.0.2.7", ""], "status": "closed"},
        {"id": "8", "title": "Malware", "user": "alice", "tags": ["edr", "prod"], "status": "Acknowledged"},
    ]
    first, second = source().parse(body)
    assert (first.vendor_id, first.title, first.severity, first.status) == ("7", "Brute force", Severity.low, AlertStatus.resolved)
    assert (first.hosts, first.ips) == (["web01"], ["192.0.2.7"])
    assert (second.title, second.users, second.labels, second.status) == ("Malware", ["alice"], ["edr", "prod"], AlertStatus.in_progress)
    assert (second.severity, second.vendor_severity) == (Severity.medium, None)


def test_an_empty_list_is_no_alerts():
    assert source().parse([]) == []


def test_missing_title_is_a_payload_error_naming_the_expression():
    with pytest.raises(PayloadError, match=r"item 1: no title at 'title \|\| name'; set fields.title"):
        source().parse([{"title": "ok"}, {"id": "x", "summary": "no title here"}])


def test_missing_vendor_id_is_a_stable_hash_of_the_item():
    hook = source()
    first = hook.parse({"title": "Port scan", "src": "192.0.2.9", "count": 3})[0]
    reordered = hook.parse({"count": 3, "src": "192.0.2.9", "title": "Port scan"})[0]
    other = hook.parse({"title": "Port scan", "src": "192.0.2.10", "count": 3})[0]
    assert first.vendor_id == reordered.vendor_id and first.id == reordered.id
    assert other.vendor_id != first.vendor_id
    assert len(first.vendor_id) == 32


def test_a_vendor_id_that_is_an_object_falls_back_to_the_hash():
    [alert] = source().parse({"id": {"scope": "x"}, "title": "t"})
    assert len(alert.vendor_id) == 32


def test_too_deep_to_hash_is_a_payload_error():
    deep: dict = {}
    for _ in range(5000):
        deep = {"a": deep}
    with pytest.raises(PayloadError, match="nested too deeply"):
        source().parse({"title": "deep", "nested": deep})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("1", "1", Severity.critical),  # YAML reads `1:` as a number: it must still match
        (1, 1, Severity.critical),
        (1, 1.0, Severity.critical),
        ("P2", "p2", Severity.high),
        ("warning", "WARNING", Severity.medium),
    ],
)
def test_severity_map_is_case_insensitive_and_takes_numbers(key, value, expected):
    hook = source(severity_map={key: expected.value}, default_severity="info")
    assert hook.parse({"title": "t", "severity": value})[0].severity == expected


def test_unmapped_severity_uses_the_default_and_keeps_the_vendor_value():
    [alert] = source(default_severity="low").parse({"title": "t", "severity": "sev-9"})
    assert (alert.severity, alert.vendor_severity) == (Severity.low, "sev-9")


def test_status_map_comes_before_the_common_words():
    [alert] = source(status_map={"Closed": "in_progress"}).parse({"title": "t", "status": "closed"})
    assert alert.status == AlertStatus.in_progress


@pytest.mark.parametrize(
    "value",
    [
        "2017-01-04T19:14:32Z",
        "2017-01-04T20:14:32+01:00",
        "2017-01-04T19:14:32",  # no offset: UTC
        "2017-01-04 19:14:32",
        1483557272,
        1483557272000,
        "1483557272",
        1483557272.0,
    ],
)
def test_timestamps_iso_or_epoch_seconds_or_millis(value):
    [alert] = source().parse({"title": "t", "timestamp": value})
    assert alert.detected_at == datetime(2017, 1, 4, 19, 14, 32, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "NaN", "1e400", "0001-01-01T00:00:00+05:00", True])
def test_a_configured_time_that_is_not_one_is_a_payload_error(value):
    with pytest.raises(PayloadError, match="fields.detected_at"):
        source(fields={"detected_at": "when"}).parse({"title": "t", "when": value})


def test_a_default_time_guess_that_is_not_a_time_is_ignored():
    [alert] = source().parse({"title": "t", "timestamp": "soon"})
    assert alert.detected_at is None


def test_a_configured_field_of_the_wrong_shape_is_a_payload_error():
    with pytest.raises(PayloadError, match="item 0: fields.hosts: expected text, got a JSON dict"):
        source(fields={"hosts": "machine"}).parse({"title": "t", "machine": {"name": "web01"}})


def test_template_values_stay_data():
    [alert] = source(fields={"title": "{{ item.name }} on {{ item.host }}"}).parse({"name": "{{ 7*7 }}", "host": "web01"})
    assert alert.title == "{{ 7*7 }} on web01"


@pytest.mark.parametrize(
    ("template", "body", "reason"),
    [
        ("{{ item.missing }}", {"title": "t"}, "has no attribute 'missing'"),
        ("{{ item.n + 1 }}", {"n": "one"}, "can only concatenate"),
        ("{{ 1 / item.n }}", {"n": 0}, "division by zero"),
        ("{{ item.__class__.__mro__ }}", {}, "unsafe"),
    ],
)
def test_a_template_failing_on_the_payload_is_a_payload_error(template, body, reason):
    with pytest.raises(PayloadError, match=f"fields.description: template failed on this payload: .*{reason}"):
        source(fields={"description": template}).parse({"title": "t", **body})


def test_a_jmespath_type_error_is_a_payload_error():
    with pytest.raises(PayloadError, match="fields.hosts"):
        source(fields={"hosts": "abs(name)"}).parse({"title": "t", "name": "web01"})


def test_items_must_find_something():
    with pytest.raises(PayloadError, match="items 'alerts' found nothing"):
        source(items="alerts").parse({"status": "firing"})


@pytest.mark.parametrize("body", [None, 42, "x", [1, 2], [{"title": "ok"}, "x"]])
def test_items_that_are_not_objects_are_payload_errors(body):
    with pytest.raises(PayloadError, match="expected a JSON object, got"):
        source().parse(body)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"fields": {"title": "labels.["}}, "title: not a JMESPath expression"),
        ({"fields": {"title": "{{ item.name "}}, "title: template syntax error"),
        ({"fields": {"headline": "name"}}, "fields.headline"),
        ({"items": "alerts[?"}, "items: not a JMESPath expression"),
        ({"items": "{{ item.alerts }}"}, "items must be a JMESPath expression"),
        ({"severity_map": {"1": "urgent"}}, "severity_map.1"),
        ({"product": "x", "colour": "red"}, "colour"),
    ],
)
def test_config_mistakes_are_reported_with_their_field(config, message):
    with pytest.raises(ValidationError, match=message):
        source(**config)



@pytest.mark.parametrize("expression", ["id || uid || alert_id", "labels.alertname", "a.b || c", " hosts ||host "])
def test_plain_paths_read_as_jmespath_does(expression):
    import itertools

    import jmespath

    from alertbridge.connectors.generic import _reader

    values = [None, False, True, 0, 1, 0.0, "", "s", [], [0], {}, {"b": 0}, {"b": ""}, {"alertname": "n"}]
    read, reference = _reader(expression), jmespath.compile(expression).search
    for picked in [("id", "uid", "alert_id"), ("labels", "a", "c"), ("hosts", "host", "id")]:
        for combo in itertools.product(values, repeat=3):
            item = dict(zip(picked, combo, strict=True))
            assert (read(item), type(read(item))) == (reference(item), type(reference(item))), item
    for item in ([], "text", 5, None):
        assert read(item) == reference(item)
