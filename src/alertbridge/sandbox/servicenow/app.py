"""The ServiceNow emulator's routes: the Table API, the OAuth token endpoint, and /_sandbox administration.

    GET    /api/now/table/{table}            sysparm_query, sysparm_fields, sysparm_limit, sysparm_offset,
                                             sysparm_display_value, sysparm_exclude_reference_link; X-Total-Count, Link
    GET    /api/now/table/{table}/{sys_id}
    POST   /api/now/table/{table}            201 with the record
    PATCH  /api/now/table/{table}/{sys_id}   (PUT too)
    DELETE /api/now/table/{table}/{sys_id}   204
    POST   /oauth_token.do                   grant_type client_credentials or password (form)

    POST /_sandbox/records/{table}/{sys_id}  change a record as an analyst in the UI would: {"user": …, <field>: <value>}
    POST /_sandbox/outbound                  {"url", "secret" | "basic": [user, password], "header"}: where the Business Rule posts
    GET  /_sandbox/state · POST /_sandbox/faults · POST /_sandbox/reset
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ..faults import FaultInjection, Faults, Refusals, TokenBucket
from . import seed
from .outbound import BusinessRule
from .render import record_json
from .state import Instance, ServiceNowSettings, SnowError

RUNTIME_KNOBS = {"latency_ms", "fail_rate", "hang_seconds", "rate_limit", "rate_limit_every", "retry_after", "unauthorized",
                 "invalid_query_returns_no_rows"}  # fmt: skip
DEFAULT_LIMIT = 10000  # the Table API's page size when sysparm_limit is absent
TOKEN_LIFETIME = 1799


class ServiceNowRefusals(Refusals):
    """ServiceNow's error body, and the headers of a rate limit rule's 429."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer {"error": {"message", "detail"}, "status": "failure"}."""
        detail = "Required to provide Auth information" if status == 401 else None
        message = "User Not Authenticated" if status == 401 else message
        return json.dumps(SnowError(status, message, detail).body()).encode(), {"Content-Type": "application/json"}

    def throttled(self, faults: Faults, wait: float, bucket: TokenBucket | None) -> dict[str, str]:
        """Add the rule's limit, its reset (epoch seconds) and its sys_id."""
        headers = super().throttled(faults, wait, bucket)
        reset = int(faults.clock_now().timestamp() + wait) if isinstance(faults, ServiceNowSettings) else 0
        return headers | {"X-RateLimit-Reset": str(reset), "X-RateLimit-Rule": "6c1a8d9f1b2e3d40a5f6e7d8c9b0a1f2"}


def counted(path: str) -> str | None:
    """Count Table API calls towards the fault knobs; the token endpoint and /_sandbox are not counted."""
    return "table" if path.startswith("/api/now/") else None


def _instance(request: Request) -> Instance:
    return request.app.state.servicenow


def _caller(request: Request) -> str:
    """Return the user a request authenticates as (basic, or an OAuth bearer token); raise ServiceNow's 401."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials in request.app.state.tokens:
        return request.app.state.tokens[credentials]
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if any((u.user_name, u.password) == (user, password) for u in seed.USERS):
            return user
    raise SnowError(401, "User Not Authenticated", "Required to provide Auth information")


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise SnowError(400, "Exception while reading request", "The payload is not valid JSON.") from None
    if not isinstance(body, dict):
        raise SnowError(400, "Exception while reading request", "The payload is not a JSON object.")
    return body


def _render(request: Request, record: dict[str, str]) -> dict[str, Any]:
    params = request.query_params
    fields = [f.strip() for f in params.get("sysparm_fields", "").split(",") if f.strip()] or None
    base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
    return record_json(_instance(request), record, base=base, display=params.get("sysparm_display_value", "false").lower(), fields=fields,
                       exclude_links=params.get("sysparm_exclude_reference_link", "false").lower() == "true")  # fmt: skip


def _int(value: str | None, default: int) -> int:
    try:
        return max(0, int(value)) if value not in (None, "") else default
    except ValueError:
        raise SnowError(400, "Invalid query parameter", f"'{value}' is not a number") from None


# Records a hub filed earlier, so a reconcile poll finds something on its first run.
DEFAULT_RECORDS = [
    ("incident", {"short_description": "Brute force on vpn01", "correlation_id": "alertbridge-sandbox-1", "state": "2", "impact": "2",
                  "urgency": "2", "category": "network"}),
    ("sn_si_incident", {"short_description": "Phishing reported by 3 users", "correlation_id": "alertbridge-sandbox-2", "state": "16",
                        "category": "Phishing", "impact": "1", "urgency": "2"}),
]  # fmt: skip


def create_app(settings: ServiceNowSettings | None = None, records: list[tuple[str, dict[str, str]]] | None = None) -> FastAPI:
    """Build the emulator (with `records`, or a hub's two earlier records); `settings.outbound_url` makes its Business Rule post every change."""
    app = FastAPI(title="alertbridge ServiceNow sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.faults = settings or ServiceNowSettings()
    app.state.servicenow = Instance(app.state.faults)
    for table, values in DEFAULT_RECORDS if records is None else records:
        app.state.servicenow.insert(table, values, seed.USERS[0].user_name)  # before the Business Rule listens: no outbound call
    app.state.business_rule = BusinessRule(app.state.servicenow)
    app.state.tokens = {}
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=ServiceNowRefusals(), counted=counted)

    @app.exception_handler(SnowError)
    async def snow_error(request: Request, error: SnowError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.get("/api/now/table/{table}")
    async def query(table: str, request: Request) -> JSONResponse:
        """Return a page of the records matching sysparm_query."""
        _caller(request)
        params = request.query_params
        found = _instance(request).select(table, params.get("sysparm_query", ""))
        offset, limit = _int(params.get("sysparm_offset"), 0), _int(params.get("sysparm_limit"), DEFAULT_LIMIT)
        page = [_render(request, record) for record in found[offset : offset + limit]]
        headers = {"X-Total-Count": str(len(found))}
        if offset + limit < len(found):
            headers["Link"] = f'<{request.url.include_query_params(sysparm_offset=offset + limit)}>;rel="next"'
        return JSONResponse({"result": page}, headers=headers)

    @app.get("/api/now/table/{table}/{sys_id}")
    async def read(table: str, sys_id: str, request: Request) -> dict:
        """Return one record."""
        _caller(request)
        return {"result": _render(request, _instance(request).record(table, sys_id))}

    @app.post("/api/now/table/{table}", status_code=201)
    async def insert(table: str, request: Request) -> dict:
        """Create a record."""
        user = _caller(request)
        return {"result": _render(request, _instance(request).insert(table, await _body(request), user))}

    @app.api_route("/api/now/table/{table}/{sys_id}", methods=["PATCH", "PUT"])
    async def update(table: str, sys_id: str, request: Request) -> dict:
        """Change a record."""
        user = _caller(request)
        return {"result": _render(request, _instance(request).update(table, sys_id, await _body(request), user))}

    @app.delete("/api/now/table/{table}/{sys_id}", status_code=204)
    async def delete(table: str, sys_id: str, request: Request) -> Response:
        """Delete a record."""
        _caller(request)
        _instance(request).delete(table, sys_id)
        return Response(status_code=204)

    @app.post("/oauth_token.do")
    async def token(request: Request) -> JSONResponse:
        """Issue an access token for the OAuth application (client credentials, or a user's password)."""
        form = {name: values[0] for name, values in parse_qs((await request.body()).decode()).items()}
        if (form.get("client_id"), form.get("client_secret")) != (seed.OAUTH_CLIENT_ID, seed.OAUTH_CLIENT_SECRET):
            return JSONResponse({"error_description": "access_denied", "error": "server_error"}, status_code=401)
        user = seed.USERS[0].user_name
        if form.get("grant_type") == "password":
            if not any((u.user_name, u.password) == (form.get("username"), form.get("password")) for u in seed.USERS):
                return JSONResponse({"error_description": "access_denied", "error": "server_error"}, status_code=401)
            user = form["username"]
        elif form.get("grant_type") != "client_credentials":
            return JSONResponse({"error_description": "unsupported_grant_type", "error": "invalid_request"}, status_code=400)
        access = secrets.token_urlsafe(32)
        request.app.state.tokens[access] = user
        return JSONResponse({"access_token": access, "refresh_token": secrets.token_urlsafe(32), "scope": "useraccount",
                             "token_type": "Bearer", "expires_in": TOKEN_LIFETIME})  # fmt: skip

    @app.post("/_sandbox/records/{table}/{sys_id}")
    async def admin_change(table: str, sys_id: str, request: Request) -> dict:
        """Change a record as a person in the UI would (the Business Rule fires as for any write)."""
        body = await _body(request)
        user = str(body.pop("user", seed.USERS[1].user_name))
        return {"result": _render(request, _instance(request).update(table, sys_id, body, user))}

    @app.post("/_sandbox/outbound")
    async def admin_outbound(request: Request) -> dict:
        """Point the Business Rule at a hub URL, signed with a secret or with basic auth."""
        body = await _body(request)
        faults: ServiceNowSettings = request.app.state.faults
        faults.outbound_url, faults.outbound_secret = body.get("url"), body.get("secret")
        faults.outbound_basic = tuple(body["basic"]) if body.get("basic") else None
        faults.outbound_header = body.get("header", faults.outbound_header)
        return {"url": faults.outbound_url, "signed": bool(faults.outbound_secret), "basic": bool(faults.outbound_basic)}

    @app.get("/_sandbox/state")
    async def admin_state(request: Request) -> dict:
        """Count records, calls and 429s; show the fault settings and the outbound calls made."""
        faults: ServiceNowSettings = request.app.state.faults
        instance = _instance(request)
        return {"records": {t: len(instance.tables[t]) for t in ("incident", "sn_si_incident")}, "calls": len(faults.calls),
                "rate_limited": sum(1 for call in faults.calls if call[2] == 429),
                "outbound": [status for status, _ in request.app.state.business_rule.sent],
                "faults": {name: getattr(faults, name) for name in sorted(RUNTIME_KNOBS)}}  # fmt: skip

    @app.post("/_sandbox/faults")
    async def admin_faults(request: Request) -> dict:
        """Change fault knobs while the server runs."""
        body = await _body(request)
        if unknown := set(body) - RUNTIME_KNOBS:
            raise SnowError(400, "Unknown settings", ", ".join(sorted(unknown)))
        for name, value in body.items():
            setattr(request.app.state.faults, name, value)
        return await admin_state(request)

    @app.post("/_sandbox/reset")
    async def admin_reset(request: Request) -> dict:
        """Forget every record, journal entry and call; restart the fault sequence."""
        _instance(request).reset()
        request.app.state.faults.calls.clear()
        return await admin_state(request)

    return app
