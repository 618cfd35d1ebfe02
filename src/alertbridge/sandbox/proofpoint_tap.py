"""The Proofpoint TAP SIEM API emulator: GET /v2/siem/all with basic auth and the API's window rules.

It serves each item in the window that holds its `messageTime` or `clickTime`,
under the array named by the item's `eventType` (which it strips, as the real
API never sends it). It refuses what the real API refuses with 400: windows
longer than an hour or shorter than thirty seconds, starts older than seven
days (https://help.proofpoint.com/Threat_Insight_Dashboard/API_Documentation/SIEM_API).
The exact wording of Proofpoint's 400 bodies is not published; ours are plain text in its manner.
Without items it serves the real messagesDelivered samples, restamped over the
last hour so that a fresh poller finds them, else a few synthetic events.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from .faults import FaultInjection, Faults, Refusals, TokenBucket
from .samples import VENDOR_SAMPLES

EVENT_TYPES = ("messagesDelivered", "messagesBlocked", "clicksPermitted", "clicksBlocked")
SAMPLE = "proofpoint/tap-siem-messages-delivered-ndjson.log"
PRINCIPAL, SECRET = "sandbox-principal", "sandbox-secret"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def default_items(now: datetime) -> list[dict[str, Any]]:
    """Return the real samples restamped over the last hour, or our own few events without them."""
    folder = VENDOR_SAMPLES
    path = folder / SAMPLE
    if path.exists():
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [{**item, "eventType": "messagesDelivered", "messageTime": _iso(now - timedelta(minutes=5 * (len(lines) - i)))}
                for i, item in enumerate(lines)]
    threat = {"threatID": "0" * 64, "threatStatus": "active", "classification": "phish", "threatType": "url",
              "threat": "http://login.example.net/verify", "threatUrl": "https://threatinsight.proofpoint.com/x/threat/email/" + "0" * 64}
    return [
        {"eventType": "messagesDelivered", "GUID": "sandbox-guid-1", "QID": "r2FNwRHF004109", "messageTime": _iso(now - timedelta(minutes=20)),
         "subject": "Your mailbox is full", "sender": "it-desk@example.net", "recipient": ["ana@example.com"], "senderIP": "192.0.2.10",
         "phishScore": 96, "spamScore": 10, "malwareScore": 0, "impostorScore": 0, "threatsInfoMap": [threat]},
        {"eventType": "clicksPermitted", "id": "sandbox-click-1", "GUID": "sandbox-guid-1", "clickTime": _iso(now - timedelta(minutes=10)),
         "classification": "phish", "url": threat["threat"], "recipient": "ana@example.com", "sender": "it-desk@example.net",
         "clickIP": "198.51.100.7", "senderIP": "192.0.2.10", "threatID": threat["threatID"], "threatURL": threat["threatUrl"],
         "threatStatus": "active", "userAgent": "Mozilla/5.0"},
    ]


class ProofpointRefusals(Refusals):
    """Plain-text errors; a 429 without Retry-After."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer in plain text, as the SIEM API does."""
        return message.encode(), {"Content-Type": "text/plain; charset=utf-8"}

    def throttled(self, faults: Faults, wait: float, bucket: TokenBucket | None) -> dict[str, str]:
        """Send no Retry-After: Proofpoint documents the 429, but its budget is a rolling 24 hours."""
        return {}


def create_app(items: list[dict[str, Any]] | None = None, *, principal: str = PRINCIPAL, secret: str = SECRET,
               rate_limit_every: int | None = None, now: Callable[[], datetime] | None = None) -> FastAPI:
    """Build the emulator; `rate_limit_every=n` answers every n-th call with 429; `now` replaces the clock."""
    clock = now or (lambda: datetime.now(UTC))
    app = FastAPI(title="alertbridge Proofpoint TAP sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.items = default_items(clock()) if items is None else list(items)
    app.state.calls = []  # the query of every call, for tests
    app.state.faults = Faults(rate_limit_every=rate_limit_every)
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=ProofpointRefusals())
    expected = "Basic " + base64.b64encode(f"{principal}:{secret}".encode()).decode()

    @app.get("/v2/siem/all")
    async def siem_all(request: Request) -> Response:
        """Return every event in the requested window, grouped by type."""
        app.state.calls.append(dict(request.query_params))
        if request.headers.get("authorization") != expected:
            return PlainTextResponse("The credentials provided were invalid.", status_code=401)
        window = _window(request.query_params, clock())
        if isinstance(window, str):
            return PlainTextResponse(window, status_code=400)
        start, end = window
        body: dict[str, Any] = {"queryEndTime": _iso(end), **{event_type: [] for event_type in EVENT_TYPES}}
        for item in app.state.items:
            moment = _when(item.get("clickTime") or item.get("messageTime"))
            if start <= moment <= end and item.get("eventType") in EVENT_TYPES:
                body[item["eventType"]].append({k: v for k, v in item.items() if k != "eventType"})
        return JSONResponse(body)

    return app


def _window(query: Any, now: datetime) -> tuple[datetime, datetime] | str:
    """Return the requested window, or the reason the API refuses it."""
    if query.get("format", "syslog").lower() != "json":
        return "The sandbox serves format=json only."
    given = [name for name in ("interval", "sinceTime", "sinceSeconds") if name in query]
    if len(given) != 1:
        return "Exactly one of the interval, sinceTime or sinceSeconds parameters must be specified."
    try:
        if "interval" in query:
            first, _, last = query["interval"].partition("/")
            start, end = _when(first), _when(last)
        elif "sinceTime" in query:
            start, end = _when(query["sinceTime"]), now
        else:
            start, end = now - timedelta(seconds=int(query["sinceSeconds"])), now
    except ValueError:
        return "The time parameters could not be parsed as ISO8601 values."
    if end - start > timedelta(hours=1):
        return "The requested interval is too long. The maximum interval is 1 hour."
    if end - start < timedelta(seconds=30):
        return "The requested interval is too short. The minimum interval is 30 seconds."
    if start < now - timedelta(days=7):
        return "The requested start time is too far into the past. Data is available for the last 7 days."
    return start, end
