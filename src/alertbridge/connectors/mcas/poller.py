"""Microsoft Defender for Cloud Apps (MCAS), polled: the alerts of several tenants, each with its own token.

Each item the poller stores is ``{"tenant": <name>, "alert": <the vendor's alert>}``,
so that parse knows the tenant (``source.tenant``, which routes match with
``match.tenants``). The cursor is a JSON object with one position per tenant.
A tenant whose call fails (wrong token, 429, outage) is recorded in
``tenant_errors``, logged, counted in ``alertbridge_polls_total`` under
``<source>/<tenant>``, and left alone until ``retry_after`` or one
``interval`` passed; the other tenants go on. Only when every tenant polled
fails does ``poll`` raise (the first error), so the core backs off.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import structlog
from pydantic import Field, SecretStr, field_validator

from ...errors import ConnectorError, RateLimited, Retryable
from ...metrics import POLLS
from ...model import Severity
from .._values import json_cursor
from ..roles import Poller, PollerConfig, PollResult, StrictModel
from .api import PAGE_LIMIT, Position, list_alerts, tenant_client
from .parser import SEVERITY, McasParser

log = structlog.get_logger(__name__)


class McasTenant(StrictModel):
    """One Defender for Cloud Apps tenant and its API token."""

    name: str = Field(min_length=1, description="Tenant name: becomes the alerts' source.tenant, for routes' match.tenants", examples=["contoso"])
    url: str = Field(
        description="The tenant's API URL (Settings → Cloud Apps → API tokens shows it)",
        examples=["https://contoso.portal.cloudappsecurity.com", "http://127.0.0.1:8081/mcas/contoso"],
    )
    token: SecretStr = Field(description="An API token of this tenant (read-only Security Reader is enough)", examples=["${MCAS_CONTOSO_TOKEN}"])
    min_severity: Severity | None = Field(
        default=None, description="Ask only for alerts at or above this severity (info < low < medium < high); unset for all",
        examples=["medium"],
    )


class McasSource(McasParser, Poller):
    """Defender for Cloud Apps alerts, polled tenant by tenant; text-extracted users and IPs join the entities."""

    parser = McasParser

    class Config(McasParser.Config, PollerConfig):
        """The tenants to poll and how to read their alerts."""

        tenants: list[McasTenant] = Field(
            min_length=1, description="The tenants to poll, each with its own URL and token; names must differ",
            examples=[[{"name": "contoso", "url": "https://contoso.portal.cloudappsecurity.com", "token": "${MCAS_CONTOSO_TOKEN}"}]],
        )
        page_size: int = Field(default=PAGE_LIMIT, ge=1, le=PAGE_LIMIT, description="Alerts asked for per call and tenant", examples=[100])

        @field_validator("tenants")
        @classmethod
        def _unique(cls, tenants: list[McasTenant]) -> list[McasTenant]:
            names = [tenant.name for tenant in tenants]
            if len(set(names)) != len(names):
                raise ValueError(f"tenant names must differ: {names}")
            return tenants

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None, clock: Callable[[], float] = time.monotonic):
        super().__init__(name, config)
        self._tenants = {tenant.name: tenant for tenant in config.tenants}
        self.tenant_urls = {tenant.name: tenant.url for tenant in config.tenants}
        self._clients = {
            tenant.name: tenant_client(name, tenant.name, tenant.url, tenant.token, timeout=config.timeout, transport=transport)
            for tenant in config.tenants
        }
        self._clock = clock
        self._resume_at: dict[str, float] = {}
        self.tenant_errors: dict[str, str] = {}  # tenant name -> the last poll error, until it polls fine again

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of every tenant not backing off; one failing tenant does not stop the others."""
        positions = self._read_cursor(cursor)
        items: list[dict[str, Any]] = []
        failures: list[ConnectorError] = []
        more = False
        now = self._clock()
        due = [tenant for tenant in self._tenants.values() if self._resume_at.get(tenant.name, 0.0) <= now]
        if not due:
            wait = min(self._resume_at.values()) - now
            raise RateLimited(f"mcas {self.name}: every tenant is waiting out an error", retry_after=wait, cause="tenant-backoff")
        for tenant in due:
            position = positions[tenant.name]
            try:
                page, has_next = await list_alerts(
                    self._clients[tenant.name], position, self.config.page_size, _severities(tenant.min_severity)
                )
            except ConnectorError as exc:
                failures.append(exc)
                self._tenant_failed(tenant.name, exc, now)
                continue
            self.tenant_errors.pop(tenant.name, None)
            POLLS.labels(source=f"{self.name}/{tenant.name}", outcome="ok").inc()
            items += [{"tenant": tenant.name, "alert": alert} for alert in page]
            positions[tenant.name] = position.after(page)
            more = more or has_next
        if len(failures) == len(due):
            raise failures[0]
        state = {name: {"since": p.since, "skip": p.skip} for name, p in positions.items()}
        return PollResult(items, json.dumps(state, sort_keys=True), more=more)

    def _tenant_failed(self, tenant: str, exc: ConnectorError, now: float) -> None:
        self.tenant_errors[tenant] = str(exc)
        retry_after = (exc.retry_after if isinstance(exc, Retryable) else None) or 0.0
        self._resume_at[tenant] = now + max(retry_after, self.config.interval)
        POLLS.labels(source=f"{self.name}/{tenant}", outcome=exc.reason.value).inc()
        log.warning("mcas tenant poll failed", source=self.name, tenant=tenant, error=str(exc), retry_after=retry_after)

    def _read_cursor(self, cursor: str | None) -> dict[str, Position]:
        start = int((time.time() - self.config.backfill) * 1000)
        stored = json_cursor(cursor, "mcas", _valid_cursor) or {}
        known = {name: Position(p["since"], p["skip"]) for name, p in stored.items() if name in self._tenants}
        # A tenant added to the config since starts `backfill` ago; a removed one's position is dropped.
        return {name: known.get(name, Position(start)) for name in self._tenants}

    def item_id(self, item: dict[str, Any]) -> str:
        """Return tenant/alert id: ids are per tenant."""
        alert = item.get("alert")
        alert_id = alert.get("_id") if isinstance(alert, dict) else None
        if not isinstance(alert_id, str) or not alert_id:
            # Still stored, so that parse dead-letters it with the raw item kept.
            alert_id = "no-id:" + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:32]
        return f"{item.get('tenant')}/{alert_id}"

    async def aclose(self) -> None:
        """Release connections."""
        for client in self._clients.values():
            await client.aclose()


def _severities(minimum: Severity | None) -> list[int] | None:
    """Return the severityValue list at or above `minimum`: 3 (informational) ranks below 0 (low)."""
    return None if minimum is None else sorted(value for value, severity in SEVERITY.items() if severity.rank >= minimum.rank)


def _valid_cursor(state: dict[str, Any]) -> bool:
    """Tell a cursor of ours: a position {since, skip} (whole numbers) per tenant name."""
    return all(isinstance(p, dict) and type(p.get("since")) is int and type(p.get("skip")) is int for p in state.values())
