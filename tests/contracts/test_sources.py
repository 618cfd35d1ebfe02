"""What every registered source promises, checked on each one from the registry (pollers and sinks: beside this file).

A new line in ``alertbridge.connectors.SOURCES`` is covered here at once, and
fails until it has real vendor samples in ``SAMPLES``.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import types
import typing
from datetime import UTC, datetime
from operator import attrgetter
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from conftest import unavailable, vendor_json, vendor_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr, ValidationError

from alertbridge.connectors import SOURCES, load
from alertbridge.connectors.imap.parser import mailbox_item
from alertbridge.connectors.roles import Parser, Poller, WebhookSource, parser_class
from alertbridge.errors import PayloadError, SignatureError
from alertbridge.model import Alert, AlertStatus, Severity, TicketEvent


class Sample(NamedTuple):
    """A real vendor body, the config to read it with, and what it must parse to."""

    path: str  # below the vendor samples folder
    count: int  # how many alerts or ticket events it gives
    first: dict[str, Any]  # attribute (dotted path) -> value, on the first one
    config: dict[str, Any] = {}  # besides `type`
    pick: Callable[[Any], Any] | None = None  # the payload inside a larger sample document, if it is not the whole file
    whole: bool = False  # parse with the whole source (config with credentials), not its parse-only class


DETECTION_XML = "qualys/host-list-vm-detection-output.xml"
SAMPLES: dict[str, list[Sample]] = {
    "generic": [
        Sample(
            "alertmanager/webhook-v4-high-memory-firing.json", 1,
            {"title": "high_memory_load", "vendor_severity": "warning", "observables.hosts": ["instance-with-hyphen_and_underscore"]},
            {"items": "alerts", "fields": {"title": "labels.alertname", "severity": "labels.severity", "hosts": "labels.instance"}},
        ),
        Sample(
            "crowdstrike/falcon-alerts-v2-entities-response.json", 2,
            {"vendor_id": "fcs:ioa-211:00000000-0000-0000-0000-000000000002", "severity": Severity.high, "techniques": ["T1562.007"]},
            {"items": "resources", "fields": {"severity": "severity_name", "techniques": "mitre_attack[].technique_id"}},
        ),
        Sample(
            "pagerduty/events-v2-enqueue-trigger-request.json", 1,
            {"vendor_id": "srv01/mysql", "severity": Severity.critical, "title": "DISK at 99% on machine prod-datapipe03.example.com"},
            {"fields": {"vendor_id": "dedup_key", "title": "payload.summary", "severity": "payload.severity"}},
        ),
    ],
    "splunk": [
        Sample(
            "splunk/alert-webhook-search-one-result.json", 1,
            {
                "title": "sudo",
                "vendor_id": "rt_scheduler__admin__search__sudo_at_1483557185_2.2#2",
                "observables.hosts": ["myserver"],
                "detected_at": datetime(2017, 1, 4, 19, 14, 32, tzinfo=UTC),
            },
        ),
    ],
    # The Jira webhook source gives ticket events (model.TicketEvent), not alerts.
    "jira": [
        Sample(
            "jira/webhook-cloud-jira-issue_updated-resolved-changelog.json", 1,
            {"ticket_key": "TES-41", "kind": "updated", "status": "Done", "status_category": "done", "resolution": "Done"},
        ),
        Sample("jira/webhook-cloud-jira-issue_created.json", 1, {"ticket_key": "TES-41", "kind": "created"}),
        Sample("jira/webhook-cloud-comment_created.json", 1, {"ticket_key": "TES-41", "kind": "commented"}),
        Sample("jira/webhook-cloud-jira-issue_deleted.json", 1, {"ticket_key": "IDT-19", "kind": "deleted"}),
    ],
    # ServiceNow's Business Rule posts a record in the Table API's shape; both real ones read as ticket events.
    "servicenow": [
        Sample("servicenow/table-api-get-sn_si_incident-record.json", 1,
               {"ticket_key": "SIR00000001", "kind": "updated", "status": "Closed", "status_category": "done", "resolution": "-100",
                "actor": "user"}),
        Sample("servicenow/table-api-create-change_request-record.json", 1,
               {"ticket_key": "CHG0030003", "status": "New", "status_category": "indeterminate", "actor": "jane.doe"}),
    ],
    "servicenow_reconcile": [
        Sample("servicenow/table-api-get-sn_si_incident-record.json", 1, {"ticket_key": "SIR00000001", "status": "Closed"},
               pick=lambda document: {"table": "sn_si_incident", "operation": "update", "result": document["result"]}),
    ],
    "crowdstrike": [
        Sample(
            "crowdstrike/falcon-alerts-v2-entities-response.json", 2,
            {
                "vendor_id": "00000000000000000000000000000001:fcs:ioa-211:00000000-0000-0000-0000-000000000002",
                "severity": Severity.high, "vendor_severity": "High", "techniques": ["T1562.007"], "tactics": ["Defense Evasion"],
                "observables.ips": ["192.0.2.1"], "detected_at": datetime(2026, 4, 20, 22, 49, 13, tzinfo=UTC),
            },
        ),
    ],
    "crowdstrike_alerts": [
        Sample(
            "crowdstrike/falcon-alerts-v2-entities-response.json", 2,
            {"vendor_id": "00000000000000000000000000000001:fcs:ioa-211:00000000-0000-0000-0000-000000000002", "severity": Severity.high},
        ),
    ],
    "alertmanager": [
        Sample(
            "alertmanager/webhook-v4-high-memory-firing.json", 1,
            {"title": "Server High Memory usage", "vendor_severity": "warning", "severity": Severity.medium,
             "observables.hosts": ["instance-with-hyphen_and_underscore"], "vendor_id": "b29784719d6a11e6@2018-03-07T06:33:21.873077559-05:00"},
        ),
    ],
    "cortex_xdr": [
        Sample(
            "cortex-xdr/get-incidents-response.json", 2,
            {"vendor_id": "1", "severity": Severity.medium, "status": AlertStatus.in_progress, "url": "https://demisto.hello.com/incident-view/1"},
        ),
    ],
    "defender": [
        Sample(
            "msgraph/security-alerts_v2-list-response.json", 1,
            {
                "vendor_id": "da637551227677560813_-961444813", "severity": Severity.low, "techniques": ["T1564.001"],
                "tactics": ["Defense Evasion"], "observables.hosts": ["tempDns"], "observables.ips": ["1.1.1.1"],
                "source.tenant": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
            },
        ),
        Sample(
            "msgraph/security-alerts_v2-list-response.json", 1,
            {"vendor_id": "da637551227677560813_-961444813", "url": "https://security.microsoft.com/alerts/da637551227677560813_-961444813?tid=b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"},
            pick=lambda document: document["value"][0],  # one polled item
        ),
    ],
    "mcas": [
        Sample(
            "mcas/alerts-list-response-item.json", 1,
            {
                "vendor_id": "603f704aaf7417985bbf3b22", "severity": Severity.medium, "source.tenant": "contoso",
                "observables.users": ["user1@contoso.com"], "techniques": ["T1087", "T1087.002"],
            },
            {"tenant": "contoso"},
        ),
        Sample(
            "mcas/alerts-list-response-item.json", 1,
            {"vendor_id": "603f704aaf7417985bbf3b22", "source.tenant": "fabrikam", "source.instance": "fabrikam.portal.cloudappsecurity.com"},
            {"tenants": [{"name": "fabrikam", "url": "https://fabrikam.portal.cloudappsecurity.com", "token": "t"}]},
            pick=lambda alert: {"tenant": "fabrikam", "alert": alert},  # one polled item, as the poller stores it
            whole=True,  # the poller knows its tenants' URLs
        ),
    ],
    "proofpoint_tap": [
        Sample(
            "proofpoint/tap-siem-messages-delivered-ndjson.log", 1,
            {"vendor_id": "Nhxxsxvxixcxx2x5xxxx6xWxBxOxxxxxxj", "severity": Severity.high, "vendor_severity": "spam, phish",
             "observables.emails": ["fhsvbUi8axxxxxxUi8abc256326@example.com"], "detected_at": datetime(2022, 1, 5, 10, 5, 56, 20000, tzinfo=UTC)},
            pick=lambda lines: lines[0],
        ),
        Sample(
            "proofpoint/tap-siem-messages-delivered-ndjson.log", 1,
            {"title": "Speakers Announced | Ecosystem Days Summit", "severity": Severity.high, "category": "phish"},
            pick=lambda lines: lines[4],
        ),
    ],
    "prisma_cloud": [
        Sample(
            "prisma-cloud/alerts-v2-ndjson.log", 1,
            {"vendor_id": "N-3910", "severity": Severity.high, "category": "network",
             "url": "https://app.prismacloud.io/alerts/overview?viewId=default&filters=alert.id=N-3910",
             "observables.hosts": ["IS-37133", "i-04578e97170000047"]},
            pick=lambda lines: lines[0],
        ),
    ],
    "sonarqube": [
        Sample(
            "sonarqube/api-issues-search-official-example.json", 1,
            {"vendor_id": "01fc972e-2a3c-433e-bcae-0bd7f88f5123", "severity": Severity.high, "vendor_severity": "MAJOR, SECURITY:HIGH",
             "status": AlertStatus.resolved, "labels": ["sonarqube", "bug"]},
            {"url": "https://sonar.example.com"},
        ),
    ],
    "aws_security_ir": [
        Sample(
            "aws/security-ir-2018-05-10-examples.json", 1,
            {"vendor_id": "8403556009", "title": "Example case title", "severity": Severity.high, "observables.ips": ["192.168.192.168"],
             "url": "https://console.aws.amazon.com/security-ir/home?region=us-west-1#/cases/8403556009"},
            # The poller stores ListCases item + GetCase + ListComments as one item: the official examples, joined.
            pick=lambda doc: {**doc["examples"]["GetCase"][0]["output"], **doc["examples"]["ListCases"][0]["output"]["items"][0],
                              "comments": doc["examples"]["ListComments"][0]["output"]["items"]},
        ),
    ],
    # Raw messages: the poller stores each as a mailbox item (base64 inside JSON), as `alertbridge parse` wraps a file.
    "imap": [
        Sample(
            "phishing-eml/bbva-impersonation-transfer-phish.eml", 1,
            {"title": "Reported phishing: Transferencia Interbancaria Banca en Línea", "category": "phishing",
             "observables.emails": ["notificaccion-clientes@bbva.mx", "info@alejandrosalcedo.es", "www-data@vps-051e4cda.vps.ovh.net"],
             "observables.ips": ["200.57.129.98", "152.228.133.10"], "severity": Severity.medium},
            pick=lambda raw: mailbox_item(raw, len(raw), 25 << 20),
        ),
        Sample(
            "phishing-eml/malspam-invoice-js-attachment-stripped.eml", 1,
            {"title": "Reported phishing: Hi there", "observables.users": ["kalinokyra@thismail.it"],
             "observables.hashes": ["79ee4469fd90848893abf3b47538255adb885e13a0756e07b789bf19530fdc0f"]},
            pick=lambda raw: mailbox_item(raw, len(raw), 25 << 20),
        ),
    ],
}

# The Qualys pollers store items they build from XML pages: the samples go through the same readers.
QUALYS = {"url": "https://qualysapi.qg2.apps.qualys.com", "username": "contract", "password": "contract-password"}
QUALYS_ANY = {**QUALYS, "severities": [1, 2, 3, 4, 5], "vuln_types": ["Confirmed", "Potential"], "patchable_only": False}


def _vm_item(document: bytes, index: int) -> dict[str, Any]:
    from alertbridge.connectors.qualys.vm import read_detections

    items = make_source("qualys_vm", QUALYS_ANY, whole=True).items(read_detections(io.BytesIO(document)), {})
    return json.loads(json.dumps(items[index]))


def _pc_item(document: bytes) -> dict[str, Any]:
    from alertbridge.connectors.qualys.pc import read_postures

    poller = make_source("qualys_pc", {**QUALYS, "policy_ids": [900100]}, whole=True)
    return json.loads(json.dumps(poller.items(900100, read_postures(io.BytesIO(document)))[0]))


SAMPLES |= {
    "qualys_vm": [
        Sample(DETECTION_XML, 1, {"vendor_id": "143111841:15033:53/udp", "severity": Severity.high, "vendor_severity": "4",
                                  "observables.hosts": ["one.one.one.one"], "observables.ips": ["1.1.1.1"], "status": AlertStatus.new},
               pick=lambda doc: _vm_item(doc, 1)),
        Sample(DETECTION_XML, 1, {"vendor_id": "10112200:38726", "title": "QID 38726", "severity": Severity.medium,
                                  "observables.hosts": ["ec2-11-111-111-111.compute-1.amazonaws.com"]},
               pick=lambda doc: _vm_item(doc, 6)),
    ],
    # No real posture page is in ../shared/vendor: this one is the emulator's, in the layout of the Qualys API guide.
    "qualys_pc": [Sample("sandbox:qualys/posture-info", 1, {"category": "Policy Violation", "status": AlertStatus.new},
                         pick=_pc_item)],
    "qualys_fim": [
        Sample("qualys/fim-incidents-search-response.json", 2,
               {"vendor_id": "75539bfc-c0e7-4bcb-b55a-48065ef89ebe", "title": "FIM incident: test1", "status": AlertStatus.resolved,
                "labels": ["CHANGE_CONTROL_VIOLATION", "APPROVED"]}),
        Sample("qualys/fim-incidents-search-response.json", 1, {"vendor_id": "5a6d0462-1c2e-4e36-a13b-6264bd3c222f", "severity": Severity.high},
               pick=lambda doc: doc[1]),
    ],
}

TICKET_EVENT_KINDS = {"created", "updated", "deleted", "commented"}
CANARY = "canary-7f3a-do-not-leak"

# Bodies no source can take as an alert, and bodies some may take: either way only
# PayloadError may come out.
DEEP: dict[str, Any] = {"title": "deep"}
for _ in range(2000):  # deeper than json.loads would ever hand over
    DEEP = {"result": DEEP}
BIDI = "\x00\u202e\u2066gnp.exe\u2069\u200f\x00"
GARBAGE: dict[str, Any] = {
    "null": None,
    "number": 42,
    "float": float("nan"),
    "bool": True,
    "string": "x",
    "empty list": [],
    "list of scalars": [None, 42, "x", [], {}],
    "empty object": {},
    "deeply nested": DEEP,
    "controls in a string": BIDI,
    "controls everywhere": {
        key: BIDI for key in ("id", "title", "name", "sid", "search_name", "webhookEvent", "timestamp", "severity")
    } | {"result": {"_time": BIDI, "host": BIDI, "risk_score": BIDI}, "issue": {"key": BIDI, "fields": BIDI}},
    "wrong types": {
        "id": {}, "title": ["t"], "sid": 7, "search_name": {}, "result": "row", "results_link": 5,
        "webhookEvent": [], "issue": "TES-1", "timestamp": "yesterday", "changelog": 3,
    },
    "100k list": list(range(100_000)),
    "100k empty objects": [{}] * 100_000,
}

# JSON values, with keys that the sources look for so that the search reaches past their first checks.
KEYS = st.sampled_from([
    "id", "title", "name", "severity", "status", "timestamp", "labels", "sid", "search_name", "results_link",
    "result", "_time", "_serial", "_cd", "host", "src", "risk_score", "webhookEvent", "issue", "key", "fields",
    "changelog", "items", "comment", "user",
]) | st.text(max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6), max_leaves=25)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def source_class(type_name: str) -> type[Parser]:
    """Import a registered source class."""
    return load(SOURCES, type_name)


def make_source(type_name: str, config: dict[str, Any] | None = None, whole: bool = False) -> Parser:
    """Build the parser named 'contract' of the type (what `alertbridge parse` builds), with `config` besides its type."""
    cls = source_class(type_name) if whole else parser_class(source_class(type_name))
    try:
        return cls("contract", cls.Config.model_validate({"type": type_name, **(config or {})}))
    except ValidationError as exc:
        pytest.fail(f"{type_name}: give the config it needs in its Sample: {exc}")


@functools.cache
def _read(path: str) -> Any:
    if path.startswith("sandbox:"):  # our own fixture, made by the emulator
        from alertbridge.sandbox.qualys import render
        from alertbridge.sandbox.qualys.subscription import generate

        subscription = generate(hosts=4)
        subscription.scan(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
        return render.postures(datetime(2026, 1, 5, 9, 5, tzinfo=UTC), sorted(subscription.postures.values(), key=lambda p: p.id),
                               subscription.hosts, next_url=None, limit=0)
    if path.endswith((".xml", ".eml")):  # a raw page or message
        return vendor_path(path).read_bytes()
    if path.endswith("-ndjson.log"):  # one JSON document a line
        return [json.loads(line) for line in vendor_path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return vendor_json(path)


def read_sample(sample: Sample) -> Any:
    """Return a fresh copy of a sample's payload (the vendor file is read once)."""
    document = copy.deepcopy(_read(sample.path))
    return sample.pick(document) if sample.pick else document


def check_item(item: Any, type_name: str) -> None:
    """Assert what every alert or ticket event from any source holds."""
    if isinstance(item, TicketEvent):
        assert item.ticket_key.strip() and item.kind in TICKET_EVENT_KINDS
        return
    assert isinstance(item, Alert), f"parse returned a {type(item).__name__}"
    assert item.title.strip() and item.vendor_id.strip()
    assert isinstance(item.severity, Severity)
    assert (item.source.name, item.source.type) == ("contract", type_name)
    ocsf = item.to_ocsf()
    assert ocsf["class_uid"] == 2004 and ocsf["finding_info"]["uid"] == item.vendor_id
    json.dumps(ocsf)


def parse_or_reject(source: Parser, payload: Any, type_name: str) -> PayloadError | None:
    """Parse; return the PayloadError if it refused, else check what it returned."""
    try:
        items = source.parse(payload)
    except PayloadError as exc:
        assert str(exc).strip(), "a PayloadError must say why"
        return exc
    assert isinstance(items, list)
    for item in items:
        check_item(item, type_name)
    return None


def is_secret(annotation: Any) -> bool:
    """Tell whether a field's type is SecretStr, optional or not."""
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return annotation is SecretStr or (is_union and SecretStr in typing.get_args(annotation))


def with_canary(model: BaseModel) -> tuple[BaseModel, int]:
    """Return a copy with every SecretStr field, at any depth, set to the canary; and how many there were."""
    updates: dict[str, Any] = {}
    count = 0
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if is_secret(field.annotation):
            updates[name], count = SecretStr(CANARY), count + 1
        elif isinstance(value, BaseModel):
            updates[name], found = with_canary(value)
            count += found
    return model.model_copy(update=updates), count


def containers(node: Any) -> typing.Iterator[tuple[Any, Any]]:
    """Yield every (container, key or index) in a JSON document."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        yield node, key
        yield from containers(child)


SOURCE_TYPES = sorted(SOURCES)
SAMPLE_CASES = [pytest.param(t, s, id=f"{t}:{s.path}") for t, samples in sorted(SAMPLES.items()) for s in samples]


@pytest.mark.parametrize("type_name", SOURCE_TYPES)
def test_every_source_has_samples(type_name):
    assert SAMPLES.get(type_name), f"add your samples: SAMPLES[{type_name!r}] in {__file__}"


def test_samples_are_for_registered_sources():
    assert set(SAMPLES) <= set(SOURCES)


@pytest.mark.parametrize("type_name", SOURCE_TYPES)
def test_every_config_field_is_documented(type_name):
    for name, field in source_class(type_name).Config.model_fields.items():
        assert field.description and field.examples, f"{type_name}.{name} needs description= and examples="


@pytest.mark.parametrize("type_name", SOURCE_TYPES)
def test_every_source_is_a_webhook_or_a_poller_with_a_parser_that_needs_no_credentials(type_name):
    cls = source_class(type_name)
    assert issubclass(cls, WebhookSource) != issubclass(cls, Poller), "a source is a webhook source or a poller, not both"
    assert issubclass(cls, cls.parser) and not issubclass(cls.parser, WebhookSource | Poller)
    assert not any(is_secret(f.annotation) for f in cls.parser.Config.model_fields.values()), "parsing needs no secret"
    cls.parser("contract", cls.parser.Config.model_validate({"type": type_name}))  # `alertbridge parse` builds it so
    if issubclass(cls, WebhookSource):
        with pytest.raises(ValidationError, match="auth"):  # no default: an open hook is written out as {mode: none}
            cls.Config.model_validate({"type": type_name})


@pytest.mark.parametrize(("type_name", "sample"), SAMPLE_CASES)
def test_real_sample_parses_to_the_expected(type_name, sample):
    source = make_source(type_name, sample.config, sample.whole)
    items = source.parse(read_sample(sample))
    assert len(items) == sample.count
    for item in items:
        check_item(item, type_name)
    for attribute, expected in sample.first.items():
        assert attrgetter(attribute)(items[0]) == expected, attribute
    # The same delivery twice is the same alert.
    again = source.parse(read_sample(sample))
    assert [getattr(i, "id", None) for i in again] == [getattr(i, "id", None) for i in items]


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize("type_name", SOURCE_TYPES)
def test_garbage_raises_only_payload_error(type_name, garbage):
    parse_or_reject(make_source(type_name), garbage, type_name)


@pytest.mark.parametrize("type_name", SOURCE_TYPES)
@FUZZ
@given(payload=JSON)
def test_any_json_raises_only_payload_error(type_name, payload):
    parse_or_reject(make_source(type_name), payload, type_name)


@pytest.mark.parametrize("type_name", SOURCE_TYPES)
@FUZZ
@given(data=st.data())
def test_real_samples_with_one_value_changed_raise_only_payload_error(type_name, data):
    samples = SAMPLES.get(type_name) or unavailable(f"{type_name} has no samples (test_every_source_has_samples says where)")
    sample = data.draw(st.sampled_from(samples))
    body = read_sample(sample)
    parent, key = data.draw(st.sampled_from(list(containers(body))))
    parent[key] = data.draw(JSON)
    parse_or_reject(make_source(type_name, sample.config, sample.whole), body, type_name)


WEBHOOK_TYPES = [t for t in SOURCE_TYPES if issubclass(source_class(t), WebhookSource)]


@pytest.mark.parametrize("type_name", WEBHOOK_TYPES)
def test_no_secret_leaks_into_errors_or_repr(type_name):
    cls = source_class(type_name)
    plain = cls.Config.model_validate({"type": type_name, "auth": {"mode": "bearer", "token": "t", "secret": "s"}})
    config, secrets = with_canary(plain)
    assert secrets >= 2, "the canary must reach at least auth.token and auth.secret"
    source = cls("contract", config)
    for shown in (repr(config), str(config), config.model_dump_json(), repr(source)):
        assert CANARY not in shown
    with pytest.raises(SignatureError) as refused:
        source.verify({"authorization": "Bearer wrong"}, {}, b"{}")
    assert CANARY not in str(refused.value)
    bodies = [*GARBAGE.values(), *(read_sample(s) for s in SAMPLES.get(type_name, []))]
    for body in bodies:
        error = parse_or_reject(source, body, type_name)
        if error is not None:
            assert CANARY not in f"{error} {error!r} {error.__cause__}"
