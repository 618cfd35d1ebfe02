"""Prisma Cloud (CSPM) source: polls policy-violation alerts.

    POST /login {username: <access key id>, password: <secret>}  -> {token}  (valid about ten minutes)
    GET  /auth_token/extend  (x-redlock-auth: <token>)            -> {token}  (a fresh ten minutes)
    POST /v2/alert?detailed=true {timeRange, sortBy, limit, pageToken, filters} -> {items, nextPageToken, totalRows}

https://pan.dev/prisma-cloud/api/cspm/prisma-cloud-alerts-api-overview/
The cursor is JSON: the time window being read, in epoch milliseconds, and the
page token inside it; once a window is read, the next one starts `overlap`
before its end. One alert is stored again when its status changes (the item id
is `<id>:<status>`), so a dismissal or resolution reaches the case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import httpx2
import structlog
from pydantic import Field, SecretStr

from ..errors import AuthFailed, PayloadError, Permanent
from ..model import Alert, AlertStatus, Observables, Severity, SourceInfo
from ._http import send
from ._values import json_cursor
from ._values import text as _text
from .roles import Parser, ParserConfig, Poller, PollerConfig, PollResult

log = structlog.get_logger(__name__)

# Tokens live ten minutes; extend a little before, so that no call meets an expired one in the normal run.
TOKEN_REFRESH = timedelta(minutes=8)
SEVERITIES = {"critical": Severity.critical, "high": Severity.high, "medium": Severity.medium,
              "low": Severity.low, "informational": Severity.info}
STATUSES = {"resolved": AlertStatus.resolved, "dismissed": AlertStatus.resolved,
            "snoozed": AlertStatus.in_progress, "pending_resolution": AlertStatus.in_progress}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class PrismaCloudParser(Parser):
    """Prisma Cloud alerts as POST /v2/alert?detailed=true lists them, one per item."""

    type: ClassVar[str] = "prisma_cloud"

    class Config(ParserConfig):
        """Where the alerts' deep links point."""

        console_url: str = Field(default="https://app.prismacloud.io", pattern=r"^https?://",
                                 description="Console URL for alert deep links", examples=["https://app2.prismacloud.io"])

    config: Config

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one alert of POST /v2/alert?detailed=true into an alert."""
        if not isinstance(payload, dict):
            raise PayloadError(f"not a Prisma Cloud alert: expected a JSON object, got {type(payload).__name__}")
        alert_id, policy = payload.get("id"), payload.get("policy")
        if not isinstance(alert_id, str) or not alert_id.strip() or not isinstance(policy, dict):
            raise PayloadError("not a Prisma Cloud alert: it needs an 'id' and a 'policy' object (list alerts with detailed=true)")
        resource = payload.get("resource") if isinstance(payload.get("resource"), dict) else {}
        vendor_severity = _text(policy.get("severity"))
        status = _text(payload.get("status"))
        console = self.config.console_url.rstrip("/")
        alert = Alert(
            source=SourceInfo(name=self.name, type=self.type, product="Prisma Cloud", vendor="Palo Alto Networks",
                              instance=urlsplit(console).hostname, tenant=self.config.tenant),
            vendor_id=alert_id.strip(),
            title=_text(policy.get("name")) or f"Prisma Cloud alert {alert_id.strip()}",
            description=_description(payload, policy, resource),
            severity=SEVERITIES.get((vendor_severity or "").lower(), Severity.medium),
            vendor_severity=vendor_severity,
            category=_text(policy.get("policyType")),
            status=STATUSES.get((status or "").lower(), AlertStatus.new),
            url=f"{console}/alerts/overview?viewId=default&filters=alert.id={quote(alert_id.strip(), safe='')}",
            detected_at=_epoch_ms(payload.get("alertTime")) or _epoch_ms(payload.get("firstSeen")),
            observables=_observables(payload, resource),
            labels=["prisma-cloud", *[f"cloud-{c}" for c in [_text(resource.get("cloudType"))] if c]],
            raw=payload,
        )
        return [alert]


class PrismaCloudSource(PrismaCloudParser, Poller):
    """Prisma Cloud CSPM alerts, by alert time, with the login token kept fresh."""

    parser = PrismaCloudParser

    class Config(PrismaCloudParser.Config, PollerConfig):
        """Which Prisma Cloud stack, the access key, and what to ask for."""

        url: str = Field(default="https://api.prismacloud.io", pattern=r"^https?://",
                         description="API URL of your tenant's stack (api, api2, api.eu, …)", examples=["https://api2.prismacloud.io"])
        access_key: str = Field(min_length=1, description="Access key ID (Settings → Access Control → Access Keys)",
                                examples=["3f1c9a52-7d7e-4b4e-9c7a-0d2f5b1e8a11"])
        secret_key: SecretStr = Field(description="The access key's secret", examples=["${PRISMA_SECRET_KEY}"])
        page_size: int = Field(default=100, ge=1, le=10000, description="Alerts per request", examples=[500])
        overlap: float = Field(default=300.0, ge=0, description="Seconds each window reaches back before the previous "
                               "one's end, for alerts stamped late (repeats are dropped)", examples=[600])
        time_range_type: Literal["ALERT_UPDATED", "ALERT_OPENED", "ALERT_STATUS_UPDATED"] = Field(
            default="ALERT_UPDATED", description="Which alert time the windows select on: ALERT_OPENED sees new "
            "alerts only; the updated kinds also see dismissals and resolutions", examples=["ALERT_STATUS_UPDATED"])
        filters: list[dict[str, str]] = Field(
            default=[], description="Prisma Cloud alert filters ({name, operator, value}) sent with every request",
            examples=[[{"name": "policy.severity", "operator": "=", "value": "high"}]],
        )

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(name, config)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._client = httpx2.AsyncClient(base_url=config.url.rstrip("/"), headers={"Accept": "application/json"},
                                          timeout=config.timeout, transport=transport)
        self._token: str | None = None
        self._token_at = datetime.min.replace(tzinfo=UTC)

    async def poll(self, cursor: str | None) -> PollResult:
        """Read the next page of the current window, or start the next window."""
        state = _read_cursor(cursor)
        if state.get("token"):
            start, end = state["start"], state["end"]
        else:
            now = self._clock()
            start = state["end"] - int(self.config.overlap * 1000) if "end" in state else _ms(now - timedelta(seconds=self.config.backfill))
            end = _ms(now)
        try:
            page = await self._alerts(start, end, state.get("token"))
        except Permanent as exc:
            if isinstance(exc, AuthFailed) or not state.get("token"):
                raise
            # A page token outlives neither its window nor a long pause: read the window again from its start.
            log.warning("prisma cloud page token refused; rereading the window", source=self.name, error=str(exc))
            page = await self._alerts(start, end, None)
        items = _objects(page.get("items"))
        token = page.get("nextPageToken") if items else None
        return PollResult(items, json.dumps({"start": start, "end": end, "token": token or None}), more=bool(token))

    def item_id(self, item: dict[str, Any]) -> str:
        """Return '<alert id>:<status>': the same alert in a new status is a new item."""
        return f"{item.get('id')}:{item.get('status')}"

    async def _alerts(self, start: int, end: int, token: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"timeRange": {"type": "absolute", "value": {"startTime": start, "endTime": end}},
                                "sortBy": ["alertTime:asc"], "limit": self.config.page_size,
                                "filters": [{"name": "timeRange.type", "operator": "=", "value": self.config.time_range_type},
                                            *self.config.filters]}
        if token:
            body["pageToken"] = token
        page = await self._call("POST", "/v2/alert", params={"detailed": "true"}, json=body)
        if not isinstance(page, dict):
            raise PayloadError(f"prisma cloud: expected a JSON object from /v2/alert, got {type(page).__name__}")
        return page

    async def _call(self, method: str, path: str, **request: Any) -> Any:
        """Send one authenticated call; on a 401 log in again and retry it once."""
        try:
            response = await send(self._client.request(method, path, headers={"x-redlock-auth": await self._fresh_token()}, **request),
                                  vendor="prisma_cloud")
        except AuthFailed as exc:
            if exc.status != 401:
                raise
            self._token = None  # revoked or expired early: the retry logs in again
            response = await send(self._client.request(method, path, headers={"x-redlock-auth": await self._fresh_token()}, **request),
                                  vendor="prisma_cloud")
        return response.json()

    async def _fresh_token(self) -> str:
        """Return a token, logging in first or extending one that is about to expire."""
        now = self._clock()
        if self._token and now - self._token_at > TOKEN_REFRESH:
            try:
                extended = await send(self._client.get("/auth_token/extend", headers={"x-redlock-auth": self._token}), vendor="prisma_cloud")
                self._token, self._token_at = _token_of(extended.json()), now
            except AuthFailed:
                self._token = None
        if not self._token:
            credentials = {"username": self.config.access_key, "password": self.config.secret_key.get_secret_value()}
            login = await send(self._client.post("/login", json=credentials), vendor="prisma_cloud")
            self._token, self._token_at = _token_of(login.json()), now
        return self._token

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _read_cursor(cursor: str | None) -> dict[str, Any]:
    """Return {start, end, token} from our cursor; {} on the first run."""
    return json_cursor(cursor, "prisma cloud", lambda state: isinstance(state.get("end"), int)) or {}


def _token_of(body: Any) -> str:
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthFailed("prisma cloud: the login answered without a token", status=None)
    return token


def _objects(value: Any) -> list[dict[str, Any]]:
    """Return the objects of a value that should be a list of objects; [] for anything else."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _epoch_ms(value: Any) -> datetime | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _description(alert: dict[str, Any], policy: dict[str, Any], resource: dict[str, Any]) -> str:
    facts = (("Resource", resource.get("name")), ("Resource id", resource.get("id")), ("Resource type", resource.get("resourceType")),
             ("Service", resource.get("cloudServiceName")), ("Account", resource.get("account")), ("Account id", resource.get("accountId")),
             ("Region", resource.get("region")), ("Cloud", resource.get("cloudType")), ("Resource console", resource.get("url")),
             ("Policy id", policy.get("policyId") or alert.get("policyId")), ("Status", alert.get("status")), ("Reason", alert.get("reason")))
    parts = [_text(policy.get("description")), "\n".join(f"{label}: {value.strip()}" for label, value in facts if _text(value))]
    if recommendation := _text(policy.get("recommendation")):
        parts.append(f"Recommendation:\n{recommendation}")
    return "\n\n".join(part for part in parts if part)


def _observables(alert: dict[str, Any], resource: dict[str, Any]) -> Observables:
    hosts = [value for value in (_text(resource.get("name")), _text(resource.get("id"))) if value]
    attribution = alert.get("alertAttribution") if isinstance(alert.get("alertAttribution"), dict) else {}
    events = _objects(attribution.get("attributionEventList"))
    users = [u for u in [_text(attribution.get("resourceCreatedBy")), *(_text(e.get("username")) for e in events)] if u]
    return Observables(hosts=list(dict.fromkeys(hosts)), users=list(dict.fromkeys(users)))
