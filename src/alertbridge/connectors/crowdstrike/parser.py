"""CrowdStrike Falcon alert objects (Alerts API v2, `POST /alerts/entities/alerts/v2`) as alerts, purely.

Fields: https://www.falconpy.io/Service-Collections/Alerts.html. The webhook takes
one such object, an entities answer (`{"resources": [...]}`) or either under
`data`, which is how a Fusion "Call webhook" action with a custom JSON body
usually wraps the alert it was triggered by (docs/connectors/crowdstrike.md);
the poller stores one alert object per item.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...errors import PayloadError
from ...model import Alert, AlertStatus, Observables, Severity, SourceInfo, SourceState
from .._values import field_text as _text
from .._values import field_texts as _texts
from .._values import iso_time
from ..roles import Parser

SEVERITY_NAMES = {
    "informational": Severity.info, "low": Severity.low, "medium": Severity.medium,
    "high": Severity.high, "critical": Severity.critical,
}  # fmt: skip
# Falcon's bands of the 0–100 score, used when `severity_name` is missing.
SEVERITY_FLOORS = ((90, Severity.critical), (70, Severity.high), (50, Severity.medium), (20, Severity.low))
STATUSES = {"new": AlertStatus.new, "reopened": AlertStatus.new, "in_progress": AlertStatus.in_progress, "closed": AlertStatus.resolved}
# Falcon alerts have no classification field: the verdict is a tag, the ones the write-back adds by default
# (writeback.py DEFAULT_STATES). A closed alert with exactly one of them carries that verdict; none or several: resolved.
VERDICT_TAGS = {"true_positive": SourceState.resolved, "false_positive": SourceState.false_positive, "benign": SourceState.benign,
                "duplicate": SourceState.suppressed}


class CrowdStrikeParser(Parser):
    """Alerts API v2 alert objects: one, an entities answer (`resources`), or either under `data`."""

    type: ClassVar[str] = "crowdstrike"

    def parse(self, payload: Any) -> list[Alert]:
        """Turn a body (one alert, an entities answer, or either under `data`) into alerts."""
        return falcon_alerts(self.name, self.type, self.config.tenant, payload)


class CrowdStrikeAlertsParser(CrowdStrikeParser):
    """Alert objects as the Alerts API poller stores them, one per item."""

    type: ClassVar[str] = "crowdstrike_alerts"


def _is_alert(body: dict[str, Any]) -> bool:
    return bool(_text(body, "composite_id") or _text(body, "id"))


def falcon_alerts(name: str, type_name: str, tenant: str | None, payload: Any) -> list[Alert]:
    """Turn one alert object, an entities answer (`resources`), or either under `data` into alerts."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict | list) and not _is_alert(payload):
        payload = payload["data"]
    if isinstance(payload, dict) and isinstance(payload.get("resources"), list):
        payload = payload["resources"]
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise PayloadError("not a CrowdStrike alert body: no alerts in it")
    return [falcon_alert(name, type_name, tenant, item) for item in items]


def falcon_alert(name: str, type_name: str, tenant: str | None, item: Any) -> Alert:
    """Turn one Alerts API v2 alert object into an Alert."""
    if not isinstance(item, dict) or not _is_alert(item):
        raise PayloadError("not a CrowdStrike alert: expected an object with a 'composite_id' or 'id'")
    vendor_id = _text(item, "composite_id") or _text(item, "id") or ""
    severity, vendor_severity = _severity(item)
    mitre = [m for m in item.get("mitre_attack") or [] if isinstance(m, dict)] if isinstance(item.get("mitre_attack"), list) else []
    return Alert(
        source=SourceInfo(name=name, type=type_name, product=_text(item, "product") or "Falcon", vendor="CrowdStrike", tenant=tenant),
        vendor_id=vendor_id,
        title=_text(item, "display_name") or _text(item, "name") or f"CrowdStrike alert {vendor_id}",
        description=_description(item),
        severity=severity,
        vendor_severity=vendor_severity,
        category=_text(item, "type"),
        status=STATUSES.get(_text(item, "status") or "new", AlertStatus.new),
        disposition=_verdict(item),
        revision=_text(item, "updated_timestamp"),
        url=_text(item, "falcon_host_link"),
        detected_at=iso_time(item.get("timestamp")) or iso_time(item.get("created_timestamp")),  # RFC 3339, nanoseconds cut to micro
        observables=_observables(item),
        tactics=_unique([_text(m, "tactic") for m in mitre] + [_text(item, "tactic")]),
        techniques=_unique([_text(m, "technique_id") for m in mitre] + [_text(item, "technique_id")]),
        raw=item,
    )


def _verdict(item: dict[str, Any]) -> SourceState | None:
    verdicts = {VERDICT_TAGS[tag] for tag in _texts(item, "tags") if tag in VERDICT_TAGS}
    return verdicts.pop() if len(verdicts) == 1 else None


def _severity(item: dict[str, Any]) -> tuple[Severity, str | None]:
    word = _text(item, "severity_name")
    if word and word.lower() in SEVERITY_NAMES:
        return SEVERITY_NAMES[word.lower()], word
    score = item.get("severity")
    if isinstance(score, int | float) and not isinstance(score, bool) and 0 <= score <= 100:
        return next((sev for floor, sev in SEVERITY_FLOORS if score >= floor), Severity.info), str(score)
    return Severity.medium, word


def _description(item: dict[str, Any]) -> str:
    device = item.get("device") if isinstance(item.get("device"), dict) else {}
    facts = [
        ("Tactic", _text(item, "tactic")), ("Technique", _text(item, "technique")), ("Host", _text(device, "hostname")),
        ("User", _text(item, "user_name")), ("Command line", _text(item, "cmdline")), ("File", _text(item, "filepath")),
        ("Cloud", " ".join(filter(None, (_text(item, "cloud_provider"), _text(item, "cloud_account_id"), _text(item, "cloud_region"))))),
        ("Resource", _text(item, "resource_id")), ("Event", _text(item, "event_name")),
    ]  # fmt: skip
    lines = [f"{label}: {value}" for label, value in facts if value]
    return "\n\n".join(part for part in (_text(item, "description") or "", "\n".join(lines)) if part)


def _observables(item: dict[str, Any]) -> Observables:
    device = item.get("device") if isinstance(item.get("device"), dict) else {}
    ips = [_text(device, "local_ip"), _text(device, "external_ip"), _text(item, "source_ip_address"), *_texts(item, "source_ips")]
    users = [_text(item, "user_name"), *_texts(item, "user_names")]
    hashes = [_text(item, "sha256"), _text(item, "md5"), _text(item, "sha1")]
    return Observables(ips=_unique(ips), users=_unique(users), hosts=_unique([_text(device, "hostname")]), hashes=_unique(hashes))



def _unique(values: list[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
