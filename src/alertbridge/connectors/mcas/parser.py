"""Defender for Cloud Apps alerts as alerts, purely: severities, stories, intents, and users and IPs found in the text.

Alert fields: https://learn.microsoft.com/en-us/defender-cloud-apps/api-alerts
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ...errors import PayloadError
from ...model import Alert, AlertStatus, Observables, Severity, SourceInfo
from .._values import hostname as _host
from .._values import epoch_millis as _millis
from .._values import is_ip as _is_ip
from .._values import text as _text
from ..roles import Parser, ParserConfig, StrictModel

# severityValue, statusValue, resolutionStatusValue, stories and intent as the Alerts API page lists them.
SEVERITY = {0: Severity.low, 1: Severity.medium, 2: Severity.high, 3: Severity.info}
SEVERITY_NAME = {0: "LOW", 1: "MEDIUM", 2: "HIGH", 3: "INFORMATIONAL"}
ARCHIVED = 2  # statusValue: 0 UNREAD, 1 READ, 2 ARCHIVED
OPEN = 0  # resolutionStatusValue: 0 OPEN; 1 DISMISSED, 2 RESOLVED, 3 FALSE_POSITIVE, 4 BENIGN, 5 TRUE_POSITIVE all close it
STORIES = {
    0: "Threat detection", 1: "Privileged account monitoring", 2: "Compliance", 3: "DLP", 4: "Discovery",
    5: "Sharing control", 7: "Access control", 8: "Configuration monitoring",
}
INTENT = {
    1: "Reconnaissance", 2: "Initial Access", 3: "Persistence", 4: "Privilege Escalation", 5: "Defense Evasion",
    6: "Credential Access", 7: "Discovery", 8: "Lateral Movement", 9: "Execution", 10: "Collection",
    11: "Exfiltration", 12: "Command and Control", 13: "Impact",
}  # 1 is PREATTACK, ATT&CK's former name for reconnaissance
TECHNIQUE = re.compile(r"\bT\d{4}(?:\.\d{3})?\b")  # the description names techniques: "Account Discovery (T1087)"
USER_PATTERNS = [r"(?P<user>[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"]
IP_PATTERNS = [
    r"(?<![\d.])(?P<ip>(?:\d{1,3}\.){3}\d{1,3})(?![\d.])",
    r"(?<![\w:])(?P<ip>[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w:])",
]  # candidates only: each match must also pass ipaddress.ip_address
SCAN_LIMIT = 20_000  # characters of title and description the patterns read
USER_ENTITIES, HOST_ENTITIES, IP_ENTITIES = {"account", "user"}, {"device"}, {"ip"}


class Extract(StrictModel):
    """Regular expressions that find users and IP addresses in the alert's title and description."""

    users: list[str] = Field(
        default=USER_PATTERNS, description="Patterns for users; each takes its first named group, else group 1, else the whole match",
        examples=[[r"user (?P<user>[\w.-]+\\[\w.$-]+)"]],
    )
    ips: list[str] = Field(
        default=IP_PATTERNS, description="Patterns for IP addresses, taken the same way; a match that is not an IP address is dropped",
        examples=[[r"from IP (?P<ip>\S+)"]],
    )

    @field_validator("users", "ips")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns


class McasParser(Parser):
    """Defender for Cloud Apps alerts: a polled item, a bare alert, or a list answer."""

    type: ClassVar[str] = "mcas"

    class Config(ParserConfig):
        """How to read the alerts' text."""

        extract: Extract = Field(default_factory=Extract, description="Patterns that find users and IPs in alert text", examples=[{"users": [USER_PATTERNS[0]]}])

    config: Config

    def __init__(self, name: str, config: Config):
        super().__init__(name, config)
        self._users = [re.compile(p) for p in config.extract.users]
        self._ips = [re.compile(p) for p in config.extract.ips]
        self.tenant_urls: dict[str, str] = {}  # tenant name -> its API URL, whose host names the alerts' instance

    def parse(self, payload: Any) -> list[Alert]:
        """Turn a polled item, a bare MCAS alert, or a list answer ({"data": [...]}) into alerts."""
        if isinstance(payload, dict) and "_id" not in payload and isinstance(payload.get("data"), list):
            return [alert for item in payload["data"] for alert in self.parse(item)]
        tenant = self.config.tenant
        if isinstance(payload, dict) and "_id" not in payload and "alert" in payload:
            tenant, payload = payload.get("tenant"), payload["alert"]
            if not isinstance(tenant, str) or not tenant:
                raise PayloadError("a polled MCAS item needs its tenant name")
        if not isinstance(payload, dict):
            raise PayloadError(f"not a Defender for Cloud Apps alert: expected a JSON object, got {type(payload).__name__}")
        alert_id = _text(payload.get("_id"))
        if alert_id is None:
            raise PayloadError("not a Defender for Cloud Apps alert: no '_id'")
        title, text = _text(payload.get("title")), _text(payload.get("description")) or ""
        severity = payload.get("severityValue")
        stories = payload.get("stories") if isinstance(payload.get("stories"), list) else []
        intents = payload.get("intent") if isinstance(payload.get("intent"), list) else []
        found = self._extracted(f"{title or ''}\n{text}"[:SCAN_LIMIT]).merge(_entities(payload.get("entities")))
        known = self.tenant_urls.get(tenant or "")
        return [
            Alert(
                source=SourceInfo(
                    name=self.name, type=self.type, product="Microsoft Defender for Cloud Apps", vendor="Microsoft",
                    instance=_host(known or _text(payload.get("URL"))), tenant=tenant,
                ),
                vendor_id=alert_id,
                title=title or f"Defender for Cloud Apps alert {alert_id}",
                description=_description(text, payload),
                severity=SEVERITY.get(severity, Severity.medium) if _is_int(severity) else Severity.medium,
                vendor_severity=SEVERITY_NAME.get(severity, str(severity)) if _is_int(severity) else None,
                category=next((STORIES[s] for s in stories if _is_int(s) and s in STORIES), None),
                status=_status(payload),
                url=_text(payload.get("URL")),
                detected_at=_millis(payload.get("timestamp")),
                observables=found,
                tactics=list(dict.fromkeys(INTENT[i] for i in intents if _is_int(i) and i in INTENT)),
                techniques=list(dict.fromkeys(TECHNIQUE.findall(text))),
                raw=payload,
            )
        ]

    def _extracted(self, text: str) -> Observables:
        users = [value for pattern in self._users for value in _matches(pattern, text)]
        ips = [value for pattern in self._ips for value in _matches(pattern, text) if _is_ip(value)]
        return Observables(users=list(dict.fromkeys(users)), ips=list(dict.fromkeys(ips)))


def _matches(pattern: re.Pattern[str], text: str) -> list[str]:
    """Return each match's first named group, else group 1, else the whole match."""
    group = min(pattern.groupindex.values()) if pattern.groupindex else (1 if pattern.groups else 0)
    return [value for match in pattern.finditer(text) if (value := match.group(group))]


def _entities(entities: Any) -> Observables:
    """Read users (their principal name), devices and IPs from the alert's entities."""
    found: dict[str, list[str]] = {"users": [], "hosts": [], "ips": []}
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        kind, label = _text(entity.get("type")), _text(entity.get("label"))
        if kind in USER_ENTITIES and (user := _text(entity.get("pa")) or label):
            found["users"].append(user)
        elif kind in HOST_ENTITIES and label:
            found["hosts"].append(label)
        elif kind in IP_ENTITIES and label and _is_ip(label):
            found["ips"].append(label)
    return Observables(**found)


def _status(payload: dict[str, Any]) -> AlertStatus:
    resolution, state = payload.get("resolutionStatusValue"), payload.get("statusValue")
    closed = (_is_int(resolution) and resolution != OPEN) or state == ARCHIVED
    return AlertStatus.resolved if closed else AlertStatus.new


def _description(text: str, payload: dict[str, Any]) -> str:
    facts = [f"{label}: {value}" for label, key in (("Threat score", "threatScore"), ("Handled by", "handledByUser"))
             if (value := payload.get(key)) not in (None, "") and isinstance(value, str | int)]  # fmt: skip
    return "\n\n".join(part for part in (text, "\n".join(facts)) if part)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
