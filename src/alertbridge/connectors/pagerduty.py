"""PagerDuty: page the on-call through the Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/overview/).

    opened, severity raised, reopened, updated   trigger      (the first one opens the incident)
    acknowledged (ticket moved to in progress)  acknowledge
    resolved, ticket closed                     resolve

Every event of a case carries ``dedup_key`` = the case's stable reference, so
PagerDuty folds a retried or repeated trigger into the alert it already has:
sending an event twice has the effect of sending it once. A case that was never
paged (below the route's severity) is not acknowledged or resolved either. A
route pages another service by naming it (``target``) in ``services``.
"""

from __future__ import annotations

from typing import Any

import httpx2
from pydantic import Field, SecretStr

from ..errors import ConnectorError, Permanent
from ..model import CaseEvent, CaseEventKind, HealthEvent, Severity
from ._http import HttpClient, Vendor
from .notify_roles import HealthNotices, Idempotent
from .roles import Notifier, NotifierConfig, NotifyReceipt

SUMMARY_LIMIT = 1024  # PagerDuty cuts summaries at 1024 characters
DEFAULT_SEVERITIES = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}
ACTIONS = {CaseEventKind.acknowledged: "acknowledge", CaseEventKind.resolved: "resolve", CaseEventKind.ticket_closed: "resolve"}
STATE_AFTER = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}


class _PagerDuty(Vendor):
    def message(self, body: Any) -> str | None:
        """Read {"status", "message", "errors": [...]}: the message, then each error."""
        if not isinstance(body, dict) or not body.get("message"):
            return super().message(body)
        return "; ".join([str(body["message"]), *map(str, body.get("errors") or [])])


PAGERDUTY = _PagerDuty("pagerduty")


class PagerDutyConfig(NotifierConfig):
    """A PagerDuty service's Events API v2 integration (and optionally others, by name)."""

    routing_key: SecretStr = Field(description="Integration key of the service's 'Events API v2' integration", examples=["${PAGERDUTY_ROUTING_KEY}"])
    services: dict[str, SecretStr] = Field(default={}, description="More services' integration keys by name; a route pages one with `target`",
                                           examples=[{"network": "${PAGERDUTY_NETWORK_KEY}"}])
    url: str = Field(default="https://events.pagerduty.com", description="Events API base URL (EU accounts: https://events.eu.pagerduty.com)",
                     examples=["https://events.pagerduty.com"])
    severity_map: dict[Severity, str] = Field(default={Severity(k): v for k, v in DEFAULT_SEVERITIES.items()},
                                              description="PagerDuty severity (critical, error, warning, info) per alertbridge severity",
                                              examples=[DEFAULT_SEVERITIES])
    timeout: float = Field(default=10.0, gt=0, description="Seconds one call may take", examples=[10])


class PagerDutyNotifier(Notifier, Idempotent, HealthNotices):
    """Triggers, acknowledges and resolves one PagerDuty alert per case."""

    type = "pagerduty"
    Config = PagerDutyConfig
    config: PagerDutyConfig

    def __init__(self, name: str, config: PagerDutyConfig, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.client = HttpClient(name, PAGERDUTY, timeout=config.timeout, base_url=config.url.rstrip("/"), transport=transport)

    def _routing_key(self, target: str | None) -> str:
        if target is None:
            return self.config.routing_key.get_secret_value()
        if target not in self.config.services:
            raise Permanent(f"pagerduty: no service named {target!r} (known: {', '.join(sorted(self.config.services)) or 'none'})")
        return self.config.services[target].get_secret_value()

    async def notify(self, event: CaseEvent) -> NotifyReceipt | None:
        """Send the event's trigger, acknowledge or resolve; skip an acknowledge or resolve of a case never paged."""
        action = ACTIONS.get(event.kind, "trigger")
        state = event.thread.get("state")
        if action != "trigger" and state not in ("triggered", "acknowledged"):
            return None  # nothing open in PagerDuty for this case
        if action == "acknowledge" and state == "acknowledged":
            return None
        body: dict[str, Any] = {"routing_key": self._routing_key(event.target), "event_action": action, "dedup_key": event.reference}
        if action == "trigger":
            body |= self._trigger(event)
        await self._enqueue(body)
        return NotifyReceipt(event.reference, state={"state": STATE_AFTER[action]})

    def _trigger(self, event: CaseEvent) -> dict[str, Any]:
        summary = f"[{event.severity.value.upper()}] {event.title}" + (f" ({event.ticket_key})" if event.ticket_key else "")
        details = {"case": event.case_id, "reference": event.reference, "route": event.route, "alerts": event.alert_count,
                   "category": event.category, "hosts": event.hosts, "ticket": event.ticket_key, "message": event.text or None}
        links = [{"href": url, "text": text} for text, url in (("Ticket " + (event.ticket_key or ""), event.ticket_url),
                                                              ("alertbridge console", event.console_url),
                                                              ("Playbook", event.playbook_url)) if url]
        payload = {"summary": summary[:SUMMARY_LIMIT], "source": (event.hosts or [event.source or "alertbridge"])[0],
                   "severity": self.config.severity_map.get(event.severity, "error"), "timestamp": event.at.isoformat(),
                   "component": event.category or event.source or "alertbridge", "group": event.route, "class": event.category or "security",
                   "custom_details": {key: value for key, value in details.items() if value not in (None, [], "")}}
        return {"payload": payload, "links": links, "client": "alertbridge", **({"client_url": event.console_url} if event.console_url else {})}

    async def notify_health(self, event: HealthEvent) -> None:
        """Trigger a hub-health alert while the condition holds, resolve it when it clears."""
        body: dict[str, Any] = {"routing_key": self._routing_key(None), "dedup_key": f"alertbridge-health-{event.condition}",
                                "event_action": "trigger" if event.firing else "resolve"}
        if event.firing:
            body["payload"] = {"summary": f"alertbridge: {event.summary}"[:SUMMARY_LIMIT], "source": "alertbridge", "severity": "error",
                               "timestamp": event.at.isoformat(), "component": "alertbridge", "class": event.condition,
                               "custom_details": {str(k): v for k, v in event.details.items()}}
        await self._enqueue(body)

    async def _enqueue(self, body: dict[str, Any]) -> None:
        # 202 means accepted; 400 is permanent, 429 and 5xx are worth retrying (the API's own table).
        try:
            await self.client.call(body["event_action"], "POST", "/v2/enqueue", json=body)
        except ConnectorError as exc:
            exc.args = (str(exc).replace(body["routing_key"], "[redacted]"),)  # a 400 may quote the event back
            raise

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
