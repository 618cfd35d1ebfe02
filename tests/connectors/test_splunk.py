"""The Splunk webhook source, on Splunk's real webhook body and on variations of it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from conftest import vendor_json

from alertbridge.connectors.splunk import SplunkParser
from alertbridge.errors import PayloadError
from alertbridge.model import Severity

SAMPLE = "splunk/alert-webhook-search-one-result.json"
SID = "rt_scheduler__admin__search__sudo_at_1483557185_2.2"


def source(**config) -> SplunkParser:
    """Build a Splunk parser named 'splunk-prod' from config keywords."""
    return SplunkParser("splunk-prod", SplunkParser.Config.model_validate({"type": "splunk", **config}))


def sample_with(**result_fields) -> dict:
    """Return the real sample with fields of its result row replaced (None removes one)."""
    body = copy.deepcopy(vendor_json(SAMPLE))
    for name, value in result_fields.items():
        if value is None:
            body["result"].pop(name, None)
        else:
            body["result"][name] = value
    return body


def parse_one(body: dict, **config):
    """Parse a body that must give exactly one alert."""
    [alert] = source(**config).parse(body)
    return alert


def test_real_webhook_body():
    body = vendor_json(SAMPLE)
    alert = parse_one(body)
    assert alert.title == "sudo"
    assert alert.vendor_id == f"{SID}#2"
    assert alert.url == body["results_link"]
    assert alert.detected_at == datetime(2017, 1, 4, 19, 14, 32, tzinfo=UTC)
    assert alert.hosts == ["myserver"]
    assert alert.ips == [] and alert.users == []  # USER and uid are empty strings in the sample
    assert (alert.severity, alert.vendor_severity, alert.category) == (Severity.medium, None, None)
    assert alert.source.model_dump() == {
        "name": "splunk-prod", "type": "splunk", "product": "Splunk Enterprise", "vendor": "Splunk",
        "instance": "example.com", "tenant": None,
    }
    assert alert.raw == body


def test_description_has_the_raw_event_and_the_key_fields():
    description = parse_one(vendor_json(SAMPLE)).description
    assert description.startswith("Jan  4 11:14:32 myserver sudo: pam_unix(sudo:session): session closed for user root\n\n")
    for line in ["search_name: sudo", "app: search", "owner: admin", "sourcetype: syslog", "source: /var/log/auth.log", "host: myserver"]:
        assert line in description.splitlines()
    assert "date_month" not in description and "punct" not in description


def test_the_same_delivery_twice_is_the_same_alert():
    hook = source()
    assert hook.parse(vendor_json(SAMPLE))[0].id == hook.parse(vendor_json(SAMPLE))[0].id


def test_rows_of_one_search_are_different_alerts():
    first = parse_one(sample_with(_serial="0", _cd="0:1234"))
    second = parse_one(sample_with(_serial="1", _cd="0:1250"))
    assert first.vendor_id == f"{SID}#0:1234" and second.vendor_id == f"{SID}#0:1250"
    assert parse_one(sample_with(_serial=None)).vendor_id == SID


def test_an_unsaved_search_has_no_name():
    body = vendor_json(SAMPLE) | {"search_name": None}
    assert parse_one(body).title == f"Splunk search {SID}"


@pytest.mark.parametrize(
    ("score", "expected"),
    [("100", Severity.critical), ("80.5", Severity.critical), ("80", Severity.high), ("61", Severity.high),
     ("60", Severity.medium), ("41", Severity.medium), ("40", Severity.low), ("0", Severity.low), ("-5", Severity.low)],
)
def test_risk_score_thresholds(score, expected):
    alert = parse_one(sample_with(risk_score=score))
    assert (alert.severity, alert.vendor_severity) == (expected, score)


def test_thresholds_are_configurable():
    thresholds = {"critical": 95, "high": 50, "medium": 10}
    assert parse_one(sample_with(risk_score="90"), severity_thresholds=thresholds).severity == Severity.high
    assert parse_one(sample_with(risk_score="9"), severity_thresholds=thresholds).severity == Severity.low


@pytest.mark.parametrize(
    ("urgency", "expected"),
    [("informational", Severity.info), ("low", Severity.low), ("Medium", Severity.medium), ("HIGH", Severity.high), ("critical", Severity.critical)],
)
def test_es_urgency(urgency, expected):
    assert parse_one(sample_with(urgency=urgency), severity_field="urgency").severity == expected


def test_a_custom_word_map():
    alert = parse_one(sample_with(sev="Sev1"), severity_field="sev", severity_map={"SEV1": "critical"})
    assert (alert.severity, alert.vendor_severity) == (Severity.critical, "Sev1")


@pytest.mark.parametrize("value", [None, "", "unknown", "nan", "inf", ["", ""]])
def test_no_usable_severity_gives_the_default(value):
    assert parse_one(sample_with(risk_score=value), default_severity="low").severity == Severity.low


def test_multivalue_severity_uses_the_first_value():
    assert parse_one(sample_with(risk_score=["90", "10"])).severity == Severity.critical


def test_observables_from_cim_fields():
    body = sample_with(
        host="myserver",
        src="10.0.0.5",
        dest="db01.example.com",
        dest_ip="2001:db8::1",
        src_ip=["10.0.0.5", "192.0.2.1"],
        user="root",
        src_user="alice",
        url="https://evil.example/x",
        domain="evil.example",
        file_hash="44d88612fea8a8f36de82e1278abb02f",
        sender="phish@evil.example",
        recipient=["bob@example.com", ""],
        dest_host="",
    )
    alert = parse_one(body)
    assert alert.hosts == ["myserver", "db01.example.com"]
    assert alert.ips == ["2001:db8::1", "10.0.0.5", "192.0.2.1"]
    assert alert.users == ["root", "alice"]
    assert alert.observables.urls == ["https://evil.example/x"]
    assert alert.observables.domains == ["evil.example"]
    assert alert.observables.hashes == ["44d88612fea8a8f36de82e1278abb02f"]
    assert alert.observables.emails == ["phish@evil.example", "bob@example.com"]
    assert "src_ip: 10.0.0.5, 192.0.2.1" in alert.description


def test_category_from_the_configured_field():
    body = sample_with(category="malware", security_domain="endpoint")
    assert parse_one(body).category == "malware"
    assert parse_one(body, category_field="security_domain").category == "endpoint"
    assert parse_one(body, category_field=None).category is None


@pytest.mark.parametrize("time", ["", "Wed Jan  4 11:14:32 2017", "nan", "1e300"])
def test_an_unreadable_time_leaves_detected_at_empty(time):
    assert parse_one(sample_with(_time=time)).detected_at is None


def test_a_fractional_time():
    assert parse_one(sample_with(_time="1483557272.250")).detected_at == datetime(2017, 1, 4, 19, 14, 32, 250000, tzinfo=UTC)


def test_a_body_without_a_result_row_is_still_an_alert():
    body = {key: value for key, value in vendor_json(SAMPLE).items() if key != "result"}
    alert = parse_one(body)
    assert (alert.title, alert.vendor_id, alert.detected_at, alert.hosts) == ("sudo", SID, None, [])


def test_a_bad_results_link_gives_no_instance():
    assert parse_one(vendor_json(SAMPLE) | {"results_link": "http://[::1/x"}).source.instance is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "expected a JSON object, got list"),
        ("sid", "expected a JSON object, got str"),
        ({"search_name": "sudo", "result": {}}, "no 'sid'"),
        ({"sid": 42, "search_name": "sudo"}, "no 'sid'"),
        ({"sid": " ", "search_name": "sudo"}, "no 'sid'"),  # found by the source contract's fuzzing: a blank alert id
        ({"sid": "abc", "result": ["row"]}, "'result' must be an object"),
    ],
)
def test_not_a_splunk_body(body, reason):
    with pytest.raises(PayloadError, match=reason):
        source().parse(body)
