"""The normalized alert: stable ids, severity order, observables, OCSF export."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alertbridge.model import Alert, AlertStatus, Observables, Severity, SourceInfo


def make_alert(**changes) -> Alert:
    """Build a valid alert from a Splunk source, with `changes` applied."""
    values = {
        "source": SourceInfo(name="splunk-prod", type="splunk", product="Splunk Enterprise", vendor="Splunk", tenant="contoso"),
        "vendor_id": "rt_scheduler__admin__search__sudo_at_1483557185_2.2#2",
        "title": "sudo",
    }
    return Alert(**(values | changes))


def test_id_is_stable_for_the_same_source_and_vendor_id():
    first = make_alert(title="sudo", severity=Severity.low)
    again = make_alert(title="sudo (edited)", severity=Severity.critical, received_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert first.id == again.id
    assert len(first.id) == 24 and int(first.id, 16) >= 0


def test_id_differs_by_vendor_id_and_by_source_name():
    base = make_alert()
    other_alert = make_alert(vendor_id="rt_scheduler__admin__search__sudo_at_1483557185_2.2#3")
    other_source = make_alert(source=base.source.model_copy(update={"name": "splunk-dev"}))
    assert len({base.id, other_alert.id, other_source.id}) == 3


def test_id_cannot_be_forged_by_joining_name_and_vendor_id_differently():
    # "a" + "b\x00c" must not equal "a\x00b" + "c": the separator is a byte no config name holds.
    one = make_alert(source=make_alert().source.model_copy(update={"name": "a"}), vendor_id="bc")
    two = make_alert(source=make_alert().source.model_copy(update={"name": "ab"}), vendor_id="c")
    assert one.id != two.id


def test_id_is_exported():
    assert make_alert().model_dump()["id"] == make_alert().id


def test_severity_ranks_from_info_to_critical():
    assert [s.rank for s in Severity] == [0, 1, 2, 3, 4]
    assert [s.ocsf_id for s in Severity] == [1, 2, 3, 4, 5]
    shuffled = [Severity.high, Severity.info, Severity.critical, Severity.low, Severity.medium]
    assert sorted(shuffled, key=lambda s: s.rank) == list(Severity)
    assert Severity("critical").rank > Severity("high").rank


def test_merge_is_a_union_in_first_seen_order_and_changes_neither_side():
    left = Observables(hosts=["myserver", "db01"], ips=["10.0.0.5"])
    right = Observables(hosts=["db01", "web02"], users=["root"], ips=["10.0.0.5", "192.0.2.1"])
    merged = left.merge(right)
    assert merged.hosts == ["myserver", "db01", "web02"]
    assert merged.ips == ["10.0.0.5", "192.0.2.1"]
    assert merged.users == ["root"]
    assert merged.domains == []
    assert left.hosts == ["myserver", "db01"] and right.hosts == ["db01", "web02"]


def test_merge_removes_repeats_within_one_side():
    assert Observables(hashes=["abc", "abc"]).merge(Observables()).hashes == ["abc"]


def test_to_ocsf_is_a_detection_finding():
    alert = make_alert(
        description="session closed for user root",
        severity=Severity.high,
        vendor_severity="72",
        category="privilege-escalation",
        status=AlertStatus.in_progress,
        url="http://example.com:8000/app/search/search",
        detected_at=datetime(2017, 1, 4, 19, 14, 32, tzinfo=UTC),
        observables=Observables(hosts=["myserver"], ips=["192.0.2.1"], users=["root"], emails=["a@example.com"]),
        tactics=["Privilege Escalation"],
        techniques=["T1548.003"],
        raw={"sid": "x"},
    )
    ocsf = alert.to_ocsf()
    assert ocsf["class_uid"] == 2004 and ocsf["category_uid"] == 2 and ocsf["type_uid"] == 200401
    assert (ocsf["severity_id"], ocsf["severity"]) == (4, "High")
    assert ocsf["status"] == "In Progress"
    assert ocsf["time"] == 1483557272000
    assert ocsf["finding_info"]["uid"] == alert.vendor_id
    assert ocsf["finding_info"]["types"] == ["privilege-escalation"]
    assert ocsf["finding_info"]["attacks"] == [{"tactic": {"name": "Privilege Escalation"}}, {"technique": {"uid": "T1548.003"}}]
    assert ocsf["metadata"]["uid"] == alert.id
    assert ocsf["metadata"]["tenant_uid"] == "contoso"
    assert ocsf["metadata"]["product"] == {"name": "Splunk Enterprise", "vendor_name": "Splunk"}
    assert {(o["type_id"], o["value"]) for o in ocsf["observables"]} == {
        (1, "myserver"), (2, "192.0.2.1"), (4, "root"), (5, "a@example.com"),
    }
    assert ocsf["unmapped"]["vendor_severity"] == "72"
    assert ocsf["raw_data"] == {"sid": "x"}
    json.dumps(ocsf)


@pytest.mark.parametrize(
    ("severity", "name"),
    [(Severity.info, "Informational"), (Severity.low, "Low"), (Severity.medium, "Medium"), (Severity.critical, "Critical")],
)
def test_to_ocsf_names_every_severity(severity, name):
    ocsf = make_alert(severity=severity).to_ocsf()
    assert (ocsf["severity"], ocsf["severity_id"]) == (name, severity.ocsf_id)


def test_to_ocsf_falls_back_to_received_time_and_empty_lists():
    received = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    ocsf = make_alert(received_at=received).to_ocsf()
    assert ocsf["time"] == int(received.timestamp() * 1000)
    assert ocsf["status"] == "New"
    assert ocsf["observables"] == [] and ocsf["finding_info"]["types"] == []
