"""The XSOAR REST client: the API key, XSOAR's error body, and the incident search every other part uses.

XSOAR 6 takes the API key as it is in ``Authorization``; XSOAR 8 also wants the
key's id in ``x-xdr-auth-id`` and serves the API below ``/xsoar/public/v1``
(that prefix goes in the configured ``url``). Errors come as
``{"id", "status", "title", "detail", "error"}``.
Spec: ../shared/vendor/xsoar/xsoar-server-api-swagger-2.0.json (demisto/demisto-py's server_api_swagger.json).
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
from pydantic import Field, SecretStr, field_validator

from ...errors import Permanent
from .._http import HttpClient, Vendor
from ..webhook_auth import StrictModel

# Incident status numbers (IncidentStatus in the spec): 0 pending, 1 active, 2 closed, 3 archived.
STATUSES = {0: ("Pending", "new"), 1: ("Active", "indeterminate"), 2: ("Closed", "done"), 3: ("Archived", "done")}
ACTIVE, CLOSED = 1, 2


class XsoarVendor(Vendor):
    """XSOAR's error body: `title`, `detail` and `error`."""

    def message(self, body: Any) -> str | None:
        """Join title, detail and error, skipping empty and repeated parts."""
        if not isinstance(body, dict):
            return None
        parts = [str(body[key]) for key in ("title", "detail", "error") if isinstance(body.get(key), str) and body[key]]
        return "; ".join(dict.fromkeys(parts)) or super().message(body)


XSOAR = XsoarVendor("xsoar")


class XsoarAccess(StrictModel):
    """Where the XSOAR server is and the API key it knows the hub by."""

    url: str = Field(description="Base URL of the XSOAR API: the server (XSOAR 6), or the tenant's API URL ending in "
                     "/xsoar/public/v1 (XSOAR 8)", examples=["https://xsoar.example.com"], pattern=r"^https?://")
    api_key: SecretStr = Field(description="An API key (Settings > Integrations > API Keys)", examples=["${XSOAR_API_KEY}"])
    api_key_id: str | None = Field(default=None, description="XSOAR 8: the key's ID, sent as x-xdr-auth-id", examples=["3"])
    timeout: float = Field(default=10.0, gt=0, description="Seconds one call may take, all included", examples=[10])

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, url: str) -> str:
        return url.rstrip("/")


def client(name: str, access: XsoarAccess, transport: httpx2.AsyncBaseTransport | None) -> HttpClient:
    """Return the HTTP client of one XSOAR server."""
    headers = {"Authorization": access.api_key.get_secret_value()}
    if access.api_key_id:
        headers["x-xdr-auth-id"] = access.api_key_id
    return HttpClient(name, XSOAR, base_url=access.url, headers=headers, timeout=access.timeout, transport=transport)


def quoted(value: str) -> str:
    """Quote a value for an XSOAR query (`field:"value"`)."""
    return json.dumps(value)


async def search(http: HttpClient, operation: str, filter_: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the incidents of one `POST /incidents/search` page."""
    body = http.json_object(await http.call(operation, "POST", "/incidents/search", json={"filter": filter_}))
    data = body.get("data")
    if data is None:
        return []  # XSOAR answers `"data": null` when nothing matches
    if not isinstance(data, list):
        raise Permanent("xsoar POST /incidents/search: the answer's data is not a list")
    return [incident for incident in data if isinstance(incident, dict)]


async def incident(http: HttpClient, key: str) -> dict[str, Any]:
    """Return one incident by id; raise Permanent(404) when XSOAR has none."""
    found = await search(http, "get", {"id": [key], "size": 1})
    if not found:
        raise Permanent(f"xsoar: no incident {key}", status=404)
    return found[0]


def status_of(incident: dict[str, Any]) -> tuple[str, str]:
    """Return an incident's status name and category (new, indeterminate, done)."""
    number = incident.get("status")
    return STATUSES.get(int(number) if isinstance(number, int | float) else -1, (f"Status {number}", "indeterminate"))
