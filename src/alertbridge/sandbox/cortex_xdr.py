"""The Cortex XDR emulator: `get_incidents` and `update_incident` under /public_api/v1/incidents, with both key security levels.

A standard key must arrive as it is in `Authorization`; an advanced key must
not: the emulator recomputes `sha256(key + nonce + timestamp)` from the
`x-xdr-nonce` and `x-xdr-timestamp` headers and refuses a timestamp more than
five minutes off, as the real tenant does. `update_incident` takes
`{"request_data": {"incident_id", "update_data": {...}}}` and answers
`{"reply": true}`; an unknown incident is a 404 here (the docs name no status). Errors use XDR's
`{"reply": {"err_code", "err_msg", "err_extra"}}` body. Faults count calls,
not wall-clock time, so tests that use them are deterministic.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultInjection, Faults, Refusals
from .samples import VENDOR_SAMPLES

SAMPLE = "cortex-xdr/get-incidents-response.json"
API_KEY_ID, API_KEY = "7", "sandbox-xdr-key"
MAX_PAGE = 100
CLOCK_SKEW_MS = 5 * 60 * 1000
OPERATORS = {
    "gte": lambda have, want: have >= want,
    "lte": lambda have, want: have <= want,
    "eq": lambda have, want: have == want,
    "in": lambda have, want: isinstance(want, list) and have in want,
}
FIELDS = {"modification_time", "creation_time", "incident_id_list", "status", "description", "alert_sources"}


@dataclass
class XdrState:
    """The tenant in memory: incidents, the one API key and the fault counters."""

    incidents: list[dict[str, Any]]
    api_key_id: str
    api_key: str
    auth_type: Literal["advanced", "standard"]


def xdr_error(status: int, message: str, extra: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """Answer with XDR's error body."""
    return JSONResponse({"reply": {"err_code": status, "err_msg": message, "err_extra": extra}}, status_code=status, headers=headers)


class XdrRefusals(Refusals):
    """XDR's error body: {"reply": {"err_code", "err_msg", "err_extra"}}."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer in XDR's shape."""
        return xdr_error(status, message).body, {"Content-Type": "application/json"}


def _authentic(state: XdrState, headers: Any) -> bool:
    if headers.get("x-xdr-auth-id") != state.api_key_id:
        return False
    given = headers.get("authorization", "")
    if state.auth_type == "standard":
        return hmac.compare_digest(given, state.api_key)
    nonce, stamp = headers.get("x-xdr-nonce", ""), headers.get("x-xdr-timestamp", "")
    if len(nonce) != 64 or not stamp.isdigit() or abs(int(stamp) - time.time() * 1000) > CLOCK_SKEW_MS:
        return False
    expected = hashlib.sha256(f"{state.api_key}{nonce}{stamp}".encode()).hexdigest()
    return hmac.compare_digest(given, expected)


def _select(incidents: list[dict[str, Any]], request_data: dict[str, Any]) -> list[dict[str, Any]]:
    """Filter and sort as get_incidents does; raise ValueError for what the real API would refuse."""
    found = list(incidents)
    for rule in request_data.get("filters") or []:
        name, operator, want = rule.get("field"), rule.get("operator"), rule.get("value")
        if name not in FIELDS or operator not in OPERATORS:
            raise ValueError(f"unsupported filter {name!r} {operator!r}")
        key = "incident_id" if name == "incident_id_list" else name
        found = [i for i in found if i.get(key) is not None and OPERATORS[operator](i[key], want)]
    sort = request_data.get("sort")
    if sort:
        if sort.get("field") not in ("modification_time", "creation_time") or sort.get("keyword") not in ("asc", "desc"):
            raise ValueError(f"unsupported sort {sort!r}")
        found.sort(key=lambda i: (i.get(sort["field"]) or 0, str(i.get("incident_id"))), reverse=sort["keyword"] == "desc")
    return found


UPDATABLE = {"assigned_user_mail", "assigned_user_pretty_name", "status", "severity", "manual_severity", "resolve_comment", "unassign_user"}
UPDATE_STATUSES = {
    "new", "under_investigation", "resolved_threat_handled", "resolved_known_issue", "resolved_duplicate", "resolved_false_positive",
    "resolved_true_positive", "resolved_security_testing", "resolved_other",
}  # fmt: skip


def _check_update(update: Any) -> None:
    """Raise ValueError for an update_data the real API refuses."""
    if not isinstance(update, dict) or not update:
        raise ValueError("update_data must be a non-empty object")
    if unknown := sorted(set(update) - UPDATABLE):
        raise ValueError(f"unknown fields {unknown}")
    if "status" in update and update["status"] not in UPDATE_STATUSES:
        raise ValueError(f"invalid status {update['status']!r}")


def create_app(
    items: list[dict[str, Any]] | None = None,
    *,
    api_key_id: str = API_KEY_ID,
    api_key: str = API_KEY,
    auth_type: Literal["advanced", "standard"] = "advanced",
    rate_limit_every: int | None = None,
    retry_after: int = 2,
) -> FastAPI:
    """Build the emulator; `rate_limit_every` makes every Nth call a 429 with Retry-After."""
    app = FastAPI(title="alertbridge Cortex XDR sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    state = XdrState([dict(i) for i in (items if items is not None else default_incidents())], api_key_id, api_key, auth_type)
    app.state.xdr = state
    app.state.faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after)
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=XdrRefusals())

    @app.post("/public_api/v1/incidents/get_incidents")
    async def get_incidents(request: Request):
        return await _answer(state, request)

    @app.post("/public_api/v1/incidents/update_incident")
    async def update_incident(request: Request):
        if not _authentic(state, request.headers):
            return xdr_error(401, "Public API request unauthorized")
        try:
            request_data = json.loads(await request.body())["request_data"]
            incident_id, update = str(request_data["incident_id"]), request_data["update_data"]
            _check_update(update)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return xdr_error(400, "Bad Request", extra=f"{type(exc).__name__}: {exc}")
        incident = next((i for i in state.incidents if str(i.get("incident_id")) == incident_id), None)
        if incident is None:
            return xdr_error(404, f"Incident {incident_id} was not found")
        incident.update(update)
        incident["modification_time"] = int(time.time() * 1000)
        return JSONResponse({"reply": True})

    return app


async def _answer(state: XdrState, request: Request) -> JSONResponse:
    if not _authentic(state, request.headers):
        return xdr_error(401, "Public API request unauthorized")
    try:
        request_data = json.loads(await request.body())["request_data"]
        start, end = int(request_data.get("search_from", 0)), int(request_data.get("search_to", MAX_PAGE))
        if not 0 <= start < end or end - start > MAX_PAGE:
            raise ValueError(f"search_from/search_to must select 1..{MAX_PAGE} results")
        found = _select(state.incidents, request_data)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        return xdr_error(400, "Bad Request", extra=f"{type(exc).__name__}: {exc}")
    page = found[start:end]
    return JSONResponse({"reply": {"total_count": len(found), "result_count": len(page), "incidents": page}})


def default_incidents() -> list[dict[str, Any]]:
    """Serve the real sample's incidents when the vendor folder has them, else our own few."""
    sample = VENDOR_SAMPLES / SAMPLE
    if sample.exists():
        return json.loads(sample.read_text(encoding="utf-8"))["reply"]["incidents"]
    return [
        {
            "incident_id": str(n), "incident_name": name, "description": f"Sandbox incident: {name}",
            "creation_time": 1767261600000 + n * 60000, "modification_time": 1767261600000 + n * 60000,
            "detection_time": None, "status": status, "severity": severity, "alert_count": 1, "host_count": 1,
            "user_count": 1, "hosts": [f"sandbox-host-{n}:agent{n}"], "users": ["sandbox\\user"],
            "incident_sources": ["XDR Agent"], "xdr_url": f"https://sandbox.xdr.example/incident-view?caseId={n}",
        }
        for n, (name, status, severity) in enumerate(
            [("Ransomware behaviour on a file server", "new", "critical"),
             ("Credential theft attempt", "under_investigation", "high"),
             ("Port scan from a workstation", "resolved_false_positive", "low")], start=1,
        )
    ]  # fmt: skip
