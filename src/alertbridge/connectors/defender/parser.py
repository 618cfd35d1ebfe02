"""Microsoft Graph security alerts (``alerts_v2``) as alerts, purely.

Alert resource: https://learn.microsoft.com/en-us/graph/api/resources/security-alert
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...errors import PayloadError
from ...model import Alert, AlertStatus, Observables, Severity, SourceInfo, SourceState
from .._values import hostname as _host
from .._values import is_ip as _is_ip
from .._values import iso_time as _time
from .._values import text as _text
from .._values import texts as _texts
from ..roles import Parser

SEVERITY = {"informational": Severity.info, "low": Severity.low, "medium": Severity.medium, "high": Severity.high}
# https://learn.microsoft.com/en-us/graph/api/resources/security-alert — classification of a resolved alert.
DISPOSITIONS = {"falsePositive": SourceState.false_positive, "informationalExpectedActivity": SourceState.benign}
STATUS = {"new": AlertStatus.new, "inProgress": AlertStatus.in_progress, "resolved": AlertStatus.resolved}
# The `category` values that are MITRE ATT&CK tactics (the others are Malware, Ransomware, SuspiciousActivity…).
TACTICS = {
    "InitialAccess": "Initial Access", "Execution": "Execution", "Persistence": "Persistence",
    "PrivilegeEscalation": "Privilege Escalation", "DefenseEvasion": "Defense Evasion",
    "CredentialAccess": "Credential Access", "Discovery": "Discovery", "LateralMovement": "Lateral Movement",
    "Collection": "Collection", "CommandAndControl": "Command and Control", "Exfiltration": "Exfiltration",
    "Impact": "Impact", "Reconnaissance": "Reconnaissance", "ResourceDevelopment": "Resource Development",
}



class DefenderParser(Parser):
    """Graph security alerts (alerts_v2): one, or a whole list answer."""

    type: ClassVar[str] = "defender"

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one Graph alert, or a whole alerts_v2 answer ({"value": [...]}), into alerts."""
        if isinstance(payload, dict) and "id" not in payload and isinstance(payload.get("value"), list):
            return [alert for item in payload["value"] for alert in self.parse(item)]
        if not isinstance(payload, dict):
            raise PayloadError(f"not a Graph security alert: expected a JSON object, got {type(payload).__name__}")
        alert_id = _text(payload.get("id"))
        if alert_id is None:
            raise PayloadError("not a Graph security alert: no 'id'")
        severity = _text(payload.get("severity"))
        category = _text(payload.get("category"))
        return [
            Alert(
                source=SourceInfo(
                    name=self.name, type=self.type, product="Microsoft Defender XDR", vendor="Microsoft",
                    instance=_text(payload.get("serviceSource")),
                    tenant=self.config.tenant or _text(payload.get("tenantId")),
                ),
                vendor_id=alert_id,
                title=_text(payload.get("title")) or f"Defender alert {alert_id}",
                description=_description(payload),
                severity=SEVERITY.get(severity or "", Severity.medium),
                vendor_severity=severity,
                category=category,
                status=STATUS.get(_text(payload.get("status")) or "", AlertStatus.new),
                disposition=DISPOSITIONS.get(_text(payload.get("classification")) or ""),
                revision=_text(payload.get("lastUpdateDateTime")),
                url=_text(payload.get("alertWebUrl")),
                detected_at=_time(payload.get("firstActivityDateTime")) or _time(payload.get("createdDateTime")),
                observables=_observables(payload.get("evidence")),
                tactics=[TACTICS[category]] if category in TACTICS else [],
                techniques=_texts(payload.get("mitreTechniques")),
                labels=_texts(payload.get("systemTags")),
                raw=payload,
            )
        ]


def _description(payload: dict[str, Any]) -> str:
    """Join the description, the recommended actions and the context an analyst reads first."""
    # Microsoft's published example carries U+FFFD where its bullets were; text is kept as Graph sent it.
    facts = [
        f"{label}: {value}"
        for label, key in (("Service", "serviceSource"), ("Detection source", "detectionSource"), ("Incident", "incidentWebUrl"))
        if (value := _text(payload.get(key)))
    ]
    parts = [_text(payload.get("description")), _text(payload.get("recommendedActions")), "\n".join(facts)]
    return "\n\n".join(part for part in parts if part)


# Evidence fields that name something an analyst pivots on, in any evidence type (device, user, process,
# file, ip, url, mailbox, analyzedMessage, dns, networkConnection, hostLogonSession…), nested or not:
# https://learn.microsoft.com/en-us/graph/api/resources/security-alertevidence
HOST_KEYS = ("deviceDnsName", "hostName")
IP_KEYS = ("ipAddress", "ipInterfaces", "senderIp")
EMAIL_KEYS = ("primaryAddress", "recipientEmailAddress", "emailAddress")
FILE_KEYS = ("fileDetails", "imageFile", "parentProcessImageFile")
HASH_KEYS = ("sha256", "sha1", "md5")
# LocalSystem, LocalService, NetworkService run most processes: as "users" they would only be noise.
SERVICE_SIDS = {"S-1-5-18", "S-1-5-19", "S-1-5-20"}
MAX_DEPTH = 4


def _observables(evidence: Any) -> Observables:
    """Collect hosts, IPs, users, hashes, URLs, domains and e-mail addresses from the alert's evidence."""
    found: dict[str, list[str]] = {kind: [] for kind in Observables.model_fields}
    for item in evidence if isinstance(evidence, list) else []:
        _collect(item, found, 0)
    return Observables(**{kind: list(dict.fromkeys(values)) for kind, values in found.items()})


def _collect(node: Any, found: dict[str, list[str]], depth: int) -> None:
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return
    for key, value in node.items():
        if key in HOST_KEYS:
            found["hosts"] += _texts([value])
        elif key in IP_KEYS:
            found["ips"] += [ip for ip in _texts(value if isinstance(value, list) else [value]) if _is_ip(ip)]
        elif key in EMAIL_KEYS:
            found["emails"] += _texts([value])
        elif key in ("userAccount", "loggedOnUsers"):
            found["users"] += [user for account in (value if isinstance(value, list) else [value]) if (user := _account(account))]
        elif key in FILE_KEYS and isinstance(value, dict):
            found["hashes"] += _texts([value.get(name) for name in HASH_KEYS])
        elif key == "url" and (url := _text(value)):
            found["urls"].append(url)
            found["domains"] += _texts([_host(url)])
        elif key == "domainName":  # dnsEvidence; an account's NT domain is read in _account, never here
            found["domains"] += _texts([value])
        elif isinstance(value, dict | list):
            for child in value if isinstance(value, list) else [value]:
                _collect(child, found, depth + 1)


def _account(value: Any) -> str | None:
    """Name a userAccount: its UPN, else DOMAIN\\account; None for the built-in service accounts."""
    if not isinstance(value, dict) or _text(value.get("userSid")) in SERVICE_SIDS:
        return None
    name = _text(value.get("accountName"))
    domain = _text(value.get("domainName"))
    return _text(value.get("userPrincipalName")) or (f"{domain}\\{name}" if domain and name else name)
