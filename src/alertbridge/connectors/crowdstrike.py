"""CrowdStrike Falcon: alerts pushed by a Falcon Fusion workflow (`crowdstrike`) or polled from the Alerts API v2 (`crowdstrike_alerts`).

Both read the alert object of the Alerts API v2 (`POST /alerts/entities/alerts/v2`,
fields: https://www.falconpy.io/Service-Collections/Alerts.html). The webhook takes
one such object, an entities answer (`{"resources": [...]}`) or either under
`data`, which is how a Fusion "Call webhook" action with a custom JSON body
usually wraps the alert it was triggered by (docs/connectors/crowdstrike.md).

The poller pages with FQL `updated_timestamp:>='<cursor>'` sorted ascending: an
alert whose status changes comes back with a new `updated_timestamp`, so its
item id carries that time and the closed alert resolves the case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx2
from pydantic import Field, SecretStr

from ..errors import PayloadError, SignatureError
from ..model import Alert, AlertStatus, Observables, Severity, SourceInfo
from ._crowdstrike_api import FalconApi
from ._values import field_text as _text
from ._values import field_texts as _texts
from ._values import json_cursor
from .roles import Parser, Poller, PollerConfig, PollResult, WebhookConfig, WebhookSource

SEVERITY_NAMES = {
    "informational": Severity.info, "low": Severity.low, "medium": Severity.medium,
    "high": Severity.high, "critical": Severity.critical,
}  # fmt: skip
# Falcon's bands of the 0–100 score, used when `severity_name` is missing.
SEVERITY_FLOORS = ((90, Severity.critical), (70, Severity.high), (50, Severity.medium), (20, Severity.low))
STATUSES = {"new": AlertStatus.new, "reopened": AlertStatus.new, "in_progress": AlertStatus.in_progress, "closed": AlertStatus.resolved}
SIGNATURE_HEADER = "x-cs-primary-signature"
TIMESTAMP_HEADER = "x-cs-delivery-timestamp"


class CrowdStrikeParser(Parser):
    """Alerts API v2 alert objects: one, an entities answer (`resources`), or either under `data`."""

    type: ClassVar[str] = "crowdstrike"

    def parse(self, payload: Any) -> list[Alert]:
        """Turn a body (one alert, an entities answer, or either under `data`) into alerts."""
        return falcon_alerts(self.name, self.type, self.config.tenant, payload)


class CrowdStrikeSource(CrowdStrikeParser, WebhookSource):
    """A Falcon Fusion workflow's "Call webhook" action carrying Alerts API v2 alert objects."""

    parser = CrowdStrikeParser

    class Config(WebhookConfig):
        """Set `auth: {mode: hmac, secret: ...}` to check the signature of Falcon's Webhook integration."""

    config: Config

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> None:
        """Check Falcon's HMAC signature in hmac mode; the other modes work as for every source."""
        auth = self.config.auth
        if auth.mode != "hmac":
            super().verify(headers, query, body)
            return
        secret = auth.secret.get_secret_value().encode() if auth.secret else b""
        given = (headers.get(auth.header.lower()) or headers.get(SIGNATURE_HEADER, "")).strip().removeprefix(auth.prefix)
        stamp = headers.get(TIMESTAMP_HEADER, "").encode()
        # Falcon signs the body and the X-Cs-Delivery-Timestamp value; public receivers disagree on the order and on
        # base64 vs hex (m-mizutani/alertchain: base64 of body+timestamp; PagerTree: hex of timestamp+body), and
        # every variant needs the secret, so each is accepted.
        digests = [hmac.new(secret, message, hashlib.sha256).digest() for message in (body + stamp, stamp + body)]
        candidates = [encode(d) for d in digests for encode in (lambda d: base64.b64encode(d).decode(), bytes.hex)]
        if not secret or not stamp or not any(hmac.compare_digest(given.encode(), c.encode()) for c in candidates):
            raise SignatureError("hmac credential missing or wrong")

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """Return the signature: a replayed request repeats it, a new delivery has a new timestamp and so a new one."""
        signature = headers.get(SIGNATURE_HEADER, "").strip()
        return f"sig:{signature[:180]}" if signature and self.config.auth.mode == "hmac" else None


class CrowdStrikeAlertsParser(CrowdStrikeParser):
    """Alert objects as the Alerts API poller stores them, one per item."""

    type: ClassVar[str] = "crowdstrike_alerts"


class CrowdStrikeAlertsPoller(CrowdStrikeAlertsParser, Poller):
    """The Falcon Alerts API v2, polled: every alert created or updated since the cursor."""

    parser = CrowdStrikeAlertsParser

    class Config(PollerConfig):
        """API client credentials with the Alerts: Read scope, and what to fetch."""

        url: str = Field(
            default="https://api.crowdstrike.com",
            description="Falcon API base URL of your cloud (US-1; US-2 is https://api.us-2.crowdstrike.com, "
            "EU-1 https://api.eu-1.crowdstrike.com, US-GOV-1 https://api.laggar.gcw.crowdstrike.com)",
            examples=["https://api.eu-1.crowdstrike.com"],
        )
        client_id: str = Field(min_length=1, description="API client id", examples=["${FALCON_CLIENT_ID}"])
        client_secret: SecretStr = Field(description="API client secret", examples=["${FALCON_CLIENT_SECRET}"])
        member_cid: str | None = Field(
            default=None, description="Child CID to act in, for Flight Control (MSSP) parents", examples=["0123456789abcdef0123456789abcdef"]
        )
        filter: str | None = Field(
            default=None, description="Extra FQL joined to the time filter with '+' (AND)", examples=["product:'epp'+severity:>=50"]
        )
        page_size: int = Field(default=500, ge=1, le=1000, description="Alerts per page (the entities call takes at most 1000 ids)", examples=[500])

    config: Config

    def __init__(self, name: str, config: Config, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.api = FalconApi(
            config.url, config.client_id, config.client_secret.get_secret_value(),
            member_cid=config.member_cid, timeout=config.timeout, transport=transport,
        )  # fmt: skip

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of alerts updated at or after the cursor's time."""
        since, offset = _read_cursor(cursor, self.config.backfill)
        fql = f"updated_timestamp:>='{since}'" + (f"+{self.config.filter}" if self.config.filter else "")
        params = {"filter": fql, "sort": "updated_timestamp.asc", "limit": self.config.page_size, "offset": offset}
        query = await self.api.call("GET", "/alerts/queries/alerts/v2", params=params)
        ids = [i for i in query.get("resources") or [] if isinstance(i, str)]
        total = ((query.get("meta") or {}).get("pagination") or {}).get("total") or 0
        if not ids:
            return PollResult([], _write_cursor(since, offset))
        entities = await self.api.call("POST", "/alerts/entities/alerts/v2", json={"composite_ids": ids})
        by_id = {r.get("composite_id"): r for r in entities.get("resources") or [] if isinstance(r, dict)}
        items = [by_id[i] for i in ids if i in by_id]
        last = next((item["updated_timestamp"] for item in reversed(items) if isinstance(item.get("updated_timestamp"), str)), since)
        # A page that ends later than the cursor starts the next window at its last time (those alerts come again and
        # are deduplicated); a page all at the cursor's time pages on by offset, so a burst of equal times never stalls.
        following = _write_cursor(since, offset + len(ids)) if last == since else _write_cursor(last, 0)
        return PollResult(items, following, more=offset + len(ids) < total)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the composite id and update time: an updated alert (e.g. closed) is a new event of the same alert."""
        return f"{item.get('composite_id') or item.get('id')}@{item.get('updated_timestamp')}"

    async def aclose(self) -> None:
        """Release connections."""
        await self.api.aclose()


def _read_cursor(cursor: str | None, backfill: float) -> tuple[str, int]:
    if cursor is None:
        start = datetime.now(UTC) - timedelta(seconds=backfill)
        return start.strftime("%Y-%m-%dT%H:%M:%SZ"), 0
    state = json_cursor(cursor, "crowdstrike", lambda state: isinstance(state.get("since"), str) and type(state.get("offset")) is int)
    return state["since"], state["offset"]


def _write_cursor(since: str, offset: int) -> str:
    return json.dumps({"since": since, "offset": offset})


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
        url=_text(item, "falcon_host_link"),
        detected_at=_time(item, "timestamp") or _time(item, "created_timestamp"),
        observables=_observables(item),
        tactics=_unique([_text(m, "tactic") for m in mitre] + [_text(item, "tactic")]),
        techniques=_unique([_text(m, "technique_id") for m in mitre] + [_text(item, "technique_id")]),
        raw=item,
    )


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


def _time(item: dict[str, Any], key: str) -> datetime | None:
    """Read an RFC 3339 time; Falcon writes nanoseconds, which fromisoformat (3.11+) cuts to microseconds."""
    value = _text(item, key)
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
