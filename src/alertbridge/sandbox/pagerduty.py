"""The PagerDuty emulator: Events API v2 ``POST /v2/enqueue`` over a few services, with PagerDuty's deduplication.

An event goes to the service whose integration key is its ``routing_key``.
A ``trigger`` whose ``dedup_key`` names an open alert (triggered or
acknowledged) is folded into it (one more log entry, no new incident); after
the alert is resolved the same key opens a new one. ``acknowledge`` and
``resolve`` of a key with no open alert are accepted and change nothing, as
PagerDuty does. Bodies are checked as the spec says (required payload fields,
severities); answers are the spec's 202/400/429 shapes
(https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ._channel_faults import ChannelFaults, add_admin
from .faults import FaultInjection, Refusals

SERVICES = {"sandboxroutingkey00000000000soc0": "SOC", "sandboxroutingkey0000000network0": "Network"}
SEVERITIES = {"critical", "error", "warning", "info"}
ACTIONS = {"trigger", "acknowledge", "resolve"}
OPEN = ("triggered", "acknowledged")


@dataclass
class PagerDutyState:
    """Incidents by service, and every event received."""

    services: dict[str, str] = field(default_factory=lambda: dict(SERVICES))
    incidents: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    faults: ChannelFaults = field(default_factory=lambda: ChannelFaults(limits=[(60.0, 120)]))
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def open_incident(self, service: str, dedup_key: str) -> dict[str, Any] | None:
        """Return the service's open incident with this dedup_key, if any."""
        return next((i for i in self.incidents if i["service"] == service and i["dedup_key"] == dedup_key and i["status"] in OPEN), None)

    def apply(self, service: str, event: dict[str, Any]) -> str:
        """Apply one valid event; return its dedup_key."""
        action, key = event["event_action"], event.get("dedup_key") or uuid.uuid4().hex
        incident = self.open_incident(service, key)
        stamp = datetime.now(UTC).isoformat()
        if action == "trigger" and incident is None:
            payload = event["payload"]
            incident = {"incident_number": next(self._numbers), "service": service, "dedup_key": key, "status": "triggered",
                        "summary": payload["summary"][:1024], "severity": payload["severity"], "created_at": stamp,
                        "links": event.get("links", []), "log": []}
            self.incidents.append(incident)
        elif incident is not None and action != "trigger":
            incident["status"] = {"acknowledge": "acknowledged", "resolve": "resolved"}[action]
        if incident is not None:
            incident["log"].append({"action": action, "at": stamp})
        return key


def event_problems(event: Any) -> list[str]:
    """Return what makes an event invalid, in PagerDuty's words."""
    if not isinstance(event, dict):
        return ["Event object format is unrecognized"]
    problems = []
    if event.get("event_action") not in ACTIONS:
        problems.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    if event.get("event_action") in ("acknowledge", "resolve") and not event.get("dedup_key"):
        problems.append("'dedup_key' is required for acknowledge and resolve events")
    if event.get("event_action") == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return problems + ["'payload' is missing or not an object"]
        problems += [f"'payload.{name}' is missing or blank" for name in ("summary", "source") if not str(payload.get(name) or "").strip()]
        if payload.get("severity") not in SEVERITIES:
            problems.append("'payload.severity' is invalid (must be one of critical, error, warning, info)")
    for link in event.get("links") or []:
        if not isinstance(link, dict) or not link.get("href"):
            problems.append("'links' entries need an 'href'")
    return problems


def _answer(status: int, message: str, errors: list[str] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    name = {400: "invalid event", 429: "throttle event"}.get(status, "error")
    body: dict[str, Any] = {"status": name, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


class PagerDutyRefusals(Refusals):
    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """PagerDuty's {"status", "message"} for a 429 or a 5xx."""
        if status == 429:
            body = {"status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later."}
        else:
            body = {"status": "error", "message": "Internal server error"}
        return json.dumps(body).encode(), {"Content-Type": "application/json"}


REFUSALS = PagerDutyRefusals()


def create_app(state: PagerDutyState | None = None) -> FastAPI:
    """Build the PagerDuty emulator."""
    app = FastAPI(title="alertbridge PagerDuty sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.pagerduty = state = state or PagerDutyState()

    @app.post("/v2/enqueue")
    async def enqueue(request: Request) -> Response:
        """Accept one event (202), or say why not (400, 429)."""
        try:
            event = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"status": "Unrecognized object", "message": "Event object format is unrecognized",
                                 "errors": ["JSON parse error"]}, status_code=400)
        service = state.services.get(event.get("routing_key", "") if isinstance(event, dict) else "")
        if (answer := await state.faults.gate(str(service), REFUSALS)) is not None:
            return answer
        if service is None:
            return _answer(400, "Event object is invalid", ["Invalid routing key"])
        if problems := event_problems(event):
            return _answer(400, "Event object is invalid", problems)
        key = state.apply(service, event)
        state.events.append({"service": service, **{k: v for k, v in event.items() if k != "routing_key"}, "dedup_key": key})
        await state.faults.answer_late()
        return JSONResponse({"status": "success", "message": "Event processed", "dedup_key": key}, status_code=202)

    app.state.faults = state.faults
    app.add_middleware(FaultInjection, faults=state.faults, refusals=REFUSALS)
    add_admin(app, state.faults, lambda: {"incidents": state.incidents, "events": len(state.events)})
    return app
