"""The Defender for Cloud Apps emulator: several tenants, each under its own path with its own API token.

A tenant's API root is ``<base>/<tenant>``, standing for ``https://<tenant>.portal.cloudappsecurity.com``:

    POST /{tenant}/api/v1/alerts/     Authorization: Token <token>; body {filters: {date: {gte}, severity: {eq}},
                                      sortField: date, sortDirection, skip, limit} -> {data, hasNext, total}

A wrong token gets 401 ``{"detail": "Invalid token"}``; every `rate_limit_every`-th
call of a tenant gets 429 with ``Retry-After``. ``app.state.mcas`` holds the
alerts, tokens, knobs and the call log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultInjection, Faults, Refusals
from .samples import VENDOR_SAMPLES

SAMPLE = "mcas/alerts-list-response-item.json"
TOKENS = {"contoso": "contoso-sandbox-token", "fabrikam": "fabrikam-sandbox-token"}
MAX_LIMIT = 100


@dataclass
class McasState:
    """Each tenant's alerts and token."""

    alerts: dict[str, list[dict[str, Any]]]
    tokens: dict[str, str]
    max_limit: int


class McasRefusals(Refusals):
    """Defender for Cloud Apps' error body, Django REST framework's {"detail": ...}."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer {"detail": message}."""
        return json.dumps({"detail": "Request was throttled." if status == 429 else message}).encode(), {"Content-Type": "application/json"}


def create_app(
    tenants: dict[str, list[dict[str, Any]]] | None = None,
    *,
    tokens: dict[str, str] | None = None,
    max_limit: int = MAX_LIMIT,
    rate_limit_every: int | None = None,
    retry_after: int = 5,
) -> FastAPI:
    """Build the emulator; `tenants=None` serves the real sample in `contoso` and synthetic alerts in `fabrikam`."""
    app = FastAPI(title="alertbridge Defender for Cloud Apps sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    alerts = tenants if tenants is not None else default_tenants()
    app.state.mcas = McasState(
        alerts={name: list(items) for name, items in alerts.items()},
        tokens=tokens or {name: TOKENS.get(name, f"{name}-sandbox-token") for name in alerts},
        max_limit=max_limit,
    )  # fmt: skip
    app.state.faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after)
    # Each tenant has its own rate limit: count calls per tenant (the first path segment).
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=McasRefusals(),
                       counted=lambda path: path.split("/")[1] or None)

    @app.post("/{tenant}/api/v1/alerts/")
    async def list_alerts(tenant: str, request: Request) -> JSONResponse:
        """List one tenant's alerts matching the filters, sorted and paged by skip and limit."""
        state: McasState = request.app.state.mcas
        if tenant not in state.alerts:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        if request.headers.get("authorization", "") != f"Token {state.tokens[tenant]}":
            return JSONResponse({"detail": "Invalid token"}, status_code=401)
        try:
            body = json.loads(await request.body() or b"{}")
            filters = body.get("filters") or {}
            since = filters.get("date", {}).get("gte")
            severities = filters.get("severity", {}).get("eq")
            skip, limit = int(body.get("skip", 0)), min(int(body.get("limit", state.max_limit)), state.max_limit)
            descending = body.get("sortDirection") == "desc"
        except (ValueError, TypeError, AttributeError) as exc:
            return JSONResponse({"error": f"Invalid request: {exc}"}, status_code=400)
        chosen = [
            alert for alert in state.alerts[tenant]
            if (since is None or alert.get("timestamp", 0) >= since)
            and (severities is None or alert.get("severityValue") in severities)
        ]  # fmt: skip
        # Python's sort is stable: alerts of the same millisecond keep one order between calls.
        chosen.sort(key=lambda alert: alert.get("timestamp", 0), reverse=descending)
        return JSONResponse({"data": chosen[skip : skip + limit], "hasNext": skip + limit < len(chosen), "total": len(chosen)})

    return app


def synthetic_alert(number: int, raised: datetime, tenant: str = "fabrikam") -> dict[str, Any]:
    """Return one MCAS alert of our own making, raised at `raised`, naming a user and an IP in its text."""
    alert_id = f"65a0{number:020x}"
    return {
        "_id": alert_id, "timestamp": int(raised.timestamp() * 1000), "title": f"Impossible travel activity {number}",
        "description": f"The user bob{number}@{tenant}.com signed in from 198.51.100.{number % 250 + 1} and from 2001:db8::{number:x} within 2 minutes.",
        "entities": [
            {"type": "account", "label": f"bob{number}", "pa": f"bob{number}@{tenant}.com", "entityRole": "Source"},
            {"type": "ip", "label": f"198.51.100.{number % 250 + 1}"},
            {"type": "service", "id": 11161, "label": "Office 365"},
        ],
        "severityValue": number % 4, "statusValue": 0, "resolutionStatusValue": 0, "stories": [0], "intent": [2],
        "threatScore": 20 + number % 70, "isSystemAlert": False,
        "URL": f"https://{tenant}.portal.cloudappsecurity.com/#/alerts/{alert_id}",
    }  # fmt: skip


def default_tenants() -> dict[str, list[dict[str, Any]]]:
    """Return the real MCAS sample for `contoso` (when the vendor folder is there) and three synthetic alerts for `fabrikam`."""
    folder = VENDOR_SAMPLES
    now = datetime.now(UTC).replace(microsecond=0)
    fabrikam = [synthetic_alert(n, now - timedelta(hours=3 - n)) for n in range(3)]
    if not (folder / SAMPLE).exists():
        return {"contoso": [synthetic_alert(9, now - timedelta(hours=1), "contoso")], "fabrikam": fabrikam}
    sample = json.loads((folder / SAMPLE).read_text(encoding="utf-8"))
    # Only the time moves, so that a default one-day backfill finds the 2021 example.
    sample["timestamp"] = int((now - timedelta(hours=1)).timestamp() * 1000)
    return {"contoso": [sample], "fabrikam": fabrikam}
