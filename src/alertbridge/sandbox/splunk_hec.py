"""The Splunk HTTP Event Collector emulator: `POST /services/collector/event` with `Authorization: Splunk <token>`.

A body is one or more JSON event envelopes, back to back. Answers and error
codes are Splunk's (https://docs.splunk.com/Documentation/Splunk/latest/Data/TroubleshootHTTPEventCollector):
``{"text": "Success", "code": 0}``; 401 Token is required (2) / Invalid
authorization (3); 403 Invalid token (4); 400 No data (5), Invalid data
format (6), Incorrect index (7), Event field is required (12), Event field
cannot be blank (13), with ``invalid-event-number``; 503 Server is busy (9).
``app.state.hec.events`` holds what was indexed (``GET /_sandbox/state`` shows it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultInjection, Faults, Refusals

TOKEN = "00000000-0000-4000-8000-00000000hec0"


@dataclass
class HecState:
    """The collector: the one token it takes, the indexes it may write, and the events indexed."""

    token: str
    indexes: set[str]
    events: list[dict[str, Any]] = field(default_factory=list)


def hec_answer(status: int, text: str, code: int, **extra: Any) -> JSONResponse:
    """Answer as HEC does."""
    return JSONResponse({"text": text, "code": code, **extra}, status_code=status)


class HecRefusals(Refusals):
    """HEC's error body; a busy collector is 503 code 9."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer Server is busy for 5xx and 429, Invalid token for 401/403."""
        text, code = ("Invalid token", 4) if status in (401, 403) else ("Server is busy", 9)
        return json.dumps({"text": text, "code": code}).encode(), {"Content-Type": "application/json"}


def _envelopes(raw: str) -> list[Any]:
    """Split a body of back-to-back JSON objects; raise ValueError with the failing event's number."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(raw):
        while at < len(raw) and raw[at].isspace():
            at += 1
        if at == len(raw):
            break
        try:
            value, at = decoder.raw_decode(raw, at)
        except json.JSONDecodeError:
            raise ValueError(len(found)) from None
        found.append(value)
    return found


def create_app(*, token: str = TOKEN, indexes: set[str] | None = None, rate_limit_every: int | None = None, retry_after: int = 2) -> FastAPI:
    """Build the emulator; `indexes` are those the token may write besides its default `main`."""
    app = FastAPI(title="alertbridge Splunk HEC sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    state = HecState(token, {"main", *(indexes or {"notable_feedback"})})
    app.state.hec = state
    app.state.faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after)
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=HecRefusals())

    @app.get("/_sandbox/state")
    async def sandbox_state() -> JSONResponse:
        """Show the events indexed so far (sandbox only: no auth, not Splunk)."""
        return JSONResponse({"events": state.events})

    @app.post("/services/collector/event")
    @app.post("/services/collector")
    async def collect(request: Request) -> JSONResponse:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if not given:
            return hec_answer(401, "Token is required", 2)
        if scheme != "Splunk":
            return hec_answer(401, "Invalid authorization", 3)
        if given != state.token:
            return hec_answer(403, "Invalid token", 4)
        raw = (await request.body()).decode("utf-8", errors="replace")
        try:
            envelopes = _envelopes(raw)
        except ValueError as exc:
            return hec_answer(400, "Invalid data format", 6, **{"invalid-event-number": exc.args[0]})
        if not envelopes:
            return hec_answer(400, "No data", 5)
        for number, envelope in enumerate(envelopes):
            if not isinstance(envelope, dict) or "event" not in envelope:
                return hec_answer(400, "Event field is required", 12, **{"invalid-event-number": number})
            if envelope["event"] in ("", None, {}):
                return hec_answer(400, "Event field cannot be blank", 13, **{"invalid-event-number": number})
            if envelope.get("index", "main") not in state.indexes:
                return hec_answer(400, "Incorrect index", 7, **{"invalid-event-number": number})
        state.events += envelopes
        return hec_answer(200, "Success", 0)

    return app
