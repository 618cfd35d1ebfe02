"""Proofpoint TAP source: polls the SIEM API for threats that reached, or were stopped before, users.

    GET /v2/siem/all?format=json&interval=<ISO start>/<ISO end>
    -> {queryEndTime, messagesDelivered: [...], messagesBlocked: [...], clicksPermitted: [...], clicksBlocked: [...]}

https://help.proofpoint.com/Threat_Insight_Dashboard/API_Documentation/SIEM_API
takes windows of thirty seconds to one hour that start at most seven days ago,
so a backfill walks forward one hour per poll and the cursor is the end of the
last committed window (`queryEndTime`). An item does not say which array it
came from: the poller adds `eventType` (the array's name) before storing it, as
XSOAR's integration adds `type`. Severity rules: docs/connectors/proofpoint_tap.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx2
import structlog
from pydantic import Field, SecretStr

from ..errors import PayloadError, Permanent
from ..model import Alert, AlertStatus, Observables, Severity, SourceInfo
from ._http import HttpClient, Vendor
from ._values import iso_time as _time
from ._values import objects as _objects
from .roles import Parser, ParserConfig, Poller, PollerConfig, PollResult

log = structlog.get_logger(__name__)

EventType = Literal["messagesDelivered", "messagesBlocked", "clicksPermitted", "clicksBlocked"]
EVENT_TYPES: tuple[str, ...] = ("messagesDelivered", "messagesBlocked", "clicksPermitted", "clicksBlocked")
MAX_WINDOW = timedelta(hours=1)
MIN_WINDOW = timedelta(seconds=30)
# The API refuses starts older than seven days; keep a minute's margin for clock skew.
OLDEST = timedelta(days=7) - timedelta(minutes=1)
# 429 means the credential spent its 1,800 calls of the rolling 24 hours, and no Retry-After is sent.
RATE_LIMIT_PAUSE = 600.0
# A click that got through is worse than the message it came in; a blocked event is less urgent.
SEVERITY_SHIFT = {"clicksPermitted": 1, "messagesBlocked": -1, "clicksBlocked": -1}
SCORES = {"malwareScore": "malware", "phishScore": "phish", "impostorScore": "impostor", "spamScore": "spam"}
DEFAULT_CLASSIFICATIONS = {"malware": Severity.high, "phish": Severity.high, "impostor": Severity.high, "spam": Severity.low}
SEVERITIES = list(Severity)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")




def _strings(value: Any) -> list[str]:
    """Return the non-empty strings of a value that is a string or a list (Proofpoint sends both)."""
    values = value if isinstance(value, list) else [value]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


class ProofpointVendor(Vendor):
    """The SIEM API's 429 comes without Retry-After: the credential spent its calls of the rolling 24 hours."""

    def retry_after(self, response: httpx2.Response) -> float | None:
        """Return Retry-After if sent, else a long pause."""
        return super().retry_after(response) or RATE_LIMIT_PAUSE


PROOFPOINT = ProofpointVendor("proofpoint")


class ProofpointTapParser(Parser):
    """Proofpoint TAP SIEM API messages and clicks, one per item."""

    type: ClassVar[str] = "proofpoint_tap"

    class Config(ParserConfig):
        """How severe each threat classification is."""

        score_threshold: int = Field(default=75, ge=0, le=100, description="A phish, malware, impostor or spam score "
                                     "at or above this counts as that classification", examples=[90])
        classification_severity: dict[str, Severity] = Field(
            default=DEFAULT_CLASSIFICATIONS, description="Severity per threat classification (lower case)",
            examples=[{"malware": "critical", "phish": "high", "impostor": "high", "spam": "low"}],
        )
        default_severity: Severity = Field(default=Severity.medium, description="Severity when no classification "
                                           "is known and no score reaches the threshold", examples=["low"])

    config: Config

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one SIEM API message or click into its alert."""
        if not isinstance(payload, dict):
            raise PayloadError(f"not a Proofpoint TAP event: expected a JSON object, got {type(payload).__name__}")
        event_type = payload.get("eventType")
        if event_type is not None and event_type not in EVENT_TYPES:
            raise PayloadError(f"unknown Proofpoint TAP eventType {event_type!r}; expected one of {', '.join(EVENT_TYPES)}")
        click = "clickTime" in payload
        key = payload.get("id") if click else payload.get("GUID")
        if not isinstance(key, str) or not key.strip():
            raise PayloadError(f"not a Proofpoint TAP {'click' if click else 'message'}: no '{'id' if click else 'GUID'}'")
        threats = _objects(payload.get("threatsInfoMap")) if not click else [payload]
        classes = list(dict.fromkeys(c.lower() for t in threats for c in _strings(t.get("classification"))))
        alert = Alert(
            source=SourceInfo(name=self.name, type=self.type, product="Targeted Attack Protection", vendor="Proofpoint",
                              instance=payload.get("cluster") if isinstance(payload.get("cluster"), str) else None,
                              tenant=self.config.tenant),
            vendor_id=key.strip(),
            title=_title(payload, click, event_type, classes),
            description=_description(payload, click, event_type, threats),
            severity=self._severity(payload, classes, event_type),
            vendor_severity=", ".join(classes) or None,
            category=classes[0] if classes else None,
            status=_status(threats),
            url=next((u for t in threats for u in _strings(t.get("threatUrl") or t.get("threatURL"))), None),
            detected_at=_time(payload.get("clickTime" if click else "messageTime")),
            observables=_observables(payload, threats),
            labels=["proofpoint", *([event_type] if event_type else [])],
            raw=payload,
        )
        return [alert]

    def _severity(self, item: dict[str, Any], classes: list[str], event_type: str | None) -> Severity:
        known = self.config.classification_severity
        found = [known[c] for c in classes if c in known]
        for field, kind in SCORES.items():
            score = item.get(field)
            if isinstance(score, int | float) and not isinstance(score, bool) and score >= self.config.score_threshold and kind in known:
                found.append(known[kind])
        base = max(found, key=lambda s: s.rank) if found else self.config.default_severity
        rank = base.rank + SEVERITY_SHIFT.get(event_type or "", 0)
        return SEVERITIES[min(max(rank, 0), len(SEVERITIES) - 1)]


class ProofpointTapSource(ProofpointTapParser, Poller):
    """Proofpoint Targeted Attack Protection: messages and clicks with threats, from the SIEM API."""

    parser = ProofpointTapParser

    class Config(ProofpointTapParser.Config, PollerConfig):
        """Where the SIEM API is, the credential, which events become alerts and how severe they are."""

        url: str = Field(default="https://tap-api-v2.proofpoint.com", pattern=r"^https?://",
                         description="Base URL of the TAP API", examples=["https://tap-api-v2.proofpoint.com"])
        principal: str = Field(min_length=1, description="TAP service principal (Settings → Connected Applications)",
                               examples=["0a1b2c3d-4e5f-6789-abcd-ef0123456789"])
        secret: SecretStr = Field(description="The service principal's secret", examples=["${PROOFPOINT_TAP_SECRET}"])
        event_types: list[EventType] = Field(
            default=["messagesDelivered", "clicksPermitted"], min_length=1,
            description="Which SIEM arrays become alerts; the default keeps the threats that got through",
            examples=[["messagesDelivered", "clicksPermitted", "messagesBlocked"]],
        )
        overlap: float = Field(default=60.0, ge=0, le=1800, description="Seconds each window reaches back before the "
                               "cursor, for events Proofpoint indexes late (repeats are dropped)", examples=[120])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(name, config)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._client = HttpClient(name, PROOFPOINT, base_url=config.url.rstrip("/"), timeout=config.timeout, transport=transport,
                                  auth=httpx2.BasicAuth(config.principal, config.secret.get_secret_value()))

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next window of at most an hour after the cursor (an ISO time)."""
        now = self._clock()
        resumed = _time(cursor)
        if cursor and resumed is None:
            raise Permanent(f"proofpoint cursor {cursor[:100]!r} is not one this connector wrote (an ISO time); reset it")
        start = resumed - timedelta(seconds=self.config.overlap) if resumed else now - timedelta(seconds=self.config.backfill)
        if start < now - OLDEST:
            if resumed:
                log.warning("proofpoint cursor older than the API's 7 days: events in between are lost",
                            source=self.name, cursor=cursor)
            start = now - OLDEST
        end = min(start + MAX_WINDOW, now)
        if end - start < MIN_WINDOW:
            return PollResult([], cursor)
        params = {"format": "json", "interval": f"{_iso(start)}/{_iso(end)}"}
        response = await self._client.call("siem", "GET", "/v2/siem/all", params=params)
        # 204 No Content is how the API says "nothing in this window".
        body = self._client.json_object(response) if response.content else {}
        items = [{**item, "eventType": event_type} for event_type in self.config.event_types
                 for item in _objects(body.get(event_type))]
        ended = _time(body.get("queryEndTime")) or end
        return PollResult(items, _iso(ended), more=end < now)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return '<eventType>:<GUID>' for a message, '<eventType>:<id>' for a click."""
        key = item.get("id") if "clickTime" in item else item.get("GUID")
        if not isinstance(key, str) or not key:
            key = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:32]
        return f"{item.get('eventType')}:{key}"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _title(item: dict[str, Any], click: bool, event_type: str | None, classes: list[str]) -> str:
    subject = _strings(item.get("subject"))
    if subject and not click:
        return subject[0]
    kind = "/".join(classes) or "threat"
    who = ", ".join(_strings(item.get("recipient"))[:3]) or "unknown recipient"
    if click:
        outcome = {"clicksPermitted": " (permitted)", "clicksBlocked": " (blocked)"}.get(event_type or "", "")
        return f"Proofpoint TAP: {kind} URL clicked by {who}{outcome}"
    outcome = {"messagesDelivered": "delivered", "messagesBlocked": "blocked"}.get(event_type or "", "sent")
    return f"Proofpoint TAP: {kind} message {outcome} to {who}"


def _status(threats: list[dict[str, Any]]) -> AlertStatus:
    """Resolved once Proofpoint has cleared every threat or called it a false positive."""
    statuses = [s for t in threats for s in _strings(t.get("threatStatus"))]
    if statuses and all(s in ("cleared", "falsePositive") for s in statuses):
        return AlertStatus.resolved
    return AlertStatus.new


def _description(item: dict[str, Any], click: bool, event_type: str | None, threats: list[dict[str, Any]]) -> str:
    fields = (("Event", [event_type] if event_type else []), ("From", item.get("headerFrom")), ("Sender", item.get("sender")),
              ("Recipients", item.get("recipient")), ("Sender IP", item.get("senderIP")), ("Subject", item.get("subject")),
              ("QID", item.get("QID")), ("Message-ID", item.get("messageID")), ("Clicked URL", item.get("url")),
              ("Click IP", item.get("clickIP")), ("User agent", item.get("userAgent")),
              ("Quarantine folder", item.get("quarantineFolder")), ("Quarantine rule", item.get("quarantineRule")),
              ("Policy routes", item.get("policyRoutes")), ("Modules run", item.get("modulesRun")))
    lines = [f"{label}: {', '.join(values)}" for label, value in fields if (values := _strings(value))]
    scores = [f"{field} {item[field]}" for field in SCORES if isinstance(item.get(field), int | float)]
    if scores:
        lines.append("Scores: " + ", ".join(scores))
    for threat in threats if not click else []:
        parts = [_strings(threat.get(k)) for k in ("classification", "threatType", "threat", "threatStatus", "threatUrl")]
        lines.append("Threat: " + " ".join(p[0] for p in parts if p))
    return "\n".join(lines)


def _observables(item: dict[str, Any], threats: list[dict[str, Any]]) -> Observables:
    emails = [e for field in ("sender", "recipient", "fromAddress", "toAddresses", "ccAddresses", "replyToAddress")
              for e in _strings(item.get(field)) if "@" in e]
    urls = _strings(item.get("url")) + [u for t in threats if str(t.get("threatType")).lower() == "url" for u in _strings(t.get("threat"))]
    hashes = [h for t in threats if str(t.get("threatType")).lower() == "attachment" for h in _strings(t.get("threat"))]
    hashes += [h for part in _objects(item.get("messageParts")) for h in _strings([part.get("sha256"), part.get("md5")])]
    ips = _strings(item.get("senderIP")) + _strings(item.get("clickIP"))
    return Observables(emails=list(dict.fromkeys(emails)), urls=list(dict.fromkeys(urls)),
                       hashes=list(dict.fromkeys(hashes)), ips=list(dict.fromkeys(ips)))
