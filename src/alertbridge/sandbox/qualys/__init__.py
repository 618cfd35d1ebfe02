"""The Qualys emulator: the API server (VM detections, KnowledgeBase, PC posture) and the gateway (FIM), on one base URL.

    GET|POST /api/2.0/fo/asset/host/vm/detection/?action=list   basic auth + X-Requested-With; truncation by WARNING/URL
    GET|POST /api/2.0/fo/knowledge_base/vuln/?action=list&ids=…
    GET|POST /api/2.0/fo/compliance/posture/info/?action=list&policy_id=…
    POST     /auth                                   form username, password, token=true -> a JWT
    POST     /fim/v2|v3/incidents/search, /fim/v2/incidents/{id}/events/search   bearer JWT
    POST     /_sandbox/scan                          run a scan that fixes some detections and re-opens others

Every answer carries the subscription's limits (``X-RateLimit-*``,
``X-Concurrency-Limit-*``); a call over them is a 409 with a SIMPLE_RETURN,
code 1965 (rate) or 1960 (concurrency), as Qualys answers. It serves a
generated subscription (``subscription.py``) or, with ``samples=True``, the real
detection and KnowledgeBase samples as they are. ``app.state.qualys`` holds the
subscription, the knobs tests turn and the call log; ``app.state.faults`` the
shared fault layer's knobs (latency, 5xx, hangs).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ..faults import FaultInjection, Faults, Refusals
from ..samples import VENDOR_SAMPLES
from . import render
from .subscription import POLICY_ID, Subscription, generate

DETECTION_SAMPLE = "qualys/host-list-vm-detection-output.xml"
KB_SAMPLE = "qualys/knowledgebase-vuln-list-output.xml"
FIM_SAMPLE = "qualys/fim-incidents-search-response.json"
USERNAME, PASSWORD = "sandbox_ab1", "sandbox-password"
RANGE = re.compile(r"lastUpdatedBy\.date:\s*\['(\d+)'\.\.'(\d+)'\]")


@dataclass
class QualysState:
    """The subscription, the credentials, the limits and fault knobs, and the call log."""

    subscription: Subscription
    samples: bool
    rate_limit: int = 300  # calls per API per window, as in a standard subscription
    rate_window: int = 3600
    concurrency_limit: int = 2
    latency: float = 0.0  # seconds each API call takes, so that concurrent calls overlap
    conflict_next: list[str] = field(default_factory=list)  # 409 codes (1960, 1965) to answer next, in order
    corrupt_next: int = 0  # detection pages to cut off in the middle of the document
    body_next: bytes | None = None  # a body to serve once instead of the next detection page
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    peak: dict[str, int] = field(default_factory=dict)  # the most calls of each API that ran at once
    running: dict[str, int] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic


def create_app(subscription: Subscription | None = None, *, samples: bool = False, clock: Callable[[], float] = time.monotonic) -> FastAPI:
    """Build the emulator over `subscription` (default: 40 generated hosts, scanned once), or the real samples."""
    app = FastAPI(title="alertbridge Qualys sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    if subscription is None:
        subscription = generate()
        subscription.scan()
    app.state.qualys = QualysState(subscription, samples, clock=clock)
    # Latency, 5xx, hangs from the shared fault layer; Qualys's own limits (409s) are answered below, as Qualys does.
    app.state.faults = Faults(calls=app.state.qualys.calls)  # the fault layer's call log is the emulator's
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=QualysRefusals())

    @app.api_route("/api/2.0/fo/asset/host/vm/detection/", methods=["GET", "POST"])
    async def detections(request: Request) -> Response:
        return await _guarded(request, "detection", _detections)

    @app.api_route("/api/2.0/fo/knowledge_base/vuln/", methods=["GET", "POST"])
    async def knowledge_base(request: Request) -> Response:
        return await _guarded(request, "knowledge_base", _knowledge_base)

    @app.api_route("/api/2.0/fo/compliance/posture/info/", methods=["GET", "POST"])
    async def postures(request: Request) -> Response:
        return await _guarded(request, "posture", _postures)

    @app.post("/auth")
    async def auth(request: Request) -> Response:
        """Issue a JWT for the right user name and password (the gateway answers 201 with the token as text)."""
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
        if (form.get("username"), form.get("password")) != (USERNAME, PASSWORD):
            return JSONResponse({"errorCode": "401", "message": "Invalid username or password"}, status_code=401)
        token = "eyJhbGciOiJIUzI1NiJ9." + secrets.token_urlsafe(24)
        app.state.qualys.tokens.add(token)
        return Response(token, status_code=201, media_type="text/plain")

    @app.post("/fim/{version}/incidents/search")
    async def incidents(version: str, request: Request) -> Response:
        return await _guarded(request, "fim_incidents", _incidents, gateway=True)

    @app.post("/fim/v2/incidents/{incident_id}/events/search")
    async def events(incident_id: str, request: Request) -> Response:
        return await _guarded(request, "fim_events", lambda r, s: _events(incident_id, s), gateway=True)

    @app.post("/_sandbox/scan")
    async def scripted_scan(request: Request) -> JSONResponse:
        """Scan again after fixing a fifth of what is vulnerable and re-opening a tenth of what was fixed."""
        subscription: Subscription = request.app.state.qualys.subscription
        rng = random.Random(subscription.scans)
        open_now = sorted(subscription.vulnerable)
        fixed = sorted(set(subscription.detections) - subscription.vulnerable)
        for pair in rng.sample(open_now, len(open_now) // 5):
            subscription.fix(*pair)
        for pair in rng.sample(fixed, len(fixed) // 10):
            subscription.infect(*pair)
        moment = subscription.scan()
        return JSONResponse({"scan": subscription.scans, "at": render.when(moment), "vulnerable": len(subscription.vulnerable)})

    return app


class QualysRefusals(Refusals):
    """Qualys says no with a SIMPLE_RETURN."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer with a SIMPLE_RETURN carrying the message."""
        return render.simple_return(datetime.now(UTC), str(status), message), {"Content-Type": "text/xml;charset=UTF-8"}


Handler = Callable[[Request, QualysState], Awaitable[Response]]


async def _guarded(request: Request, api: str, handler: Handler, *, gateway: bool = False) -> Response:
    """Check the credentials and the subscription's limits, run the call, and add the limit headers to its answer."""
    state: QualysState = request.app.state.qualys
    now, started = datetime.now(UTC), state.clock()
    if not gateway and not request.headers.get("x-requested-with"):
        return _xml(render.simple_return(now, "1906", "X-Requested-With header is required for this API."), 400)
    if not (_bearer_ok(request, state) if gateway else _basic_ok(request)):
        return _xml(render.simple_return(now, "2000", "Bad Login/Password"), 401)
    calls = state.history.setdefault(api, [])
    calls[:] = [t for t in calls if t > started - state.rate_window]
    forced = state.conflict_next.pop(0) if state.conflict_next else None
    if forced == "1965" or len(calls) >= state.rate_limit:
        wait = 60 if forced else int(calls[0] + state.rate_window - started) + 1
        text = f"This API cannot be run again for another {wait} seconds."
        return _xml(render.simple_return(now, "1965", text), 409, _headers(state, api, calls, to_wait=wait))
    if forced == "1960" or state.running.get(api, 0) >= state.concurrency_limit:
        text = f"This API cannot be run again until {state.running.get(api, 0)} currently running instances have finished."
        return _xml(render.simple_return(now, "1960", text), 409, _headers(state, api, calls))
    calls.append(started)
    state.running[api] = state.running.get(api, 0) + 1
    state.peak[api] = max(state.peak.get(api, 0), state.running[api])
    try:
        if state.latency:
            await asyncio.sleep(state.latency)
        response = await handler(request, state)
    finally:
        state.running[api] -= 1
    response.headers.update(_headers(state, api, calls))
    return response


def _headers(state: QualysState, api: str, calls: list[float], to_wait: int = 0) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(state.rate_limit), "X-RateLimit-Window-Sec": str(state.rate_window),
        "X-RateLimit-Remaining": str(max(0, state.rate_limit - len(calls))), "X-RateLimit-ToWait-Sec": str(to_wait),
        "X-Concurrency-Limit-Limit": str(state.concurrency_limit), "X-Concurrency-Limit-Running": str(state.running.get(api, 0)),
    }


def _basic_ok(request: Request) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return scheme.lower() == "basic" and (user, password) == (USERNAME, PASSWORD)


def _bearer_ok(request: Request, state: QualysState) -> bool:
    return request.headers.get("authorization", "").removeprefix("Bearer ") in state.tokens


async def _params(request: Request) -> dict[str, str]:
    """Return the call's parameters, from the query string and (for POST) the form body, as Qualys reads both."""
    params = dict(request.query_params)
    if request.method == "POST":
        params |= {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
    return params


def _xml(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="text/xml;charset=UTF-8", headers=headers)


def _numbers(text: str | None) -> set[int] | None:
    """Read '4,5' or '1-3,7' into the numbers it names; None when absent."""
    if not text:
        return None
    found: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        found |= set(range(int(low), int(high or low) + 1))
    return found


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _refused(text: str) -> Response:
    return _xml(render.simple_return(datetime.now(UTC), "1905", text), 400)


def _next_url(request: Request, params: dict[str, str], id_min: int) -> str:
    return str(request.url.replace(query=urlencode({**params, "id_min": str(id_min)})))


async def _detections(request: Request, state: QualysState) -> Response:
    params = await _params(request)
    if params.get("action") != "list":
        return _refused("Parameter action is required and must be list.")
    if state.body_next is not None:
        body, state.body_next = state.body_next, None
        return _xml(body)
    if state.samples:
        return _xml((VENDOR_SAMPLES / DETECTION_SAMPLE).read_bytes())
    sub, now = state.subscription, datetime.now(UTC).replace(microsecond=0)
    try:
        since, id_min = _time(params.get("vm_processed_after")), int(params.get("id_min", 0))
        limit, severities, qids = int(params.get("truncation_limit", 1000)), _numbers(params.get("severities")), _numbers(params.get("qids"))
    except ValueError as exc:
        return _refused(f"Invalid parameter value: {exc}")
    statuses = set(params.get("status", "New,Active,Re-Opened").split(","))
    kind = params.get("include_vuln_type")
    chosen = []
    for host in sorted(sub.hosts.values(), key=lambda h: h.id):
        if host.id < id_min or host.processed is None or (since is not None and host.processed < since):
            continue
        found = [d for (host_id, qid), d in sorted(sub.detections.items()) if host_id == host.id and d.status in statuses
                 and (severities is None or sub.kb[qid].severity in severities) and (qids is None or qid in qids)
                 and (kind is None or sub.kb[qid].detection_type.lower() == kind)]
        if found:
            chosen.append((host, found))
    page, rest = (chosen[:limit], chosen[limit:]) if limit else (chosen, [])
    next_url = _next_url(request, params, rest[0][0].id) if rest else None
    body = render.detections(now, page, sub.kb, show_results=params.get("show_results") == "1", next_url=next_url, limit=limit)
    if state.corrupt_next:
        state.corrupt_next -= 1
        body = body[: len(body) // 2]  # a page cut off mid-document, with a correct Content-Length
    return _xml(body)


async def _knowledge_base(request: Request, state: QualysState) -> Response:
    params = await _params(request)
    if params.get("action") != "list":
        return _refused("Parameter action is required and must be list.")
    if state.samples:
        return _xml((VENDOR_SAMPLES / KB_SAMPLE).read_bytes())
    try:
        ids = _numbers(params.get("ids"))
    except ValueError as exc:
        return _refused(f"Invalid parameter value: {exc}")
    kb = state.subscription.kb
    return _xml(render.knowledge_base(datetime.now(UTC), [kb[qid] for qid in sorted(kb) if ids is None or qid in ids]))


async def _postures(request: Request, state: QualysState) -> Response:
    params = await _params(request)
    if params.get("action") != "list" or params.get("policy_id") != str(POLICY_ID):
        return _refused(f"Parameter action must be list and policy_id a policy of this subscription ({POLICY_ID}).")
    sub = state.subscription
    try:
        since, id_min, limit = _time(params.get("status_changes_since")), int(params.get("id_min", 0)), int(params.get("truncation_limit", 5000))
    except ValueError as exc:
        return _refused(f"Invalid parameter value: {exc}")
    statuses = set(params["status"].split(",")) if params.get("status") else None
    chosen = [p for p in sorted(sub.postures.values(), key=lambda p: p.id) if p.id >= id_min
              and (statuses is None or p.status in statuses) and (since is None or p.modified >= since)]
    page, rest = (chosen[:limit], chosen[limit:]) if limit else (chosen, [])
    next_url = _next_url(request, params, rest[0].id) if rest else None
    return _xml(render.postures(datetime.now(UTC), page, sub.hosts, next_url=next_url, limit=limit))


async def _incidents(request: Request, state: QualysState) -> Response:
    try:
        body = json.loads(await request.body())
        number, size = int(body.get("pageNumber", 0)), min(int(body.get("pageSize", 10)), 200)
    except (ValueError, TypeError, AttributeError):
        return JSONResponse({"errorCode": "400", "message": "Invalid request body"}, status_code=400)
    query = str(body.get("filter") or "")
    window = RANGE.search(query)
    if RANGE.sub("", query).strip():
        return JSONResponse({"errorCode": "400", "message": f"The sandbox reads only lastUpdatedBy.date ranges: {query}"}, status_code=400)
    incidents = [*_sample_incidents(state), *state.subscription.incidents]
    if window:
        low, high = int(window.group(1)), int(window.group(2))
        incidents = [i for i in incidents if low <= i["lastUpdatedBy"]["date"] <= high]
    incidents.sort(key=lambda i: i["lastUpdatedBy"]["date"])
    page = incidents[number * size:(number + 1) * size]
    return JSONResponse([{"sortValues": [i["lastUpdatedBy"]["date"]], "data": {k: v for k, v in i.items() if not k.startswith("_")}} for i in page])


async def _events(incident_id: str, state: QualysState) -> Response:
    found = [i for i in state.subscription.incidents if i["id"] == incident_id]
    return JSONResponse([{"sortValues": [1], "data": {"id": f"{incident_id}-event-1", "incidentId": incident_id,
                                                      "severity": found[0]["_worst_event"], "type": "File", "action": "Content"}}] if found else [])


def _sample_incidents(state: QualysState) -> list[dict[str, Any]]:
    path = VENDOR_SAMPLES / FIM_SAMPLE
    return [entry["data"] for entry in json.loads(path.read_text(encoding="utf-8"))] if path.exists() else []
