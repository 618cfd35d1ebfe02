"""The Microsoft Defender emulator: Entra ID's client-credentials token endpoint and Graph's alerts_v2 list.

Paths as below the real hosts, so one base URL serves as both `login_url` and `url`:

    POST /{tenant_id}/oauth2/v2.0/token     form grant_type=client_credentials, client_id, client_secret, scope
    GET  /v1.0/security/alerts_v2           $filter=lastUpdateDateTime ge <time>, $orderby, $top, $skiptoken
    PATCH /v1.0/security/alerts_v2/{id}     status, classification, determination, assignedTo; 200 with the updated alert
    GET  /_sandbox/state                    (not Graph) each alert's status and verdict, to see what the write-backs did

Errors have the real shapes: Entra ID's ``{"error", "error_description"}`` with
an AADSTS code, Graph's ``{"error": {"code", "message"}}``, 429 with
``Retry-After``. ``app.state.defender`` holds the items and the call log, ``app.state.faults`` the fault knobs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultInjection, Faults, Refusals
from .samples import VENDOR_SAMPLES

SAMPLE = "msgraph/security-alerts_v2-list-response.json"
TENANT_ID = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
CLIENT_ID = "alertbridge-sandbox"
CLIENT_SECRET = "sandbox-secret"
FILTER = re.compile(r"^lastUpdateDateTime ge (\S+)$")


@dataclass
class DefenderState:
    """The emulator's alerts, credentials and fault knobs; tests change them between calls."""

    items: list[dict[str, Any]]
    page_size: int
    tenant_id: str
    client_id: str
    client_secret: str
    expire_tokens_after: int | None
    tokens: dict[str, int] = field(default_factory=dict)  # token -> alert calls it has made


def create_app(
    items: list[dict[str, Any]] | None = None,
    *,
    page_size: int = 50,
    tenant_id: str = TENANT_ID,
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    rate_limit_every: int | None = None,
    retry_after: int = 5,
    expire_tokens_after: int | None = None,
) -> FastAPI:
    """Build the emulator; `items=None` serves the real Graph sample (times moved to the last hours) or synthetic alerts."""
    app = FastAPI(title="alertbridge Defender sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.defender = DefenderState(
        items=list(items) if items is not None else default_items(), page_size=page_size, tenant_id=tenant_id,
        client_id=client_id, client_secret=client_secret, expire_tokens_after=expire_tokens_after,
    )  # fmt: skip
    app.state.faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after)
    # Only Graph's alert calls count towards `rate_limit_every`, not Entra ID's token endpoint.
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=GraphRefusals(),
                       counted=lambda path: "alerts" if path.startswith("/v1.0/security/alerts_v2") else None)

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> JSONResponse:
        """Issue an app-only token for the right tenant, client and secret."""
        state: DefenderState = request.app.state.defender
        # Parsed by hand: Starlette's request.form() needs python-multipart, which the hub does not ship.
        form = {name: values[0] for name, values in parse_qs((await request.body()).decode()).items()}
        if tenant != state.tenant_id:
            return _aad_error(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
        if form.get("scope") != "https://graph.microsoft.com/.default":
            return _aad_error(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid.")
        if form.get("client_id") != state.client_id:
            return _aad_error(400, "unauthorized_client", f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found.")
        if form.get("client_secret") != state.client_secret:
            return _aad_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        issued = secrets.token_urlsafe(24)
        state.tokens[issued] = 0
        return JSONResponse({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": issued})

    @app.get("/v1.0/security/alerts_v2")
    async def list_alerts(request: Request) -> JSONResponse:
        """Page through the alerts updated since $filter's time, by $skiptoken."""
        state: DefenderState = request.app.state.defender
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if presented not in state.tokens:
            return _graph_error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        state.tokens[presented] += 1
        if state.expire_tokens_after is not None and state.tokens[presented] > state.expire_tokens_after:
            return _graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        query = _page_query(request, state)
        if isinstance(query, JSONResponse):
            return query
        since, ascending, top, offset = query
        chosen = [item for item in state.items if since is None or _time(item.get("lastUpdateDateTime")) >= since]
        if ascending:
            chosen.sort(key=lambda item: _time(item.get("lastUpdateDateTime")))
        else:  # Graph's default: the most recent alerts first
            chosen.sort(key=lambda item: _time(item.get("createdDateTime")), reverse=True)
        body: dict[str, Any] = {"@odata.context": f"{request.base_url}v1.0/$metadata#security/alerts_v2", "value": chosen[offset : offset + top]}
        if offset + top < len(chosen):
            token = base64.urlsafe_b64encode(json.dumps([request.query_params.get("$filter"), ascending, top, offset + top]).encode())
            body["@odata.nextLink"] = str(request.url.replace(query=f"$skiptoken={token.decode()}"))
        return JSONResponse(body)

    @app.get("/_sandbox/state")
    async def sandbox_state(request: Request) -> JSONResponse:
        """Show each alert's status and verdict as the write-backs left them (sandbox only: no auth, not Graph)."""
        shown = ("id", "title", "status", "classification", "determination", "lastUpdateDateTime")
        return JSONResponse({"alerts": [{name: item.get(name) for name in shown} for item in request.app.state.defender.items]})

    @app.patch("/v1.0/security/alerts_v2/{alert_id}")
    async def update_alert(alert_id: str, request: Request) -> JSONResponse:
        """Update an alert as https://learn.microsoft.com/en-us/graph/api/security-alert-update does: the writable properties only."""
        state: DefenderState = request.app.state.defender
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in state.tokens:
            return _graph_error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        try:
            changes = json.loads(await request.body())
        except ValueError:
            return _graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        problem = _patch_problem(changes)
        if problem:
            return _graph_error(400, "BadRequest", problem)
        alert = next((item for item in state.items if item.get("id") == alert_id), None)
        if alert is None:
            return _graph_error(404, "NotFound", f"Alert with id '{alert_id}' was not found.")
        alert.update(changes)
        stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        alert["lastUpdateDateTime"] = stamp
        if changes.get("status") == "resolved":
            alert["resolvedDateTime"] = stamp
        return JSONResponse(alert)

    return app


WRITABLE = {
    "status": {"new", "inProgress", "resolved"},
    "classification": {"unknown", "falsePositive", "truePositive", "informationalExpectedActivity"},
    "determination": {"unknown", "apt", "malware", "securityPersonnel", "securityTesting", "unwantedSoftware", "other", "multiStagedAttack",
                      "compromisedAccount", "phishing", "maliciousUserActivity", "notMalicious", "notEnoughDataToValidate",
                      "confirmedActivity", "lineOfBusinessApplication"},
    "assignedTo": None,  # any text
}  # fmt: skip


def _patch_problem(changes: Any) -> str | None:
    """Say what Graph refuses in an alert PATCH body, or None."""
    if not isinstance(changes, dict) or not changes:
        return "The request body must be a non-empty object."
    for name, value in changes.items():
        if name not in WRITABLE:
            return f"Property '{name}' does not exist on type 'microsoft.graph.security.alert' or is not writable."
        allowed = WRITABLE[name]
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            return f"Cannot convert the literal '{value}' to the expected type for property '{name}'."
    return None


def _page_query(request: Request, state: DefenderState) -> tuple[datetime | None, bool, int, int] | JSONResponse:
    """Read $filter, $orderby and $top, or the $skiptoken that carries them; an error response if unreadable."""
    params = request.query_params
    if "$skiptoken" in params:
        try:
            text, ascending, top, offset = json.loads(base64.urlsafe_b64decode(params["$skiptoken"]))
        except (binascii.Error, ValueError, TypeError):
            return _graph_error(400, "BadRequest", "The $skiptoken is invalid or has expired.")
    else:
        text, ascending, offset = params.get("$filter"), params.get("$orderby") == "lastUpdateDateTime asc", 0
        try:
            top = int(params.get("$top", state.page_size))
        except ValueError:
            return _graph_error(400, "BadRequest", "Invalid value for $top.")
    since = None
    if text:
        match = FILTER.match(text)
        if match is None or _time(match.group(1)) == datetime.min.replace(tzinfo=UTC):
            return _graph_error(400, "BadRequest", f"Invalid filter clause: {text}")
        since = _time(match.group(1))
    return since, ascending, min(top, state.page_size), offset


def _time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class GraphRefusals(Refusals):
    """Graph's error body: {"error": {"code", "message", "innerError"}}."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer with Graph's code for the status (TooManyRequests, ServiceUnavailable…)."""
        code = {401: "InvalidAuthenticationToken", 429: "TooManyRequests", 503: "ServiceUnavailable"}.get(status, "InternalServerError")
        response = _graph_error(status, code, message)
        return response.body, {"Content-Type": "application/json"}


def _graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "")
    inner = {"date": stamp, "request-id": secrets.token_hex(8), "client-request-id": secrets.token_hex(8)}
    return JSONResponse({"error": {"code": code, "message": message, "innerError": inner}}, status_code=status, headers=headers)


def _aad_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description, "error_codes": [int(description[len("AADSTS"):].split(":")[0])]}, status_code=status)


def synthetic_alert(number: int, updated: datetime) -> dict[str, Any]:
    """Return one alert_v2 of our own making, updated at `updated`, with device, user, IP and URL evidence."""
    stamp = updated.isoformat().replace("+00:00", "Z")
    return {
        "@odata.type": "#microsoft.graph.security.alert", "id": f"da-sandbox-{number:04d}", "incidentId": str(1000 + number),
        "status": "new", "severity": ("low", "medium", "high", "informational")[number % 4], "serviceSource": "microsoftDefenderForEndpoint",
        "detectionSource": "edr", "tenantId": TENANT_ID, "title": f"Sandbox alert {number}", "description": "Made by the alertbridge sandbox.",
        "category": "Execution", "alertWebUrl": f"https://security.microsoft.com/alerts/da-sandbox-{number:04d}?tid={TENANT_ID}",
        "mitreTechniques": ["T1059.001"], "createdDateTime": stamp, "lastUpdateDateTime": stamp, "firstActivityDateTime": stamp,
        "evidence": [
            {"@odata.type": "#microsoft.graph.security.deviceEvidence", "deviceDnsName": f"ws-{number:03d}.contoso.com", "ipInterfaces": [f"10.0.0.{number % 250 + 1}"]},
            {"@odata.type": "#microsoft.graph.security.userEvidence", "userAccount": {"accountName": "alice", "domainName": "CONTOSO", "userPrincipalName": "alice@contoso.com"}},
            {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "203.0.113.7"},
            {"@odata.type": "#microsoft.graph.security.urlEvidence", "url": "https://malicious.example.net/payload"},
        ],
    }  # fmt: skip


def default_items() -> list[dict[str, Any]]:
    """Return the real Graph sample's alerts when the vendor folder is there, else three synthetic ones; updated in the last hours."""
    folder = VENDOR_SAMPLES
    now = datetime.now(UTC).replace(microsecond=0)
    if not (folder / SAMPLE).exists():
        return [synthetic_alert(n, now - timedelta(hours=3 - n)) for n in range(3)]
    items = json.loads((folder / SAMPLE).read_text(encoding="utf-8"))["value"]
    # Only the times move, so that a default one-day backfill finds the 2021 example.
    for n, item in enumerate(items):
        item["lastUpdateDateTime"] = (now - timedelta(hours=len(items) - n)).isoformat().replace("+00:00", "Z")
    return items
