"""Microsoft Defender XDR source: polls the Microsoft Graph security API's alerts (``alerts_v2``).

https://learn.microsoft.com/en-us/graph/api/security-list-alerts_v2 — one
``GET /v1.0/security/alerts_v2`` with ``$filter=lastUpdateDateTime ge <since>``,
paged by ``@odata.nextLink``. The cursor is JSON: ``since`` (the newest
``lastUpdateDateTime`` committed before the current page chain began) and,
within a chain, the ``nextLink`` to resume plus the newest time seen so far.
A restart follows the stored nextLink; if Graph no longer takes it, the chain
starts again from ``since``: items come again, never go missing, and the
core stores each vendor id once. The cursor does not rely on the order of the
results, as the docs list only ``$count $filter $skip $top``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx2
import structlog
from pydantic import Field, SecretStr

from ..errors import AuthFailed, PayloadError, Permanent
from ..model import Alert, AlertStatus, Observables, Severity, SourceInfo
from ._defender_api import GraphApi
from .roles import Parser, Poller, PollerConfig, PollResult
from ._values import hostname as _host
from ._values import is_ip as _is_ip
from ._values import text as _text

log = structlog.get_logger(__name__)

ALERTS_PATH = "/v1.0/security/alerts_v2"
# alert resource: https://learn.microsoft.com/en-us/graph/api/resources/security-alert
SEVERITY = {"informational": Severity.info, "low": Severity.low, "medium": Severity.medium, "high": Severity.high}
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
                url=_text(payload.get("alertWebUrl")),
                detected_at=_time(payload.get("firstActivityDateTime")) or _time(payload.get("createdDateTime")),
                observables=_observables(payload.get("evidence")),
                tactics=[TACTICS[category]] if category in TACTICS else [],
                techniques=_texts(payload.get("mitreTechniques")),
                labels=_texts(payload.get("systemTags")),
                raw=payload,
            )
        ]


class DefenderSource(DefenderParser, Poller):
    """Microsoft Defender XDR alerts, polled from Microsoft Graph with an app registration's client secret."""

    parser = DefenderParser

    class Config(PollerConfig):
        """Where Graph and Entra ID are, and the app registration that reads SecurityAlert.Read.All."""

        url: str = Field(
            default="https://graph.microsoft.com",
            description="Microsoft Graph base URL (national clouds: https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn)",
            examples=["https://graph.microsoft.com", "http://127.0.0.1:8081/defender"],
        )
        login_url: str = Field(
            default="https://login.microsoftonline.com",
            description="Microsoft Entra ID authority host; the token comes from <login_url>/<tenant_id>/oauth2/v2.0/token",
            examples=["https://login.microsoftonline.com", "http://127.0.0.1:8081/defender"],
        )
        tenant_id: str = Field(
            min_length=1, description="Directory (tenant) id of the app registration",
            examples=["b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"],
        )
        client_id: str = Field(
            min_length=1, description="Application (client) id of the app registration",
            examples=["9e6a4d1c-2f1b-4c1e-8a53-2b1f0c7d9e11"],
        )
        client_secret: SecretStr = Field(
            description="Client secret of the app registration",
            examples=["${DEFENDER_CLIENT_SECRET}"],
        )
        page_size: int = Field(default=100, ge=1, le=2000, description="Alerts asked for per page ($top)", examples=[100])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.base_url = config.url.rstrip("/")
        self._api = GraphApi(
            login_url=config.login_url, tenant_id=config.tenant_id, client_id=config.client_id,
            client_secret=config.client_secret, timeout=config.timeout, transport=transport,
        )  # fmt: skip

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of alerts updated since the cursor."""
        since, next_link, newest = self._read_cursor(cursor)
        body = None
        if next_link:
            try:
                body = await self._api.get(next_link)
            except Permanent as exc:
                if isinstance(exc, AuthFailed):
                    raise
                # A skiptoken can outlive its welcome (e.g. after a long outage): start the chain over, losing nothing.
                log.warning("defender nextLink refused, restarting from since", source=self.name, since=since, error=str(exc))
                newest = since
        if body is None:
            params = {"$filter": f"lastUpdateDateTime ge {since}", "$orderby": "lastUpdateDateTime asc", "$top": str(self.config.page_size)}
            body = await self._api.get(self.base_url + ALERTS_PATH, params)
        items = body.get("value")
        if not isinstance(items, list):
            raise Permanent(f"defender {self.name}: the alerts answer has no 'value' list")
        for item in items:
            updated = item.get("lastUpdateDateTime") if isinstance(item, dict) else None
            when = _time(updated)
            if when is not None and when > _time(newest):  # type: ignore[operator]
                newest = updated
        following = body.get("@odata.nextLink")
        if isinstance(following, str) and following:
            if not following.startswith(self.base_url + "/"):
                # The bearer token goes wherever the link points: only ever to the configured Graph host.
                raise Permanent(f"defender {self.name}: nextLink points outside {self.base_url}")
            return PollResult(items, json.dumps({"since": since, "next": following, "newest": newest}), more=True)
        return PollResult(items, json.dumps({"since": newest, "next": None}), more=False)

    def _read_cursor(self, cursor: str | None) -> tuple[str, str | None, str]:
        if cursor is None:
            start = datetime.now(UTC) - timedelta(seconds=self.config.backfill)
            since = start.isoformat(timespec="seconds").replace("+00:00", "Z")
            return since, None, since
        try:
            state = json.loads(cursor)
            since, next_link = state["since"], state.get("next")
            newest = state.get("newest") or since
        except (ValueError, TypeError, KeyError) as exc:
            raise Permanent(f"defender {self.name}: stored cursor is unreadable ({exc}); reset it") from None
        if _time(since) is None or _time(newest) is None:
            raise Permanent(f"defender {self.name}: stored cursor has no valid time; reset it")
        return since, next_link, newest

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the alert id, plus `#resolved` once Defender resolved it: an alert is stored when seen, and once more when resolved.

        Other updates (assignment, comments, classification) come back through the
        lastUpdateDateTime filter too, and are stored no more: they would only
        add repeat comments to the ticket. An item without an id gets a digest, so
        that it is still stored and parse dead-letters it with the raw item kept.
        """
        alert_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(alert_id, str) or not alert_id:
            return "no-id:" + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:32]
        return f"{alert_id}#resolved" if item.get("status") == "resolved" else alert_id

    async def aclose(self) -> None:
        """Release connections."""
        await self._api.aclose()


def _texts(value: Any) -> list[str]:
    """Return the non-empty strings of a list (anything else: none)."""
    return [v for v in value if _text(v)] if isinstance(value, list) else []


def _time(value: Any) -> datetime | None:
    """Read a Graph DateTimeOffset (ISO 8601, UTC, up to 7 fractional digits)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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

