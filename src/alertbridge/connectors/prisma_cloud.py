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
from ._http import HttpClient, TokenAuth, Vendor
from ._values import epoch_millis as _epoch_ms
from ._values import json_cursor
from ._values import objects as _objects
from ._values import text as _text
from .roles import Parser, ParserConfig, Poller, PollerConfig, PollResult

log = structlog.get_logger(__name__)

# Tokens live ten minutes; extend a little before, so that no call meets an expired one in the normal run.
TOKEN_LIFETIME, TOKEN_REFRESH = 600.0, 480.0
SEVERITIES = {"critical": Severity.critical, "high": Severity.high, "medium": Severity.medium,
              "low": Severity.low, "informational": Severity.info}
STATUSES = {"resolved": AlertStatus.resolved, "dismissed": AlertStatus.resolved,
            "snoozed": AlertStatus.in_progress, "pending_resolution": AlertStatus.in_progress}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


PRISMA = Vendor("prisma_cloud")


class PrismaLogin(TokenAuth):
    """Prisma Cloud's login: POST /login with the access key for a token, GET /auth_token/extend for a fresh one.

    The token goes in `x-redlock-auth`, not `Authorization`.
    """

    def __init__(self, base_url: str, access_key: str, secret_key: SecretStr, *, clock: Callable[[], float]):
        super().__init__(PRISMA, margin=TOKEN_LIFETIME - TOKEN_REFRESH, clock=clock)
        self._base_url = base_url
        self._credentials = {"username": access_key, "password": secret_key.get_secret_value()}

    def token_request(self) -> httpx2.Request:
        """Extend the token while it lives; else log in."""
        if self.token:
            return httpx2.Request("GET", f"{self._base_url}/auth_token/extend", headers={"x-redlock-auth": self.token})
        return httpx2.Request("POST", f"{self._base_url}/login", json=self._credentials)

    def read_token(self, body: Any) -> tuple[str, float]:
        """Return the `token` of a login or extend answer; it lives ten minutes."""
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthFailed("prisma cloud: the login answered without a token", status=None)
        return token, TOKEN_LIFETIME

    def authorize(self, request: httpx2.Request, token: str) -> None:
        """Send the token in x-redlock-auth."""
        request.headers["x-redlock-auth"] = token


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
        base_url = config.url.rstrip("/")
        login = PrismaLogin(base_url, config.access_key, config.secret_key, clock=lambda: self._clock().timestamp())
        self._client = HttpClient(name, PRISMA, base_url=base_url, auth=login, timeout=config.timeout, transport=transport)

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
        return self._client.json_object(await self._client.call("alerts", "POST", "/v2/alert", params={"detailed": "true"}, json=body))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _read_cursor(cursor: str | None) -> dict[str, Any]:
    """Return {start, end, token} from our cursor; {} on the first run."""
    return json_cursor(cursor, "prisma cloud", lambda state: isinstance(state.get("end"), int)) or {}


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
