"""The Prisma Cloud CSPM API emulator: POST /login, GET /auth_token/extend and POST /v2/alert with page tokens.

Prisma Cloud answers a bad or expired token with a bare 401 whose reason is in
the `x-redlock-status` header (https://pan.dev/prisma-cloud/api/cspm/api-errors/);
so does this emulator. A token here expires after `expire_tokens_after` uses
rather than after ten minutes, so that tests need no clock. The filter
`timeRange.type` picks the time the window applies to: ALERT_OPENED `alertTime`,
the others `lastUpdated` (our reading of the console's "time range type"; no
default is documented, ours is ALERT_OPENED). Without items it
serves the alert of the real sample (line 1, restamped ten minutes ago), else
two synthetic alerts.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .faults import FaultInjection, Faults, Refusals
from .samples import VENDOR_SAMPLES

SAMPLE = "prisma-cloud/alerts-v2-ndjson.log"
ACCESS_KEY, SECRET_KEY = "sandbox-access-key", "sandbox-secret-key"


def _redlock_error(status: int, key: str) -> Response:
    return Response(status_code=status, headers={"x-redlock-status": json.dumps([{"i18nKey": key, "severity": "error", "subject": None}])})


def default_items() -> list[dict[str, Any]]:
    """Return the real sample alert, restamped to ten minutes ago, or two synthetic alerts without it."""
    now_ms = int(time.time() * 1000)
    folder = VENDOR_SAMPLES
    if (folder / SAMPLE).exists():
        first = json.loads((folder / SAMPLE).read_text(encoding="utf-8").splitlines()[0])
        return [{**first, "alertTime": now_ms - 600_000, "lastUpdated": now_ms - 600_000}]
    policy = {"policyId": "sandbox-policy-1", "name": "AWS S3 bucket publicly readable", "policyType": "config",
              "severity": "high", "description": "The bucket grants read to everyone.", "recommendation": "Remove the public grant."}
    resource = {"id": "sandbox-bucket", "name": "sandbox-bucket", "account": "Sandbox", "accountId": "000000000000",
                "cloudType": "aws", "resourceType": "STORAGE_BUCKET", "region": "AWS Virginia"}
    return [{"id": f"N-{n}", "status": "open", "reason": "NEW_ALERT", "alertTime": now_ms - n * 60_000, "lastUpdated": now_ms - n * 60_000,
             "policyId": policy["policyId"], "policy": policy, "resource": resource} for n in (2, 1)]


def create_app(items: list[dict[str, Any]] | None = None, *, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
               max_limit: int = 10000, rate_limit_every: int | None = None, retry_after: int = 2,
               expire_tokens_after: int | None = None) -> FastAPI:
    """Build the emulator: tokens expire after `expire_tokens_after` uses; every `rate_limit_every`-th alert call gets 429."""
    app = FastAPI(title="alertbridge Prisma Cloud sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.items = default_items() if items is None else list(items)
    app.state.tokens = {}  # token -> uses left (None: until the server stops)
    app.state.calls = []
    app.state.bodies = []  # the bodies of POST /v2/alert, for tests
    app.state.faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after)
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=Refusals(),
                       counted=lambda path: "alerts" if path == "/v2/alert" else None)

    def issue() -> str:
        token = secrets.token_urlsafe(24)
        app.state.tokens[token] = expire_tokens_after
        return token

    def spend(request: Request) -> bool:
        token = request.headers.get("x-redlock-auth", "")
        if token not in app.state.tokens or app.state.tokens[token] == 0:
            return False
        if app.state.tokens[token] is not None:
            app.state.tokens[token] -= 1
        return True

    @app.post("/login")
    async def login(request: Request) -> Response:
        """Exchange an access key and secret for a token."""
        app.state.calls.append(("POST", "/login"))
        body = await request.json()
        if not isinstance(body, dict) or (body.get("username"), body.get("password")) != (access_key, secret_key):
            return _redlock_error(401, "invalid_credentials")
        return JSONResponse({"token": issue(), "message": "login_successful",
                             "customerNames": [{"customerName": "sandbox", "prismaId": "000000000000", "tosAccepted": True}]})

    @app.get("/auth_token/extend")
    async def extend(request: Request) -> Response:
        """Trade a still-valid token for a fresh one."""
        app.state.calls.append(("GET", "/auth_token/extend"))
        if not spend(request):
            return _redlock_error(401, "invalid_token")
        return JSONResponse({"token": issue(), "message": "login_successful"})

    @app.post("/v2/alert")
    async def list_alerts(request: Request) -> Response:
        """List alerts whose alertTime is in the absolute time range, sorted by alertTime, a page at a time."""
        app.state.calls.append(("POST", "/v2/alert"))
        if not spend(request):
            return _redlock_error(401, "invalid_token")
        body = await request.json()
        app.state.bodies.append(body)
        try:
            window = body["timeRange"]["value"]
            start, end, limit = int(window["startTime"]), int(window["endTime"]), int(body.get("limit", 10000))
            offset = int(base64.urlsafe_b64decode(body["pageToken"]).decode()) if body.get("pageToken") else 0
        except (KeyError, TypeError, ValueError):
            return _redlock_error(400, "invalid_request")
        if not 1 <= limit <= max_limit:
            return _redlock_error(400, "invalid_limit")
        kinds = [f.get("value") for f in body.get("filters") or [] if isinstance(f, dict) and f.get("name") == "timeRange.type"]
        field = "alertTime" if kinds in ([], ["ALERT_OPENED"]) else "lastUpdated"
        found = sorted((a for a in app.state.items if start <= a.get(field, a.get("alertTime", 0)) <= end),
                       key=lambda a: (a["alertTime"], a["id"]))
        page: dict[str, Any] = {"totalRows": len(found), "items": found[offset:offset + limit]}
        if offset + limit < len(found):
            page["nextPageToken"] = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
        return JSONResponse(page)

    return app
