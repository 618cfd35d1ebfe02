"""Defender for Cloud Apps API calls and the per-tenant cursor.

List alerts: ``POST /api/v1/alerts/`` with ``Authorization: Token <token>`` and
a body of filters, sort, ``skip`` and ``limit``; the answer is
``{"data": [...], "hasNext": bool, "total": n}``
(https://learn.microsoft.com/en-us/defender-cloud-apps/api-alerts-list).
API tokens do not expire on a schedule and cannot be renewed by the client, so
a 401 is final (``AuthFailed``): there is no token to refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2
from pydantic import SecretStr

from ...errors import Retryable
from .._values import is_millis as _is_millis
from .._http import HttpClient, Vendor

ALERTS_PATH = "/api/v1/alerts/"
PAGE_LIMIT = 100  # the most the list call returns at once


@dataclass
class Position:
    """Where one tenant's poll stands: alerts raised at or after `since` (epoch ms), `skip` of them already read."""

    since: int
    skip: int = 0

    def after(self, page: list[Any]) -> Position:
        """Return the position after `page` (sorted by date ascending).

        The next query starts at the page's newest timestamp and re-reads the
        alerts raised in that same millisecond (the core stores each once), so
        no alert is skipped even if the API orders equal timestamps differently
        from one call to the next. Only a page that is entirely one millisecond
        moves on by `skip`, so even a burst larger than a page is read through.
        """
        stamps = [a["timestamp"] for a in page if isinstance(a, dict) and _is_millis(a.get("timestamp"))]
        newest = max(stamps, default=self.since)
        if newest <= self.since:
            return Position(self.since, self.skip + len(page))
        return Position(newest, 0)


def tenant_client(source: str, tenant: str, url: str, token: SecretStr, *, timeout: float,
                  transport: httpx2.AsyncBaseTransport | None = None) -> HttpClient:
    """Return the client of one tenant: its own URL and API token; metrics name it `<source>/<tenant>`."""
    headers = {"Authorization": f"Token {token.get_secret_value()}"}
    return HttpClient(f"{source}/{tenant}", Vendor(f"mcas {tenant}"), base_url=url.rstrip("/"), headers=headers,
                      timeout=timeout, transport=transport)  # fmt: skip


async def list_alerts(client: HttpClient, position: Position, limit: int, severities: list[int] | None) -> tuple[list[Any], bool]:
    """Fetch one page of a tenant's alerts raised since `position`, oldest first; return it and whether more follow."""
    filters: dict[str, Any] = {"date": {"gte": position.since}}
    if severities is not None:
        filters["severity"] = {"eq": severities}
    body = {"filters": filters, "sortField": "date", "sortDirection": "asc", "skip": position.skip, "limit": limit}
    answer = client.json_object(await client.call("alerts", "POST", ALERTS_PATH, json=body))
    if not isinstance(answer.get("data"), list):
        # A 2xx without the list is a proxy's page or a hiccup, not a verdict on the request.
        raise Retryable(f"{client.vendor.name}: the alerts answer has no 'data' list")
    return answer["data"], answer.get("hasNext") is True
